"""One pruning rule for what a viewer shows: a saved full graph viewed at thresholds equals extraction's own pruning."""

from __future__ import annotations

import pytest

from conftest import CHECKPOINTS
from interp.graph.view import view_graph

PROMPT = "Omar and Troy were in the farm and Troy passed the map to"


@pytest.fixture(scope="module")
def setup():
    from interp.graph.setup import load_setup

    return load_setup(CHECKPOINTS / "lm-bilinear", mode="transcoder-only")


@pytest.mark.parametrize("node_threshold, edge_threshold", [(0.8, 0.98), (0.5, 0.9), (1.0, 0.95)])
def test_view_of_the_full_graph_equals_pruning_at_extraction(setup, node_threshold, edge_threshold):
    from interp.graph.pipeline import extract

    full = extract(setup, PROMPT, node_threshold=1.0, edge_threshold=1.0).json
    pruned = extract(setup, PROMPT, node_threshold=node_threshold, edge_threshold=edge_threshold).json
    viewed = view_graph(full, node_threshold, edge_threshold)
    assert {n["node_id"] for n in viewed["nodes"]} == {n["node_id"] for n in pruned["nodes"]}
    assert {(e["source"], e["target"]) for e in viewed["links"]} == {(e["source"], e["target"]) for e in pruned["links"]}
    assert len(viewed["nodes"]) < len(full["nodes"])


def test_thresholds_of_one_show_a_saved_file_as_it_is():
    import json

    data = json.loads((CHECKPOINTS.parent / "circuits" / "ioi" / "ioi-00.json").read_text())
    assert view_graph(data, 1.0, 1.0) == data
    smaller = view_graph(data, 0.5, 0.9)
    assert 0 < len(smaller["links"]) < len(data["links"])
    kinds = {n["feature_type"] for n in smaller["nodes"]}
    assert {"embedding", "logit"} <= kinds


def _view_by_the_matrix(data, node_threshold, edge_threshold):
    """The view as `prune_adjacency` gives it, link by link (the straightforward form `view_graph` must equal)."""
    import torch

    from interp.graph.prune import prune_adjacency
    from interp.graph.view import ALWAYS_SHOWN, FEATURE_TYPES

    nodes = data["nodes"]
    index = {n["node_id"]: i for i, n in enumerate(nodes)}
    A = torch.zeros(len(nodes), len(nodes), dtype=torch.float64)
    for link in data["links"]:
        A[index[link["target"]], index[link["source"]]] = float(link["weight"])
    kinds = [n.get("feature_type", "") for n in nodes]
    weights = torch.tensor([float(n.get("token_prob") or 0.0) if k == "logit" else 0.0 for n, k in zip(nodes, kinds)],
                           dtype=torch.float64)
    pruned = prune_adjacency(A, weights, torch.tensor([k in ALWAYS_SHOWN for k in kinds]),
                             torch.tensor([k in FEATURE_TYPES for k in kinds]), node_threshold, edge_threshold)
    kept = {nodes[i]["node_id"] for i in pruned.node_mask.nonzero().flatten().tolist()}
    links = [link for link in data["links"] if link["source"] in kept and link["target"] in kept
             and bool(pruned.edge_mask[index[link["target"]], index[link["source"]]])]
    return {**data, "nodes": [n for n in nodes if n["node_id"] in kept], "links": links}


@pytest.mark.parametrize("node_threshold, edge_threshold", [(1.0, 1.0), (0.8, 0.98), (0.5, 0.9), (1.0, 0.95)])
def test_view_equals_pruning_the_matrix_link_by_link(node_threshold, edge_threshold):
    """Thresholds of 1.0 skip the matrix (every node, every link whose entry is not zero); others index it at once."""
    import json

    data = json.loads((CHECKPOINTS.parent / "circuits" / "ioi" / "ioi-00.json").read_text())
    first, second = data["links"][0], data["links"][1]
    # A link of weight 0, and a pair given twice (the last weight counts, as it does in the matrix).
    data["links"] = data["links"] + [{**first, "weight": 0.0}, {**second, "weight": 0.5}]
    expected = _view_by_the_matrix(data, node_threshold, edge_threshold)
    assert view_graph(data, node_threshold, edge_threshold) == expected
    if (node_threshold, edge_threshold) == (1.0, 1.0):
        assert first not in expected["links"] and second in expected["links"]
