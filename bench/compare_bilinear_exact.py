"""Exact graphs of a bilinear LM (graph mode bilinear-exact) against its transcoder graphs, on the recipe prompts.

    .venv/bin/python bench/compare_bilinear_exact.py [--recipes circuits/ioi.toml circuits/induction.toml
        circuits/brackets.toml] [--bases hidden eigen dictionary] [--threads 1]

For each recipe's prompts (model checkpoints/lm-bilinear; the graph explains logit(target) − logit(contrast)):

- graphs: the recipe's transcoder graph (graph mode full: transcoders + attention SAEs, with error nodes) and
  the bilinear-exact graph in each basis (attention as heads, no error node), pruned alike (the recipe's
  node and edge thresholds); per graph kind the mean pruned size (nodes, feature nodes, links), the nodes
  in the unpruned graph, the replacement and completeness scores;
- the nodes that carry the task: the 10 "top" nodes of `interp.graph.ablation.ablation_drops` (highest
  influence among nodes whose signed attribution to the metric is positive), as shares per site (attention
  or MLP, layer) and per position role (last position, a position holding the target token, the contrast
  token, or another), and the nodes most often among them;
- ablation: the task metric's pooled drop (1 − mean ablated metric / mean clean metric, as recipes report it)
  for the top 10 and for 10 random nodes, in the real model ("free": for exact graphs zeroing a hidden unit or
  a head at a position is an exact intervention) and in the constrained replacement model;
- weights vs activations (`interp.graph.agreement.weights_vs_edges`) for every MLP feature node of the pruned
  transcoder graphs and of the pruned exact "hidden" graphs: top-10 overlap and Spearman correlation between
  the weight-based input shares and the graph's incoming edges, mean and median.

Prints a table on stdout and writes bench/compare_bilinear_exact.result.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULT = ROOT / "bench" / "compare_bilinear_exact.result.json"
SITES = ("attn", "mlp")


def top_nodes(extraction, k: int = 10) -> list[int]:
    """The "top" set of `ablation_drops`: highest influence among nodes of positive signed attribution."""
    from interp.graph.prune import hierarchical_attribution

    graph, pruned = extraction.graph, extraction.pruned
    signed = hierarchical_attribution(graph, threshold=0.0).influence
    order = sorted(range(graph.n_features), key=lambda j: -float(pruned.influence[j]))
    return [j for j in order if signed[j] > 0][:k]


def role(graph, pos: int, target: int, contrast: int) -> str:
    if pos == len(graph.tokens) - 1:
        return "last"
    if graph.tokens[pos] == target:
        return "target token"
    if graph.tokens[pos] == contrast:
        return "contrast token"
    return "other"


def describe(graph, j: int, kind: str) -> str:
    n = graph.nodes[j]
    where = "last" if n.pos == len(graph.tokens) - 1 else f"pos {n.pos}"
    if kind == "transcoder":
        return f"{'attn SAE' if n.kind == 'attn' else 'transcoder'} L{n.layer} #{n.index} @ {where}"
    return f"{n.label} @ {where}"


def one_graph(setup, recipe, i: int, kind: str) -> dict:
    import torch

    from interp.graph.ablation import ablation_drops
    from interp.graph.agreement import weights_vs_edges
    from interp.graph.pipeline import extract

    p = recipe.prompts[i]
    target, contrast = setup.token_id(p["target"]), setup.token_id(p["contrast"])
    start = time.perf_counter()
    ex = extract(setup, p["prompt"], contrast=(p["target"], p["contrast"]), node_threshold=recipe.node_threshold,
                 edge_threshold=recipe.edge_threshold, max_feature_nodes=recipe.max_feature_nodes or None,
                 batch_size=recipe.batch_size)
    seconds = time.perf_counter() - start
    drops = ablation_drops(setup, ex, target, contrast, k=10, seed=recipe.seed + i, mode="free")
    graph = ex.graph
    top = top_nodes(ex)
    agreement = []
    if kind in ("transcoder", "hidden"):
        snap = setup.replacement.snapshot(torch.tensor(graph.tokens))
        for j in ex.pruned.node_mask[:graph.n_features].nonzero().flatten().tolist():
            if graph.nodes[j].kind == "mlp":
                r = weights_vs_edges(setup.replacement, graph, j, snap)
                agreement.append({"layer": r.layer, "top_overlap": r.top_overlap, "spearman": r.spearman})
    return {"prompt": p["prompt"], "seconds": seconds,
            "nodes": len(ex.json["nodes"]), "feature_nodes": int(ex.pruned.node_mask[:graph.n_features].sum()),
            "links": len(ex.json["links"]), "graph_nodes": graph.n_nodes, "error_nodes": graph.n_errors,
            "replacement_score": ex.scores.replacement_score, "completeness_score": ex.scores.completeness_score,
            "metric_clean": drops["metric_clean"], "metric_top": drops["metric_top"],
            "metric_random": drops["metric_random"], "metric_top_constrained": drops["metric_top_constrained"],
            "metric_random_constrained": drops["metric_random_constrained"],
            "top_sites": [f"{graph.nodes[j].kind} L{graph.nodes[j].layer}" for j in top],
            "top_roles": [role(graph, graph.nodes[j].pos, target, contrast) for j in top],
            "top_nodes": [describe(graph, j, kind) for j in top],
            "agreement": agreement}


def summarise(rows: list[dict]) -> dict:
    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in rows)

    def pooled(name: str) -> float:
        return 1.0 - mean(f"metric_{name}") / mean("metric_clean")

    sites = Counter(s for r in rows for s in r["top_sites"])
    roles = Counter(s for r in rows for s in r["top_roles"])
    n_top = sum(sites.values()) or 1
    agreement = [a for r in rows for a in r["agreement"]]
    out = {"n_prompts": len(rows), "seconds": mean("seconds"),
           **{k: mean(k) for k in ("nodes", "feature_nodes", "links", "graph_nodes", "error_nodes",
                                   "replacement_score", "completeness_score", "metric_clean")},
           "top10_drop": pooled("top"), "random10_drop": pooled("random"),
           "top10_drop_constrained": pooled("top_constrained"), "random10_drop_constrained": pooled("random_constrained"),
           "top_site_shares": {k: v / n_top for k, v in sorted(sites.items())},
           "top_role_shares": {k: v / n_top for k, v in sorted(roles.items())},
           "most_common_top_nodes": Counter(s for r in rows for s in r["top_nodes"]).most_common(6)}
    if agreement:
        for key in ("top_overlap", "spearman"):
            values = [a[key] for a in agreement if a[key] == a[key]]
            out[f"agreement_{key}_mean"] = statistics.fmean(values)
            out[f"agreement_{key}_median"] = statistics.median(values)
        out["agreement_n_features"] = len(agreement)
    return out


def compare(recipes: list[Path], bases: list[str], progress: bool = True, max_prompts: int | None = None,
            out: Path | None = None) -> dict:
    """Every task's figures; with `out`, the result so far is written after each task."""
    from tqdm import tqdm

    from interp.graph.recipes import read_recipe
    from interp.graph.setup import load_setup

    result = {"recipes": [str(r) for r in recipes], "bases": bases, "tasks": []}
    for path in recipes:
        recipe = read_recipe(path)
        setups = {"transcoder": load_setup(recipe.model, recipe.transcoders, recipe.attn_saes, recipe.graph_mode)}
        for basis in bases:
            setups[basis] = load_setup(recipe.model, recipe.transcoders, mode="bilinear-exact", basis=basis)
        task = {"task": recipe.name, "model": str(recipe.model), "node_threshold": recipe.node_threshold,
                "edge_threshold": recipe.edge_threshold, "graphs": {}}
        for kind, setup in setups.items():
            rows = [one_graph(setup, recipe, i, kind)
                    for i in tqdm(range(len(recipe.prompts[:max_prompts])), desc=f"{recipe.name} {kind}", disable=not progress)]
            task["graphs"][kind] = {**summarise(rows), "per_prompt": rows}
        result["tasks"].append(task)
        if out is not None:
            from interp.io import write_json

            write_json(out, result)
    return result


