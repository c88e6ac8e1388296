"""Recipe sweep for readable bilinear image spectra: which training recipe gives Fashion-MNIST class forms
of low effective rank with smooth top eigenvectors, at what cost in accuracy.

Each run trains through the training API (`interp.train.classifier.train_and_save`, one torch thread)
into runs/sweep/<name> (git-ignored; a finished run with the same options is reused, not retrained),
then measures on the test set `interp.bilinear.analysis.spectrum_summary`: accuracy, mean effective
rank per class ((Σ|λ|)²/Σλ²), top-10 truncation accuracy, and the mean low-frequency share (7×7 of
28×28 DCT coefficients; white noise 0.0625) of each class's top 5 eigenvectors. A ReLU model of the
same parameter count with the same epochs and batch size is the accuracy baseline. Writes
bench/sweep_bilinear_spectra.result.json after every run and, at the end, a plotly figure (accuracy
vs effective rank, accuracy vs smoothness, the ReLU accuracy as a line) as HTML, and as PNG when
kaleido is installed.

    .venv/bin/python bench/sweep_bilinear_spectra.py [--only NAME ...] [--threads 1] [--list]
    .venv/bin/python bench/sweep_bilinear_spectra.py --shipped   # measure checkpoints/fmnist-* the same way
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from interp.bilinear.analysis import spectrum_summary
from interp.data.images import load_image_dataset
from interp.io import read_json, write_json
from interp.models.checkpoints import load_classifier
from interp.train.classifier import TrainOptions, accuracy, train_and_save
from interp.train.cli import classifier_command

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "sweep_bilinear_spectra.result.json"
FIGURE = ROOT / "bench" / "sweep_bilinear_spectra"  # .html / .png

SHIPPED = ("fmnist-bilinear", "fmnist-bilinear-accurate", "fmnist-bilinear-rank10", "fmnist-relu")

# The reference recipe's shape (bilinear-decomposition code: strong weight decay, big batches, input noise),
# at the width of the shipped model: 784 → embedding 256 → bilinear 512 (reads [E x, 1]) → 10.
BASE = TrainOptions(dataset="fashion-mnist", arch="bilinear", epochs=40, hidden=512, embed=256, bias=True,
                    noise=0.33, wd=0.5, lr=0.003, batch_size=2048, seed=0)

# In the order they ran (on a 2-core machine shared with other jobs, load 3-18: a 40-epoch run took 4-15 min).
# Each step was chosen from the runs before it; wd 2, noise 0.6, no embedding and wd 0.1 at batch 2048 were
# planned and not run for lack of time.
GRID: dict[str, dict] = {
    "wd0.5": {},
    "wd1": {"wd": 1.0},
    "wd0.5-batch256-e20": {"batch_size": 256, "epochs": 20, "lr": 0.002},
    "wd0.5-rank": {"rank_penalty": 0.002},
    "wd0.5-batch256-rank": {"batch_size": 256, "lr": 0.002, "rank_penalty": 0.002},
    "wd0.5-noise0": {"noise": 0.0},
    "wd0.2-batch256-rank": {"wd": 0.2, "batch_size": 256, "lr": 0.002, "rank_penalty": 0.002},
    "wd0.2-batch256-rank0.005": {"wd": 0.2, "batch_size": 256, "lr": 0.002, "rank_penalty": 0.005},
    "wd0.2-batch256-rank0.005-e60": {"wd": 0.2, "batch_size": 256, "lr": 0.002, "rank_penalty": 0.005, "epochs": 60},
    "relu-e40": {"arch": "relu", "wd": 0.1, "noise": 0.1},
    # After the shipped run missed the smoothness target (0.544 < 0.59): more noise, or more decay, with its penalty.
    "wd0.3-noise0.5-batch256-rank0.005-e60": {"wd": 0.3, "noise": 0.5, "batch_size": 256, "lr": 0.002,
                                              "rank_penalty": 0.005, "epochs": 60},
    "wd0.5-batch256-rank0.005-e60": {"batch_size": 256, "lr": 0.002, "rank_penalty": 0.005, "epochs": 60},
    # Noise buys smoothness at the cost of accuracy; a wider bilinear layer may buy the accuracy back.
    "h1024-wd0.3-noise0.5-batch256-rank0.005-e60": {"hidden": 1024, "wd": 0.3, "noise": 0.5, "batch_size": 256,
                                                    "lr": 0.002, "rank_penalty": 0.005, "epochs": 60},
    "h1024-wd0.2-noise0.4-batch256-rank0.005-e60": {"hidden": 1024, "wd": 0.2, "noise": 0.4, "batch_size": 256,
                                                    "lr": 0.002, "rank_penalty": 0.005, "epochs": 60},
    # Noise and decay buy smoothness only at the cost of accuracy; random translation (--shift) should make the
    # first-layer filters, hence the eigenvectors, smoother while keeping or raising accuracy: the shipped recipe
    # plus shifts of up to 1 and 2 pixels.
    "wd0.2-batch256-rank0.005-e60-shift1": {"wd": 0.2, "batch_size": 256, "lr": 0.002, "rank_penalty": 0.005,
                                            "epochs": 60, "shift": 1},
    # Shift 1 overshot smoothness (0.662) and lost accuracy (0.868): trade some of the input noise back.
    "wd0.2-noise0.2-batch256-rank0.005-e60-shift1": {"wd": 0.2, "noise": 0.2, "batch_size": 256, "lr": 0.002,
                                                     "rank_penalty": 0.005, "epochs": 60, "shift": 1},
    "wd0.2-noise0.1-batch256-rank0.005-e60-shift1": {"wd": 0.2, "noise": 0.1, "batch_size": 256, "lr": 0.002,
                                                     "rank_penalty": 0.005, "epochs": 60, "shift": 1},
    # That run met every numeric target (its eigenvectors read as blurred blobs, so it was not shipped); shifts of up
    # to 2 pixels at the same noise, for the trade-off.
    "wd0.2-noise0.1-batch256-rank0.005-e60-shift2": {"wd": 0.2, "noise": 0.1, "batch_size": 256, "lr": 0.002,
                                                     "rank_penalty": 0.005, "epochs": 60, "shift": 2},
    # Shift 2 lost 2 points (0.862): back to shift 1, without input noise, for the other end of the noise trade-off.
    "wd0.2-noise0-batch256-rank0.005-e60-shift1": {"wd": 0.2, "noise": 0.0, "batch_size": 256, "lr": 0.002,
                                                   "rank_penalty": 0.005, "epochs": 60, "shift": 1},
    # Moving every image blurs the forms into blobs; moving half of them (--shift-prob 0.5) should blur them less,
    # so the garment outlines of the default may survive at a smoothness between it and shift 1.
    "wd0.2-batch256-rank0.005-e60-shift1-p0.5": {"wd": 0.2, "batch_size": 256, "lr": 0.002, "rank_penalty": 0.005,
                                                 "epochs": 60, "shift": 1, "shift_prob": 0.5},
    "wd0.2-noise0.2-batch256-rank0.005-e60-shift1-p0.5": {"wd": 0.2, "noise": 0.2, "batch_size": 256, "lr": 0.002,
                                                          "rank_penalty": 0.005, "epochs": 60, "shift": 1,
                                                          "shift_prob": 0.5},
}


def cli_command(options: TrainOptions, out: str) -> str:
    """The `interp train classifier` command line that trains the same model."""
    return classifier_command(options, out)


def measure(name: str, folder: Path, dataset) -> dict:
    """Test accuracy, and for a bilinear model its spectrum summary, of one checkpoint folder."""
    model, _, metrics = load_classifier(folder)
    row = {"name": name, "options": metrics["options"], "train_seconds": metrics["train_seconds"],
           "train_accuracy": metrics["train_accuracy"], "command": metrics["command"]}
    if model.arch == "bilinear":
        summary = spectrum_summary(model, dataset.test.images, dataset.test.labels)
        row.update(test_accuracy=summary.full_accuracy, mean_effective_rank=summary.mean_effective_rank,
                   max_effective_rank=max(summary.effective_rank), top10_accuracy=summary.truncated_accuracy,
                   mean_smoothness=summary.mean_smoothness, summary=summary.to_dict())
    else:
        row.update(test_accuracy=accuracy(model, dataset.test))
    return row


def run_one(name: str, options: TrainOptions, runs_dir: Path, dataset) -> dict:
    """Train (or reuse: same options, already finished) one run and measure it."""
    out = runs_dir.resolve() / name  # absolute, so the recorded command can name it relative to the project
    metrics_path = out / "metrics.json"
    # Options added since a run was made (e.g. shift) take their defaults, which reproduce the behaviour before them.
    reused = metrics_path.exists() and (
        {**asdict(TrainOptions()), **read_json(metrics_path).get("options", {})} == asdict(options))
    if not reused:
        train_and_save(out, options, quiet=True, command=cli_command(options, str(out.relative_to(ROOT))), force=True)
    return {**measure(name, out, dataset), "reused": reused}


def figure(rows: list[dict]):
    """Accuracy vs mean effective rank and vs smoothness (bilinear runs), the ReLU accuracies as lines."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    bilinear = [r for r in rows if "mean_effective_rank" in r]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy vs effective rank", "accuracy vs smoothness"))
    for col, key, axis in ((1, "mean_effective_rank", "mean effective rank per class ((Σ|λ|)²/Σλ²)"),
                           (2, "mean_smoothness", "low-frequency share of top-5 eigenvectors")):
        fig.add_trace(go.Scatter(x=[r[key] for r in bilinear], y=[r["test_accuracy"] for r in bilinear],
                                 mode="markers+text", text=[r["name"] for r in bilinear], textposition="top center",
                                 name="bilinear", showlegend=col == 1, marker={"color": "#1f77b4"}), row=1, col=col)
        fig.add_trace(go.Scatter(x=[r[key] for r in bilinear], y=[r["top10_accuracy"] for r in bilinear],
                                 mode="markers", name="bilinear, top-10 truncation", showlegend=col == 1,
                                 marker={"color": "#ff7f0e", "symbol": "x"}), row=1, col=col)
        for r in rows:
            if r["options"]["arch"] == "relu":
                fig.add_hline(y=r["test_accuracy"], line_dash="dash", line_color="gray", row=1, col=col,
                              annotation_text=r["name"] if col == 1 else None)
        fig.update_xaxes(title_text=axis, row=1, col=col)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_layout(width=1200, height=520, title="Fashion-MNIST bilinear recipes (sweep_bilinear_spectra.py)")
    return fig


