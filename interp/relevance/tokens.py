"""Token relevance for a language model and one logit, with every nonlinearity but the bilinear form frozen.

With every attention pattern and every normalisation scale (LayerNorm or RMSNorm, Gemma 2's post-norms too)
frozen at their values on the prompt (as in the linear computation graph), everything in the model is linear
in the residual stream except the MLPs. We carry the residual stream as a sum of contributions, one per
source: each token's embedding, plus one constant source (positional embeddings, every bias, LayerNorm
offsets). Linear maps act on each contribution separately; rotary positions, grouped-query attention and
attention soft caps only shape the (frozen) patterns, and a parallel attention/MLP block (GPT-NeoX) adds both
branches read from the same stream.

A bilinear MLP whose input is x = Σ_s x_s is the quadratic form Σ_{s,s'} (W_gate x_s) ⊙ (W_in x_s'): the pair
relevance R_ss' is split symmetrically, R_s = Σ_s' ½[(W_gate x_s) ⊙ (W_in x_s') + (W_gate x_s') ⊙ (W_in x_s)]
= ½[(W_gate x_s) ⊙ (W_in x) + (W_gate x) ⊙ (W_in x_s)], the exact second-order decomposition of
docs/architecture.md at token granularity. An MLP with an elementwise activation f (GELU, SiLU, ReLU: GPT-2,
GPT-NeoX, and the gates of Llama, Qwen2, Gemma 2) has f frozen too, as the ratio ρ = f(h)/h of its value on the
prompt (LRP-0 through the activation: f(h) = ρ ⊙ h exactly), so a plain MLP is linear in its input and a gated
one, ρ ⊙ (W_gate x) ⊙ (W_in x), is the same bilinear form with the gate rescaled by ρ (ρ = 1 for the identity).
Gemma 2's final logit soft cap c·tanh(u/c) is frozen the same way, as the ratio of the capped to the uncapped
logit. The token relevances and the constant's share sum to the logit exactly (to float rounding).

Refused, with one line: MLPs with a LayerNorm inside the activation (SoLU), mixtures of experts, shortformer
positions, post-norm (BERT-style) blocks: there the frozen decomposition above is not the model's computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    mlp_rule: str = "bilinear"  # "bilinear" (exact second-order split), "frozen activation" (ρ = f(h)/h), "none"
    frozen: list[str] = field(default_factory=list)  # what is held at its value on the prompt

    @property
    def relevance_sum(self) -> float:
        """Σ of the tokens' relevance (the logit less `constant`)."""
        return float(sum(self.relevance))


def _family(cfg) -> str:
    return str(cfg.original_architecture or cfg.model_name or "this model")


def _check_supported(model: HookedTransformer) -> None:
    from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

    cfg = model.cfg
    family = _family(cfg)

    def refuse(reason: str) -> InterpError:
        return InterpError(f"token relevance does not support {family}: {reason}")

    if not cfg.attn_only:
        if getattr(cfg, "num_experts", None):
            raise refuse("its MLPs are a mixture of experts (the expert choice is not a frozen elementwise factor)")
        if cfg.is_layer_norm_activation():
            raise refuse(f"its MLP activation {cfg.act_fn!r} normalises across neurons (not elementwise)")
        if cfg.act_fn is None:
            raise refuse("its config names no MLP activation")
    if cfg.normalization_type not in ("LN", "LNPre", "RMS", "RMSPre", None):
        raise refuse(f"normalization {cfg.normalization_type!r} is not LayerNorm or RMSNorm")
    if cfg.positional_embedding_type not in ("standard", "rotary"):
        raise refuse(f"{cfg.positional_embedding_type!r} positional embeddings enter the attention inputs")
    if cfg.original_architecture in POST_NORM_ARCHITECTURES:
        raise refuse("post-norm blocks normalise the residual stream itself")


def _normalize(parts: torch.Tensor, scale: torch.Tensor, module, norm: str | None) -> torch.Tensor:
    """A LayerNorm/RMSNorm with its scale frozen: linear on every source; its offset b goes to the constant (last)."""
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


def _ratio(act_fn, pre: torch.Tensor) -> torch.Tensor:
    """ρ = f(h)/h, the activation frozen at its value on the prompt (0 where h = 0, where f(h)·anything = 0)."""
    nonzero = pre != 0
    return torch.where(nonzero, act_fn(pre) / torch.where(nonzero, pre, torch.ones_like(pre)), torch.zeros_like(pre))


def _attention(parts: torch.Tensor, block, cache, layer: int, norm: str | None) -> torch.Tensor:
    x = _normalize(parts, _scale(cache, f"blocks.{layer}.ln1", norm), block.ln1, norm)
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0]  # [head, query, key], frozen
    v = torch.einsum("spd,hde->shpe", x, block.attn.W_V)  # W_V/b_V repeat the key-value heads under GQA
    v[-1] = v[-1] + block.attn.b_V[:, None, :]
    z = torch.einsum("hqk,shke->shqe", pattern, v)
    out = torch.einsum("shqe,hed->sqd", z, block.attn.W_O)
    out[-1] = out[-1] + block.attn.b_O
    if block.cfg.use_normalization_before_and_after:  # Gemma 2: RMSNorm of the attention output, scale frozen
        out = _normalize(out, _scale(cache, f"blocks.{layer}.ln1_post", norm), block.ln1_post, norm)
    return out


