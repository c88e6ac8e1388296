"""Training image classifiers: the bilinear model and its equal-parameter ReLU baseline.

The recipe is the bilinear paper's: AdamW with weight decay, a cosine learning-rate schedule, and
Gaussian noise added to the inputs during training (the regulariser that makes the eigenvectors of
a bilinear model clean and readable). Everything random draws from one explicitly seeded generator,
so the same options and seed give the same checkpoint on CPU.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from interp.bilinear.core import BilinearWeights, spectral_tail
from interp.data.images import ImageDataset, ImageSplit, load_image_dataset
from interp.errors import InterpError
from interp.io import git_commit, machine_load, staged_folder
from interp.models.bilinear import BilinearClassifier, ReluMLP, count_parameters
from interp.models.checkpoints import save_classifier
from interp.results import Result
from interp.train.options import ARCHS, TrainOptions  # noqa: F401  (defined there: the CLI reads them without torch)

@dataclass
class TrainResult(Result):
    test_accuracy: float
    train_accuracy: float
    n_params: int
    train_seconds: float
    epochs: int
    final_loss: float


def build_model(options: TrainOptions, d_in: int, n_classes: int) -> nn.Module:
    """The bilinear classifier of the options, or the ReLU MLP with the same number of parameters."""
    if options.arch not in ARCHS:
        raise InterpError(f"unknown architecture {options.arch!r}; choose one of {', '.join(ARCHS)}")
    bilinear = BilinearClassifier(d_in, n_classes, d_hidden=options.hidden, d_embed=options.embed, bias=options.bias)
    if options.arch == "bilinear":
        return bilinear
    width = ReluMLP.hidden_for_params(d_in, n_classes, count_parameters(bilinear))
    return ReluMLP(d_in, n_classes, d_hidden=width)


@torch.no_grad()
def accuracy(model: nn.Module, split: ImageSplit, batch_size: int = 2000) -> float:
    """Fraction of `split` that `model` classifies correctly."""
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        x = split.images[start:start + batch_size]
        y = split.labels[start:start + batch_size]
        correct += (model(x).argmax(-1) == y).sum().item()
    return correct / max(1, len(split))


def cosine_schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up, then a cosine from 1 to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def shift_images(x: torch.Tensor, side: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Translate each flattened `side` × `side` image of `x` (shape (B, side²)) down by `dy[b]` and right by
    `dx[b]` pixels (negative: up / left): out[b, i, j] = x[b, i - dy[b], j - dx[b]], and 0 where that pixel
    lies outside the image (zero fill, no wrap-around). Returns shape (B, side²)."""
    b = x.shape[0]
    if x.shape[1] != side * side:
        raise InterpError(f"cannot shift inputs of size {x.shape[1]} as {side} × {side} images")
    pad = int(max(dy.abs().max().item(), dx.abs().max().item())) if b else 0
    width = side + 2 * pad
    padded = nn.functional.pad(x.reshape(b, side, side), (pad, pad, pad, pad)).reshape(b, width * width)
    grid = torch.arange(side, device=x.device)
    rows = grid[None, :, None] - dy.long().to(x.device)[:, None, None] + pad  # (B, side, 1)
    cols = grid[None, None, :] - dx.long().to(x.device)[:, None, None] + pad  # (B, 1, side)
    return padded.gather(1, (rows * width + cols).reshape(b, side * side))


def random_shift(x: torch.Tensor, shift: int, generator: torch.Generator, probability: float = 1.0) -> torch.Tensor:
    """`shift_images` by a uniform random (dy, dx) in [-shift, shift]² per image, drawn from `generator`; with
    `probability` < 1 each image is moved only with that probability (else left in place). The images are square,
    their side derived from the input size (28 for Fashion-MNIST, 8 for digits)."""
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise InterpError(f"--shift needs square images; inputs of size {x.shape[1]} are not")
    offsets = torch.randint(-shift, shift + 1, (x.shape[0], 2), generator=generator)
    if probability < 1.0:  # no extra draw at 1, so runs made before this option replay exactly
        offsets = offsets * (torch.rand(x.shape[0], 1, generator=generator) < probability)
    return shift_images(x, side, offsets[:, 0], offsets[:, 1])


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
        images: torch.Tensor, labels: torch.Tensor, epochs: int, batch_size: int, generator: torch.Generator,
        noise: float = 0.0, desc: str = "train", quiet: bool = False, device: torch.device | str = "cpu",
        penalty: Callable[[], torch.Tensor] | None = None, penalty_every: int = 1, shift: int = 0,
        shift_probability: float = 1.0) -> float:
    """The shared epoch loop: shuffle with `generator`, optional random translation (`shift` pixels at
    most, of a `shift_probability` share of the images; flattened square images only) then Gaussian input
    noise, cross-entropy, one optimizer and scheduler step per batch. Returns the mean training loss of the last epoch.

    `penalty` (a weight regulariser, if any) is added every `penalty_every` steps, scaled by
    `penalty_every` so that its average pull does not depend on how often it is paid for."""
    n = len(labels)
    loss_value = float("nan")
    bar = tqdm(range(epochs), desc=desc, disable=quiet, unit="epoch")
    step = 0
    for _ in bar:
        model.train()
        order = torch.randperm(n, generator=generator)
        total_loss = 0.0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            x = images[idx]
            if shift > 0:
                x = random_shift(x, shift, generator, shift_probability)
            if noise > 0:
                x = x + noise * torch.randn(x.shape, generator=generator)
            loss = nn.functional.cross_entropy(model(x.to(device)), labels[idx].to(device))
            total_loss += loss.item() * len(idx)
            if penalty is not None and step % penalty_every == 0:
                loss = loss + penalty_every * penalty()
            step += 1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        loss_value = total_loss / n
        bar.set_postfix(loss=f"{loss_value:.4f}")
    return loss_value


