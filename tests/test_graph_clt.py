"""Cross-layer transcoders: circuit-tracer's file layout, and graphs in which each feature writes every later MLP output."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from graph_helpers import incoming_sums, tiny_model
from interp.errors import InterpError
from interp.graph.attribution import attribute
from interp.graph.replacement import ReplacementModel
from interp.models.clt import CrossLayerTranscoder, is_clt_folder, load_clt, save_clt

TOKENS = torch.tensor([0, 3, 5, 7, 3, 5, 9, 11, 4])


def random_clt(model, d_sae: int = 20, activation: str = "relu", seed: int = 0) -> CrossLayerTranscoder:
    g = torch.Generator().manual_seed(seed)
    n, d = model.cfg.n_layers, model.cfg.d_model
    clt = CrossLayerTranscoder(n, d, d_sae, activation=activation, input_hook="ln2.hook_normalized",
                               dtype=torch.float64, k=6 if activation == "topk" else None)
    with torch.no_grad():
        clt.W_enc.copy_(torch.randn(n, d, d_sae, generator=g, dtype=torch.float64) / d ** 0.5)
        clt.b_enc.copy_(0.1 * torch.randn(n, d_sae, generator=g, dtype=torch.float64))
        clt.b_dec.copy_(0.1 * torch.randn(n, d, generator=g, dtype=torch.float64))
        for w in clt.W_dec:
            w.copy_(0.2 * torch.randn(w.shape, generator=g, dtype=torch.float64))
        if clt.threshold is not None:
            clt.threshold.fill_(0.1)
    return clt.requires_grad_(False)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    folder = tmp_path_factory.mktemp("clt") / "clt"
    save_clt(random_clt(model, activation="jump_relu"), folder)
    return model, folder


def test_files_follow_circuit_tracers_layout_and_load_back(saved):
    model, folder = saved
    assert is_clt_folder(folder)
    enc = load_file(str(folder / "W_enc_1.safetensors"))
    dec = load_file(str(folder / "W_dec_0.safetensors"))
    assert set(enc) == {"W_enc_1", "b_enc_1", "b_dec_1", "threshold_1"}
    assert tuple(enc["W_enc_1"].shape) == (20, 16) and tuple(dec["W_dec_0"].shape) == (20, 2, 16)
    clt = load_clt(folder)
    x = torch.randn(5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # Reference from the raw tensors: JumpReLU of x W_enc^T + b_enc; layer 1's output sums layer 0's and 1's decoders.
    acts = []
    for layer in range(2):
        e = load_file(str(folder / f"W_enc_{layer}.safetensors"))
        pre = x @ e[f"W_enc_{layer}"].T + e[f"b_enc_{layer}"]
        acts.append(pre * (pre > e[f"threshold_{layer}"]))
        assert (clt.encode(x, layer) - acts[layer]).abs().max() <= 1e-12
    out1 = (acts[0] @ load_file(str(folder / "W_dec_0.safetensors"))["W_dec_0"][:, 1]
            + acts[1] @ load_file(str(folder / "W_dec_1.safetensors"))["W_dec_1"][:, 0]
            + load_file(str(folder / "W_enc_1.safetensors"))["b_dec_1"])
    assert (clt.decode(acts)[1] - out1).abs().max() <= 1e-12


def _ct_reference_read(model, folder, snap, rep, zero: tuple[int, int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and layer-1 CLT input of the frozen replacement computed from the raw files with model hooks:
    patterns and LayerNorm scales frozen, features frozen at their clean values (one optionally zeroed),
    each MLP output = Σ decoders of earlier layers' features + b_dec + frozen error."""
    enc = [load_file(str(folder / f"W_enc_{layer}.safetensors")) for layer in range(2)]
    dec = [load_file(str(folder / f"W_dec_{layer}.safetensors"))[f"W_dec_{layer}"] for layer in range(2)]
    acts = [a.clone() for a in snap.acts]
    if zero is not None:
        layer, pos, f = zero
        acts[layer][pos, f] = 0.0
    seen = {}

    def out(layer):
        def fn(x, hook):
            total = enc[layer][f"b_dec_{layer}"] + sum(acts[src] @ dec[src][:, layer - src] for src in range(layer + 1))
            return (total + snap.errors[layer])[None]
        return fn

    def read1(x, hook):
        seen["read1"] = x[0]
        return x

    hooks = [(f"blocks.{layer}.hook_mlp_out", out(layer)) for layer in range(2)]
    hooks += [("blocks.1.ln2.hook_normalized", read1)]
    hooks += [(name, lambda x, hook, v=v: v) for name, v in list(snap.scales.items()) + list(snap.patterns.items())]
    with torch.no_grad():
        logits = model.run_with_hooks(snap.tokens[None], fwd_hooks=hooks)[0]
    return logits, seen["read1"]


