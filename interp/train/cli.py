"""`interp train classifier` and the evaluator for classifier checkpoints.

Language-model training commands live in `interp/train/lm_cli.py` (registered from here when it exists).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from interp.argtypes import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from interp.data import DATASETS
from interp.device import resolve_device, torch_threads
from interp.errors import InterpError
from interp.train.options import ARCHS, TrainOptions

DEFAULTS = TrainOptions()


def train_classifier_command(args: argparse.Namespace) -> dict[str, Any]:
    from interp.io import check_output_folder
    from interp.train.classifier import train_and_save

    check_output_folder(args.out, args.force, "--out", kind="classifier")

    options = TrainOptions(dataset=args.dataset, arch=args.arch, epochs=args.epochs, hidden=args.hidden,
                           embed=args.embed or None, bias=args.bias, noise=args.noise, wd=args.wd, lr=args.lr,
                           batch_size=args.batch_size, seed=args.seed, warmup_frac=args.warmup,
                           rank_penalty=args.rank_penalty, rank_keep=args.rank_keep, rank_every=args.rank_every,
                           shift=args.shift, shift_prob=args.shift_prob)
    command = classifier_command(options, args.out, args.data_dir)
    with torch_threads(args.threads):
        metrics = train_and_save(args.out, options, data_dir=args.data_dir, quiet=args.quiet, command=command,
                                 force=args.force, device=resolve_device(args.device))
    return {"out": str(args.out), **{k: metrics[k] for k in ("test_accuracy", "train_accuracy", "n_params",
                                                             "train_seconds", "arch", "dataset")}}


def classifier_command(options: TrainOptions, out: str | Path, data_dir: Path | None = None) -> str:
    """The full `interp train classifier` command with every option of `options` spelled out, so that metrics.json
    (and the spectra sweep) say exactly how to remake a model."""
    parts = ["interp", "train", "classifier", "--dataset", options.dataset, "--arch", options.arch, "--out", str(out),
             "--epochs", str(options.epochs), "--hidden", str(options.hidden), "--embed", str(options.embed or 0),
             "--noise", str(options.noise), "--wd", str(options.wd), "--lr", str(options.lr),
             "--warmup", str(options.warmup_frac), "--batch-size", str(options.batch_size), "--seed", str(options.seed)]
    if options.bias:
        parts.append("--bias")
    if options.rank_penalty > 0:
        parts += ["--rank-penalty", str(options.rank_penalty), "--rank-keep", str(options.rank_keep),
                  "--rank-every", str(options.rank_every)]
    if options.shift > 0:
        parts += ["--shift", str(options.shift)]
        if options.shift_prob < 1.0:
            parts += ["--shift-prob", str(options.shift_prob)]
    if data_dir is not None:
        parts += ["--data-dir", str(data_dir)]
    return " ".join(shlex.quote(p) for p in parts)


def evaluate_classifier(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Recompute the test accuracy of a classifier checkpoint from its weights."""
    from interp.data.images import load_image_dataset
    from interp.models.bilinear import count_parameters
    from interp.models.checkpoints import load_classifier
    from interp.train.classifier import accuracy

    model, config, metrics = load_classifier(path)
    dataset = load_image_dataset(config.get("dataset", ""), getattr(args, "data_dir", None))
    d_in = dataset.test.images[0].numel()
    if model.d_in != d_in:
        raise InterpError(f"{path} expects inputs of size {model.d_in} but {dataset.name} images have {d_in} pixels")
    return {"test_accuracy": accuracy(model, dataset.test), "n_params": count_parameters(model),
            "arch": model.arch, "dataset": dataset.name, "n_test": len(dataset.test),
            "recorded_test_accuracy": metrics.get("test_accuracy")}


