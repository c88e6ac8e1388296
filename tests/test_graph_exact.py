"""Graph mode bilinear-exact (interp.graph.exact) on a tiny random float64 bilinear LM: no error node, the graph
invariant, edges as measured direct effects, nodes against the real model's own hooks, exact ablations, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from graph_helpers import _randomise_biases, save_tiny_lm, tiny_dictionaries
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.errors import InterpError
from interp.graph.attribution import attribute, constant_terms, encoder_rows
from interp.graph.exact import logit_direction, prepare_eigen_basis
from interp.graph.interventions import Intervention, intervene
from interp.graph.replacement import ReplacementModel
from interp.graph.scores import graph_scores
from interp.models.lm import register_identity_activation

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "attribution-graph.schema.json").read_text())
TOKENS = torch.tensor([0, 3, 5, 7, 2, 9, 4])
TARGET = 4
TOL = 1e-9


def tiny_bilinear(act_fn: str = "identity", seed: int = 0) -> HookedTransformer:
    register_identity_activation()
    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=24, n_ctx=16, d_vocab=20,
                                  act_fn=act_fn, gated_mlp=True, normalization_type="LN", seed=seed,
                                  dtype=torch.float64)
    model = HookedTransformer(cfg)
    _randomise_biases(model, torch.Generator().manual_seed(seed))
    for block in model.blocks:
        block.mlp.b_in.data.zero_()        # a bilinear MLP has no bias after the product
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_bilinear()


@pytest.fixture(scope="module")
def dictionaries(model):
    return tiny_dictionaries(model, d_sae=40)


def build(model, dictionaries, basis, attention="heads", zero_bos=True):
    transcoders, attn_saes = dictionaries
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode="bilinear-exact", basis=basis, attention=attention)
    prepare_eigen_basis(rep, TOKENS, target=TARGET)
    graph = attribute(rep, TOKENS, target=TARGET, zero_bos=zero_bos)
    return rep, graph, rep.snapshot(TOKENS)


def target_value(rep, snap, reads, logits, node) -> float:
    """A node's value as a target from a forward pass' reads / logits: its encoder row · its read, or the
    demeaned target logit."""
    if node.kind == "logit":
        d = torch.full((rep.model.cfg.d_vocab,), -1.0 / rep.model.cfg.d_vocab, dtype=torch.float64)
        d[node.index] += 1.0
        return float(logits[-1] @ d)
    i = next(k for k, s in enumerate(rep.sites) if (s.kind, s.layer) == (node.kind, node.layer))
    row = encoder_rows(rep, snap, i, torch.tensor([node.pos]), torch.tensor([node.index]))[0]
    return float(reads[i][node.pos].flatten() @ row)


@pytest.mark.parametrize("basis", ["hidden", "eigen", "dictionary"])
def test_exact_graph_has_no_error_node_and_meets_the_invariant(model, dictionaries, basis):
    rep, graph, snap = build(model, dictionaries, basis)
    assert graph.n_errors == 0 and not any(n.kind.endswith("error") for n in graph.nodes)
    assert all(abs(float(e.abs().max())) < 1e-12 for e in snap.errors)          # rounding, not reconstruction error
    scores = graph_scores(graph)
    assert abs(scores.replacement_score - 1.0) <= TOL and abs(scores.completeness_score - 1.0) <= TOL
    const_logits, const_reads = constant_terms(rep, snap)
    checked = 0
    for j, node in enumerate(graph.nodes):
        if node.is_feature or node.kind == "logit":
            value = target_value(rep, snap, snap.reads, snap.linear_logits, node)
            const = target_value(rep, snap, const_reads, const_logits, node)
            assert abs(float(graph.adjacency[j].sum()) + const - value) <= TOL
            assert abs(graph.target_values[j] - value) <= TOL
            checked += 1
    assert checked == graph.n_features + graph.n_logits


@pytest.mark.parametrize("basis", ["hidden", "eigen"])
def test_an_edge_is_the_direct_effect_of_removing_its_source(model, dictionaries, basis):
    """Zero one source's activation in the frozen replacement model (every other node clamped, patterns and
    scales frozen) and measure its target: the change is the edge, for the strongest and some random edges."""
    rep, graph, snap = build(model, dictionaries, basis)
    A = graph.adjacency
    n_src = graph.n_features + graph.n_errors + graph.n_tokens
    flat = A[:, :n_src].abs().flatten()
    picks = flat.topk(5).indices.tolist() + torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:15].tolist()
    site = {(s.kind, s.layer): i for i, s in enumerate(rep.sites)}
    for k in picks:
        t, s = divmod(k, A.shape[1])
        source, target = graph.nodes[s], graph.nodes[t]
        acts = [a.clone() for a in snap.acts]
        embed = snap.embed.clone()
        if source.is_feature:
            acts[site[(source.kind, source.layer)]][source.pos, source.index] = 0.0
        else:
            embed[source.pos] = 0.0
        with torch.no_grad():
            logits, reads, _ = rep.forward(snap, acts=acts, embed=embed)
        after = target_value(rep, snap, [r[0] for r in reads], logits[0], target)
        before = target_value(rep, snap, snap.reads, snap.linear_logits, target)
        assert abs((before - after) - float(A[t, s])) <= TOL


def test_node_activations_are_the_real_models(model, dictionaries):
    """Hidden units are the MLP's hook_post, heads the norms of z W_O; every basis sums to the real hook_mlp_out."""
    _, cache = model.run_with_cache(TOKENS[None])
    for basis in ("hidden", "eigen", "dictionary"):
        rep, graph, snap = build(model, dictionaries, basis, zero_bos=False)
        for i, site in enumerate(rep.sites):
            L = site.layer
            if site.kind == "attn":
                z = cache[f"blocks.{L}.attn.hook_z"][0].numpy()
                W_O = model.blocks[L].attn.W_O.detach().numpy()
                norms = np.linalg.norm(np.einsum("phk,hkd->phd", z, W_O), axis=-1)
                assert np.abs(snap.acts[i].numpy() - norms).max() <= TOL
                continue
            mlp_out = cache[f"blocks.{L}.hook_mlp_out"][0].numpy()
            b_out = model.blocks[L].mlp.b_out.detach().numpy()
            acts, dec = snap.acts[i].numpy(), snap.decoders[i].numpy()
            assert np.abs(np.einsum("pn,pnd->pd", acts, dec) + b_out - mlp_out).max() <= TOL
            if basis == "hidden":
                assert np.abs(acts - cache[f"blocks.{L}.mlp.hook_post"][0].numpy()).max() <= TOL
            elif basis == "dictionary":
                D = site.dictionary.numpy()
                assert np.abs(acts - (mlp_out - b_out) @ np.linalg.pinv(D)).max() <= TOL
            else:
                # Σ_k λ_k z_k² = u · (mlp_out − b_out): the eigen decomposition of the MLP along u
                u = site.direction.numpy()
                lam = site.eigenvalues.numpy()
                assert np.abs((acts ** 2 * lam).sum(-1) - (mlp_out - b_out) @ u).max() <= TOL
        # the graph's nodes carry those activations
        for j in range(graph.n_features):
            n = graph.nodes[j]
            i = next(k for k, s in enumerate(rep.sites) if (s.kind, s.layer) == (n.kind, n.layer))
            assert graph.nodes[j].activation == float(snap.acts[i][n.pos, n.index])