def _class_spectral_tail(model: BilinearClassifier, keep: int, weight: float) -> torch.Tensor:
    """The rank penalty: `weight` × the class spectra's mass beyond the top `keep` (live weights, not detached)."""
    embed = model.embed.weight if model.embed is not None else None
    weights = BilinearWeights(model.bilinear.W, model.bilinear.V, model.head.weight, embed, bool(model.bilinear.bias))
    return weight * spectral_tail(weights, torch.eye(model.n_classes, device=model.head.weight.device), keep)


def train_classifier(dataset: ImageDataset, options: TrainOptions, quiet: bool = False,
                     device: torch.device | str = "cpu") -> tuple[nn.Module, TrainResult]:
    """Train one classifier on `dataset` with `options`; return the model (on CPU, eval mode) and its metrics."""
    torch.manual_seed(options.seed)  # parameter initialisation
    generator = torch.Generator().manual_seed(options.seed)  # shuffling and input noise
    d_in = dataset.train.images[0].numel()
    model = build_model(options, d_in, dataset.n_classes).to(device)

    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.wd)
    n = len(dataset.train)
    steps_per_epoch = math.ceil(n / options.batch_size)
    total = steps_per_epoch * options.epochs
    warmup = int(options.warmup_frac * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_schedule(s, total, warmup))
    images = dataset.train.images.reshape(n, -1)
    labels = dataset.train.labels

    penalty = None
    if options.rank_penalty > 0:
        if options.arch != "bilinear":
            raise InterpError("--rank-penalty needs the bilinear architecture (it penalises its class spectra)")
        penalty = functools.partial(_class_spectral_tail, model, options.rank_keep, options.rank_penalty)
    start = time.perf_counter()
    loss_value = fit(model, optimizer, scheduler, images, labels, options.epochs, options.batch_size, generator,
                     noise=options.noise, desc=f"train {options.arch}", quiet=quiet, device=device,
                     penalty=penalty, penalty_every=options.rank_every, shift=options.shift,
                     shift_probability=options.shift_prob)
    seconds = time.perf_counter() - start

    model = model.cpu().eval()
    result = TrainResult(test_accuracy=accuracy(model, dataset.test), train_accuracy=accuracy(model, dataset.train),
                         n_params=count_parameters(model), train_seconds=round(seconds, 2), epochs=options.epochs,
                         final_loss=loss_value)
    return model, result


def train_and_save(out: str | Path, options: TrainOptions, data_dir: str | Path | None = None, quiet: bool = False,
                   command: str | None = None, force: bool = False, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Train and write `out/` (model.safetensors, config.json, metrics.json) as one atomic step.

    The checkpoint is first written into a temporary sibling folder and renamed into place, so an
    interrupted run never leaves a half-written checkpoint; an existing checkpoint is replaced only
    with `force`.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise InterpError(f"{out} already exists and is not empty; choose another --out or pass --force to replace it")
    dataset = load_image_dataset(options.dataset, data_dir)  # bad data fails before anything is written
    model, result = train_classifier(dataset, options, quiet=quiet, device=device)
    metrics = {**result.to_dict(), "dataset": options.dataset, "arch": options.arch, "options": asdict(options),
               "command": command, "git_commit": git_commit(), **machine_load()}

    with staged_folder(out) as staging:
        save_classifier(staging, model, options.dataset, metrics, extra={"class_names": dataset.class_names,
                                                                          "image_shape": list(dataset.image_shape)})
    return metrics
