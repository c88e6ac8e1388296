"""Replacement and completeness scores, as circuit-tracer (`compute_graph_scores`) and Neuronpedia define them.

With row-normalised |A| and logit weights w, node influence I = w · (A + A² + …):

- replacement score = I(tokens) / (I(tokens) + I(errors)): how much of the influence that reaches
  the logits from the graph's sources starts at tokens rather than at error nodes (features are
  intermediate; paths through them end at tokens or errors);
- completeness score = Σ_n (1 − error fraction of n's inputs) · (I(n) + w_n) / Σ_n (I(n) + w_n):
  the influence-weighted share of each node's input that does not come straight from error nodes.

Both are 1 for a graph without errors. On a pruned graph, pass the pruned adjacency.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.graph.attribution import AttributionGraph
from interp.graph.influence import influence, normalize_rows
from interp.results import Result


@dataclass
class GraphScores(Result):
    replacement_score: float
    completeness_score: float


def graph_scores(graph: AttributionGraph, adjacency: torch.Tensor | None = None) -> GraphScores:
    A = graph.adjacency if adjacency is None else adjacency
    weights = graph.logit_weight_vector()
    err = slice(graph.n_features, graph.n_features + graph.n_errors)
    tok = slice(graph.n_features + graph.n_errors, graph.n_features + graph.n_errors + graph.n_tokens)
    normalized = normalize_rows(A)
    node_inf = influence(normalized, weights)
    token_inf, error_inf = node_inf[tok].sum(), node_inf[err].sum()
    replacement = token_inf / (token_inf + error_inf).clamp(min=1e-30)
    non_error = 1.0 - normalized[:, err].sum(dim=1)
    output_inf = node_inf + weights
    completeness = (non_error * output_inf).sum() / output_inf.sum()
    return GraphScores(float(replacement), float(completeness))