def test_eigen_direction_is_the_target_logit_through_the_final_layernorm(model, dictionaries):
    rep, graph, _ = build(model, dictionaries, "eigen")
    d = -np.full(20, 1 / 20)
    d[TARGET] += 1
    v = (model.W_U.detach().numpy() @ d) * model.ln_final.w.detach().numpy()
    u = v - v.mean()
    mlp = [s for s in rep.sites if s.kind == "mlp"]
    assert all(np.abs(s.direction.numpy() - u).max() <= TOL for s in mlp)
    assert graph.settings["basis"] == "eigen" and "eigen_direction" in graph.settings


def test_free_ablation_of_a_hidden_unit_or_a_head_is_the_real_ablation(model, dictionaries):
    rep, _, _ = build(model, dictionaries, "hidden")
    for kind, layer, pos, index, hook in (("mlp", 0, 3, 5, "blocks.0.mlp.hook_post"),
                                          ("attn", 0, 3, 1, "blocks.0.attn.hook_z"),
                                          ("attn", 1, 6, 0, "blocks.1.attn.hook_z")):
        result = intervene(rep, TOKENS, [Intervention(kind, layer, pos, index, 0.0)], mode="free")

        def zero(x, hook, pos=pos, index=index):
            x = x.clone()
            x[0, pos, index] = 0.0
            return x

        with torch.no_grad():
            expected = model.run_with_hooks(TOKENS[None], fwd_hooks=[(hook, zero)])[0, -1]
        assert float((result.new_logits - expected).abs().max()) <= TOL
        assert float((result.new_logits - result.clean_logits).abs().max()) > 1e-6      # it did something


