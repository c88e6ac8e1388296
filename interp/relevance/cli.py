"""`interp relevance`, `interp relevance-eval` and `interp train cnn`: parse, call one function, print."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from interp.argtypes import non_negative_int, positive_float, positive_int


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


def _relevance(args: argparse.Namespace) -> dict[str, Any]:
    from interp.relevance.commands import relevance_command

    return relevance_command(args)


def _relevance_eval(args: argparse.Namespace) -> dict[str, Any]:
    from interp.relevance.commands import relevance_eval_command

    return relevance_eval_command(args)


def register(cli: Any) -> None:
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

    p = cli.add_command("relevance", _relevance,
                        "deep Taylor relevance of one input (image or text) for one output: sum, explained output, top pixels/tokens")
    p.add_argument("path", type=Path, help="checkpoint folder (image classifier or bilinear LM)")
    p.add_argument("--index", type=non_negative_int, default=None, help="test-set image index (image classifiers)")
    p.add_argument("--text", default=None, help="prompt (language models)")
    p.add_argument("--target", default=None,
                   help="class index or name (classifier; default: predicted) or token (LM; default: top next token)")
    p.add_argument("--rule-map", default="dtd", help="dtd (default), lrp0, epsilon, zplus, w2")
    p.add_argument("--bounds", default="range", choices=["range", "data"],
                   help="zᴮ pixel bounds: range = [0, 1] (default); data = each pixel's min/max over the training set")
    p.add_argument("--top", type=positive_int, default=10, help="how many top pixels or tokens to print")
    p.add_argument("--pairs", action="store_true", help="bilinear classifiers: also print the top pixel pairs R_ij")
    p.add_argument("--out", type=Path, default=None, help="write a heatmap: .png or .html")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--data-dir", type=Path, default=None)

    p = cli.add_command("relevance-eval", _relevance_eval,
                        "pixel flipping and AOPC for DTD, gradient×input, gradient and random on test images")
    p.add_argument("path", type=Path, help="image-classifier checkpoint folder")
    p.add_argument("--n-images", type=positive_int, default=1000)
    p.add_argument("--steps", type=positive_int, default=50, help="flipping steps")
    p.add_argument("--pixels-per-step", type=positive_int, default=8)
    p.add_argument("--rule-map", default="dtd")
    p.add_argument("--replacement", default="zero", choices=["zero", "uniform"],
                   help="what a flipped pixel becomes: zero (removed, default) or uniform noise")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=250)
    p.add_argument("--out", type=Path, default=None, help="write the pixel-flipping curves: .html")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--data-dir", type=Path, default=None)
