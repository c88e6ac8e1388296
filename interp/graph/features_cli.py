"""`interp features`: feature cards for every feature of a model's dictionaries, in one process or on Ray."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interp.argtypes import non_negative_int, positive_int


def features_command(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from interp.device import check_dtype_runs, resolve_device, resolve_dtype
    from interp.graph.feature_job import run_feature_job

    torch.set_num_threads(min(2, torch.get_num_threads()))
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    check_dtype_runs(device, dtype)
    summary = run_feature_job(args.model, args.out_dir, corpus=args.corpus, tokens=args.tokens,
                              transcoders=args.transcoders, attn_saes=args.attn_saes, graph_mode=args.graph_mode,
                              shard_tokens=args.shard_tokens, seed=args.seed, device=str(device), dtype=dtype,
                              ray=args.ray, workers=args.workers, force=args.force,
                              allow_mismatch=args.allow_mismatch, progress=not args.quiet)
    return summary.to_dict()


def register(cli) -> None:
    from interp.graph.cli import _model_flags
    from interp.jobs import add_ray_flags

    p = cli.add_command("features", features_command,
                        help="feature cards (top contexts, histogram, density, top logits) for every feature of "
                             "the dictionaries, over N corpus tokens, as a map-reduce over token shards")
    _model_flags(p, required=True)
    p.add_argument("--corpus", default="generated",
                   help="a UTF-8 text file, or 'generated' (the synthetic corpus the model was trained on, seeded by "
                        "--seed; default)")
    p.add_argument("--tokens", type=positive_int, required=True,
                   help="corpus tokens to read (whole context windows: rounded up to the model's n_ctx)")
    p.add_argument("--out-dir", type=Path, required=True,
                   help="folder for the feature JSON files ({global index}.json, as the graph export links them)")
    p.add_argument("--shard-tokens", type=positive_int, default=8192,
                   help="tokens per map task (fixed cut: the output does not depend on the number of workers)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the generated corpus")
    p.add_argument("--force", action="store_true", help="write into a folder holding other files")
    add_ray_flags(p)