def write_outputs(rows: list[dict], seconds: float) -> None:
    shipped = read_json(RESULT).get("shipped", []) if RESULT.exists() else []
    write_json(RESULT, {"base": asdict(BASE), "runs": rows, "sweep_seconds": round(seconds, 1),
                        "torch_threads": torch.get_num_threads(), "shipped": shipped})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only these names (default: the whole grid)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "sweep")
    parser.add_argument("--list", action="store_true", help="print the grid and exit")
    parser.add_argument("--shipped", action="store_true",
                        help=f"measure the shipped checkpoints ({', '.join(SHIPPED)}) into the result's 'shipped' table; train nothing")
    args = parser.parse_args(argv)
    if args.shipped:
        torch.set_num_threads(args.threads)
        dataset = load_image_dataset("fashion-mnist")
        result = read_json(RESULT) if RESULT.exists() else {"base": asdict(BASE), "runs": []}
        result["shipped"] = [measure(name, ROOT / "checkpoints" / name, dataset) for name in SHIPPED
                             if (ROOT / "checkpoints" / name / "metrics.json").exists()]
        write_json(RESULT, result)
        for row in result["shipped"]:
            print(f"{row['name']}: acc {row['test_accuracy']:.4f}" + (
                f" rank {row['mean_effective_rank']:.1f} top10 {row['top10_accuracy']:.4f} smooth {row['mean_smoothness']:.3f}"
                if "mean_effective_rank" in row else ""))
        return 0

    grid = {name: replace(BASE, **overrides) for name, overrides in GRID.items()
            if args.only is None or name in args.only}
    if not grid:
        print(f"sweep_bilinear_spectra: no runs selected (--only {' '.join(args.only or [])}); "
              f"the grid has {', '.join(GRID)}", file=sys.stderr)
        return 2
    if args.list:
        for name, options in grid.items():
            print(f"{name}: {cli_command(options, f'runs/sweep/{name}')}")
        return 0
    torch.set_num_threads(args.threads)
    dataset = load_image_dataset("fashion-mnist")
    # Keep earlier rows of runs not selected this time, so --only adds to the table instead of replacing it.
    previous = read_json(RESULT)["runs"] if RESULT.exists() else []
    rows = [r for r in previous if r["name"] not in grid]
    start = time.perf_counter()
    for name, options in grid.items():
        t = time.perf_counter()
        row = run_one(name, options, args.runs_dir, dataset)
        rows = [r for r in rows if r["name"] != name] + [row]
        write_outputs(rows, time.perf_counter() - start)
        extra = (f" rank {row['mean_effective_rank']:.1f} top10 {row['top10_accuracy']:.4f} "
                 f"smooth {row['mean_smoothness']:.3f}" if "mean_effective_rank" in row else "")
        print(f"{name}: acc {row['test_accuracy']:.4f}{extra} ({time.perf_counter() - t:.0f} s)", flush=True)
    fig = figure(rows)
    fig.write_html(str(FIGURE.with_suffix(".html")), include_plotlyjs="cdn")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        print(f"wrote {RESULT.relative_to(ROOT)} and {FIGURE.with_suffix('.html').relative_to(ROOT)} (no kaleido: no PNG)")
    else:
        fig.write_image(str(FIGURE.with_suffix(".png")))
        print(f"wrote {RESULT.relative_to(ROOT)} and {FIGURE.relative_to(ROOT)}.html/.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
