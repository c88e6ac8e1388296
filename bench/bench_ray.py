"""The Ray jobs: feature-card throughput with 1 and 2 local Ray workers, as a ratio measured in one run.

    .venv/bin/python bench/bench_ray.py                       # lm-gelu, 65,536 tokens
    .venv/bin/python bench/bench_ray.py --tokens 16384 --shard-tokens 2048
    .venv/bin/python bench/bench_ray.py --scale      # + the map task on GPT-2-small shapes, one worker

`interp.graph.feature_job.run_feature_job` on checkpoints/lm-gelu (its transcoders and attention SAEs, 1,024
features) over the generated corpus: once in this process (1 torch thread, no Ray), then on a local Ray
started here with 1 worker and with 2 workers (1 thread each). Reported per run: map throughput (tokens per
second over the shards, the part that grows with N), per worker, and the whole job's time (cards
included); the ratio of 2-worker to 1-worker throughput; the Ray start time; and whether every card file
is byte-identical across the three runs. Writes bench/bench_ray.result.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))}


def scale_map(n_windows: int, n_ctx: int, d_sae: int, k: int) -> dict:
    """The map task on GPT-2-small shapes (random weights, `bench/scale_probe.py`; TopK transcoders, transcoder-only):
    tokens/s of one worker (1 thread) for `feature_job.shard_stats` on one shard, against the model's forward pass
    alone on the same tokens (the ratio is the statistics' overhead)."""
    import torch

    from interp.graph.feature_job import shard_stats
    from interp.graph.replacement import ReplacementModel

    sys.path.insert(0, str(ROOT / "bench"))
    from scale_probe import ProbeShape, build_probe

    shape = ProbeShape(d_sae=d_sae, k=k)
    model, transcoders = build_probe(shape)
    rep = ReplacementModel.build(model, transcoders, None, mode="transcoder-only")
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, shape.d_vocab, (n_windows, n_ctx), generator=g)
    hooks = {s.read_hook for s in rep.sites}
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n_windows, 32):
            model.run_with_cache(tokens[i:i + 32], names_filter=lambda n: n in hooks)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    shard_stats(rep, tokens, 0)
    mapped = time.perf_counter() - start
    n = tokens.numel()
    return {"shape": "GPT-2 small, random weights", "d_sae": d_sae, "k": k, "n_features": 12 * d_sae,
            "tokens": n, "n_ctx": n_ctx, "forward_only_tokens_per_second": round(n / forward, 1),
            "map_tokens_per_second_per_worker": round(n / mapped, 1),
            "ratio_map_time_vs_forward_only": round(mapped / forward, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "lm-gelu"))
    parser.add_argument("--tokens", type=int, default=65536)
    parser.add_argument("--shard-tokens", type=int, default=4096)
    parser.add_argument("--out", default=str(ROOT / "bench" / "bench_ray.result.json"))
    parser.add_argument("--scale", action="store_true",
                        help="also the map task per worker on GPT-2-small shapes (6,144-feature transcoders)")
    parser.add_argument("--scale-windows", type=int, default=8)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import ray

    from interp.graph.feature_job import run_feature_job

    runs = {}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        def job(name: str, **ray_options) -> None:
            out = Path(tmp) / name
            s = run_feature_job(args.model, out, tokens=args.tokens, shard_tokens=args.shard_tokens, progress=False,
                                **ray_options)
            runs[name] = {"workers": s.workers, "map_tokens_per_second": s.tokens_per_second,
                          "map_tokens_per_second_per_worker": round(s.tokens_per_second / s.workers, 1),
                          "map_seconds": s.map_seconds, "job_seconds": s.seconds, "n_tokens": s.n_tokens, "n_shards": s.n_shards,
                          "n_features": s.n_features}
            outputs[name] = files(out)
            print(name, runs[name], file=sys.stderr)

        job("one_process")
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        ray_start = time.perf_counter() - start
        try:
            job("ray_1_worker", ray="local", workers=1)
            job("ray_2_workers", ray="local", workers=2)
        finally:
            ray.shutdown()
    identical = outputs["one_process"] == outputs["ray_1_worker"] == outputs["ray_2_workers"]
    result = {
        "model": Path(args.model).name, "tokens": args.tokens, "shard_tokens": args.shard_tokens,
        "runs": runs,
        "ratio_map_throughput_2_vs_1_workers": round(runs["ray_2_workers"]["map_tokens_per_second"]
                                                     / runs["ray_1_worker"]["map_tokens_per_second"], 2),
        "ratio_job_time_2_vs_1_workers": round(runs["ray_2_workers"]["job_seconds"]
                                               / runs["ray_1_worker"]["job_seconds"], 2),
        "ratio_map_throughput_ray_1_worker_vs_one_process": round(runs["ray_1_worker"]["map_tokens_per_second"]
                                                                  / runs["one_process"]["map_tokens_per_second"], 2),
        "ray_init_seconds": round(ray_start, 1),
        "cards_identical_across_runs": identical,
        "machine": {"cpus": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
                    "ray": ray.__version__, "torch": torch.__version__},
    }
    if args.scale:
        result["gpt2_small_shapes_map"] = scale_map(args.scale_windows, 128, 6144, 64)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
