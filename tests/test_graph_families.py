"""The graph invariants on every model family a Hugging Face folder can hold (GPT-2, GPT-NeoX, Llama, Qwen2,
Gemma 2): RMSNorm scales frozen like LayerNorm ones, rotary attention and grouped-query attention through
frozen patterns, Gemma 2's output soft cap outside the linear part. Float64, random dictionaries."""

from __future__ import annotations

import json

import pytest
import torch

from graph_helpers import incoming_sums, tiny_dictionaries
from hf_helpers import FAMILIES, make_hf_folder
from interp.graph.attribution import attribute
from interp.graph.replacement import ReplacementModel
from interp.models.hf import load_hf_lm

PROMPT = "when Eva and Leo arrived at the lake , Leo handed a cup to"


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param) / "model"
    make_hf_folder(request.param, folder)
    lm = load_hf_lm(folder, dtype=torch.float64)
    transcoders, attn_saes = tiny_dictionaries(lm.model, d_sae=40, seed=1)
    rep = ReplacementModel.build(lm.model, transcoders, attn_saes, mode="full")
    tokens = torch.tensor(lm.tokenizer.encode(PROMPT))
    return request.param, folder, lm, rep, tokens


def test_replacement_reproduces_the_model_and_edges_plus_constants_equal_targets(family):
    name, _, lm, rep, tokens = family
    snap = rep.snapshot(tokens)
    real = lm.model(tokens[None])[0]
    assert (snap.logits - real).abs().max() <= 1e-9 * real.abs().max()
    logits, _, _ = rep.forward(snap)
    assert (logits[0] - snap.linear_logits).abs().max() <= 1e-9 * snap.linear_logits.abs().max()
    if name == "gemma2":   # the soft cap is active, so the graph's logits are the ones before it
        assert (snap.linear_logits - snap.logits).abs().max() > 0.1
    graph = attribute(rep, tokens, batch_size=32)
    checked = 0
    for j, total, value in incoming_sums(rep, graph, snap):
        scale = max(1.0, float(graph.adjacency[j].abs().sum()))
        assert abs(total - value) <= 1e-9 * scale
        assert abs(value - graph.target_values[j]) <= 1e-12 * scale
        checked += 1
    assert checked == graph.n_features + graph.n_logits and graph.n_features > 20


def test_an_edge_is_the_measured_direct_effect(family):
    _, _, _, rep, tokens = family
    graph = attribute(rep, tokens, batch_size=32)
    snap = rep.snapshot(tokens)
    logit_j = graph.n_nodes - graph.n_logits
    last = len(tokens) - 1
    # Last-position features of layer 1 (transcoder and attention SAE) and of layer 0 (through layer 1's frozen
    # normalisation into the residual stream) reach the logit directly.
    sources = [j for j, n in enumerate(graph.nodes) if n.is_feature and n.pos == last][:8]
    direction = torch.full((rep.model.cfg.d_vocab,), -1.0 / rep.model.cfg.d_vocab, dtype=torch.float64)
    direction[graph.nodes[logit_j].index] += 1.0
    clean, _, _ = rep.forward(snap)
    site = {(x.kind, x.layer): k for k, x in enumerate(rep.sites)}
    nonzero = 0
    for s in sources:
        src = graph.nodes[s]
        i = site[(src.kind, src.layer)]
        # The frozen replacement with every other node at its clean value: zeroing the source moves the
        # (pre-cap) logit by -A[logit, s].
        acts = [a.clone() for a in snap.acts]
        acts[i][src.pos, src.index] = 0.0
        ablated, _, _ = rep.forward(snap, acts=acts)
        moved = float((ablated[0, -1] - clean[0, -1]) @ direction)
        assert abs(moved + float(graph.adjacency[logit_j, s])) <= 1e-9 * max(1.0, abs(moved))
        nonzero += abs(moved) > 1e-6
    assert nonzero >= 6
    assert sources


def test_extract_runs_on_a_hugging_face_folder(family, tmp_path, run_cli):
    name, folder, lm, rep, _ = family
    for layer, sae in tiny_dictionaries(lm.model, d_sae=40, seed=1)[0].items():
        sae.to(torch.float32).save_model(str(tmp_path / "tc" / f"layer_{layer}"))
    (tmp_path / "tc" / "config.json").write_text(json.dumps({"kind": "dictionaries", "type": "transcoder",
                                                             "model": str(folder), "layers": [0, 1]}))
    out = tmp_path / "g.json"
    code, stdout, err = run_cli("extract", folder, "--transcoders", tmp_path / "tc", "--graph-mode",
                                "transcoder-only", "--prompt", PROMPT, "--out", out, "--json", "--quiet",
                                "--node-threshold", "1", "--edge-threshold", "1", "--features-dir", tmp_path / "features")
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["metadata"]["prompt_tokens"] == [lm.tokenizer.vocab[t] for t in lm.tokenizer.encode(PROMPT)]
    # Feature cards from corpus text cut into context windows by the folder's own (subword) tokenizer.
    cards = [json.loads((tmp_path / "features" / f"{n['feature']}.json").read_text())
             for n in data["nodes"] if n["feature_type"] == "cross layer transcoder"]
    examples = [ex for c in cards for ex in c["examples_quantiles"][0]["examples"]]
    assert examples and all(len(ex["tokens"]) == lm.model.cfg.n_ctx for ex in examples)
    code, stdout, err = run_cli("intervene", folder, "--transcoders", tmp_path / "tc", "--graph-mode",
                                "transcoder-only", "--prompt", PROMPT, "--set", "mlp:1:3:5=2.0", "--json")
    assert code == 0, err
    assert json.loads(stdout)["max_logit_change"] >= 0.0
