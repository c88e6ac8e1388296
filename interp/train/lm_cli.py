"""Commands of the language-model area: `interp train lm|transcoders|attn-saes` and the evaluators
for LM and dictionaries folders (`interp evaluate DIR`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from interp.argtypes import (
    bounded,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from interp.device import resolve_device, resolve_dtype, torch_threads

# The weight average's decay: in [0, 1); 1 would never update it.
ema_decay = bounded(float, 0, 1, high_open=True)


def _train_lm(args: argparse.Namespace) -> dict[str, Any]:
    from interp.io import check_output_folder
    from interp.train.lm import LMTrainOptions, train_lm

    check_output_folder(args.out, args.force, "--out", kind="lm")

    options = LMTrainOptions(arch=args.arch, n_layers=args.n_layers, d_model=args.d_model, n_heads=args.n_heads,
                             d_mlp=args.d_mlp, n_ctx=args.n_ctx, steps=args.steps, batch_size=args.batch_size,
                             lr=args.lr, wd=args.wd, seed=args.seed, tie_embeddings=args.tie_embeddings,
                             eval_every=args.eval_every, ema=args.ema, corpus=args.corpus,
                             bracket_depth=args.bracket_depth, repeat_min=args.repeat_min, repeat_max=args.repeat_max,
                             ioi_heldout_families=args.ioi_heldout_families)
    resolve_dtype(args.dtype)
    with torch_threads(args.threads):
        _, result = train_lm(options, out=args.out, device=str(resolve_device(args.device)), quiet=args.quiet)
    return {"out": str(args.out), **result.to_dict()}


def _train_dictionaries(kind: str):
    def handler(args: argparse.Namespace) -> dict[str, Any]:
        from interp.io import check_output_folder
        from interp.models.lm import load_lm
        from interp.train.dictionaries import DictTrainOptions, train_dictionaries

        # Only into a new folder, or (with --force) over dictionaries, inside the LM they are trained on at most.
        check_output_folder(args.out, args.force, "--out", kind="dictionaries", owner=args.model)

        lm = load_lm(args.model, device=str(resolve_device(args.device)), dtype=resolve_dtype(args.dtype))
        options = DictTrainOptions(kind=kind, variant=args.variant, expansion=args.expansion, k=args.k, l1=args.l1,
                                   steps=args.steps, batch_size=args.batch_size, lr=args.lr, n_tokens=args.n_tokens,
                                   seed=args.seed)
        model_ref = os.path.relpath(Path(args.model).resolve(), Path(args.out).resolve())
        with torch_threads(args.threads):
            _, result = train_dictionaries(lm, options, out=args.out, model_ref=model_ref, quiet=args.quiet)
        return {"out": str(args.out), **result.to_dict()}
    return handler


def _evaluate_lm(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from interp.models.lm import load_lm
    from interp.train.lm import evaluate_lm_tasks

    if getattr(args, "text", None) is not None:
        return _evaluate_text(path, args)
    lm = load_lm(path, device=str(resolve_device(args.device)), dtype=resolve_dtype(args.dtype))
    return {"path": str(path), "arch": lm.arch, **evaluate_lm_tasks(lm).to_dict()}


def _evaluate_text(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Mean next-token cross-entropy of an LM (ours or a Hugging Face folder) on `--text FILE`."""
    from interp.errors import InterpError
    from interp.models.lm import load_lm, read_text_file, text_loss

    if getattr(args, "text", None) is None:
        raise InterpError(f"{path} is a Hugging Face model folder: give --text FILE to measure its loss on a text")
    text = read_text_file(args.text)  # before the model loads: a bad file fails fast
    lm = load_lm(path, device=str(resolve_device(args.device)), dtype=resolve_dtype(args.dtype))
    model = {"model_type": lm.config["model_type"]} if lm.config.get("kind") == "hf" else {"arch": lm.arch}
    return {"path": str(path), **model, "text": str(args.text), **text_loss(lm, text)}


