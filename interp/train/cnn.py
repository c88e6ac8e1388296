"""Training the small Fashion-MNIST CNN (`interp train cnn`), the model deep Taylor maps are shown on.

Adam with a cosine learning-rate schedule; one explicitly seeded generator for the initialisation,
the shuffling and nothing else, so the same options and seed give the same checkpoint on CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from interp.data.images import ImageDataset, load_image_dataset
from interp.errors import InterpError
from interp.io import git_commit, staged_folder
from interp.models.checkpoints import save_classifier
from interp.models.cnn import SmallCNN
from interp.train.classifier import accuracy, cosine_schedule, fit


@dataclass
class CNNTrainOptions:
    dataset: str = "fashion-mnist"
    epochs: int = 4
    channels: tuple[int, ...] = (16, 32)
    kernel: int = 5
    pool: str = "avg"  # "avg" or "sum"
    bias: bool = False
    lr: float = 2e-3
    batch_size: int = 128
    seed: int = 0


def train_cnn(dataset: ImageDataset, options: CNNTrainOptions, quiet: bool = False) -> tuple[SmallCNN, dict[str, Any]]:
    """Train a SmallCNN on `dataset`; return it (eval mode) and its metrics."""
    if options.pool not in ("avg", "sum"):
        raise InterpError(f"--pool must be avg or sum, not {options.pool!r}")
    if options.epochs < 1:
        raise InterpError("--epochs must be at least 1")
    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    height, width = dataset.image_shape
    if height != width:
        raise InterpError(f"the CNN needs square images, {dataset.name} has {height}x{width}")
    model = SmallCNN(dataset.n_classes, height, options.channels, options.kernel, options.pool, options.bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    n = len(dataset.train)
    total = math.ceil(n / options.batch_size) * options.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_schedule(s, total, 0))
    start = time.perf_counter()
    loss_value = fit(model, optimizer, scheduler, dataset.train.images, dataset.train.labels, options.epochs,
                     options.batch_size, generator, desc="train cnn", quiet=quiet)
    seconds = time.perf_counter() - start
    model.eval()
    metrics = {"test_accuracy": accuracy(model, dataset.test), "train_accuracy": accuracy(model, dataset.train),
               "n_params": sum(p.numel() for p in model.parameters()), "train_seconds": round(seconds, 2),
               "final_loss": loss_value, "epochs": options.epochs}
    return model, metrics


def train_and_save_cnn(out: str | Path, options: CNNTrainOptions, data_dir: str | Path | None = None,
                       quiet: bool = False, command: str | None = None, force: bool = False) -> dict[str, Any]:
    """Train and write `out/` as one atomic step (staged in a temporary sibling folder, then renamed)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise InterpError(f"{out} already exists and is not empty; choose another --out or pass --force to replace it")
    dataset = load_image_dataset(options.dataset, data_dir)
    model, metrics = train_cnn(dataset, options, quiet=quiet)
    metrics = {**metrics, "dataset": options.dataset, "arch": "cnn", "options": asdict(options), "command": command,
               "git_commit": git_commit(), "torch_threads": torch.get_num_threads()}
    with staged_folder(out) as staging:
        save_classifier(staging, model, options.dataset, metrics,
                        extra={"class_names": dataset.class_names, "image_shape": list(dataset.image_shape)})
    return metrics