def _train_cnn(args: argparse.Namespace) -> dict[str, Any]:
    from interp.device import torch_threads
    from interp.io import check_output_folder
    from interp.train.cnn import CNNTrainOptions, train_and_save_cnn

    check_output_folder(args.out, args.force, "--out", kind="classifier")

    options = CNNTrainOptions(dataset=args.dataset, epochs=args.epochs, channels=tuple(args.channels),
                              kernel=args.kernel, pool=args.pool, bias=args.bias, lr=args.lr,
                              batch_size=args.batch_size, seed=args.seed)
    command = "interp " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("interp") else None
    with torch_threads(args.threads):
        metrics = train_and_save_cnn(args.out, options, data_dir=args.data_dir, quiet=args.quiet, command=command,
                                     force=args.force)
    return {"out": str(args.out), **{k: metrics[k] for k in ("test_accuracy", "train_accuracy", "n_params",
                                                               "train_seconds", "epochs")}}


def register(cli) -> None:
    p = cli.add_train("classifier", train_classifier_command,
                      help="train an image classifier (bilinear, or the equal-parameter ReLU baseline)")
    p.add_argument("--dataset", choices=DATASETS, default=DEFAULTS.dataset)
    p.add_argument("--arch", choices=ARCHS, default=DEFAULTS.arch)
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--epochs", type=positive_int, default=DEFAULTS.epochs)
    p.add_argument("--hidden", type=positive_int, default=DEFAULTS.hidden, help="bilinear hidden width")
    p.add_argument("--embed", type=non_negative_int, default=0, help="linear embedding width before the bilinear layer (0: none)")
    p.add_argument("--bias", action="store_true", help="bilinear layer reads [x, 1] (bias by augmentation)")
    p.add_argument("--noise", type=non_negative_float, default=DEFAULTS.noise, help="std of Gaussian input noise")
    p.add_argument("--wd", type=non_negative_float, default=DEFAULTS.wd, help="AdamW weight decay")
    p.add_argument("--lr", type=positive_float, default=DEFAULTS.lr)
    p.add_argument("--warmup", type=non_negative_float, default=DEFAULTS.warmup_frac,
                   help="fraction of steps of linear warm-up before the cosine decay")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size)
    p.add_argument("--rank-penalty", type=non_negative_float, default=DEFAULTS.rank_penalty,
                   help="bilinear: weight of the penalty on each class spectrum's |eigenvalue| mass beyond the "
                        "top --rank-keep (0: off); makes top-k truncation faithful")
    p.add_argument("--rank-keep", type=positive_int, default=DEFAULTS.rank_keep,
                   help="eigen-components per class left free by --rank-penalty")
    p.add_argument("--rank-every", type=positive_int, default=DEFAULTS.rank_every,
                   help="pay the rank penalty every N steps (scaled by N; it costs one batched eigvalsh)")
    p.add_argument("--shift", type=non_negative_int, default=DEFAULTS.shift,
                   help="random-translation augmentation: move each training image by up to this many pixels "
                        "in each direction, zero-filled (0: off)")
    p.add_argument("--shift-prob", type=probability, default=DEFAULTS.shift_prob,
                   help="the share of training images that --shift moves (default 1: all)")
    p.add_argument("--seed", type=non_negative_int, default=DEFAULTS.seed)
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the Fashion-MNIST .gz files")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint folder")
    cli.add_evaluator("classifier", evaluate_classifier)

    from interp.train import lm_cli

    lm_cli.register(cli)

    p = cli.add_train("cnn", _train_cnn, "train the small CNN (conv, ReLU, pooling, linear) on an image dataset")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default) or digits")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--epochs", type=positive_int, default=4)
    p.add_argument("--channels", type=positive_int, nargs="+", default=[16, 32], help="output channels of each conv block")
    p.add_argument("--kernel", type=positive_int, default=5)
    p.add_argument("--pool", default="avg", choices=["avg", "sum"])
    p.add_argument("--bias", action="store_true", help="give conv and linear layers biases (default: none)")
    p.add_argument("--lr", type=positive_float, default=2e-3)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint")