def _evaluate_dictionaries(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from interp.models.dictionaries import dictionaries_model_path, load_dictionaries
    from interp.models.lm import load_lm
    from interp.train.dictionaries import evaluate_dictionaries

    device = str(resolve_device(args.device))
    lm = load_lm(dictionaries_model_path(path), device=device, dtype=resolve_dtype(args.dtype))
    dicts = load_dictionaries(path, device=device)
    return {"path": str(path), **evaluate_dictionaries(lm, dicts).to_dict()}


def register(cli) -> None:
    from interp.train.options import (  # the CLI's defaults are the library's
        DictTrainOptions,
        LMTrainOptions,
    )

    defaults = LMTrainOptions()
    p = cli.add_train("lm", _train_lm, "train a small LM (bilinear or GELU MLPs) on the synthetic corpus")
    p.add_argument("--arch", choices=["bilinear", "gelu"], default="bilinear")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--n-layers", type=positive_int, default=defaults.n_layers)
    p.add_argument("--d-model", type=positive_int, default=defaults.d_model)
    p.add_argument("--n-heads", type=positive_int, default=defaults.n_heads)
    p.add_argument("--d-mlp", type=positive_int, default=defaults.d_mlp)
    p.add_argument("--n-ctx", type=positive_int, default=defaults.n_ctx)
    p.add_argument("--steps", type=positive_int, default=defaults.steps)
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    p.add_argument("--lr", type=positive_float, default=defaults.lr)
    p.add_argument("--wd", type=non_negative_float, default=defaults.wd,
                   help="AdamW weight decay on matrices (strong decay is what lets IOI work on held-out names)")
    p.add_argument("--seed", type=non_negative_int, default=defaults.seed)
    p.add_argument("--tie-embeddings", action="store_true",
                   help="train with the unembedding tied to the embedding (W_U = W_E^T); saved untied")
    p.add_argument("--ema", type=ema_decay, default=defaults.ema,
                   help="keep an exponential moving average of the weights with this decay and save it (0: off)")
    p.add_argument("--corpus", choices=["planted", "structural"], default=defaults.corpus,
                   help="planted: the shipped models' corpus; structural: unmarked repeats, IOI composed from clause "
                        "families, brackets of every depth up to --bracket-depth")
    p.add_argument("--bracket-depth", type=positive_int, default=defaults.bracket_depth,
                   help="deepest bracket nesting in training lines (structural corpus)")
    p.add_argument("--repeat-min", type=positive_int, default=defaults.repeat_min,
                   help="shortest unmarked repeated span (structural corpus)")
    p.add_argument("--repeat-max", type=positive_int, default=defaults.repeat_max,
                   help="longest unmarked repeated span (structural corpus)")
    p.add_argument("--ioi-heldout-families", default=defaults.ioi_heldout_families,
                   help="comma-separated IOI intro/giving families never trained on (structural corpus)")
    p.add_argument("--eval-every", type=non_negative_int, default=0,
                   help="record held-out task metrics (of the averaged weights, with --ema) every N steps in "
                        "metrics.json's learning_curve (0: off)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--force", action="store_true", help="replace an existing folder of the same kind")
    dict_defaults = DictTrainOptions()
    for name, kind, help_text in (("transcoders", "transcoder", "train one transcoder per MLP layer of an LM"),
                                  ("attn-saes", "attn_sae", "train one SAE per attention output of an LM")):
        p = cli.add_train(name, _train_dictionaries(kind), help_text)
        p.add_argument("model", metavar="MODEL", type=Path,
                       help="LM checkpoint folder (kind 'lm') or Hugging Face model folder")
        p.add_argument("--out", type=Path, required=True, help="dictionaries folder to write")
        p.add_argument("--variant", choices=["topk", "relu"], default=dict_defaults.variant)
        p.add_argument("--expansion", type=positive_int, default=dict_defaults.expansion, help="d_sae = expansion × d_model")
        p.add_argument("--k", type=positive_int, default=dict_defaults.k, help="active features per token (topk)")
        p.add_argument("--l1", type=non_negative_float, default=dict_defaults.l1, help="L1 coefficient (relu)")
        p.add_argument("--steps", type=positive_int, default=dict_defaults.steps)
        p.add_argument("--batch-size", type=positive_int, default=dict_defaults.batch_size)
        p.add_argument("--lr", type=positive_float, default=dict_defaults.lr)
        p.add_argument("--n-tokens", type=positive_int, default=dict_defaults.n_tokens, help="cached activation tokens per layer")
        p.add_argument("--seed", type=non_negative_int, default=dict_defaults.seed)
        p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
        p.add_argument("--force", action="store_true", help="replace an existing folder of the same kind")
    from interp.train import clt_cli

    clt_cli.register(cli)
    cli.add_evaluator("lm", _evaluate_lm)
    cli.add_evaluator("dictionaries", _evaluate_dictionaries)
    cli.add_evaluator("hf", _evaluate_text)
