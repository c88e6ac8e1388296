"""Token relevance for a bilinear language model and one logit, exact.

With every attention pattern and every LayerNorm scale frozen at their values on the prompt (as in
the linear computation graph), everything in the model is linear in the residual stream except the
bilinear MLPs, which are quadratic: g = (W_gate x) ⊙ (W_in x). We carry the residual stream as a sum
of contributions, one per source: each token's embedding, plus one constant source (positional
embeddings, every bias, LayerNorm offsets). Linear maps act on each contribution separately. A
bilinear MLP whose input is x = Σ_s x_s is the quadratic form Σ_{s,s'} (W_gate x_s) ⊙ (W_in x_s'):
the pair relevance R_ss' is split symmetrically, R_s = Σ_s' ½[(W_gate x_s) ⊙ (W_in x_s') + (W_gate x_s') ⊙ (W_in x_s)]
= ½[(W_gate x_s) ⊙ (W_in x) + (W_gate x) ⊙ (W_in x_s)], the exact second-order decomposition of
docs/architecture.md at token granularity. The token relevances and the constant's share sum to the logit exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformer_lens import HookedTransformer

from interp.errors import InterpError
from interp.results import Result


@dataclass
class TokenRelevance(Result):
    tokens: list[str]
    token_ids: list[int]
    relevance: list[float]  # one per position: the share of that token's embedding
    constant: float  # share of positional embeddings, biases and LayerNorm offsets
    output: float  # the explained logit (at the last position)
    target: str
    target_id: int
    conservation_error: float  # |Σ relevance + constant − output|


def _check_supported(model: HookedTransformer) -> None:
    cfg = model.cfg
    if not (cfg.gated_mlp and cfg.act_fn == "identity") and not cfg.attn_only:
        raise InterpError("token relevance needs a bilinear LM (gated MLP with the identity activation); "
                          f"this model's MLP uses {cfg.act_fn!r}")
    if cfg.parallel_attn_mlp or cfg.normalization_type not in ("LN", "LNPre", "RMS", "RMSPre", None):
        raise InterpError(f"token relevance does not support this layout (normalization {cfg.normalization_type!r}, "
                          f"parallel attention/MLP {cfg.parallel_attn_mlp})")
    if getattr(cfg, "n_key_value_heads", None) not in (None, cfg.n_heads):
        raise InterpError("token relevance does not support grouped-query attention")


def _normalize(parts: torch.Tensor, scale: torch.Tensor, module, norm: str | None) -> torch.Tensor:
    """A LayerNorm with its scale frozen: linear on every source; its offset b goes to the constant (last)."""
    if norm is None:
        return parts
    if norm in ("LN", "LNPre"):
        parts = parts - parts.mean(-1, keepdim=True)  # centring is linear
    parts = parts / scale  # [pos, 1], frozen
    if norm in ("LN", "RMS"):
        parts = parts * module.w
    if norm == "LN":
        parts = parts.clone()
        parts[-1] = parts[-1] + module.b
    return parts


def _scale(cache, name: str, norm: str | None) -> torch.Tensor:
    return cache[f"{name}.hook_scale"][0] if norm is not None else torch.ones(1)


@torch.no_grad()
def token_relevance(model: HookedTransformer, tokens: torch.Tensor, target: int | None = None,
                    token_strings: list[str] | None = None) -> TokenRelevance:
    """Relevance of each token of `tokens` ([1, pos] or [pos]) for the logit of `target` at the last position."""
    _check_supported(model)
    tokens = tokens.reshape(1, -1)
    n_pos = tokens.shape[1]
    logits, cache = model.run_with_cache(tokens)
    last = logits[0, -1]
    if target is None:
        target = int(last.argmax())
    if not 0 <= target < model.cfg.d_vocab:
        raise InterpError(f"token id {target} does not exist: the vocabulary has ids 0..{model.cfg.d_vocab - 1}")
    norm = model.cfg.normalization_type

    # parts[s, pos, :]: source s = token at position s (s < n_pos) or the constant (s = n_pos).
    dtype = model.W_E.dtype
    parts = torch.zeros(n_pos + 1, n_pos, model.cfg.d_model, dtype=dtype, device=tokens.device)
    positions = torch.arange(n_pos, device=tokens.device)
    parts[positions, positions] = model.W_E[tokens[0]]
    if model.cfg.positional_embedding_type == "standard":
        parts[-1] += model.W_pos[:n_pos]

    for layer, block in enumerate(model.blocks):
        prefix = f"blocks.{layer}"
        x = _normalize(parts, _scale(cache, f"{prefix}.ln1", norm), block.ln1, norm)
        pattern = cache[f"{prefix}.attn.hook_pattern"][0]  # [head, query, key], frozen
        v = torch.einsum("spd,hde->shpe", x, block.attn.W_V)
        v[-1] = v[-1] + block.attn.b_V[:, None, :]
        z = torch.einsum("hqk,shke->shqe", pattern, v)
        attn_out = torch.einsum("shqe,hed->sqd", z, block.attn.W_O)
        attn_out[-1] = attn_out[-1] + block.attn.b_O
        parts = parts + attn_out
        if model.cfg.attn_only:
            continue
        x = _normalize(parts, _scale(cache, f"{prefix}.ln2", norm), block.ln2, norm)
        gate = x @ block.mlp.W_gate  # per source
        lin = x @ block.mlp.W_in
        gate_total, lin_total = gate.sum(0), lin.sum(0)
        hidden = 0.5 * (gate * lin_total + gate_total * lin)  # Σ_s = gate_total ⊙ lin_total exactly
        hidden[-1] = hidden[-1] + block.mlp.b_in
        mlp_out = hidden @ block.mlp.W_out
        mlp_out[-1] = mlp_out[-1] + block.mlp.b_out
        parts = parts + mlp_out

    final = _normalize(parts[:, -1:], _scale(cache, "ln_final", norm)[-1:], model.ln_final, norm)[:, 0]  # [source, d_model]
    shares = final @ model.W_U[:, target]
    shares[-1] = shares[-1] + model.b_U[target]
    output = float(last[target])
    error = abs(float(shares.sum()) - output)
    if error > 1e-3 * max(1.0, abs(output)):
        raise InterpError(f"token relevance does not add up to the logit (error {error:.3g}): the model is not "
                          "the bilinear LM this decomposition assumes")
    strings = token_strings or [str(int(t)) for t in tokens[0]]
    return TokenRelevance(tokens=list(strings), token_ids=[int(t) for t in tokens[0]],
                          relevance=[float(v) for v in shares[:-1]], constant=float(shares[-1]), output=output,
                          target=str(target), target_id=target, conservation_error=error)
