"""Eigendecomposition of all 10 class interaction matrices: ours vs a plain einsum + eigh baseline.

Ours: one contraction over the hidden dimension for all classes (never the d³ tensor), and, when
the model has a narrower embedding, the eigenproblem solved in the embedding's row space.
Baseline: build the full symmetrised tensor with einsum in pixel space, then torch.linalg.eigh.
Both are timed in this one process (median of several runs), so the ratio is what to read; the
absolute seconds depend on how busy the machine is (the load average is printed).

    .venv/bin/python bench/bench_eigen.py [--checkpoint checkpoints/fmnist-bilinear] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from timing import median_seconds

from interp.bilinear.analysis import class_eigen
from interp.bilinear.core import BilinearWeights, classifier_weights
from interp.models.checkpoints import load_classifier

ROOT = Path(__file__).resolve().parents[1]


def baseline(weights: BilinearWeights) -> torch.Tensor:
    """The textbook way: the full tensor in pixel space by einsum, then eigh of every slice."""
    W, V, P = weights.W, weights.V, weights.P
    M = weights.input_map()  # the embedding (block-diagonal with the constant 1 when the layer has a bias)
    if M is not None:
        W, V = W @ M, V @ M
    B = 0.5 * (torch.einsum("oh,hi,hj->oij", P, W, V) + torch.einsum("oh,hj,hi->oij", P, W, V))
    return torch.linalg.eigh(B).eigenvalues


def bench(name: str, weights: BilinearWeights, repeats: int) -> None:
    ours = median_seconds(lambda: class_eigen(weights), repeats)
    base = median_seconds(lambda: baseline(weights), max(1, repeats // 2))
    # both compute the same spectra
    a = class_eigen(weights).eigenvalues
    b = baseline(weights)
    b = b.gather(-1, b.abs().argsort(-1, descending=True))[:, : a.shape[1]]
    err = ((a - b).abs().max() / b.abs().max()).item()
    print(f"{name}: ours {ours:.3f} s, baseline einsum+eigh {base:.3f} s, speed-up x{base / ours:.1f} "
          f"(max rel. eigenvalue difference {err:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "fmnist-bilinear")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on an oversubscribed machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    if (args.checkpoint / "model.safetensors").is_file():
        model, _, _ = load_classifier(args.checkpoint, expect_arch="bilinear")
        bench(f"{args.checkpoint.name} ({model.config()})", classifier_weights(model), args.repeats)
    # a layer reading the 784 pixels directly (no embedding): the full 784×784 eigenproblems
    torch.manual_seed(0)
    from interp.models.bilinear import BilinearClassifier

    plain = BilinearClassifier(784, 10, d_hidden=512)
    bench("no embedding, d_in=784, hidden=512 (random weights)", classifier_weights(plain), args.repeats)


if __name__ == "__main__":
    main()
