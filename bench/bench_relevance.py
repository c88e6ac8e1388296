"""Relevance maps for 256 Fashion-MNIST images vs one plain forward+backward pass over them.

Target: DTD maps cost at most 3× the baseline. Both are timed in this same process, on the same
images and threads, as the median of several repeats; the ratio is what to compare across machines.
The baseline is a training-style step: forward, then backward of the target logits into the input
and every parameter. Models: the shipped checkpoints where present (fmnist-relu, fmnist-cnn,
fmnist-bilinear), else a fresh model of the same architecture (timing does not depend on training).

    .venv/bin/python bench/bench_relevance.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from timing import median_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interp.data.images import load_fashion_mnist  # noqa: E402
from interp.models.bilinear import BilinearClassifier, ReluMLP  # noqa: E402
from interp.models.checkpoints import load_classifier  # noqa: E402
from interp.models.cnn import SmallCNN  # noqa: E402
from interp.relevance.engine import relevance  # noqa: E402


def model_for(name: str):
    folder = ROOT / "checkpoints" / f"fmnist-{name}"
    if (folder / "config.json").is_file():
        return load_classifier(folder)[0], str(folder.relative_to(ROOT))
    fresh = {"relu": lambda: ReluMLP(784, 10, d_hidden=ReluMLP.hidden_for_params(784, 10, 2 * 784 * 512 + 5120)),
             "cnn": lambda: SmallCNN(), "bilinear": lambda: BilinearClassifier(784, 10, d_hidden=512)}[name]
    torch.manual_seed(0)
    return fresh().eval(), "fresh (no checkpoint yet)"


def plain_forward_backward(model, x, target):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    logits.gather(1, target[:, None]).sum().backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine two threads oversubscribe and "
                             "elementwise ops, which relevance has more of, slow down ~10x)")
    parser.add_argument("--n-images", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = load_fashion_mnist().test.images[:args.n_images]
    report = {"n_images": args.n_images, "threads": args.threads, "repeats": args.repeats, "target_ratio": 3.0,
              "models": {}}
    for name in ("relu", "cnn", "bilinear"):
        model, source = model_for(name)
        with torch.no_grad():
            target = model(images).argmax(-1)
        baseline = median_seconds(lambda: plain_forward_backward(model, images, target), args.repeats, warmup=True)
        row = {"source": source, "forward_backward_s": round(baseline, 5)}
        for rules in ("dtd", "lrp0"):
            seconds = median_seconds(lambda: relevance(model, images, target, rules), args.repeats, warmup=True)
            row[f"{rules}_s"] = round(seconds, 5)
            row[f"{rules}_ratio"] = round(seconds / baseline, 3)
        row["within_target"] = row["dtd_ratio"] <= 3.0
        report["models"][name] = row
        print(f"{name:9s} fwd+bwd {baseline * 1e3:8.2f} ms   dtd {row['dtd_s'] * 1e3:8.2f} ms  ratio "
              f"{row['dtd_ratio']:.2f}   lrp0 ratio {row['lrp0_ratio']:.2f}   ({source})", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
