"""Reading a bilinear MLP inside a TransformerLens model from its weights.

A bilinear transformer's MLP at layer L computes (docs/architecture.md)
    mlp_out = W_outᵀ((W_gateᵀ a) ⊙ (W_inᵀ a)) + b_out,   a = w_ln ⊙ x̂ + b_ln,
where x̂ is `blocks.L.ln2.hook_normalized` (the residual stream centred and divided by its scale).
So in the space [x̂, 1] the layer is an exact bilinear form: we read it with
`BilinearWeights(W=W_gateᵀ, V=W_inᵀ, P=W_outᵀ, embed=[diag(w_ln) | b_ln])` (`b_in` is zero and
frozen in our models; `b_out` is a constant offset and is left out). For an output direction u
(a downstream dictionary feature's encoder row, a token's unembedding) Q_u is a (d_model+1)²
matrix, exact for `hook_normalized` inputs.

Input features are residual-stream directions (dictionary decoder rows, token embeddings, a head's
OV image of a token). The LayerNorm divides each position by its own scale σ; a direction f enters
x̂ as centre(f)/σ. The pair terms below are per unit of *normalised* activation (σ = 1): for a real
position, divide by σ² (it scales every term alike, so rankings are unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.bilinear.analysis import DirectionSpectrum, direction_spectrum
from interp.bilinear.core import BilinearWeights, interaction_matrices
from interp.errors import InterpError
from interp.results import Result


CONSTANT_LABEL = "1 (LN bias)"


def mlp_weights(model, layer: int) -> BilinearWeights:
    """The bilinear MLP of `layer`, read in the space [ln2.hook_normalized, 1] (exact; see the module doc)."""
    cfg = model.cfg
    if not (cfg.gated_mlp and cfg.act_fn == "identity"):
        raise InterpError(f"layer MLPs of this model are not bilinear (gated_mlp={cfg.gated_mlp}, act_fn={cfg.act_fn!r})")
    if not 0 <= layer < cfg.n_layers:
        raise InterpError(f"layer {layer} does not exist; the model has layers 0..{cfg.n_layers - 1}")
    block = model.blocks[layer]
    mlp = block.mlp
    if mlp.b_in.detach().abs().max() > 0:
        raise InterpError(f"blocks.{layer}.mlp.b_in is not zero: the MLP is no longer an exact bilinear form")
    d_model = cfg.d_model
    ln = block.ln2
    w_ln = ln.w.detach() if hasattr(ln, "w") else torch.ones(d_model)
    b_ln = ln.b.detach() if hasattr(ln, "b") else torch.zeros(d_model)
    embed = torch.cat([torch.diag(w_ln), b_ln[:, None]], dim=1)  # (d_model, d_model + 1): [x̂, 1] → ln output
    return BilinearWeights(W=mlp.W_gate.detach().T, V=mlp.W_in.detach().T, P=mlp.W_out.detach().T, embed=embed)


def normalized_directions(directions: torch.Tensor) -> torch.Tensor:
    """Residual-stream directions (n, d_model) → their image in [x̂, 1] space at σ = 1: centred, constant 0."""
    centred = directions - directions.mean(-1, keepdim=True)
    return torch.cat([centred, torch.zeros_like(centred[:, :1])], dim=1)


@dataclass
class FeaturePairs(Result):
    """The input-feature pairs that drive one output direction through a bilinear MLP.

    coefficient[a, b]: how much the product z_a z_b of two input features' activations writes along u
    (Q[a, a] for a square, 2 Q[a, b] for a ≠ b), at LayerNorm scale 1. `pairs` lists the largest by
    magnitude: (a, b, coefficient), a <= b.
    """

    layer: int
    output_label: str
    input_labels: list[str]
    pairs: list[tuple[int, int, float]]
    pair_labels: list[tuple[str, str]]
    diagonal_share: float  # fraction of Σ|coefficient| on squares (a == b)


def feature_pair_matrix(weights: BilinearWeights, u: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Coefficients C with uᵀ(mlp_out − b_out) = Σ_{a≤b} C[a,b] z_a z_b when x̂ = Σ z_a inputs[a] (σ = 1).

    `inputs` are directions in the read space (n, d_input), e.g. from `normalized_directions`.
    """
    Q = interaction_matrices(weights, u[None].to(weights.P.dtype))[0]
    G = inputs.to(Q.dtype) @ Q @ inputs.to(Q.dtype).T
    C = 2.0 * torch.triu(G, diagonal=1) + torch.diag(torch.diagonal(G))
    return C


