"""Are the circuits real? The task metric after ablating a graph's most influential features, against controls."""

from __future__ import annotations

import random

import torch

from interp.graph.interventions import Intervention, intervene
from interp.graph.pipeline import Extraction
from interp.graph.prune import hierarchical_attribution
from interp.graph.setup import Setup


def task_metric(logits: torch.Tensor, target: int, contrast: int) -> float:
    return float(logits[target] - logits[contrast])


def ablation_drops(setup: Setup, extraction: Extraction, target: int, contrast: int, k: int = 10,
                   seed: int = 0, mode: str = "free", n_random: int = 5) -> dict[str, float]:
    """The task metric after zeroing k feature nodes (errors held at their clean values), for:

    - "top": the k features of highest influence that support the target: circuit-tracer's
      (unsigned) influence, among features whose signed total attribution to the metric
      (`a_s · ∂metric/∂a_s` through the linear graph) is positive;
    - "unsigned": the k features of highest influence whatever their sign;
    - "attribution": the k features of largest positive signed attribution;
    - "random": k random active feature nodes of the graph, the metric averaged over `n_random`
      independent draws (one draw of 10 is a noisy estimate of what a random ablation costs);
    - "random_same_positions": for each of the "top" features, a random other active feature at the
      same position (the top features crowd the last positions, where any ablation costs more);
    - "random_pruned": k random feature nodes of the pruned graph.
    Random controls average `n_random` draws. Each is measured with the recipe's mode (suffix ""),
    and as "*_constrained" and "*_replacement" (see `interp.graph.interventions`).
    """
    graph, pruned = extraction.graph, extraction.pruned
    tokens = torch.tensor(graph.tokens)
    features = list(range(graph.n_features))
    signed = hierarchical_attribution(graph, threshold=0.0).influence
    by_influence = sorted(features, key=lambda j: -float(pruned.influence[j]))
    top = [j for j in by_influence if signed[j] > 0][:k]
    unsigned = by_influence[:k]
    attribution = sorted((j for j in features if signed[j] > 0), key=lambda j: -float(signed[j]))[:k]
    rng = random.Random(seed)
    random_sets = [rng.sample(features, min(k, len(features))) for _ in range(n_random)]
    at_position: dict[int, list[int]] = {}
    for j in features:
        at_position.setdefault(graph.nodes[j].pos, []).append(j)
    same_position_sets = []
    for _ in range(n_random):
        chosen: list[int] = []
        for j in top:
            others = [o for o in at_position[graph.nodes[j].pos] if o not in top and o not in chosen]
            if others:
                chosen.append(rng.choice(others))
        same_position_sets.append(chosen)
    in_pruned = [j for j in features if bool(pruned.node_mask[j])]
    pruned_sets = [rng.sample(in_pruned, min(k, len(in_pruned))) for _ in range(n_random)]

    def ablate(nodes: list[int], how: str) -> float:
        ivs = [Intervention(graph.nodes[j].kind, graph.nodes[j].layer, graph.nodes[j].pos, graph.nodes[j].index, 0.0)
               for j in nodes]
        return task_metric(intervene(setup.replacement, tokens, ivs, mode=how).new_logits, target, contrast)

    clean = task_metric(setup.replacement.snapshot(tokens).logits[-1], target, contrast)
    out = {"metric_clean": clean}
    scale = clean if abs(clean) > 1e-8 else 1e-8
    modes = [(mode, "")] + [(m, f"_{m}") for m in ("constrained", "replacement") if m != mode]
    for name, node_sets in (("top", [top]), ("unsigned", [unsigned]), ("attribution", [attribution]),
                            ("random", random_sets), ("random_same_positions", same_position_sets),
                            ("random_pruned", pruned_sets)):
        for how, suffix in modes:
            out[f"metric_{name}{suffix}"] = sum(ablate(nodes, how) for nodes in node_sets) / len(node_sets)
            out[f"{name}_drop{suffix}"] = (clean - out[f"metric_{name}{suffix}"]) / scale
    return out