def table(result: dict) -> str:
    header = ("| task | graph | nodes / feature nodes / links (pruned) | error nodes | replacement | "
              "top-10 drop (free) | random-10 drop | top-10 nodes: MLP share, at last position | "
              "weights vs edges: top-10 overlap, Spearman |")
    lines = [header, "|" + "---|" * 9]
    for task in result["tasks"]:
        for kind, g in task["graphs"].items():
            mlp = sum(v for k, v in g["top_site_shares"].items() if k.startswith("mlp"))
            agree = (f"{g['agreement_top_overlap_mean']:.2f}, {g['agreement_spearman_mean']:.2f} "
                     f"(n={g['agreement_n_features']})") if "agreement_n_features" in g else "—"
            name = "transcoders + attn SAEs" if kind == "transcoder" else f"bilinear-exact {kind} + heads"
            lines.append(f"| {task['task']} | {name} | {g['nodes']:.1f} / {g['feature_nodes']:.1f} / {g['links']:.0f} | "
                         f"{g['error_nodes']:.0f} | {g['replacement_score']:.3f} | {g['top10_drop']:.2f} | "
                         f"{g['random10_drop']:.2f} | {mlp:.2f}, {g['top_role_shares'].get('last', 0.0):.2f} | {agree} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", type=Path,
                        default=[ROOT / "circuits" / f"{t}.toml" for t in ("ioi", "induction", "brackets")])
    parser.add_argument("--bases", nargs="+", default=["hidden", "eigen", "dictionary"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-prompts", type=int, default=None, help="the first N prompts of each recipe (a quick run)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    import torch

    from interp.io import write_json

    torch.set_num_threads(args.threads)
    result = compare(args.recipes, args.bases, max_prompts=args.max_prompts, out=args.out)
    write_json(args.out, result)
    print(table(result))


if __name__ == "__main__":
    main()
