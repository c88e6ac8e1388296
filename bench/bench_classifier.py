"""Fashion-MNIST classifiers: accuracy of the shipped bilinear models vs their equal-parameter ReLU baseline.

Re-evaluates the shipped checkpoints from their weights and prints the figures the project targets
(the most accurate bilinear model, `fmnist-bilinear-accurate`, >= 0.90 and at most 0.5 points below ReLU;
top-10 truncation within 1 point of the full model) with the recorded training time, the load average at
training time, and the command that made each. The default `fmnist-bilinear` (the readable recipe, see
bench/sweep_bilinear_spectra.py) and `fmnist-bilinear-rank10` (trained with `--rank-penalty`) are reported
beside them. `--retrain NAME ...` re-runs each named checkpoint's recorded command into a temporary folder
and times it here.

    .venv/bin/python bench/bench_classifier.py [--retrain fmnist-bilinear fmnist-bilinear-accurate fmnist-relu ...]
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time
from pathlib import Path

import torch

from interp.bilinear.analysis import class_eigen, truncation_accuracy
from interp.bilinear.core import classifier_weights
from interp.cli import main as interp_main
from interp.data.images import load_fashion_mnist
from interp.models.checkpoints import load_classifier
from interp.train.classifier import accuracy

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("fmnist-bilinear", "fmnist-bilinear-accurate", "fmnist-relu", "fmnist-bilinear-rank10")


def retrain(command: str, out: Path) -> float:
    argv = shlex.split(command)[1:]
    argv[argv.index("--out") + 1] = str(out)
    start = time.perf_counter()
    assert interp_main(argv + ["--quiet", "--json"]) == 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", nargs="*", default=[], choices=MODELS, metavar="NAME",
                        help=f"checkpoints to retrain and time: {', '.join(MODELS)}")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = load_fashion_mnist()
    results = {}
    for name in MODELS:
        if not (ROOT / "checkpoints" / name).is_dir():
            continue
        model, config, metrics = load_classifier(ROOT / "checkpoints" / name)
        acc = accuracy(model, data.test)
        results[name] = acc
        print(f"{name}: test accuracy {acc:.4f}, {metrics['n_params']} parameters, trained in "
              f"{metrics['train_seconds']} s (load average then {metrics.get('load_average_1_5_15')})\n"
              f"  made by: {metrics['command']}")
        if model.arch == "bilinear":
            weights = classifier_weights(model)
            trunc = truncation_accuracy(class_eigen(weights), weights.augment(data.test.flat), data.test.labels, (10,))
            print(f"  top-10 truncation: {trunc['10']:.4f} ({100 * (acc - trunc['10']):.2f} points below full)")
    best = results["fmnist-bilinear-accurate"]
    gap = 100 * (best - results["fmnist-relu"])
    print(f"bilinear (accurate) - relu: {gap:+.2f} points (target >= -0.5); bilinear (accurate) >= 0.90: {best >= 0.90}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.retrain:
            _, _, metrics = load_classifier(ROOT / "checkpoints" / name)
            seconds = retrain(metrics["command"], Path(tmp) / name)
            print(f"retrained {name} in {seconds:.1f} s here (load average now {os.getloadavg()})")


if __name__ == "__main__":
    main()
