"""Pruning by influence (circuit-tracer's algorithm) and hierarchical attribution (Ge et al. 2024).

Influence: normalise |A| so each row sums to 1; a node's influence on the logits is
`w · (A + A² + …)`, where w holds the logit nodes' weights (their probabilities). Keep the fewest
nodes whose influence reaches `node_threshold` of the total (tokens and logits always stay), then
the fewest edges whose influence (normalised edge × influence of its target, logits counted) reaches
`edge_threshold`, then drop, until nothing changes, feature and error nodes left without an outgoing
edge and feature nodes left without an incoming one. Thresholds of 1.0 keep the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from interp.errors import InterpError
from interp.graph.influence import influence, normalize_rows_

if TYPE_CHECKING:  # the viewer prunes graph JSONs without importing TransformerLens (attribution does)
    from interp.graph.attribution import AttributionGraph


def find_threshold(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """The smallest score among the fewest top scores whose sum reaches `threshold` of the total."""
    ordered = scores.sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
    index = int(torch.searchsorted(cumulative, torch.tensor(threshold, dtype=cumulative.dtype)))
    return ordered[min(index, len(ordered) - 1)]


def find_threshold_with_zeros(values: torch.Tensor, scratch: torch.Tensor, threshold: float) -> torch.Tensor:
    """`find_threshold` of `values` followed by zeros up to `scratch.numel()` entries, bit for bit, sorting only
    `values`; `scratch` (any tensor of `values`' dtype and the full length) is overwritten.

    The edge scores of an [n, n] adjacency are zero wherever it has no edge (all but a few % of n² on
    real graphs), and a full sort of n² scores took most of a GPT-2-size view. Sorted descending, the
    zeros only extend the tail, so the cumulative sums over `values` are a prefix of the full ones
    (cumsum runs in order). The total is summed over the zero-padded sorted array, as the full sort's
    is, because a sum's rounding depends on its length (blocking, threads): its bits, and so the
    threshold, stay the same."""
    ordered = values.sort(descending=True).values
    padded = scratch.view(-1).zero_()
    padded[:len(ordered)] = ordered
    cumulative = ordered.cumsum(0) / padded.sum().clamp(min=1e-30)
    index = int(torch.searchsorted(cumulative, torch.tensor(threshold, dtype=cumulative.dtype)))
    if index < len(ordered):
        return ordered[index]
    # No prefix reaches the threshold (rounding, or no scores): the full search ends on its last entry,
    # a padding zero when there is one.
    return torch.zeros((), dtype=values.dtype) if len(padded) > len(ordered) else ordered[-1]


@dataclass
class Pruned:
    node_mask: torch.Tensor         # [n] bool
    edge_mask: torch.Tensor         # [n, n] bool, [target, source]
    cumulative_scores: torch.Tensor  # [n] each node's cumulative influence rank (circuit-tracer's "influence")
    influence: torch.Tensor         # [n] raw node influence


def prune(graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Pruned:
    """circuit-tracer's pruning of an attribution graph (tokens and logits always stay)."""
    n = graph.n_nodes
    always = torch.zeros(n, dtype=torch.bool)
    always[n - graph.n_tokens - graph.n_logits:] = True
    is_feature = torch.zeros(n, dtype=torch.bool)
    is_feature[:graph.n_features] = True
    return prune_adjacency(graph.adjacency, graph.logit_weight_vector(), always, is_feature, node_threshold,
                           edge_threshold)


def prune_adjacency(A: torch.Tensor, weights: torch.Tensor, always: torch.Tensor, is_feature: torch.Tensor,
                    node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Pruned:
    """The one pruning rule, for a graph in any node order: `weights` [n] are the logit nodes' weights (0
    elsewhere), `always` marks nodes that always stay (tokens, logits), `is_feature` the feature nodes.

    Keep the fewest nodes whose influence reaches `node_threshold` of the total, then the fewest edges
    whose influence reaches `edge_threshold`; then drop, until nothing changes, nodes not always kept that
    have no outgoing edge, and features with no incoming edge. Thresholds of 1.0 keep everything."""
    for name, t in (("node", node_threshold), ("edge", edge_threshold)):
        if not 0.0 <= t <= 1.0:
            raise InterpError(f"{name} threshold {t} is outside [0, 1]")
    n = A.shape[0]
    # Influence stays dense, computed with the same operations as `node_influence` / `edge_influence`: a
    # sparse product would sum in another order and round differently, which could move a node or an
    # edge across a threshold. Both stages share one [n, n] buffer (`normalize_rows_` works in place).
    buffer = normalize_rows_(torch.abs(A))
    scores = influence(buffer, weights)
    if node_threshold >= 1.0:
        node_mask = torch.ones(n, dtype=torch.bool)
    else:
        node_mask = (scores >= find_threshold(scores, node_threshold)) | always
    # |A| among the kept nodes (|pruned| where pruned is A with the other rows and columns zeroed).
    torch.abs(A, out=buffer)
    buffer[~node_mask] = 0
    buffer[:, ~node_mask] = 0
    # From here on, edges as index lists [target, source]: scores, threshold and the dangling-node loop
    # touch only the edges, not all n² entries (a few % of them are edges on a real graph).
    targets, sources = buffer.nonzero(as_tuple=True)
    if edge_threshold < 1.0:
        # `edge_influence(pruned, weights)` at the edges (it is zero elsewhere): the same elementwise
        # product, so the same bits.
        normalized = normalize_rows_(buffer)
        target_influence = influence(normalized, weights) + weights
        edge_scores = normalized[targets, sources] * target_influence[targets]
        # The buffer is free now (the indexing above copied the scores out): the threshold's scratch.
        keep = edge_scores >= find_threshold_with_zeros(edge_scores, buffer, edge_threshold)
        targets, sources = targets[keep], sources[keep]
    del buffer
    if node_threshold < 1.0 or edge_threshold < 1.0:
        # Until nothing changes: drop edges at dropped nodes, then nodes not always kept without an
        # outgoing edge and features without an incoming one.
        while True:
            alive = node_mask[targets] & node_mask[sources]
            targets, sources = targets[alive], sources[alive]
            has_out = torch.zeros(n, dtype=torch.bool)
            has_out[sources] = True
            has_in = torch.zeros(n, dtype=torch.bool)
            has_in[targets] = True
            kept = node_mask & (always | has_out) & (~is_feature | has_in)
            if torch.equal(kept, node_mask):
                break
            node_mask = kept
    edge_mask = torch.zeros(n, n, dtype=torch.bool)
    edge_mask[targets, sources] = True
    ordered, order = scores.sort(descending=True)
    cumulative = torch.zeros_like(scores)
    cumulative[order] = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
    return Pruned(node_mask, edge_mask, cumulative, scores)


def hierarchical_attribution(graph: AttributionGraph, threshold: float = 0.01) -> Pruned:
    """Ge et al.'s hierarchical attribution: walk the graph backwards from the targets, layer by
    layer, computing each node's attribution `a_s · ∂target/∂a_s` along the nodes kept so far, and
    cut off (stop gradient at) every node whose |attribution| is below `threshold` × |target|.

    Because the replacement model is linear, one backward pass with cut-offs equals this walk over
    the exact adjacency: attr(s) = Σ_t kept A[t, s] · attr(t) / a_t for features t (a ReLU-family
    feature passes gradient 1 while active), and attr(s) = Σ_logits w · A[logit, s].
    """
    A = graph.adjacency
    n = A.shape[0]
    weights = graph.logit_weight_vector()
    attr = weights.clone()
    keep = torch.zeros(n, dtype=torch.bool)
    keep[n - graph.n_logits:] = True
    logit_values = torch.tensor(graph.target_values[n - graph.n_logits:], dtype=A.dtype).abs()
    total = float((weights[n - graph.n_logits:] * logit_values).sum()) or 1.0
    per_unit = weights.clone()          # ∂target/∂(pre-activation) of the kept nodes; logits: their weights
    # Topological order backwards: features by (layer, attn before mlp) descending, then errors/tokens.
    groups: dict[tuple[int, int], list[int]] = {}
    for j, node in enumerate(graph.nodes[:graph.n_features]):
        groups.setdefault((node.layer, 0 if node.kind == "attn" else 1), []).append(j)
    for key in sorted(groups, reverse=True):
        idx = torch.tensor(groups[key])
        attr[idx] = per_unit @ A[:, idx]
        kept = idx[attr[idx].abs() >= threshold * abs(total)]
        keep[kept] = True
        acts = torch.tensor([graph.nodes[j].activation for j in kept.tolist()], dtype=A.dtype)
        per_unit[kept] = attr[kept] / acts
    rest = torch.arange(graph.n_features, n - graph.n_logits)
    attr[rest] = per_unit @ A[:, rest]
    keep[rest] = attr[rest].abs() >= threshold * abs(total)
    keep[graph.n_features + graph.n_errors:n - graph.n_logits] = True   # tokens always stay
    edge_mask = (A != 0) & keep[:, None] & keep[None, :]
    ordered, order = attr.abs().sort(descending=True)
    cumulative = torch.zeros_like(attr)
    cumulative[order] = ordered.cumsum(0) / ordered.sum().clamp(min=1e-30)
    return Pruned(keep, edge_mask, cumulative, attr)
