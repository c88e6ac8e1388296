"""Graph JSON export (schema, circuit-tracer ids), import with rejection of malformed files, feature JSON."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import torch

from graph_helpers import tiny_dictionaries, tiny_model
from interp.errors import InterpError
from interp.graph.attribution import attribute
from interp.graph.export import export_graph, node_id, read_graph_json
from interp.graph.features import write_feature_jsons
from interp.graph.prune import prune
from interp.graph.replacement import ReplacementModel
from interp.io import write_json

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "attribution-graph.schema.json").read_text())
TOKENS = torch.tensor([0, 3, 5, 7, 3, 5, 9])
VOCAB = [f"w{i}" for i in range(20)]


@pytest.fixture(scope="module")
def graphs():
    model = tiny_model()
    transcoders, attn_saes = tiny_dictionaries(model)
    out = {}
    for mode in ("full", "transcoder-only"):
        rep = ReplacementModel.build(model, transcoders, attn_saes, mode=mode)
        graph = attribute(rep, TOKENS, token_strings=[VOCAB[t] for t in TOKENS], vocab=VOCAB, prompt="w3 w5 w7 w3 w5 w9",
                          batch_size=32)
        out[mode] = (rep, graph)
    return out


@pytest.mark.parametrize("mode", ["full", "transcoder-only"])
def test_export_is_schema_valid_and_unpruned_export_keeps_every_edge(graphs, mode):
    _, graph = graphs[mode]
    data = export_graph(graph, prune(graph, 1.0, 1.0), slug="t", node_threshold=1.0, edge_threshold=1.0)
    jsonschema.validate(data, SCHEMA)
    assert len(data["nodes"]) == graph.n_nodes
    assert len(data["links"]) == int((graph.adjacency != 0).sum())
    ids = [n["node_id"] for n in data["nodes"]]
    assert len(set(ids)) == len(ids)
    # Every link weight is the adjacency entry A[target, source].
    index = {node_id(n, graph.n_layers): j for j, n in enumerate(graph.nodes)}
    for link in data["links"][:200]:
        assert link["weight"] == pytest.approx(float(graph.adjacency[index[link["target"]], index[link["source"]]]))


def test_ids_follow_circuit_tracer_and_errors_cannot_collide(graphs):
    _, graph = graphs["transcoder-only"]
    data = export_graph(graph, prune(graph, 1.0, 1.0))
    by_type: dict[str, list[dict]] = {}
    for n in data["nodes"]:
        by_type.setdefault(n["feature_type"], []).append(n)
    feat = by_type["cross layer transcoder"][0]
    assert feat["node_id"] == f"{feat['layer']}_{feat['feature'] % 100}_{feat['ctx_idx']}"
    emb = by_type["embedding"][2]
    assert emb["node_id"] == f"E_{int(TOKENS[2])}_2" and emb["layer"] == "E"
    logit = by_type["logit"][0]
    assert logit["node_id"] == f"{graph.n_layers + 1}_{logit['feature']}_{len(TOKENS) - 1}"
    errors = by_type["mlp reconstruction error"]
    assert len(errors) == graph.n_layers * len(TOKENS)
    # circuit-tracer's 0_{layer}_{pos} would equal the id of layer-0 feature `layer` at `pos`; ours never can.
    all_feature_ids = {f"0_{f}_{p}" for f in range(24) for p in range(len(TOKENS))}
    assert not {e["node_id"] for e in errors} & all_feature_ids


def test_pruned_export_roundtrips_through_a_file(graphs, tmp_path):
    _, graph = graphs["full"]
    data = export_graph(graph, prune(graph, 0.8, 0.98), slug="small")
    assert len(data["nodes"]) < graph.n_nodes
    write_json(tmp_path / "g.json", data)
    back = read_graph_json(tmp_path / "g.json")
    assert back == json.loads(json.dumps(data))


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("nodes"), "nodes"),
    (lambda d: d["links"].append({"source": "nowhere", "target": d["nodes"][0]["node_id"], "weight": 1.0}), "unknown"),
    (lambda d: d["nodes"].append(dict(d["nodes"][0])), "twice"),
    (lambda d: d["nodes"][0].pop("jsNodeId"), "jsNodeId"),
    (lambda d: d["links"][0].update(weight="big"), "weight"),
    (lambda d: d["metadata"].pop("prompt"), "prompt"),
])
def test_import_rejects_malformed_graphs_with_one_line(graphs, tmp_path, damage, message):
    _, graph = graphs["full"]
    data = export_graph(graph, prune(graph, 0.8, 0.98))
    damage(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InterpError, match=message) as err:
        read_graph_json(path)
    assert "\n" not in str(err.value)


def test_import_rejects_files_that_are_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(InterpError, match="not valid JSON"):
        read_graph_json(path)
    with pytest.raises(InterpError, match="not found"):
        read_graph_json(tmp_path / "missing.json")


def test_feature_json_holds_contexts_logits_histogram_and_density(graphs, tmp_path):
    rep, graph = graphs["full"]
    corpus = torch.randint(0, 20, (12, 10), generator=torch.Generator().manual_seed(0))
    wanted = {("mlp", 1, graph.nodes[j].index) for j in range(graph.n_features) if graph.nodes[j].kind == "mlp"
              and graph.nodes[j].layer == 1}
    paths = write_feature_jsons(rep, wanted, corpus, VOCAB, tmp_path)
    assert len(paths) == len(wanted)
    data = json.loads(paths[0].read_text())
    site = next(s for s in rep.sites if s.kind == "mlp" and s.layer == 1)
    with torch.no_grad():
        _, cache = rep.model.run_with_cache(corpus)
        acts = site.encode(cache[site.read_hook])[..., data["feature"]]
    assert data["activation_frequency"] == pytest.approx(float((acts > 0).double().mean()))
    assert data["act_max"] == pytest.approx(float(acts.max()))
    top = data["examples_quantiles"][0]["examples"][0]
    assert max(top["tokens_acts_list"]) == pytest.approx(float(acts.max()), abs=1e-4)
    assert len(top["tokens"]) == 10 and len(data["top_logits"]) == 10 and len(data["histogram"]) == 20
    assert sum(data["histogram"]) == int((acts > 0).sum())
    effect = site.W_dec[data["feature"]] @ rep.model.W_U
    assert data["top_logits"][0] == VOCAB[int(effect.argmax())]
    assert data["bottom_logits"][0] == VOCAB[int(effect.argmin())]


def test_graph_figure_places_nodes_by_position_and_layer(graphs):
    from interp.viz.graph import graph_figure

    _, graph = graphs["full"]
    data = export_graph(graph, prune(graph, 0.8, 0.98))
    fig = graph_figure(data, k_links=None, max_nodes=10 ** 6)
    markers = [t for t in fig.data if t.mode == "markers" and t.name != "hidden nodes"]
    folded = [t for t in fig.data if t.mode == "markers" and t.name == "hidden nodes"]
    assert {t.name for t in markers} == {n["feature_type"] for n in data["nodes"]}
    assert sum(len(t.x) for t in markers) + sum(int(h.split()[0]) for t in folded for h in t.hovertext) \
        == len(data["nodes"])
    logits = next(t for t in markers if t.name == "logit")
    embeds = next(t for t in markers if t.name == "embedding")
    assert min(logits.y) > max(t for m in markers if m.name != "logit" for t in m.y)
    assert max(embeds.y) < min(t for m in markers if m.name != "embedding" for t in m.y)
    lines = [t for t in fig.data if t.mode == "lines"]
    if not folded:
        assert sum(len(t.x) for t in lines) == 3 * len(data["links"])
    widths = {t.line.width for t in lines}
    assert len(widths) > 1
