"""Attribution graphs with the per-layer transcoders vs our cross-layer transcoder (CLT), per LM and task.

    .venv/bin/python bench/compare_clt.py [--models checkpoints/lm-bilinear checkpoints/lm-gelu]
        [--recipes circuits/induction.toml circuits/ioi.toml circuits/brackets.toml] [--threads 1]

For each LM and each recipe's prompts (target/contrast: the graph explains logit(target) − logit(contrast)),
builds the graph in transcoder-only mode (attention frozen, MLPs replaced) once with `<LM>/transcoders` and
once with `<LM>/clt`, prunes it with node threshold 0.8 and edge threshold 0.98, and reports per task the
mean replacement and completeness scores (of the unpruned graph, as `interp extract` reports them; the
pruned graph's too), the mean pruned graph size (nodes, of which feature nodes, links) and the active
feature count. The recipes' prompts were chosen on lm-bilinear (its top prediction is the target); the
same prompts are used for lm-gelu. Prints a table on stdout and writes bench/compare_clt.result.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NODE_THRESHOLD, EDGE_THRESHOLD = 0.8, 0.98
FIELDS = ("replacement_score", "completeness_score", "pruned_replacement_score", "pruned_completeness_score",
          "nodes", "feature_nodes", "links", "active_features")


def graph_figures(setup, prompt) -> dict[str, float]:
    from interp.graph.pipeline import extract

    ex = extract(setup, prompt["prompt"], contrast=(prompt["target"], prompt["contrast"]),
                 node_threshold=NODE_THRESHOLD, edge_threshold=EDGE_THRESHOLD)
    nodes, scores = ex.json["nodes"], ex.json["metadata"]["interp"]
    return {"replacement_score": ex.scores.replacement_score, "completeness_score": ex.scores.completeness_score,
            "pruned_replacement_score": scores["pruned_replacement_score"],
            "pruned_completeness_score": scores["pruned_completeness_score"],
            "nodes": len(nodes), "feature_nodes": int(ex.pruned.node_mask[:ex.graph.n_features].sum()),
            "links": len(ex.json["links"]), "active_features": ex.graph.n_features}


def compare(models: list[Path], recipes: list[Path], progress: bool = True) -> dict:
    from tqdm import tqdm

    from interp.graph.recipes import read_recipe
    from interp.graph.setup import load_setup

    tasks = [read_recipe(r) for r in recipes]
    rows = []
    for model in models:
        for dictionary in ("transcoders", "clt"):
            folder = model / dictionary
            setup = load_setup(model, transcoders=folder, mode="transcoder-only")
            for task in tasks:
                start = time.perf_counter()
                per_prompt = [graph_figures(setup, p) for p in tqdm(task.prompts, desc=f"{model.name} {dictionary} "
                                                                     f"{task.name}", disable=not progress)]
                row = {"model": model.name, "dictionary": dictionary, "task": task.name, "n_prompts": len(per_prompt),
                       "seconds": time.perf_counter() - start}
                row.update({f: statistics.fmean(p[f] for p in per_prompt) for f in FIELDS})
                row["per_prompt"] = per_prompt
                rows.append(row)
    return {"node_threshold": NODE_THRESHOLD, "edge_threshold": EDGE_THRESHOLD, "mode": "transcoder-only",
            "recipes": [str(r) for r in recipes], "rows": rows}


def table(result: dict) -> str:
    head = (f"{'model':<12} {'task':<10} {'dictionary':<11} {'replace':>7} {'complete':>8} {'pr.repl':>7} "
            f"{'pr.compl':>8} {'nodes':>6} {'feat':>6} {'links':>7} {'active':>6}")
    lines = [head, "-" * len(head)]
    for r in sorted(result["rows"], key=lambda r: (r["model"], r["task"], r["dictionary"] != "transcoders")):
        lines.append(f"{r['model']:<12} {r['task']:<10} {r['dictionary']:<11} {r['replacement_score']:>7.3f} "
                     f"{r['completeness_score']:>8.3f} {r['pruned_replacement_score']:>7.3f} "
                     f"{r['pruned_completeness_score']:>8.3f} {r['nodes']:>6.1f} {r['feature_nodes']:>6.1f} "
                     f"{r['links']:>7.1f} {r['active_features']:>6.1f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", type=Path,
                   default=[ROOT / "checkpoints" / "lm-bilinear", ROOT / "checkpoints" / "lm-gelu"])
    p.add_argument("--recipes", nargs="+", type=Path,
                   default=[ROOT / "circuits" / f"{t}.toml" for t in ("induction", "ioi", "brackets")])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "compare_clt.result.json")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()

    import torch

    from interp.io import write_json
    from interp.results import to_jsonable

    torch.set_num_threads(args.threads)
    result = compare(args.models, args.recipes, progress=not args.quiet)
    write_json(args.out, to_jsonable(result))
    print(table(result))


if __name__ == "__main__":
    main()
