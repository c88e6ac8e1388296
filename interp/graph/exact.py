"""Exact graph sites for bilinear LMs (graph mode "bilinear-exact"; docs/architecture.md, "Exact graphs").

A bilinear MLP reads a = E x̃ with x̃ = [x̂, 1] (x̂ = `blocks.L.ln2.hook_normalized`, E = [diag(w_ln) | b_ln])
and writes g(x̃) = P((A x̃) ⊙ (B x̃)) + b_out with A = W_gate E, B = W_in E, P = W_outᵀ
(`interp.bilinear.lm.mlp_weights`). On a prompt with clean input x̄,

    L(x̃) = P · ½[(A x̄) ⊙ (B x̃) + (A x̃) ⊙ (B x̄)]

is linear in x̃ and L(x̄) = g(x̄) − b_out exactly. With attention patterns and normalisation scales
frozen, the whole forward pass of the prompt is then linear, and the MLP can be written as nodes
in a basis of our choice, with no transcoder and no error node:

- "hidden": node h is the h-th coordinate of L's hidden product, ½[(A x̄)_h (B x̃)_h + (A x̃)_h (B x̄)_h]
  (its clean value is the real hidden activation (A x̄)_h (B x̄)_h); it writes W_out[h];
- "eigen": the eigenvectors v_k of Q_u for an output direction u (`interaction_matrices`), sorted by
  |λ|: node k's activation is z_k = v_k · x̃ and it writes B(x̄, v_k) = P · ½[(A x̄) ⊙ (B v_k) + (A v_k) ⊙ (B x̄)]
  (so along u it writes λ_k z̄_k², the eigen decomposition of uᵀg); Σ_k z_k v_k = x̃, so the nodes
  sum to L exactly;
- "dictionary": a transcoder's decoder rows D used only as a read-out basis: node f's activation is
  c_f = L(x̃) · pinv(D)[:, f] and it writes D[f]; Σ_f c_f D[f] = L(x̃) when D's rows span the MLP's
  output space (checked, or refused).

Attention heads (one node per head per position) are exact too: with frozen patterns head h's
output at position p is the linear map z_{h,p} W_O[h] of its `hook_z`; the node's activation is the
norm of its clean output ō and it writes the unit vector ō/|ō| (its value as a target is
(ō/|ō|) · z W_O[h], which is the norm at the clean input).

An exact site has the interface the engine uses for a dictionary `Site` (kind, layer, hooks, `encode`,
`b_dec`, `d_sae`, a static `W_dec` for feature cards) plus `linearize(x̄)`, which returns the
prompt's per-position encoder [pos, d_read, n] and decoder [pos, n, d_out]: node n's value as a
target is read[p] · enc[p, :, n] (its activation minus a constant), and it writes act · dec[p, n].
`exact = True`: its reconstruction error is rounding only, a constant of the forward pass, not a node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from interp.errors import InterpError
from interp.graph import EXACT_ATTENTION as ATTENTION
from interp.graph import EXACT_BASES as BASES


def _augment(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


@dataclass
class ExactMLPSite:
    """A bilinear MLP read exactly in one basis (see the module doc)."""

    layer: int
    basis: str
    A: torch.Tensor                 # [hidden, d + 1]: W_gate E
    B: torch.Tensor                 # [hidden, d + 1]: W_in E
    P: torch.Tensor                 # [d, hidden]: W_outᵀ
    b_out: torch.Tensor             # [d]
    dictionary: torch.Tensor | None = None     # [n, d] decoder rows (basis "dictionary")
    kind: str = "mlp"
    exact: bool = True
    direction: torch.Tensor | None = field(default=None, repr=False)   # u (basis "eigen")
    direction_label: str = ""
    eigenvalues: torch.Tensor | None = field(default=None, repr=False)
    eigenvectors: torch.Tensor | None = field(default=None, repr=False)  # [d + 1, d + 1], columns v_k
    readout: torch.Tensor | None = field(default=None, repr=False)       # [d, n] = pinv(D)

    def __post_init__(self) -> None:
        self.read_hook = f"blocks.{self.layer}.ln2.hook_normalized"
        self.write_hook = f"blocks.{self.layer}.hook_mlp_out"
        if self.basis == "dictionary":
            D = self.dictionary.double()
            R = torch.linalg.pinv(D)                                     # [d, n]
            W_out = self.P.T.double()
            residual = (W_out - W_out @ R @ D).norm() / W_out.norm().clamp_min(1e-30)
            if residual > 1e-6:
                raise InterpError(f"the dictionary of layer {self.layer} spans only rank "
                                  f"{int(torch.linalg.matrix_rank(D))} of d_model={D.shape[1]}; the MLP output "
                                  f"cannot be read in it exactly (residual {float(residual):.2g})")
            self.readout = R.to(self.P.dtype)

    @property
    def d_sae(self) -> int:
        return {"hidden": self.A.shape[0], "eigen": self.A.shape[1],
                "dictionary": 0 if self.dictionary is None else self.dictionary.shape[0]}[self.basis]

    @property
    def b_dec(self) -> torch.Tensor:
        return self.b_out

    extra_writes: list = field(default_factory=list)   # exact sites write only their own output
    W_skip = None

    def skip(self, x: torch.Tensor) -> float:
        return 0.0

    def set_direction(self, u: torch.Tensor, label: str = "") -> None:
        """The output direction u [d_model] whose Q_u's eigenvectors are the basis ("eigen")."""
        u = u.to(self.P.dtype)
        coeff = u @ self.P                                               # Pᵀu [hidden]
        half = (self.A.T * coeff[None, :]) @ self.B                      # Aᵀ diag(Pᵀu) B
        Q = 0.5 * (half + half.T)
        values, vectors = torch.linalg.eigh(Q.double())
        order = values.abs().argsort(descending=True)
        self.direction, self.direction_label = u, label
        self.eigenvalues = values[order].to(self.P.dtype)
        self.eigenvectors = vectors[:, order].to(self.P.dtype)

    def _need_direction(self) -> None:
        if self.eigenvectors is None:
            raise InterpError("the eigen basis needs an output direction (set_direction); extract sets the target "
                              "logit's direction")

    @property
    def W_dec(self) -> torch.Tensor:
        """A decoder that does not depend on the prompt, for feature cards: W_out rows (hidden), the dictionary
        (dictionary), or B(v_k, v_k), what component k writes on its own (eigen)."""
        if self.basis == "hidden":
            return self.P.T
        if self.basis == "dictionary":
            return self.dictionary
        self._need_direction()
        Av, Bv = self.A @ self.eigenvectors, self.B @ self.eigenvectors
        return (Av * Bv).T @ self.P.T

    def feature_label(self, f: int) -> str:
        if self.basis == "hidden":
            return f"L{self.layer} hidden unit {f}"
        if self.basis == "dictionary":
            return f"L{self.layer} dictionary direction {f}"
        self._need_direction()
        return f"L{self.layer} eigenvector {f} of Q_u (λ={float(self.eigenvalues[f]):.3g})"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The nodes' activations at inputs x̂ [..., d] (the real MLP's: the hidden product, the eigen
        coordinates, or the true output read out in the dictionary)."""
        xt = _augment(x.to(self.A.dtype))
        if self.basis == "eigen":
            self._need_direction()
            return xt @ self.eigenvectors
        hidden = (xt @ self.A.T) * (xt @ self.B.T)
        if self.basis == "hidden":
            return hidden
        return hidden @ self.P.T @ self.readout

    def linearize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position encoder [pos, d, n] and decoder [pos, n, d] of L at the clean input x̂ [pos, d]."""
        xt = _augment(x.to(self.A.dtype))
        alpha, beta = xt @ self.A.T, xt @ self.B.T                       # [pos, hidden]
        n_pos, d = x.shape[0], x.shape[-1]
        if self.basis == "eigen":
            self._need_direction()
            V = self.eigenvectors
            enc = V[:d].expand(n_pos, d, V.shape[1])
            half = 0.5 * (alpha[:, :, None] * (self.B @ V)[None] + beta[:, :, None] * (self.A @ V)[None])
            dec = half.transpose(1, 2) @ self.P.T                        # [pos, n, d]
            return enc, dec
        # M_p = ½[diag(A x̄) B + diag(B x̄) A]: L's hidden product is M_p x̃.
        M = 0.5 * (alpha[:, :, None] * self.B[None] + beta[:, :, None] * self.A[None])   # [pos, hidden, d + 1]
        enc = M[:, :, :d].transpose(1, 2)                                # [pos, d, hidden]
        if self.basis == "hidden":
            return enc, self.P.T.expand(n_pos, *self.P.T.shape)
        return enc @ self.P.T @ self.readout, self.dictionary.expand(n_pos, *self.dictionary.shape)


