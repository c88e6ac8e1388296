"""`interp train clt` (a TopK cross-layer transcoder for one of our LMs) and the evaluator of CLT folders
(`interp evaluate <LM>/clt`)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from interp.argtypes import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from interp.device import resolve_device, resolve_dtype, torch_threads


def _command(args: argparse.Namespace, options) -> str:
    """The command with every option spelled out (k and d_sae as resolved), for metrics.json."""
    parts = ["interp", "train", "clt", str(args.model), "--out", str(args.out), "--steps", str(options.steps),
             "--k", str(options.k), "--d-sae", str(options.d_sae), "--batch-size", str(options.batch_size),
             "--lr", str(options.lr), "--n-tokens", str(options.n_tokens), "--seed", str(options.seed),
             "--aux-coef", str(options.aux_coef), "--threads", str(args.threads)]
    return " ".join(shlex.quote(p) for p in parts)


def _train_clt(args: argparse.Namespace) -> dict[str, Any]:
    from interp.errors import InterpError
    from interp.train.clt import check_options, train_clt
    from interp.train.options import CLTTrainOptions

    options = CLTTrainOptions(k=args.k, d_sae=args.d_sae, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                              n_tokens=args.n_tokens, seed=args.seed, aux_coef=args.aux_coef)
    check_options(options)  # before anything loads: bad flags fail fast
    if args.threads < 1:
        raise InterpError(f"threads must be ≥ 1, got {args.threads}")
    if args.out is None:
        args.out = Path(args.model) / "clt"
    from interp.io import check_output_folder

    check_output_folder(args.out, args.force, "--out", kind="clt", owner=args.model)
    resolve_dtype(args.dtype)
    device = str(resolve_device(args.device))

    with torch_threads(args.threads):
        # the recorded command spells out k and d_sae as resolved, so that it remakes this very CLT
        result = train_clt(args.model, options, out=args.out, force=args.force,
                           command=lambda resolved: _command(args, resolved), quiet=args.quiet, device=device)
    summary = result.to_dict()
    summary.pop("loss_curve")
    return {**summary, "final_loss": result.loss_curve[-1]["loss"]}


def _evaluate_clt(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from interp.models.clt import load_clt
    from interp.models.lm import load_lm
    from interp.train.clt import clt_model_path, evaluate_clt

    device = str(resolve_device(args.device))
    lm = load_lm(clt_model_path(path), device=device, dtype=resolve_dtype(args.dtype))
    clt = load_clt(path, device=device).to(lm.model.W_E.dtype)
    return {"path": str(path), **evaluate_clt(lm, clt).to_dict()}


def register(cli) -> None:
    from interp.train.options import CLTTrainOptions

    defaults = CLTTrainOptions()
    p = cli.add_train("clt", _train_clt, "train a TopK cross-layer transcoder for an LM (every layer's MLP input "
                                        "→ its own and every later MLP output)")
    p.add_argument("model", metavar="MODEL", type=Path, help="LM checkpoint folder (kind 'lm')")
    p.add_argument("--out", type=Path, default=None, help="CLT folder to write (default: MODEL/clt)")
    p.add_argument("--steps", type=positive_int, default=defaults.steps)
    p.add_argument("--k", type=positive_int, default=None, help="active features per layer and token (default: the k of "
                                                       "MODEL/transcoders, else 32)")
    p.add_argument("--d-sae", type=positive_int, default=None, help="features per layer (default: the width of "
                                                           "MODEL/transcoders, else 2 × d_model)")
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    p.add_argument("--lr", type=positive_float, default=defaults.lr)
    p.add_argument("--n-tokens", type=positive_int, default=defaults.n_tokens, help="cached activation tokens")
    p.add_argument("--seed", type=non_negative_int, default=defaults.seed)
    p.add_argument("--aux-coef", type=non_negative_float, default=defaults.aux_coef,
                   help="weight of the dead-feature auxiliary loss (0: off)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--force", action="store_true", help="replace an existing CLT folder")
    cli.add_evaluator("clt", _evaluate_clt)
