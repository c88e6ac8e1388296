"""`interp extract` (one prompt or a recipe), `interp graph-info` (import a graph JSON) and `interp intervene`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interp.argtypes import contrast_pair, fraction, memory_size, non_negative_int, positive_int
from interp.errors import InterpError
from interp.graph import (
    DEFAULT_MAX_FEATURE_NODES,
    EXACT_ATTENTION,
    EXACT_BASES,
    FEATURE_CORPUS_SEED,
    FEATURE_CORPUS_SEQUENCES,
)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # Linux reports KiB


def extract_command(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from interp.device import check_dtype_runs, resolve_device, resolve_dtype
    from interp.graph.pipeline import extract
    from interp.graph.recipes import run_recipe
    from interp.graph.setup import load_setup
    from interp.io import check_output_file, check_output_folder, write_json

    # Refuse outputs that would replace or corrupt something before any work, so nothing is written on refusal.
    check_output_file(args.out, args.force, "--out")
    check_output_folder(args.features_dir, args.force, "--features-dir")
    # --out-dir is checked by run_recipe: a rerun of the same recipe into it resumes (interp.jobs manifest).
    torch.set_num_threads(min(2, torch.get_num_threads()))
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    check_dtype_runs(device, dtype)
    max_nodes = None if args.max_feature_nodes == 0 else args.max_feature_nodes
    if args.recipe is not None:
        if args.prompt is not None or args.model is not None:
            raise InterpError("give either --recipe FILE (it names its model) or MODEL with --prompt, not both")
        if args.out_dir is None:
            raise InterpError("--recipe needs --out-dir DIR")
        if args.basis is not None or args.attention is not None:
            raise InterpError("--basis and --attention go with MODEL --prompt; a recipe's graphs follow its graph_mode")
        summary = run_recipe(args.recipe, args.out_dir, progress=not args.quiet, device=str(device), dtype=dtype,
                             ray=args.ray, workers=args.workers, force=args.force)
        out = summary.to_dict()
        if not args.json:
            out.pop("prompts")
        return out
    if args.ray is not None or args.workers is not None:
        raise InterpError("--ray and --workers run a recipe's prompts on Ray: give them with --recipe")
    if args.model is None or args.prompt is None or args.out is None:
        raise InterpError("give MODEL --prompt TEXT --out FILE.json (or --recipe FILE --out-dir DIR)")
    if not args.prompt.strip():
        raise InterpError("empty prompt: give at least one word")
    if args.target is not None and args.contrast is not None:
        raise InterpError("give --target or --contrast, not both")
    setup = load_setup(args.model, args.transcoders, args.attn_saes, args.graph_mode, str(device), dtype,
                       allow_mismatch=args.allow_mismatch, **_exact_options(args))
    ex = extract(setup, args.prompt, target=args.target, contrast=args.contrast, node_threshold=args.node_threshold,
                 edge_threshold=args.edge_threshold, max_feature_nodes=max_nodes,
                 batch_size=args.batch_size, slug=Path(args.out).stem, progress=not args.quiet,
                 pruning=args.pruning, hierarchical_threshold=args.hierarchical_threshold,
                 max_memory=args.max_memory)
    if args.features_dir is not None:
        from interp.graph.features import corpus_windows, write_feature_jsons

        corpus = corpus_windows(setup, FEATURE_CORPUS_SEQUENCES, FEATURE_CORPUS_SEED)
        feats = {(n.kind, n.layer, n.index) for j, n in enumerate(ex.graph.nodes[:ex.graph.n_features])
                 if ex.pruned.node_mask[j]}
        write_feature_jsons(setup.replacement, feats, corpus, setup.vocab, args.features_dir, progress=not args.quiet)
    write_json(args.out, ex.json)
    return {"out": str(args.out), "n_nodes": len(ex.json["nodes"]), "n_links": len(ex.json["links"]),
            "n_active_features": ex.graph.settings["n_active_features"], "n_graph_nodes": ex.graph.n_nodes,
            "n_feature_nodes": ex.graph.n_features, "attribution_seconds": round(ex.attribution_seconds, 3),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            **({"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)} if device.type == "cuda" else {}),
            "replacement_score": ex.scores.replacement_score, "completeness_score": ex.scores.completeness_score,
            "logits": [n.label for n in ex.graph.nodes[ex.graph.n_nodes - ex.graph.n_logits:]]}


def graph_info_command(args: argparse.Namespace) -> dict[str, Any]:
    from interp.graph.export import read_graph_json

    data = read_graph_json(args.path)
    types: dict[str, int] = {}
    for n in data["nodes"]:
        types[n["feature_type"]] = types.get(n["feature_type"], 0) + 1
    return {"path": str(args.path), "prompt": data["metadata"]["prompt"], "n_nodes": len(data["nodes"]),
            "n_links": len(data["links"]), "node_types": types}


def _intervention(text: str) -> tuple[str, int, int, int, float | None]:
    """KIND:LAYER:POS:FEATURE[=VALUE], e.g. mlp:1:5:42 (ablate) or attn:0:3:7=2.5 (set)."""
    import math

    spec, _, value = text.partition("=")
    parts = spec.split(":")
    try:
        kind, layer, pos, feature = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
        number = float(value) if value else None
    except (IndexError, ValueError):
        raise argparse.ArgumentTypeError(f"want KIND:LAYER:POS:FEATURE[=VALUE] (e.g. mlp:1:5:42), got {text!r}") from None
    if number is not None and not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"the value set must be a finite number, got {value!r} in {text!r}")
    return kind, layer, pos, feature, number


def intervene_command(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from interp.device import resolve_device, resolve_dtype
    from interp.graph.interventions import Intervention, intervene
    from interp.graph.setup import load_setup

    torch.set_num_threads(min(2, torch.get_num_threads()))
    setup = load_setup(args.model, args.transcoders, args.attn_saes, args.graph_mode, str(resolve_device(args.device)),
                       resolve_dtype(args.dtype), allow_mismatch=args.allow_mismatch, **_exact_options(args))
    if args.graph_mode == "bilinear-exact":
        from interp.graph.exact import prepare_eigen_basis

        # the eigen basis reads the MLPs along the model's top prediction on the prompt (no-op for other bases)
        prepare_eigen_basis(setup.replacement, setup.encode(args.prompt), vocab=setup.vocab)
    ivs = [Intervention(k, layer, pos, f, 0.0 if v is None else v) for k, layer, pos, f, v in args.set]
    result = intervene(setup.replacement, setup.encode(args.prompt), ivs, mode=args.ablation_mode)
    probs_before = torch.softmax(result.clean_logits, -1)
    probs_after = torch.softmax(result.new_logits, -1)
    top = probs_after.topk(min(5, len(setup.vocab)))
    return {"mode": args.ablation_mode, "interventions": result.interventions,
            "top_before": {setup.vocab[i]: float(probs_before[i]) for i in probs_before.topk(5).indices.tolist()},
            "top_after": {setup.vocab[i]: float(p) for p, i in zip(top.values.tolist(), top.indices.tolist())},
            "max_logit_change": float((result.new_logits - result.clean_logits).abs().max())}


class _GraphModes:
    """The names in `interp.graph.replacement.MODES`, imported on first use: that module imports torch and
    SAE-Lens, which building the command line must not (tests/test_cli_startup.py)."""

    def _names(self) -> tuple[str, ...]:
        from interp.graph.replacement import MODES

        return MODES

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _exact_options(args: argparse.Namespace) -> dict[str, str]:
    """--basis and --attention for load_setup; they belong to --graph-mode bilinear-exact only."""
    if args.graph_mode != "bilinear-exact":
        for flag, value in (("--basis", args.basis), ("--attention", args.attention)):
            if value is not None:
                raise InterpError(f"{flag} applies to --graph-mode bilinear-exact only (got --graph-mode {args.graph_mode})")
        return {}
    return {"basis": args.basis or "hidden", "attention": args.attention or "heads"}


def _model_flags(p: argparse.ArgumentParser, required: bool) -> None:
    # the metavar keeps argparse from listing the choices (and so importing them) when the parser is built
    p.add_argument("model", metavar="MODEL", type=Path, nargs=None if required else "?", default=None,
                   help="LM checkpoint folder (kind 'lm') or Hugging Face model folder"
                        + ("" if required else "; not with --recipe, which names its model"))
    p.add_argument("--transcoders", type=Path, default=None, metavar="DIR",
                   help="transcoders or cross-layer transcoder folder (default: MODEL/transcoders)")
    p.add_argument("--attn-saes", type=Path, default=None, metavar="DIR",
                   help="attention SAE folder (default: MODEL/attn-saes)")
    p.add_argument("--graph-mode", choices=_GraphModes(), metavar="GRAPH_MODE", default="full",
                   help="how the replacement model is built, one of %(choices)s (default %(default)s): full = "
                        "attention-SAE and transcoder features; transcoder-only = attention passed through, "
                        "as circuit-tracer; bilinear-exact = a bilinear LM read exactly, no dictionary needed "
                        "(see --basis, --attention)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="use dictionaries that record another model (widths and hooks must still fit)")


def _exact_flags(p: argparse.ArgumentParser) -> None:
    """--basis and --attention: how graph mode bilinear-exact reads the MLPs and attention (`_exact_options`)."""
    p.add_argument("--basis", choices=EXACT_BASES, default=None,
                   help="with --graph-mode bilinear-exact (no transcoder, no error node): the MLP nodes, hidden "
                        "(default; the hidden units), eigen (eigenvectors of Q_u, u the target logit's direction "
                        "through the final LayerNorm) or dictionary (the --transcoders' decoder rows as a read-out "
                        "basis)")
    p.add_argument("--attention", choices=EXACT_ATTENTION, default=None,
                   help="with --graph-mode bilinear-exact: attention nodes, heads (default; exact) or saes (the "
                        "--attn-saes, with their error nodes)")


def register(cli) -> None:
    p = cli.add_command("extract", extract_command,
                        help="extract an attribution graph for one prompt (--prompt) or a recipe (--recipe)")
    _model_flags(p, required=False)
    _exact_flags(p)
    p.add_argument("--prompt", default=None, help="the prompt (words of the model's vocabulary)")
    p.add_argument("--target", default=None, help="attribute from this token's logit")
    p.add_argument("--contrast", type=contrast_pair, default=None, metavar="A,B",
                   help="attribute from logit(A) - logit(B) (two tokens)")
    p.add_argument("--node-threshold", type=fraction, default=0.8)
    p.add_argument("--edge-threshold", type=fraction, default=0.98)
    p.add_argument("--pruning", choices=["influence", "hierarchical"], default="influence",
                   help="influence: node/edge thresholds (circuit-tracer); hierarchical: Ge et al. cut-off")
    p.add_argument("--hierarchical-threshold", type=fraction, default=0.01,
                   help="with --pruning hierarchical: cut nodes below this fraction of |target|")
    p.add_argument("--max-feature-nodes", type=non_negative_int, default=DEFAULT_MAX_FEATURE_NODES,
                   help="cap on feature nodes, visited in order of influence (default %(default)s, as circuit-tracer; "
                        "0: no cap)")
    p.add_argument("--max-memory", type=memory_size, default=None,
                   help="refuse a graph whose estimated memory exceeds this (e.g. 16G; default: what the device has free)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="targets per backward pass")
    p.add_argument("--out", type=Path, default=None, help="graph JSON to write (--prompt)")
    p.add_argument("--features-dir", type=Path, default=None, help="also write feature JSONs here (--prompt)")
    p.add_argument("--recipe", type=Path, default=None, help="circuits/NAME.toml")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where a recipe writes its graphs (--recipe); a rerun of the same recipe resumes")
    from interp.jobs import add_ray_flags

    add_ray_flags(p)
    p.add_argument("--force", action="store_true", help="replace an existing --out file or a non-empty folder")

    p = cli.add_command("graph-info", graph_info_command, help="check and summarise a graph JSON file",
                        compute=False)
    p.add_argument("path", type=Path)

    p = cli.add_command("intervene", intervene_command,
                        help="ablate or set features and report the new next-token distribution")
    _model_flags(p, required=True)
    _exact_flags(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--set", type=_intervention, action="append", required=True,
                   help="KIND:LAYER:POS:FEATURE[=VALUE] (value 0 = ablate); repeatable")
    p.add_argument("--ablation-mode", choices=["constrained", "replacement", "free"], default="constrained",
                   help="constrained: the replacement model with attention patterns and normalisation frozen; replacement: "
                        "the replacement model run freely (errors at their clean values); free: the real model with "
                        "only the changed features' decoder contributions replaced (errors follow)")