@dataclass
class HeadSite:
    """The attention heads of one layer, one node per head per position (see the module doc)."""

    layer: int
    W_O: torch.Tensor               # [heads, d_head, d_model]
    b_O: torch.Tensor               # [d_model]
    kind: str = "attn"
    exact: bool = True
    extra_writes: list = field(default_factory=list)
    W_skip = None

    def __post_init__(self) -> None:
        self.read_hook = f"blocks.{self.layer}.attn.hook_z"
        self.write_hook = f"blocks.{self.layer}.hook_attn_out"

    @property
    def d_sae(self) -> int:
        return self.W_O.shape[0]

    @property
    def b_dec(self) -> torch.Tensor:
        return self.b_O

    @property
    def W_dec(self) -> torch.Tensor:
        """No prompt-free decoder exists (a head writes what it reads); zeros for feature cards."""
        return self.W_O.new_zeros(self.W_O.shape[0], self.W_O.shape[2])

    def skip(self, x: torch.Tensor) -> float:
        return 0.0

    def feature_label(self, f: int) -> str:
        return f"L{self.layer}H{f}"

    def outputs(self, z: torch.Tensor) -> torch.Tensor:
        """Each head's output [..., pos, heads, d_model] from its z [..., pos, heads, d_head]."""
        return torch.einsum("...hk,hkd->...hd", z.to(self.W_O.dtype), self.W_O)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """The norm of each head's output [..., pos, heads]."""
        return self.outputs(z).norm(dim=-1)

    def linearize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder [pos, heads·d_head, heads] (block h: W_O[h] · unit(ō_h)) and decoder [pos, heads, d] (unit(ō_h))."""
        out = self.outputs(z)                                            # [pos, H, d]
        norm = out.norm(dim=-1, keepdim=True)
        unit = torch.where(norm > 0, out / norm.clamp_min(1e-30), torch.zeros_like(out))
        n_pos, H, dh = z.shape
        enc = out.new_zeros(n_pos, H, dh, H)
        for h in range(H):
            enc[:, h, :, h] = unit[:, h] @ self.W_O[h].T
        return enc.reshape(n_pos, H * dh, H), unit

    def scale_read(self, z: torch.Tensor, pos: int, head: int, value: float) -> None:
        """Set head `head`'s output norm at `pos` to `value` in place by scaling its z (0: the head is ablated exactly)."""
        norm = float(self.encode(z[pos, head][None, None])[0, 0])
        z[pos, head] *= value / norm if norm > 0 else 0.0