def _mlp(parts: torch.Tensor, block, cache, layer: int, norm: str | None) -> torch.Tensor:
    x = _normalize(parts, _scale(cache, f"blocks.{layer}.ln2", norm), block.ln2, norm)
    mlp = block.mlp
    identity = block.cfg.act_fn == "identity"
    if block.cfg.gated_mlp:
        gate = x @ mlp.W_gate  # per source
        if not identity:
            gate = gate * _ratio(mlp.act_fn, cache[f"blocks.{layer}.mlp.hook_pre"][0])
        lin = x @ mlp.W_in
        gate_total, lin_total = gate.sum(0), lin.sum(0)
        hidden = 0.5 * (gate * lin_total + gate_total * lin)  # Σ_s = gate_total ⊙ lin_total exactly
        hidden[-1] = hidden[-1] + mlp.b_in
    else:
        hidden = x @ mlp.W_in
        hidden[-1] = hidden[-1] + mlp.b_in
        if not identity:
            hidden = hidden * _ratio(mlp.act_fn, cache[f"blocks.{layer}.mlp.hook_pre"][0])
    out = hidden @ mlp.W_out
    out[-1] = out[-1] + mlp.b_out
    if block.cfg.use_normalization_before_and_after:
        out = _normalize(out, _scale(cache, f"blocks.{layer}.ln2_post", norm), block.ln2_post, norm)
    return out


@torch.no_grad()
def token_relevance(model: HookedTransformer, tokens: torch.Tensor, target: int | None = None,
                    token_strings: list[str] | None = None) -> TokenRelevance:
    """Relevance of each token of `tokens` ([1, pos] or [pos]) for the logit of `target` at the last position."""
    _check_supported(model)
    cfg = model.cfg
    tokens = tokens.reshape(1, -1)
    n_pos = tokens.shape[1]
    logits, cache = model.run_with_cache(tokens)
    last = logits[0, -1]
    if target is None:
        target = int(last.argmax())
    if not 0 <= target < cfg.d_vocab:
        raise InterpError(f"token id {target} does not exist: the vocabulary has ids 0..{cfg.d_vocab - 1}")
    norm = cfg.normalization_type

    # parts[s, pos, :]: source s = token at position s (s < n_pos) or the constant (s = n_pos).
    dtype = model.W_E.dtype
    parts = torch.zeros(n_pos + 1, n_pos, cfg.d_model, dtype=dtype, device=tokens.device)
    positions = torch.arange(n_pos, device=tokens.device)
    parts[positions, positions] = model.W_E[tokens[0]]
    if cfg.positional_embedding_type == "standard":
        parts[-1] += model.W_pos[:n_pos]

    for layer, block in enumerate(model.blocks):
        attn_out = _attention(parts, block, cache, layer, norm)
        if cfg.attn_only:
            parts = parts + attn_out
        elif cfg.parallel_attn_mlp:  # both branches read the block's input
            parts = parts + attn_out + _mlp(parts, block, cache, layer, norm)
        else:
            parts = parts + attn_out
            parts = parts + _mlp(parts, block, cache, layer, norm)

    final = _normalize(parts[:, -1:], _scale(cache, "ln_final", norm)[-1:], model.ln_final, norm)[:, 0]  # [source, d_model]
    shares = final @ model.W_U[:, target]
    shares[-1] = shares[-1] + model.b_U[target]
    frozen = ["attention patterns"] + (["normalisation scales"] if norm is not None else [])
    mlp_rule = "none" if cfg.attn_only else "bilinear" if cfg.act_fn == "identity" else "frozen activation"
    if mlp_rule == "frozen activation":
        frozen.append(f"MLP activation {cfg.act_fn} as f(h)/h")
    cap = getattr(cfg, "output_logits_soft_cap", None)
    if cap is not None and cap > 0:  # Gemma 2: logit = c·tanh(u/c), frozen as its ratio to u
        resid = cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"][0, -1:]
        uncapped = (model.ln_final(resid[None])[0, 0] @ model.W_U[:, target] + model.b_U[target])
        shares = shares * (last[target] / uncapped if uncapped != 0 else 0.0)
        frozen.append(f"output soft cap {cap:g} as c·tanh(u/c)/u")
    output = float(last[target])
    error = abs(float(shares.sum()) - output)
    if error > 1e-3 * max(1.0, abs(output)):
        raise InterpError(f"token relevance does not add up to the logit (error {error:.3g}): {_family(cfg)} computes "
                          "something this decomposition does not model")
    strings = token_strings or [str(int(t)) for t in tokens[0]]
    return TokenRelevance(tokens=list(strings), token_ids=[int(t) for t in tokens[0]],
                          relevance=[float(v) for v in shares[:-1]], constant=float(shares[-1]), output=output,
                          target=str(target), target_id=target, conservation_error=error, mlp_rule=mlp_rule,
                          frozen=frozen)


def prompt_relevance(lm, prompt: str, target: str | None = None) -> TokenRelevance:
    """`token_relevance` of a prompt for a loaded LM (`interp.models.lm.LoadedLM`): the logit of the token
    `target` (default: the top prediction), tokens shown as the tokenizer's strings of exactly the ids analysed
    (a subword tokenizer's pieces, BOS first where it has one), `target` as its string."""
    if not prompt or not prompt.strip():
        raise InterpError("empty prompt: give --text with at least one word")
    tokens = lm.to_tokens(prompt)
    vocab = lm.tokenizer.vocab
    strings = [vocab[int(i)] for i in tokens[0]]
    target_id = lm.tokenizer.token_id(target) if target is not None else None
    result = token_relevance(lm.model, tokens, target_id, strings)
    result.target = vocab[result.target_id]
    return result
