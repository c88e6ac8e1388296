"""Tiny randomly initialised models and dictionaries for the graph tests (the graph math does not need training)."""

from __future__ import annotations

from pathlib import Path

import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.transcoder import Transcoder, TranscoderConfig
from transformer_lens import HookedTransformer, HookedTransformerConfig


def _randomise_biases(module: torch.nn.Module, gen: torch.Generator, std: float = 0.1) -> None:
    # Zero-initialised biases would hide bugs in how constants are handled; make them nonzero.
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.split(".")[-1]
            if leaf.startswith("b_") or leaf in ("b",):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)


def tiny_model(d_model: int = 16, n_layers: int = 2, d_vocab: int = 20, n_ctx: int = 16, act_fn: str = "gelu",
               dtype: torch.dtype = torch.float64, seed: int = 0) -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=d_model, n_heads=2, d_head=d_model // 2,
                                  d_mlp=2 * d_model, n_ctx=n_ctx, d_vocab=d_vocab, act_fn=act_fn,
                                  normalization_type="LN", seed=seed, dtype=dtype)
    model = HookedTransformer(cfg)
    _randomise_biases(model, torch.Generator().manual_seed(seed))
    return model.eval()


def tiny_dictionaries(model: HookedTransformer, d_sae: int = 24, seed: int = 0,
                      dtype: str = "float64") -> tuple[dict, dict]:
    """Random transcoders (ln2.hook_normalized → hook_mlp_out) and attention SAEs (hook_attn_out) per layer."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    d = model.cfg.d_model
    transcoders, attn_saes = {}, {}
    for layer in range(model.cfg.n_layers):
        tc = Transcoder(TranscoderConfig(
            d_in=d, d_sae=d_sae, d_out=d, dtype=dtype, apply_b_dec_to_input=False,
            metadata=SAEMetadata(hook_name=f"blocks.{layer}.ln2.hook_normalized",
                                 hook_name_out=f"blocks.{layer}.hook_mlp_out")))
        sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=d_sae, dtype=dtype,
                                            metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_attn_out")))
        for x in (tc, sae):
            _randomise_biases(x, gen)
        transcoders[layer], attn_saes[layer] = tc, sae
    return transcoders, attn_saes


def save_tiny_lm(folder: Path, d_model: int = 16, n_layers: int = 2, n_ctx: int = 32, d_sae: int = 24,
                 seed: int = 0) -> Path:
    """A random bilinear LM on the corpus vocabulary, saved with its transcoders and attention SAEs."""
    from interp.data.corpus import make_tokenizer
    from interp.io import write_json
    from interp.models.lm import build_lm, make_lm_config, save_lm

    tokenizer = make_tokenizer()
    cfg = make_lm_config("bilinear", n_layers=n_layers, d_model=d_model, n_heads=2, d_mlp=2 * d_model, n_ctx=n_ctx,
                         d_vocab=len(tokenizer), seed=seed)
    model = build_lm(cfg)
    save_lm(folder, model, tokenizer, metrics={})
    transcoders, attn_saes = tiny_dictionaries(model, d_sae=d_sae, seed=seed, dtype="float32")
    for name, dicts, kind in (("transcoders", transcoders, "transcoder"), ("attn-saes", attn_saes, "attn_sae")):
        for layer in range(n_layers):
            dicts[layer].save_model(str(folder / name / f"layer_{layer}"))
        write_json(folder / name / "config.json", {"kind": "dictionaries", "type": kind, "model": "..",
                                                   "layers": list(range(n_layers))})
    return folder


def incoming_sums(rep, graph, snap) -> list[tuple[int, float, float]]:
    """For every feature and logit node j: (j, Σ incoming edges + constant terms, its value recomputed from the
    snapshot — the pre-activation `read · W_enc[:, f]`, or the demeaned logit before any soft cap). The graph
    invariant says the two are equal; each test asserts it at its own tolerance."""
    from interp.graph.attribution import constant_terms

    const_logits, const_reads = constant_terms(rep, snap)
    site = {(s.kind, s.layer): i for i, s in enumerate(rep.sites)}
    out = []
    for j, node in enumerate(graph.nodes):
        if node.is_feature:
            i = site[(node.kind, node.layer)]
            w = rep.sites[i].W_enc[:, node.index]
            const, value = float(const_reads[i][node.pos] @ w), float(snap.reads[i][node.pos] @ w)
        elif node.kind == "logit":
            d_vocab = rep.model.cfg.d_vocab
            d = torch.full((d_vocab,), -1.0 / d_vocab, dtype=snap.linear_logits.dtype)
            d[node.index] += 1.0
            const, value = float(const_logits[-1] @ d), float(snap.linear_logits[-1] @ d)
        else:
            continue
        out.append((j, float(graph.adjacency[j].sum()) + const, value))
    return out