def exact_sites(model, transcoders: dict | None, attn_saes: dict | None, basis: str = "hidden",
                attention: str = "heads") -> list:
    """The sites of a bilinear-exact graph, as the forward pass meets them: per layer, attention (heads, or the
    attention SAE with its error nodes) then the exact MLP in `basis`."""
    from interp.bilinear.lm import mlp_weights
    from interp.graph.replacement import Site, _check_width, _hook_names

    cfg = model.cfg
    if not (cfg.gated_mlp and cfg.act_fn == "identity"):
        raise InterpError(f"graph mode bilinear-exact needs a bilinear LM (gated MLP with the identity activation); "
                          f"this model's MLPs are gated_mlp={cfg.gated_mlp}, act_fn={cfg.act_fn!r}")
    if basis not in BASES:
        raise InterpError(f"unknown basis {basis!r}; choose one of {', '.join(BASES)}")
    if attention not in ATTENTION:
        raise InterpError(f"unknown attention nodes {attention!r}; choose one of {', '.join(ATTENTION)}")
    if "blocks.0.ln2.hook_normalized" not in model.hook_dict:
        raise InterpError("graph mode bilinear-exact needs LayerNorm before the MLPs (blocks.L.ln2.hook_normalized)")
    if basis == "dictionary" and (not transcoders or set(transcoders) != set(range(cfg.n_layers))):
        raise InterpError(f"the dictionary basis needs a transcoder for every layer 0..{cfg.n_layers - 1}; got layers "
                          f"{sorted(transcoders or {})}")
    if attention == "saes" and (not attn_saes or set(attn_saes) != set(range(cfg.n_layers))):
        raise InterpError(f"attention SAEs must cover layers 0..{cfg.n_layers - 1}; got {sorted(attn_saes or {})}")
    dtype = model.W_E.dtype
    sites: list = []
    for layer in range(cfg.n_layers):
        block = model.blocks[layer]
        if attention == "heads":
            sites.append(HeadSite(layer, block.attn.W_O.detach(), block.attn.b_O.detach()))
        else:
            sae = attn_saes[layer]
            hook = _hook_names(sae)[0] or f"blocks.{layer}.hook_attn_out"
            if hook != f"blocks.{layer}.hook_attn_out":
                raise InterpError(f"attention SAE of layer {layer} reads {hook!r}; the graph needs "
                                  f"'blocks.{layer}.hook_attn_out'")
            _check_width(sae, cfg.d_model, cfg.d_model, f"attention SAE of layer {layer}")
            sites.append(Site("attn", layer, sae, hook, hook))
        w = mlp_weights(model, layer)
        E = w.embed.to(dtype)
        dictionary = None
        if basis == "dictionary":
            sae = transcoders[layer]
            out = _hook_names(sae)[1] or f"blocks.{layer}.hook_mlp_out"
            if out != f"blocks.{layer}.hook_mlp_out":
                raise InterpError(f"the dictionary given for layer {layer} writes {out!r}: it was made for another "
                                  f"layer; the basis of layer {layer}'s MLP must write 'blocks.{layer}.hook_mlp_out'")
            if sae.W_dec.shape[1] != cfg.d_model:
                raise InterpError(f"the dictionary of layer {layer} has decoder rows of width {sae.W_dec.shape[1]}, "
                                  f"but the MLP writes d_model={cfg.d_model}: it was made for another model")
            dictionary = Site("mlp", layer, sae, f"blocks.{layer}.ln2.hook_normalized", out).W_dec.to(dtype)
        sites.append(ExactMLPSite(layer, basis, A=w.W.to(dtype) @ E, B=w.V.to(dtype) @ E, P=w.P.to(dtype),
                                  b_out=block.mlp.b_out.detach(), dictionary=dictionary))
    return sites


