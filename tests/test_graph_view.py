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
