"""Skip transcoders in the graph: the skip path x @ W_skip is a linear path from read to write, exact, not error."""

from __future__ import annotations

import pytest
import torch
from sae_lens.saes.transcoder import SkipTranscoder, SkipTranscoderConfig

from graph_helpers import incoming_sums, tiny_dictionaries, tiny_model
from interp.graph.attribution import attribute
from interp.graph.replacement import ReplacementModel

TOKENS = torch.tensor([0, 3, 5, 7, 3, 5, 9, 11, 4])


@pytest.fixture(scope="module")
def built():
    model = tiny_model()
    transcoders, _ = tiny_dictionaries(model)
    g = torch.Generator().manual_seed(5)
    skips = {}
    for layer, tc in transcoders.items():
        cfg = SkipTranscoderConfig(d_in=tc.cfg.d_in, d_sae=tc.cfg.d_sae, d_out=tc.cfg.d_out, dtype="float64",
                                   apply_b_dec_to_input=False, metadata=tc.cfg.metadata)
        skip = SkipTranscoder(cfg)
        with torch.no_grad():
            for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
                getattr(skip, name).copy_(getattr(tc, name))
            skip.W_skip.copy_(0.3 * torch.randn(skip.W_skip.shape, generator=g, dtype=torch.float64))
        skips[layer] = skip
    rep = ReplacementModel.build(model, skips, None, mode="transcoder-only")
    return model, rep, attribute(rep, TOKENS, batch_size=16)


def test_errors_exclude_the_skip_path_and_the_replacement_stays_exact(built):
    model, rep, _ = built
    snap = rep.snapshot(TOKENS)
    site = rep.sites[0]
    x = snap.reads[0]
    # The SAE-Lens module's own output, skip included, plus the error is the true MLP output.
    with torch.no_grad():
        true_out = model.run_with_cache(TOKENS[None], names_filter="blocks.0.hook_mlp_out")[1]["blocks.0.hook_mlp_out"][0]
        sae_out = site.sae(x)
    assert (sae_out + snap.errors[0] - true_out).abs().max() <= 1e-12
    assert (x @ site.sae.W_skip.T).abs().max() > 0.1          # the skip path carries real signal
    logits, _, _ = rep.forward(snap)
    assert (logits[0] - snap.logits).abs().max() <= 1e-10


def test_incoming_edges_plus_constants_equal_each_target_through_skip_paths(built):
    _, rep, graph = built
    snap = rep.snapshot(TOKENS)
    sums = incoming_sums(rep, graph, snap)
    for j, total, value in sums:
        assert abs(total - value) <= 1e-9 * max(1.0, abs(value))
    assert len(sums) == graph.n_features + graph.n_logits

def _measured_read(rep, snap, zero_pos: int) -> torch.Tensor:
    """Layer-1 transcoder input after zeroing one token embedding, from the real model with hooks: patterns and
    LayerNorm scales frozen, layer-0 features frozen, layer-0 output = SAE-Lens decode + live x @ W_skip.T + error."""
    sae0 = rep.sites[0].sae
    live: dict[str, torch.Tensor] = {}

    def embed(x, hook):
        x = x.clone()
        x[0, zero_pos] = 0.0
        return x

    def keep(x, hook):
        live["x"] = x
        return x

    def mlp_out(x, hook):
        return (sae0.decode(snap.acts[0]) + live["x"][0] @ sae0.W_skip.T + snap.errors[0])[None]

    def read1(x, hook):
        live["read1"] = x[0]
        return x

    hooks = [("hook_embed", embed), ("blocks.0.ln2.hook_normalized", keep), ("blocks.0.hook_mlp_out", mlp_out),
             ("blocks.1.ln2.hook_normalized", read1)]
    hooks += [(name, lambda x, hook, v=v: v) for name, v in list(snap.scales.items()) + list(snap.patterns.items())]
    with torch.no_grad():
        rep.model.run_with_hooks(snap.tokens[None], fwd_hooks=hooks)
    return live["read1"]


def test_embedding_edge_through_a_skip_path_equals_the_measured_effect(built):
    _, rep, graph = built
    snap = rep.snapshot(TOKENS)
    targets = [j for j, n in enumerate(graph.nodes) if n.is_feature and n.layer == 1][:5]
    for t in targets:
        tgt = graph.nodes[t]
        s = next(k for k, n in enumerate(graph.nodes) if n.kind == "embedding" and n.pos == tgt.pos)
        read = _measured_read(rep, snap, tgt.pos)
        W = rep.sites[1].W_enc[:, tgt.index]
        moved = float((read[tgt.pos] - snap.reads[1][tgt.pos]) @ W)
        edge = float(graph.adjacency[t, s])
        assert abs(moved + edge) <= 1e-9 * max(1.0, abs(edge))
    assert targets