def logit_direction(model, direction: torch.Tensor) -> torch.Tensor:
    """The residual-stream direction [d_model] a logit direction [d_vocab] reads through the final LayerNorm
    with its scale frozen at 1: centre(w_ln_final ⊙ (W_U · direction)) — what the eigen basis uses for u."""
    v = model.W_U.detach() @ direction.to(model.W_U.dtype)
    ln = model.ln_final
    if hasattr(ln, "w"):
        v = v * ln.w.detach()
    if model.cfg.normalization_type in ("LN", "LNPre"):
        v = v - v.mean()
    return v


def prepare_eigen_basis(replacement, tokens: torch.Tensor, target: int | None = None,
                        contrast: tuple[int, int] | None = None, vocab: list[str] | None = None) -> str | None:
    """Set the eigen basis' output direction u of every exact MLP site, when the basis is "eigen": the direct-path
    direction (`logit_direction`) of the graph's target logit — the contrast a − b, else the chosen token's
    demeaned logit, else the demeaned logit of the model's top prediction on `tokens`. Returns its label (None
    for other bases); the same u serves every layer, since each MLP output reaches the logits through the residual."""
    sites = [s for s in replacement.sites if isinstance(s, ExactMLPSite) and s.basis == "eigen"]
    if not sites:
        return None
    model = replacement.model
    d_vocab = model.cfg.d_vocab
    name = (lambda v: vocab[v]) if vocab is not None else str
    d = torch.zeros(d_vocab, dtype=model.W_U.dtype, device=model.W_U.device)
    if contrast is not None:
        d[contrast[0]], d[contrast[1]] = 1.0, -1.0
        label = f'logit "{name(contrast[0])}" − "{name(contrast[1])}"'
    else:
        if target is None:
            with torch.no_grad(), replacement.linear_output():
                target = int(model(replacement.check_tokens(tokens)[None])[0, -1].argmax())
        d += -1.0 / d_vocab
        d[target] += 1.0
        label = f'logit "{name(target)}" (demeaned)'
    u = logit_direction(model, d)
    for site in sites:
        site.set_direction(u, label)
    replacement.options["eigen_direction"] = label
    return label
