"""Time and peak memory to build one attribution graph, batched vs a plain one-row-per-backward baseline.

    nice -n 5 .venv/bin/python bench/bench_graph.py [MODEL (default checkpoints/lm-bilinear)] [--tokens 32] [--repeats 2]

Both variants build the same unpruned graph (all active features, top logits) for a 32-token prompt
with the same code; the baseline computes each row of edges by its own backward pass (batch 1), the
batched version sends `--batch-size` targets through each backward pass. Each measurement runs in
a fresh subprocess (so peak RSS is its own), alternating baseline and batched; the figure is the
ratio of medians, measured in the same run. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(model: str, mode: str, n_tokens: int, batch_size: int, device: str) -> dict:
    import torch

    torch.set_num_threads(2)
    sys.path.insert(0, str(ROOT))
    from interp.data.corpus import training_tokens
    from interp.graph.attribution import attribute
    from interp.graph.setup import load_setup

    setup = load_setup(model, mode=mode, device=device)
    tokens = torch.tensor(training_tokens(setup.tokenizer, 1, n_tokens, seed=5)[0], device=device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    graph = attribute(setup.replacement, tokens, batch_size=batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "n_features": graph.n_features, "n_nodes": graph.n_nodes,
           "peak_rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
           "checksum": float(graph.adjacency.abs().sum())}
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the interp command line's vocabulary: the model first and positional, --graph-mode
    p.add_argument("model", metavar="MODEL", nargs="?", default=str(ROOT / "checkpoints" / "lm-bilinear"))
    p.add_argument("--graph-mode", default="full", help="a mode of interp.graph.replacement.MODES")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(one(args.model, args.graph_mode, args.tokens, args.child, args.device)))
        return
    runs: dict[str, list[dict]] = {"baseline": [], "batched": []}
    for _ in range(args.repeats):
        for name, bs in (("baseline", 1), ("batched", args.batch_size)):
            cmd = [sys.executable, __file__, args.model, "--graph-mode", args.graph_mode, "--tokens", str(args.tokens),
                   "--device", args.device, "--child", str(bs)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(name, runs[name][-1], file=sys.stderr)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    mem = {k: statistics.median(r["peak_rss_growth_mb"] for r in v) for k, v in runs.items()}
    same = abs(runs["baseline"][0]["checksum"] - runs["batched"][0]["checksum"]) <= 1e-4 * runs["batched"][0]["checksum"]
    print(json.dumps({
        "model": args.model, "graph_mode": args.graph_mode, "tokens": args.tokens, "batch_size": args.batch_size,
        "device": args.device, "n_features": runs["batched"][0]["n_features"],
        "baseline_seconds": med["baseline"], "batched_seconds": med["batched"],
        "speedup": med["baseline"] / med["batched"],
        "baseline_peak_rss_growth_mb": mem["baseline"], "batched_peak_rss_growth_mb": mem["batched"],
        "memory_ratio": mem["batched"] / max(mem["baseline"], 1e-9), "same_graph": same,
        **({"peak_cuda_mb": {k: v[0].get("peak_cuda_mb") for k, v in runs.items()}}
           if args.device.startswith("cuda") else {}),
    }))


if __name__ == "__main__":
    main()
