"""Attribution graphs on models of real shapes: time and peak memory of one capped graph.

    .venv/bin/python bench/bench_graph_scale.py                      # the two figures of the scale issue
    .venv/bin/python bench/bench_graph_scale.py --only probe --k 16   # one configuration
    .venv/bin/python bench/bench_graph_scale.py --device cuda         # on a GPU, when there is one

Configurations (random weights from a fixed seed, `bench/scale_probe.py`; transcoder-only mode, as
circuit-tracer builds graphs):

- "probe": GPT-2-small shapes with TopK transcoders of 6,144 features per layer (k = 64), a 64-token
  prompt, max_feature_nodes 512;
- "wide": GPT-2-small shapes with 24,576 features per layer (the width of public GPT-2
  transcoders), k = 64, 128 tokens, max_feature_nodes 8192.

Each configuration runs in a fresh subprocess so that its peak RSS is its own (model and
dictionaries included). The comparison with circuit-tracer on the same probe, as a ratio in one
run, is `bench/compare_circuit_tracer.py --probe`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "probe": {"d_sae": 6144, "k": 64, "n_tokens": 64, "cap": 512},
    "wide": {"d_sae": 24576, "k": 64, "n_tokens": 128, "cap": 8192},
}


def one(d_sae: int, k: int, n_tokens: int, cap: int, batch_size: int, device: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from scale_probe import ProbeShape, build_probe, probe_tokens

    from interp.graph.attribution import attribute
    from interp.graph.replacement import ReplacementModel

    shape = ProbeShape(d_sae=d_sae, k=k)
    model, transcoders = build_probe(shape)
    model.to(device)
    for sae in transcoders.values():
        sae.to(device)
    replacement = ReplacementModel.build(model, transcoders, None, mode="transcoder-only")
    tokens = probe_tokens(shape, n_tokens).to(device)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    graph = attribute(replacement, tokens, max_feature_nodes=cap, batch_size=batch_size, progress=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {"d_sae": d_sae, "k": k, "n_tokens": n_tokens, "cap": cap, "batch_size": batch_size, "device": device,
           "threads": threads, "seconds": round(seconds, 2), "n_active_features": graph.settings["n_active_features"],
           "n_nodes": graph.n_nodes, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "rss_after_loading_mb": round(rss_model)}
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted(CONFIGS), default=None)
    p.add_argument("--k", type=int, default=None, help="override k (active features per position and layer)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=None, help="default: cuda when a GPU is present, else cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)   # internal: run one config as JSON
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(one(**json.loads(args.one))))
        return
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {}
    for name in [args.only] if args.only else list(CONFIGS):
        config = dict(CONFIGS[name], batch_size=args.batch_size, device=args.device, threads=args.threads)
        if args.k is not None:
            config["k"] = args.k
        run = subprocess.run([sys.executable, __file__, "--one", json.dumps(config)], capture_output=True, text=True)
        if run.returncode != 0:
            results[name] = {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "failed"}
        else:
            results[name] = json.loads(run.stdout.strip().splitlines()[-1])
        print(name, results[name], file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