def top_feature_pairs(weights: BilinearWeights, u: torch.Tensor, inputs: torch.Tensor, layer: int,
                      output_label: str = "", input_labels: list[str] | None = None, top: int = 20,
                      include_constant: bool = True) -> FeaturePairs:
    """The `top` input-feature pairs (by |coefficient|) behind output direction `u`.

    With `include_constant` the constant coordinate of [x̂, 1] is one more input (labelled
    CONSTANT_LABEL, activation 1), so pairs with it are the linear terms and the sum is exact.
    """
    if u.numel() != weights.d_out:
        raise InterpError(f"the output direction must have {weights.d_out} entries (d_model), got {u.numel()}")
    if inputs.ndim != 2 or inputs.shape[1] != weights.d_input:
        raise InterpError(f"input directions must be (n, {weights.d_input}); got {tuple(inputs.shape)}")
    labels = list(input_labels or [str(i) for i in range(len(inputs))])
    if include_constant:  # the constant coordinate: the linear terms from the LayerNorm bias
        constant = torch.zeros(1, weights.d_input, dtype=inputs.dtype)
        constant[0, -1] = 1.0
        inputs, labels = torch.cat([inputs, constant]), labels + [CONSTANT_LABEL]
    C = feature_pair_matrix(weights, u, inputs)
    flat = C.abs().flatten()
    order = flat.argsort(descending=True)[:top]
    n = C.shape[0]
    pairs = [(int(i) // n, int(i) % n, float(C.flatten()[i])) for i in order if flat[i] > 0]
    total = C.abs().sum().clamp_min(1e-30)
    return FeaturePairs(layer=layer, output_label=output_label, input_labels=labels, pairs=pairs,
                        pair_labels=[(labels[a], labels[b]) for a, b, _ in pairs],
                        diagonal_share=float(torch.diagonal(C).abs().sum() / total))


def head_ov_directions(model, head_layer: int, head: int, sources: torch.Tensor) -> torch.Tensor:
    """Residual directions (n, d_model) that head (head_layer, head) writes when it attends to `sources`.

    The head reads ln1(x) = w₁ ⊙ x̂ + b₁; at σ = 1 a source direction s gives w₁ ⊙ centre(s)
    (+ b₁, which enters every position alike and is left out), then W_V W_O.
    """
    block = model.blocks[head_layer]
    w1 = block.ln1.w.detach() if hasattr(block.ln1, "w") else torch.ones(model.cfg.d_model)
    centred = sources - sources.mean(-1, keepdim=True)
    return (centred * w1) @ block.attn.W_V[head].detach() @ block.attn.W_O[head].detach()


@dataclass
class HeadPairTerms(Result):
    """Pair terms between the direct path (token embeddings) and each head's OV path, for one output.

    For head h and tokens (t at the current position, s attended to):
    T_h[t, s] = 2 · ē_tᵀ Q_u OV_h(ē_s) — what the MLP writes along u from the product of the current
    token's embedding and the head's output when it attends fully to s (σ = 1). `heads` lists every
    head with the Frobenius norm of T_h (how much it interacts with the direct path for this output)
    and its top (t, s, value) entries.
    """

    layer: int
    output_label: str
    heads: list[dict]


def head_pair_terms(model, layer: int, u: torch.Tensor, tokens: torch.Tensor | None = None, top: int = 10,
                    token_labels: list[str] | None = None, output_label: str = "") -> HeadPairTerms:
    """Direct-path × OV-path pair terms of the bilinear MLP at `layer` for every head in layers ≤ `layer`."""
    weights = mlp_weights(model, layer)
    W_E = model.W_E.detach()
    tokens = torch.arange(W_E.shape[0]) if tokens is None else tokens
    labels = token_labels or [str(int(t)) for t in tokens]
    Q = interaction_matrices(weights, u[None].to(weights.P.dtype))[0]
    direct = normalized_directions(W_E[tokens])  # (n, d+1)
    left = direct @ Q  # (n, d+1)
    heads = []
    for hl in range(layer + 1):
        for h in range(model.cfg.n_heads):
            ov = normalized_directions(head_ov_directions(model, hl, h, W_E[tokens]))
            T = 2.0 * left @ ov.T  # (current token t, source token s)
            order = T.abs().flatten().argsort(descending=True)[:top]
            n = T.shape[1]
            entries = [(labels[int(i) // n], labels[int(i) % n], float(T.flatten()[i])) for i in order]
            heads.append({"head": f"L{hl}H{h}", "norm": float(T.norm()), "top": entries})
    heads.sort(key=lambda d: -d["norm"])
    return HeadPairTerms(layer=layer, output_label=output_label, heads=heads)


@dataclass
class BilinearMLPReading(Result):
    """One bilinear MLP read from its weights for one output direction (`interp bilinear-lm` and the app).

    `pairs`: the top input-feature pairs behind the output; `spectrum`: the eigen-spectrum of Q_u
    (when asked for); `heads`: the direct-path × head OV-path pair terms (when asked for), as in
    `HeadPairTerms.heads`.
    """

    layer: int
    output_label: str
    inputs: str
    pairs: FeaturePairs
    spectrum: DirectionSpectrum | None = None
    heads: list[dict] | None = None


def read_bilinear_mlp(model, layer: int, output_spec: str, inputs_spec: str = "tokens", tokenizer=None,
                      dictionaries: dict | None = None, top: int = 20, heads: bool = False, head_top: int | None = None,
                      spectrum_values: int = 0) -> BilinearMLPReading:
    """Read the bilinear MLP at `layer` along an output direction named by `output_spec` (see `output_direction`),
    in the input features named by `inputs_spec` (see `input_directions`): the `top` feature pairs, optionally
    the head pair terms (`head_top` entries per head, default `top`) and the spectrum (`spectrum_values` > 0)."""
    weights = mlp_weights(model, layer)
    u, label = output_direction(model, output_spec, tokenizer, dictionaries)
    directions, labels = input_directions(model, inputs_spec, tokenizer, dictionaries)
    pairs = top_feature_pairs(weights, u, normalized_directions(directions.to(u.dtype)), layer=layer,
                              output_label=label, input_labels=labels, top=top)
    reading = BilinearMLPReading(layer=layer, output_label=label, inputs=inputs_spec, pairs=pairs)
    if spectrum_values > 0:
        reading.spectrum = direction_spectrum(weights, u.to(weights.P.dtype), label=label, n_values=spectrum_values)
    if heads:
        token_labels = list(tokenizer.vocab) if tokenizer is not None else None
        reading.heads = head_pair_terms(model, layer, u, top=top if head_top is None else head_top,
                                        token_labels=token_labels, output_label=label).heads
    return reading


# ---- choosing directions by name (used by `interp bilinear-lm`) ----

def output_direction(model, spec: str, tokenizer=None, dictionaries: dict | None = None) -> tuple[torch.Tensor, str]:
    """u in d_model from "token:WORD" (demeaned unembedding), "feature:LAYER:INDEX" (encoder row), or numbers."""
    kind, _, rest = spec.partition(":")
    if kind == "token":
        if tokenizer is None:
            raise InterpError("token directions need the model's tokenizer")
        tid = tokenizer.token_id(rest)
        W_U = model.W_U.detach()
        return W_U[:, tid] - W_U.mean(1), f"logit {rest!r}"  # demeaned, as circuit-tracer's logit targets
    if kind == "feature":
        layer, index = _layer_index(rest, "feature:LAYER:INDEX")
        sae = _dictionary(dictionaries, layer)
        if not 0 <= index < sae.W_enc.shape[1]:
            raise InterpError(f"feature {index} does not exist; layer {layer}'s dictionary has {sae.W_enc.shape[1]}")
        return sae.W_enc.detach()[:, index].to(model.W_U.dtype), f"feature {layer}:{index} (encoder)"
    try:
        u = torch.tensor([float(t) for t in spec.split(",")], dtype=model.W_U.dtype)
    except ValueError:
        raise InterpError(f"output {spec!r}: use token:WORD, feature:LAYER:INDEX or {model.cfg.d_model} numbers") from None
    if u.numel() != model.cfg.d_model:
        raise InterpError(f"an output vector needs d_model={model.cfg.d_model} numbers, got {u.numel()}")
    if not bool(torch.isfinite(u).all()):
        raise InterpError(f"an output vector needs finite numbers; {spec!r} holds NaN or infinity")
    return u, "vector"


def input_directions(model, spec: str, tokenizer=None, dictionaries: dict | None = None) -> tuple[torch.Tensor, list[str]]:
    """Residual directions (n, d_model) and labels: "tokens" (embeddings) or "features:LAYER" (decoder rows)."""
    if spec == "tokens":
        W_E = model.W_E.detach()
        labels = list(tokenizer.vocab) if tokenizer is not None else [str(i) for i in range(len(W_E))]
        return W_E, labels
    kind, _, rest = spec.partition(":")
    if kind == "features":
        layer, _ = _layer_index(rest + ":0", "features:LAYER")
        sae = _dictionary(dictionaries, layer)
        W_dec = sae.W_dec.detach().to(model.W_E.dtype)
        return W_dec, [f"{layer}:{i}" for i in range(len(W_dec))]
    raise InterpError(f"inputs {spec!r}: use tokens or features:LAYER")


def _layer_index(text: str, form: str) -> tuple[int, int]:
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InterpError(f"{text!r} is not of the form {form}")
    return int(parts[0]), int(parts[1])


def _dictionary(dictionaries: dict | None, layer: int):
    if not dictionaries:
        raise InterpError("feature directions need dictionaries: pass --transcoders FOLDER")
    if layer not in dictionaries:
        raise InterpError(f"no dictionary at layer {layer}; these have layers {sorted(dictionaries)}")
    return dictionaries[layer]