def test_attention_saes_keep_their_error_nodes(model, dictionaries):
    rep, graph, snap = build(model, dictionaries, "hidden", attention="saes")
    kinds = {n.kind for n in graph.nodes}
    assert "attn_error" in kinds and "mlp_error" not in kinds
    const_logits, const_reads = constant_terms(rep, snap)
    for j, node in enumerate(graph.nodes):
        if node.is_feature and node.kind == "mlp":
            value = target_value(rep, snap, snap.reads, snap.linear_logits, node)
            const = target_value(rep, snap, const_reads, const_logits, node)
            assert abs(float(graph.adjacency[j].sum()) + const - value) <= TOL


def test_bad_bases_are_refused(model, dictionaries):
    transcoders, _ = dictionaries
    with pytest.raises(InterpError, match="needs a bilinear LM"):
        ReplacementModel.build(tiny_bilinear(act_fn="gelu"), None, None, mode="bilinear-exact")
    with pytest.raises(InterpError, match="unknown basis"):
        ReplacementModel.build(model, None, None, mode="bilinear-exact", basis="pca")
    swapped = {0: transcoders[1], 1: transcoders[0]}              # each writes the other layer's MLP output
    with pytest.raises(InterpError, match="made for another layer"):
        ReplacementModel.build(model, swapped, None, mode="bilinear-exact", basis="dictionary")
    narrow, _ = tiny_dictionaries(model, d_sae=8)                  # 8 rows cannot span d_model = 16
    with pytest.raises(InterpError, match="spans only rank 8"):
        ReplacementModel.build(model, narrow, None, mode="bilinear-exact", basis="dictionary")
    rep = ReplacementModel.build(model, None, None, mode="bilinear-exact", basis="eigen")
    with pytest.raises(InterpError, match="needs an output direction"):
        rep.snapshot(TOKENS)
    assert torch.equal(logit_direction(model, torch.zeros(20, dtype=torch.float64)), torch.zeros(16, dtype=torch.float64))


# ---- command line ----

def _one_error_line(code, err, needle):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("interp: error:") and needle in lines[0], err


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("exact-cli") / "lm")


PROMPT = "when Eva and Leo arrived at the lake , Leo handed a cup to"


@pytest.mark.parametrize("basis", ["hidden", "eigen", "dictionary"])
def test_cli_extracts_an_exact_graph(run_cli, lm, tmp_path, basis):
    out = tmp_path / "g.json"
    code, stdout, err = run_cli("extract", lm, "--graph-mode", "bilinear-exact", "--basis", basis, "--prompt", PROMPT,
                                "--contrast", "Eva,Leo", "--out", out, "--json", "--quiet")
    assert code == 0, err
    summary, data = json.loads(stdout), json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert summary["replacement_score"] == 1.0 and summary["completeness_score"] == 1.0
    assert not any("error" in n["feature_type"] for n in data["nodes"])
    meta = data["metadata"]["interp"]
    assert meta["mode"] == "bilinear-exact" and meta["basis"] == basis and meta["attention"] == "heads"
    assert (meta.get("eigen_direction") == 'logit "Eva" − "Leo"') == (basis == "eigen")


