"""What a viewer shows of a graph JSON: the same influence pruning as extraction, applied to the links the file holds.

A saved graph (ours, circuit-tracer's or Neuronpedia's) and a live one are filtered by one rule,
`interp.graph.prune.prune_adjacency`: node influence on the logits (weighted by each logit's
`token_prob`) reaching `node_threshold`, then edge influence reaching `edge_threshold`, then
dangling nodes dropped. On a file that was already pruned at extraction, influence is computed on
the links it holds, so thresholds of 1.0 show the file as it is.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

# Nodes every view keeps: the prompt's tokens and the logits it explains.
ALWAYS_SHOWN = ("embedding", "logit")
# Feature nodes (dropped when nothing feeds them); errors and tokens are sources only.
FEATURE_TYPES = ("cross layer transcoder", "attention sae feature")


def view_graph(data: Mapping[str, Any], node_threshold: float = 1.0, edge_threshold: float = 1.0) -> dict[str, Any]:
    """A copy of the graph JSON `data` with only the nodes and links the thresholds keep."""
    from interp.graph.prune import prune_adjacency

    nodes = list(data["nodes"])
    index = {n["node_id"]: i for i, n in enumerate(nodes)}
    A = torch.zeros(len(nodes), len(nodes), dtype=torch.float64)
    for link in data["links"]:
        A[index[link["target"]], index[link["source"]]] = float(link["weight"])
    kinds = [n.get("feature_type", "") for n in nodes]
    weights = torch.tensor([float(n.get("token_prob") or 0.0) if k == "logit" else 0.0
                            for n, k in zip(nodes, kinds)], dtype=torch.float64)
    if not weights.any():   # a graph without logit probabilities: weigh its logits alike
        weights = torch.tensor([1.0 if k == "logit" else 0.0 for k in kinds], dtype=torch.float64)
    always = torch.tensor([k in ALWAYS_SHOWN for k in kinds])
    is_feature = torch.tensor([k in FEATURE_TYPES for k in kinds])
    pruned = prune_adjacency(A, weights, always, is_feature, node_threshold, edge_threshold)
    kept = {nodes[i]["node_id"] for i in pruned.node_mask.nonzero().flatten().tolist()}
    links = [link for link in data["links"] if link["source"] in kept and link["target"] in kept
             and bool(pruned.edge_mask[index[link["target"]], index[link["source"]]])]
    return {**data, "nodes": [n for n in nodes if n["node_id"] in kept], "links": links}
