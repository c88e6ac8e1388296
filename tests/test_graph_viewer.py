"""The Circuits page's library side: layout (no two markers overlap), labels, paths by weight product,
pinned subgraphs with supernodes saved into the graph JSON, and recipe summaries."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from interp import catalog
from interp.errors import InterpError
from interp.graph import view
from interp.viz.graph import graph_figure, marker_overlaps

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "circuits" / "ioi" / "ioi-00.json"


def node(node_id, kind, layer, pos, influence=0.5, **extra):
    return {"node_id": node_id, "feature_type": kind, "layer": str(layer), "ctx_idx": pos, "influence": influence,
            "feature": extra.pop("feature", None), "clerp": extra.pop("clerp", ""), **extra}


def crowded_graph(per_cell: int = 30, n_tokens: int = 4, seed: int = 0) -> dict:
    """Tokens, two layers of transcoder features (`per_cell` in some cells), errors and one logit, random links."""
    rng = random.Random(seed)
    nodes = [node(f"E_{p}_{p}", "embedding", 0, p, clerp=f"t{p}") for p in range(n_tokens)]
    for layer in range(2):
        for p in range(n_tokens):
            count = per_cell if p == n_tokens - 1 else 1 + p
            nodes += [node(f"{layer}_{f}_{p}", "cross layer transcoder", layer, p, rng.random(), feature=f)
                      for f in range(count)]
            nodes.append(node(f"mlp_err_{layer}_{p}", "mlp reconstruction error", layer, p))
    nodes.append(node(f"3_7_{n_tokens - 1}", "logit", 3, n_tokens - 1, 0.0, token_prob=1.0, clerp="out"))
    links = []
    for a, b in itertools.product(nodes, nodes):
        row = view.row_key(a, 2), view.row_key(b, 2)
        if row[0] < row[1] and a["feature_type"] != "logit" and b["feature_type"] not in ("embedding",) \
                and not b["feature_type"].endswith("error") and rng.random() < 0.3:
            links.append({"source": a["node_id"], "target": b["node_id"], "weight": rng.uniform(-1, 1)})
    return {"metadata": {"prompt": "a b c d", "prompt_tokens": [f"t{p}" for p in range(n_tokens)]},
            "qParams": {"pinnedIds": [], "supernodes": []}, "nodes": nodes, "links": links}


# ---- layout ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("per_cell", [1, 8, 30])
def test_no_two_node_markers_overlap_at_the_default_layout(per_cell):
    data = crowded_graph(per_cell)
    fig = graph_figure(data)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert sum(len(t.x) for t in markers) >= min(len(data["nodes"]), 20)
    assert marker_overlaps(fig) == []
    # The prompt's tokens label the x axis; layers the y axis (tokens at the bottom, logits on top).
    assert list(fig.layout.xaxis.ticktext) == data["metadata"]["prompt_tokens"]
    assert fig.layout.yaxis.ticktext[0] == "tokens" and fig.layout.yaxis.ticktext[-1] == "logits"


@pytest.mark.parametrize("width", [460, 700, 900, 1400])
@pytest.mark.parametrize("per_cell", [1, 8, 30])
def test_markers_fit_the_width_the_figure_is_drawn_at(width, per_cell):
    """The page lays the graph out for the width its column has (narrow beside the sidebar of a 900 px window):
    no overlap at that width, and crowded cells fold more nodes rather than the figure growing wider."""
    data = crowded_graph(per_cell, n_tokens=12)
    fig = graph_figure(data, width_px=width)
    assert fig.layout.width == width
    assert marker_overlaps(fig) == []
    drawn = sum(len(t.x) for t in fig.data if t.mode == "markers" and t.name != view.HIDDEN)
    wider = graph_figure(data, width_px=width * 2)
    assert sum(len(t.x) for t in wider.data if t.mode == "markers" and t.name != view.HIDDEN) >= drawn


def test_crowded_cells_fold_the_rest_and_sum_their_links():
    data = crowded_graph(per_cell=30)
    lay = view.layout_graph(data, max_per_cell=10, k_links=None)
    hidden = [n for n in lay.nodes if n.kind == view.HIDDEN]
    assert hidden and lay.n_hidden == sum(int(n.label.split()[0][1:]) for n in hidden)
    assert len([n for n in lay.nodes if n.kind != view.HIDDEN]) + lay.n_hidden == len(data["nodes"])
    # Whatever a drawn node sends to a cell's folded nodes reaches that cell's marker as one summed link.
    drawn = {n.node_id for n in lay.nodes}

    def marker_of(node_id):
        n = next(m for m in data["nodes"] if m["node_id"] == node_id)
        if node_id in drawn:
            return node_id
        (r0, r1), pos = view.row_key(n, 2), n["ctx_idx"]
        return f"hidden:{r0}.{r1}:{pos}"

    expected: dict = {}
    for e in data["links"]:
        s, t = marker_of(e["source"]), marker_of(e["target"])
        if s != t and (s, t) != (e["source"], e["target"]):
            expected[(s, t)] = expected.get((s, t), 0.0) + e["weight"]
    got = {(e.source, e.target): e.weight for e in lay.links if e.source.startswith("hidden:")
           or e.target.startswith("hidden:")}
    assert got.keys() == expected.keys() and expected
    assert all(got[k] == pytest.approx(v) for k, v in expected.items())


def test_shipped_graph_layout_sizes_by_influence_and_quiets_errors():
    if not SHIPPED.is_file():
        pytest.skip("no shipped graph")
    data = json.loads(SHIPPED.read_text())
    fig = graph_figure(data)
    assert marker_overlaps(fig) == []
    lay = view.layout_graph(data)
    by_id = {n.node_id: n for n in lay.nodes}
    features = sorted((n for n in data["nodes"] if n["feature_type"] in view.FEATURE_TYPES and n["node_id"] in by_id),
                      key=lambda n: n["influence"])
    assert by_id[features[0]["node_id"]].size_px > by_id[features[-1]["node_id"]].size_px
    assert all(n.quiet for n in lay.nodes if n.kind in view.QUIET_TYPES)


def test_strongest_links_keeps_the_k_largest_per_node():
    links = [{"source": "a", "target": "t", "weight": w} for w in (0.1, -0.9, 0.5)] + \
            [{"source": "b", "target": "u", "weight": 0.01}]
    kept = view.strongest_links(links, 1)
    # "t"'s strongest input is -0.9; each source's strongest output is kept too ("a" → -0.9, "b" → 0.01).
    assert sorted(e["weight"] for e in kept) == [-0.9, 0.01]
    assert len(view.strongest_links(links, None)) == 4


# ---- labels ----------------------------------------------------------------------------------------

def test_auto_label_from_a_feature_card():
    card = {"top_logits": ["Omar", "Troy", "the"],
            "examples_quantiles": [{"examples": [{"tokens": ["x", "and", "y"], "train_token_ind": 1},
                                                 {"tokens": ["to", "x"], "train_token_ind": 0},
                                                 {"tokens": ["and"], "train_token_ind": 0}]}]}
    assert view.auto_label(card) == '→ Omar, Troy · on "and", "to"'
    assert view.auto_label({"top_logits": [], "examples_quantiles": []}) == ""
    assert len(view.auto_label({"top_logits": ["x" * 80]})) == 40


def test_every_feature_node_of_a_shipped_graph_has_a_label_from_its_card():
    if not SHIPPED.is_file():
        pytest.skip("no shipped graph")
    data = json.loads(SHIPPED.read_text())
    cards = catalog.feature_cards(SHIPPED, data, root=ROOT / "circuits")
    features = [n for n in data["nodes"] if catalog.feature_node(n) is not None]
    assert set(cards) == {n["node_id"] for n in features}
    labels = view.node_labels(data, cards)
    assert set(labels) == {n["node_id"] for n in data["nodes"]} and all(labels.values())
    for n in features:
        assert labels[n["node_id"]] == (n["clerp"] or view.auto_label(cards[n["node_id"]]))
        assert labels[n["node_id"]].startswith("→") or n["clerp"]
    # Without cards, features still get a plain name.
    assert all(view.node_labels(data)[n["node_id"]] for n in features)


# ---- paths by weight product -----------------------------------------------------------------------

def brute_force_paths(data, node_id, direction):
    out: dict[str, list] = {}
    for e in data["links"]:
        a, b = (e["target"], e["source"]) if direction == "upstream" else (e["source"], e["target"])
        out.setdefault(a, []).append((b, e["weight"]))
    found = []

    def walk(u, chain, product):
        if not out.get(u):
            if len(chain) > 1:
                found.append((tuple(reversed(chain)) if direction == "upstream" else tuple(chain), product))
            return
        for v, w in out[u]:
            walk(v, chain + [v], product * w)

    walk(node_id, [node_id], 1.0)
    return found


@pytest.mark.parametrize("seed", range(4))
def test_top_paths_match_a_brute_force_enumeration(seed):
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(9)]
    nodes = [node(n, "cross layer transcoder", i // 3, 0) for i, n in enumerate(names)]
    links = [{"source": names[i], "target": names[j], "weight": rng.choice([-1, 1]) * rng.uniform(0.1, 2.0)}
             for i in range(9) for j in range(i + 1, 9) if rng.random() < 0.45]
    data = {"metadata": {}, "nodes": nodes, "links": links}
    for middle in names:
        for direction in ("upstream", "downstream"):
            every = brute_force_paths(data, middle, direction)
            best = sorted(every, key=lambda p: (-abs(p[1]), p[0]))[:4]
            got = view.top_paths(data, middle, direction, k=4)
            assert [p.nodes for p in got] == [p[0] for p in best]
            assert [p.weight for p in got] == pytest.approx([p[1] for p in best])
            for p in got:
                assert (p.nodes[-1] if direction == "upstream" else p.nodes[0]) == middle


def test_top_paths_refuse_an_unknown_node_and_a_cycle():
    data = {"nodes": [node("a", "logit", 0, 0), node("b", "logit", 0, 0)],
            "links": [{"source": "a", "target": "b", "weight": 1.0}, {"source": "b", "target": "a", "weight": 1.0}]}
    with pytest.raises(InterpError, match="no node"):
        view.top_paths(data, "zz")
    with pytest.raises(InterpError, match="cycle"):
        view.top_paths(data, "a")


# ---- pinned subgraph -------------------------------------------------------------------------------

def test_pin_and_group_survive_save_and_reload(tmp_path):
    data = crowded_graph(per_cell=3)
    path = tmp_path / "g" / "g-00.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    neighbour = tmp_path / "g" / "other.json"
    neighbour.write_text("untouched")
    pinned = ["0_0_3", "0_1_3", "1_0_3", "E_3_3"]
    sub = view.group_nodes(view.set_pinned(view.Subgraph(), pinned), "mover", ["0_0_3", "0_1_3"])
    view.save_graph_edits(path, sub, {"1_0_3": "says the name"})
    again = json.loads(path.read_text())
    assert again["qParams"]["pinnedIds"] == pinned
    assert again["qParams"]["supernodes"] == [["mover", "0_0_3", "0_1_3"]]
    assert next(n for n in again["nodes"] if n["node_id"] == "1_0_3")["clerp"] == "says the name"
    reread = view.read_subgraph(again)
    assert reread.pinned == pinned and reread.supernodes == [view.Supernode("mover", ["0_0_3", "0_1_3"])]
    assert neighbour.read_text() == "untouched" and sorted(p.name for p in path.parent.iterdir()) == ["g-00.json",
                                                                                                     "other.json"]
    # Everything but the edits is as it was.
    assert again["links"] == data["links"] and len(again["nodes"]) == len(data["nodes"])


def test_save_refuses_a_file_that_is_not_a_graph_and_an_unknown_node(tmp_path):
    other = tmp_path / "notes.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InterpError, match="not a graph JSON"):
        view.save_graph_edits(other, view.Subgraph())
    assert json.loads(other.read_text()) == {"hello": 1}
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(crowded_graph(1)))
    with pytest.raises(InterpError, match="no node"):
        view.save_graph_edits(graph, view.Subgraph(), {"nope": "x"})


def test_subgraph_view_merges_supernodes_and_sums_links():
    data = {"metadata": {"prompt_tokens": ["a", "b"]}, "nodes": [
        node("x", "embedding", 0, 0), node("f1", "cross layer transcoder", 0, 1, 0.1),
        node("f2", "cross layer transcoder", 0, 1, 0.3), node("g", "cross layer transcoder", 1, 1, 0.2),
        node("out", "logit", 3, 1, 0.0)],
        "links": [{"source": "x", "target": "f1", "weight": 0.5}, {"source": "x", "target": "f2", "weight": -0.2},
                  {"source": "f1", "target": "f2", "weight": 9.0}, {"source": "f1", "target": "g", "weight": 1.0},
                  {"source": "f2", "target": "g", "weight": 2.0}, {"source": "g", "target": "out", "weight": 3.0}]}
    sub = view.group_nodes(view.set_pinned(view.Subgraph(), ["x", "f1", "f2", "g"]), "pair", ["f1", "f2"])
    small = view.subgraph_view(data, sub)
    assert {n["node_id"] for n in small["nodes"]} == {"x", "g", "supernode:pair"}
    weights = {(e["source"], e["target"]): e["weight"] for e in small["links"]}
    assert weights == {("x", "supernode:pair"): pytest.approx(0.3), ("supernode:pair", "g"): pytest.approx(3.0)}
    pair = next(n for n in small["nodes"] if n["node_id"] == "supernode:pair")
    assert pair["influence"] == 0.1 and pair["members"] == ["f1", "f2"]
    assert marker_overlaps(graph_figure(small, k_links=None)) == []
    # Grouping only pinned nodes; unpinning drops a node from its group.
    with pytest.raises(InterpError, match="only pinned"):
        view.group_nodes(sub, "other", ["out"])
    assert view.set_pinned(sub, ["x", "f1"]).supernodes == [view.Supernode("pair", ["f1"])]


# ---- recipes ---------------------------------------------------------------------------------------

def test_recipes_are_listed_with_their_graphs(tmp_path):
    folder = tmp_path / "circuits" / "task"
    folder.mkdir(parents=True)
    (folder / "task-00.json").write_text(json.dumps(crowded_graph(1)))
    (folder / "summary.json").write_text(json.dumps({
        "recipe": "task", "n_prompts": 2, "top10_ablation_drop": 1.5, "random10_ablation_drop": 0.1,
        "ablation_mode": "free", "constrained": {"top10_ablation_drop": 1.2},
        "prompts": [{"slug": "task-00", "prompt": "a b", "target": "c", "top_drop": 1.5},
                    {"slug": "task-01", "prompt": "missing graph"}]}))
    roots = catalog.Roots((), (tmp_path / "circuits",))
    (recipe,) = catalog.list_recipes(roots)
    assert recipe.name == "task" and recipe.graphs == [("task/task-00.json", "a b")]
    table = catalog.recipe_table(recipe.summary)
    assert table[0] == {"ablation": "top-10 features", "free": 1.5, "constrained": 1.2}
    assert [r["graph"] for r in catalog.recipe_prompt_rows(recipe.summary)] == ["task-00", "task-01"]