def test_cli_refuses_bad_exact_input(run_cli, lm, tmp_path):
    out = tmp_path / "g.json"
    code, _, err = run_cli("extract", lm, "--basis", "eigen", "--prompt", PROMPT, "--out", out)
    _one_error_line(code, err, "--basis applies to --graph-mode bilinear-exact only")
    code, _, err = run_cli("extract", "--recipe", tmp_path / "r.toml", "--out-dir", tmp_path / "o", "--basis", "eigen")
    _one_error_line(code, err, "a recipe's graphs follow its graph_mode")
    other = save_tiny_lm(tmp_path / "narrow", d_model=8, d_sae=12)
    code, _, err = run_cli("extract", lm, "--graph-mode", "bilinear-exact", "--basis", "dictionary", "--transcoders",
                           other / "transcoders", "--allow-mismatch", "--prompt", PROMPT, "--out", out)
    _one_error_line(code, err, "made for another model")
    from interp.data.corpus import make_tokenizer
    from interp.models.lm import build_lm, load_lm, make_lm_config, save_lm

    tokenizer = make_tokenizer()
    gelu = save_lm(tmp_path / "gelu", build_lm(make_lm_config("gelu", n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                                                               n_ctx=32, d_vocab=len(tokenizer))), tokenizer, metrics={})
    code, _, err = run_cli("extract", gelu, "--graph-mode", "bilinear-exact", "--prompt", PROMPT, "--out", out)
    _one_error_line(code, err, "needs a bilinear LM")
    assert not out.exists()
    # An exact site counts heads and units, not dictionary features.
    n_heads = load_lm(lm).model.cfg.n_heads
    code, _, err = run_cli("intervene", lm, "--graph-mode", "bilinear-exact", "--prompt", PROMPT, "--set",
                           f"attn:0:1:{n_heads}")
    _one_error_line(code, err, f"or the attn site's basis ({n_heads} heads)")


def test_cli_intervenes_on_exact_nodes(run_cli, lm):
    from interp.graph.setup import load_setup

    setup = load_setup(lm, mode="bilinear-exact")
    tokens = setup.encode(PROMPT)[None]
    model = setup.replacement.model

    def real_change(hook_name, pos, index):
        """Max |Δ logit| at the last position when the real model's own hook is zeroed there (None: eigen node)."""
        def zero(x, hook):
            x = x.clone()
            x[0, pos, index] = 0.0
            return x

        with torch.no_grad():
            clean = model(tokens)[0, -1]
            ablated = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, zero)])[0, -1]
        return float((ablated - clean).abs().max())

    cases = (("hidden", "mlp:0:3:5", real_change("blocks.0.mlp.hook_post", 3, 5)),
             ("hidden", "attn:1:14:1", real_change("blocks.1.attn.hook_z", 14, 1)),
             ("eigen", "mlp:0:3:0", None))
    for basis, spec, expected in cases:
        code, stdout, err = run_cli("intervene", lm, "--graph-mode", "bilinear-exact", "--basis", basis, "--prompt",
                                    PROMPT, "--set", spec, "--ablation-mode", "free", "--json", "--quiet")
        assert code == 0, err
        change = json.loads(stdout)["max_logit_change"]
        if expected is None:
            assert change > 1e-6, spec       # removing a clean eigen direction moves the logits
        else:                                # a hidden unit's or a head's free ablation is the real ablation
            assert expected > 1e-6 and change == pytest.approx(expected, rel=1e-4, abs=1e-6), spec
