"""The extraction pipeline: prompt → attribution graph → pruned graph → scores → graph JSON.

    from interp.graph.setup import load_setup
    from interp.graph.pipeline import extract
    ex = extract(load_setup("checkpoints/lm-bilinear"), "when Eva and Leo arrived at the lake , Leo handed a cup to",
                 contrast=("Eva", "Leo"))
    ex.scores.replacement_score, ex.json["nodes"][:3], ex.graph.adjacency     # A[target, source]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from interp.errors import InterpError
from interp.graph import DEFAULT_MAX_FEATURE_NODES
from interp.graph.attribution import AttributionGraph, attribute
from interp.graph.export import export_graph
from interp.graph.influence import node_influence
from interp.graph.prune import Pruned, hierarchical_attribution, prune
from interp.graph.scores import GraphScores, graph_scores
from interp.graph.setup import Setup


@dataclass
class Extraction:
    graph: AttributionGraph
    pruned: Pruned
    scores: GraphScores
    json: dict[str, Any]
    attribution_seconds: float = 0.0


def extract(setup: Setup, prompt: str, target: str | None = None, contrast: tuple[str, str] | None = None,
            node_threshold: float = 0.8, edge_threshold: float = 0.98,
            max_feature_nodes: int | None = DEFAULT_MAX_FEATURE_NODES, batch_size: int = 64, slug: str = "graph",
            feature_json_base_url: str = "features", progress: bool = False, pruning: str = "influence",
            hierarchical_threshold: float = 0.01, max_memory: int | None = None) -> Extraction:
    """Prompt → attribution graph → pruned graph → scores → graph JSON.

    `pruning` is "influence" (circuit-tracer's node/edge thresholds) or "hierarchical" (Ge et al.:
    nodes whose attribution is below `hierarchical_threshold` × |target| are cut off).
    `max_feature_nodes` caps the feature nodes (None: every active feature, if `max_memory` allows)."""
    tokens = setup.encode(prompt)
    target_id = setup.token_id(target) if target is not None else None
    contrast_ids = (setup.token_id(contrast[0]), setup.token_id(contrast[1])) if contrast else None
    strings = [setup.vocab[t] for t in tokens.tolist()]
    if setup.replacement.mode == "bilinear-exact":
        from interp.graph.exact import prepare_eigen_basis

        # The eigen basis reads each MLP along the target logit's direction (a no-op for other bases).
        prepare_eigen_basis(setup.replacement, tokens, target_id, contrast_ids, setup.vocab)
    start = time.perf_counter()
    graph = attribute(setup.replacement, tokens, prompt=prompt, token_strings=strings, vocab=setup.vocab,
                      target=target_id, contrast=contrast_ids, max_feature_nodes=max_feature_nodes,
                      batch_size=batch_size, progress=progress, model_name=setup.name, max_memory=max_memory)
    seconds = time.perf_counter() - start
    if pruning == "influence":
        pruned = prune(graph, node_threshold, edge_threshold)
    elif pruning == "hierarchical":
        pruned = hierarchical_attribution(graph, hierarchical_threshold)
        # Ablations rank features by influence whichever pruning chose the nodes.
        pruned.influence = node_influence(graph.adjacency, graph.logit_weight_vector())
    else:
        raise InterpError(f"unknown pruning {pruning!r}; choose influence or hierarchical")
    scores = graph_scores(graph)
    pruned_adj = graph.adjacency * pruned.edge_mask
    pruned_scores = graph_scores(graph, pruned_adj)
    data = export_graph(graph, pruned, slug=slug, scan=setup.name, node_threshold=node_threshold,
                        edge_threshold=edge_threshold, feature_json_base_url=feature_json_base_url,
                        scores={"replacement_score": scores.replacement_score,
                                "completeness_score": scores.completeness_score,
                                "pruned_replacement_score": pruned_scores.replacement_score,
                                "pruned_completeness_score": pruned_scores.completeness_score})
    return Extraction(graph, pruned, scores, data, seconds)