def test_clt_graph_is_exact_and_edges_equal_measured_direct_effects(saved):
    model, folder = saved
    clt = load_clt(folder)
    rep = ReplacementModel.build(model, clt.layers(), None, mode="transcoder-only")
    graph = attribute(rep, TOKENS, batch_size=8)
    snap = rep.snapshot(TOKENS)
    logits, _, _ = rep.forward(snap)
    assert (logits[0] - snap.logits).abs().max() <= 1e-10
    # Incoming edges plus constants equal every target.
    sums = incoming_sums(rep, graph, snap)
    for j, total, value in sums:
        assert abs(total - value) <= 1e-9 * max(1.0, abs(value))
    assert len(sums) == graph.n_features + graph.n_logits
    # A layer-0 feature's edge to the logit and to a layer-1 feature equals the measured change when it is zeroed
    # (its layer-0 and layer-1 decoders both carry it: the logit edge includes the cross-layer write).
    clean_logits, clean_read = _ct_reference_read(model, folder, snap, rep, None)
    logit_j = graph.n_nodes - graph.n_logits
    direction = torch.full((model.cfg.d_vocab,), -1.0 / model.cfg.d_vocab, dtype=torch.float64)
    direction[graph.nodes[logit_j].index] += 1.0
    # Features at the last position: there the write into layer 1's MLP output reaches the logit directly.
    last = len(TOKENS) - 1
    sources = [j for j, n in enumerate(graph.nodes) if n.is_feature and n.layer == 0 and n.pos == last][:4]
    sources += [j for j, n in enumerate(graph.nodes) if n.is_feature and n.layer == 0 and n.pos < last][:3]
    layer1 = [j for j, n in enumerate(graph.nodes) if n.is_feature and n.layer == 1]
    for s in sources:
        src = graph.nodes[s]
        new_logits, new_read = _ct_reference_read(model, folder, snap, rep, (0, src.pos, src.index))
        moved = float((new_logits[-1] - clean_logits[-1]) @ direction)
        assert abs(moved + float(graph.adjacency[logit_j, s])) <= 1e-9 * max(1.0, abs(moved))
        for t in layer1[:4]:
            W = rep.sites[1].W_enc[:, graph.nodes[t].index]
            moved = float((new_read[graph.nodes[t].pos] - clean_read[graph.nodes[t].pos]) @ W)
            assert abs(moved + float(graph.adjacency[t, s])) <= 1e-9 * max(1.0, abs(moved))
    assert sources and any(graph.adjacency[logit_j, s] != 0 for s in sources)


def test_a_clt_for_another_number_of_layers_is_refused(saved, tmp_path):
    model, _ = saved
    three = CrossLayerTranscoder(3, 16, 8, dtype=torch.float64)
    save_clt(three, tmp_path / "three")
    with pytest.raises(InterpError, match="layers"):
        ReplacementModel.build(model, load_clt(tmp_path / "three").layers(), None, mode="transcoder-only")
    (tmp_path / "three" / "W_dec_1.safetensors").unlink()
    with pytest.raises(InterpError, match="W_dec_1"):
        load_clt(tmp_path / "three")


def test_extract_reads_a_clt_folder_from_the_command_line(run_cli, tmp_path):
    import json

    from graph_helpers import save_tiny_lm
    from interp.models.lm import load_lm

    lm = save_tiny_lm(tmp_path / "lm")
    model = load_lm(lm).model
    clt = random_clt(model, activation="topk")
    save_clt(clt.to(torch.float32), tmp_path / "clt")
    out = tmp_path / "g.json"
    code, stdout, err = run_cli("extract", lm, "--transcoders", tmp_path / "clt", "--graph-mode", "transcoder-only",
                                "--prompt", "when Eva and Leo arrived at the lake , Leo handed a cup to",
                                "--out", out, "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(stdout)
    # TopK k = 6 per layer and position, position 0 excluded: every other position has 6 active features per layer.
    assert summary["n_active_features"] == 2 * 6 * (len("when Eva and Leo arrived at the lake , Leo handed a cup to".split()))
    assert json.loads(out.read_text())["nodes"]
