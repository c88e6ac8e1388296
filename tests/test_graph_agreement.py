"""Weights vs edges (interp.graph.agreement) on a tiny random float64 bilinear LM, against the real MLP."""

from __future__ import annotations

import numpy as np
import pytest
from graph_helpers import tiny_dictionaries
from test_graph_exact import TARGET, TOKENS, tiny_bilinear

from interp.errors import InterpError
from interp.graph.agreement import weights_vs_edges
from interp.graph.attribution import attribute
from interp.graph.exact import prepare_eigen_basis
from interp.graph.replacement import ReplacementModel

TOL = 1e-9


@pytest.fixture(scope="module")
def model():
    return tiny_bilinear(seed=1)


def real_mlp(model, layer: int, xhat: np.ndarray) -> np.ndarray:
    """The MLP of `layer` on normalised inputs x̂ [..., d], from the raw weights, without b_out."""
    ln, mlp = model.blocks[layer].ln2, model.blocks[layer].mlp
    a = xhat * ln.w.detach().numpy() + ln.b.detach().numpy()
    return ((a @ mlp.W_gate.detach().numpy()) * (a @ mlp.W_in.detach().numpy())) @ mlp.W_out.detach().numpy()


def ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)


@pytest.mark.parametrize("mode", ["full", "bilinear-exact"])
def test_weights_vs_edges_against_the_real_mlp(model, mode):
    transcoders, attn_saes = tiny_dictionaries(model, d_sae=40)
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode=mode)
    prepare_eigen_basis(rep, TOKENS, target=TARGET)
    graph = attribute(rep, TOKENS, target=TARGET)
    snap = rep.snapshot(TOKENS)
    _, cache = model.run_with_cache(TOKENS[None])
    nodes = [j for j in range(graph.n_features) if graph.nodes[j].kind == "mlp" and graph.nodes[j].layer == 1]
    assert nodes
    for j in nodes[:4]:
        r = weights_vs_edges(rep, graph, j, snap)
        n = graph.nodes[j]
        i = next(k for k, s in enumerate(rep.sites) if (s.kind, s.layer) == ("mlp", 1))
        u = (snap.decoders[i][n.pos, n.index] if rep.sites[i].exact else rep.sites[i].W_dec[n.index]).numpy()
        xhat = cache["blocks.1.ln2.hook_normalized"][0, n.pos].numpy()
        # Σ pair scores is the real MLP output along the feature's write direction
        assert abs(r.total - real_mlp(model, 1, xhat) @ u) <= TOL
        # each input's share is half the directional derivative of uᵀ mlp along its contribution (a quadratic's
        # central difference is exact): the embedding at the node's position
        e = r.inputs.index(next(s for s in r.inputs if s.startswith("E_")))
        sigma = float(cache["blocks.1.ln2.hook_scale"][0, n.pos, 0])
        w_e = cache["hook_embed"][0, n.pos].numpy()
        c = (w_e - w_e.mean()) / sigma
        share = (real_mlp(model, 1, xhat + c) @ u - real_mlp(model, 1, xhat - c) @ u) / 4
        assert abs(r.weight_scores[e] - share) <= TOL
        # the edge side is the graph's own row; overlap and Spearman recomputed here (no ties in random data)
        embedding = next(s for s, g in enumerate(graph.nodes) if g.kind == "embedding" and g.pos == n.pos)
        assert r.edge_scores[e] == float(graph.adjacency[j, embedding])
        ws, es = np.array(r.weight_scores), np.array(r.edge_scores)
        rho = np.corrcoef(ranks(ws), ranks(es))[0, 1]
        assert abs(r.spearman - rho) <= 1e-12
        k = min(10, len(ws))
        top = len(set(np.argsort(-np.abs(ws))[:k]) & set(np.argsort(-np.abs(es))[:k])) / k
        assert r.top_overlap == top and len(r.pairs) <= 10 and len(r.edges) <= 10


def test_weights_vs_edges_refuses_what_it_cannot_compare(model):
    transcoders, attn_saes = tiny_dictionaries(model, d_sae=40)
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode="full")
    graph = attribute(rep, TOKENS, target=TARGET)
    attn = next(j for j in range(graph.n_features) if graph.nodes[j].kind == "attn")
    with pytest.raises(InterpError, match="not an MLP feature node"):
        weights_vs_edges(rep, graph, attn)
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode="transcoder-only")
    graph = attribute(rep, TOKENS, target=TARGET)
    with pytest.raises(InterpError, match="needs attention as nodes"):
        weights_vs_edges(rep, graph, next(j for j in range(graph.n_features) if graph.nodes[j].kind == "mlp"))


def test_weights_vs_edges_figure_shows_both_lists(model):
    from interp.viz.agreement import weights_vs_edges_figure

    transcoders, attn_saes = tiny_dictionaries(model, d_sae=40)
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode="full")
    graph = attribute(rep, TOKENS, target=TARGET)
    j = next(j for j in range(graph.n_features) if graph.nodes[j].kind == "mlp" and graph.nodes[j].layer == 1)
    r = weights_vs_edges(rep, graph, j).to_dict()
    fig = weights_vs_edges_figure(r)
    left, right = fig.data
    assert list(left.x) == [p["score"] for p in r["pairs"]][::-1]
    assert list(right.y) == [e["source"] for e in r["edges"]][::-1]
    assert f"Spearman {r['spearman']:.2f}" in fig.layout.title.text
