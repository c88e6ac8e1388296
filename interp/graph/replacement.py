"""The local replacement model of one prompt (docs/architecture.md, "Linear computation graph").

Run the real model once and keep what the replacement freezes: every LayerNorm scale, every
attention pattern, each dictionary's input and the true value at its output hook. In the
replacement forward pass

- LayerNorm scales and attention patterns are the frozen ones, so attention and normalisation
  are linear maps of the residual stream;
- each MLP output (`blocks.L.hook_mlp_out`) is its transcoder's reconstruction
  `acts @ W_dec + b_dec` plus the error `mlp_out - reconstruction`, held constant;
- in "full" mode each attention output (`blocks.L.hook_attn_out`) is likewise its SAE's
  reconstruction plus error; in "transcoder-only" mode (circuit-tracer's) attention is left in
  place and passes signal through linearly.

With the clean activations plugged in, the forward pass is exactly the original one. Writing the
dictionary outputs and the token embeddings as fresh leaf tensors cuts every path through the
MLPs and (in full mode) through the attention outputs, so a gradient at a leaf is the *direct*
linear path from that write location to a target's read location.

A *site* is one dictionary in the model: where it reads, where it writes, and its weights.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from interp.errors import InterpError

MODES = ("full", "transcoder-only", "bilinear-exact")


@dataclass
class Site:
    """One dictionary: a transcoder on an MLP ("mlp") or an SAE on an attention output ("attn")."""

    kind: str
    layer: int
    sae: SAE
    read_hook: str
    write_hook: str
    exact = False          # a dictionary is not exact: its reconstruction error is a node (see interp.graph.exact)

    def __post_init__(self) -> None:
        # SAE-Lens TopK SAEs may rank `pre-activation × |W_dec row|` and decode with unit-norm rows;
        # fold that scaling into effective weights so that acts @ W_dec is the SAE's own decode and
        # W_enc · x its own (scaled) pre-activation.
        with torch.no_grad():
            W_enc, W_dec = self.sae.W_enc.detach(), self.sae.W_dec.detach()
            if getattr(self.sae.cfg, "rescale_acts_by_decoder_norm", False):
                norm = W_dec.norm(dim=-1)
                W_enc, W_dec = W_enc * norm[None, :], W_dec / norm[:, None]
        self.W_enc, self.W_dec = W_enc, W_dec     # [d_in, d_sae], [d_sae, d_out]

    @property
    def b_dec(self) -> torch.Tensor:  # [d_out]
        return self.sae.b_dec.detach()

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations of `x` [..., d_in], dense (TopK SAEs may return sparse tensors)."""
        acts = self.sae.encode(x.to(self.sae.W_enc.dtype))
        return acts.to_dense() if acts.is_sparse else acts

    @property
    def extra_writes(self) -> list[tuple[int, torch.Tensor]]:
        """(later layer, decoder [d_sae, d_out]) for each further MLP output a cross-layer transcoder writes."""
        return [(layer, w.detach()) for layer, w in getattr(self.sae, "extra_writes", [])]

    @property
    def W_skip(self) -> torch.Tensor | None:
        """[d_in, d_out] of a skip transcoder's linear path (SAE-Lens stores it [d_out, d_in]), else None."""
        w = getattr(self.sae, "W_skip", None)
        return None if w is None else w.detach().T

    def skip(self, x: torch.Tensor) -> torch.Tensor | float:
        """The skip path's contribution `x @ W_skip` (0 without one). In the graph it is a linear path from
        the read to the write, exact like attention with frozen patterns, not a node and not error."""
        w = self.W_skip
        return 0.0 if w is None else x @ w.to(x.dtype)

    def feature_label(self, f: int) -> str:
        return ""

    def reconstruct(self, acts: torch.Tensor) -> torch.Tensor:
        """The linear decoder the graph uses: `acts @ W_dec + b_dec` (any mismatch with SAE-Lens'
        own decode lands in the error term, so the replacement stays exact)."""
        return acts @ self.W_dec + self.b_dec


def decode(acts: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """acts [..., pos, n] through a decoder [n, d] or a per-position one [pos, n, d] → [..., pos, d]."""
    if w.ndim == 2:
        return acts @ w.to(acts.dtype)
    return torch.einsum("...pn,pnd->...pd", acts, w.to(acts.dtype))


def _hook_names(sae: SAE) -> tuple[str | None, str | None]:
    meta = sae.cfg.metadata
    return meta.get("hook_name"), meta.get("hook_name_out")


def make_sites(model: HookedTransformer, transcoders: dict[int, SAE] | None, attn_saes: dict[int, SAE] | None = None,
               mode: str = "full", basis: str = "hidden", attention: str = "heads") -> list[Site]:
    """Check that the dictionaries belong to `model` and order them as the forward pass meets them.

    Transcoders must write `blocks.L.hook_mlp_out` (reading `blocks.L.ln2.hook_normalized` or
    `blocks.L.hook_resid_mid`); attention SAEs must read and write `blocks.L.hook_attn_out`.
    In "transcoder-only" mode attention SAEs are ignored. In "bilinear-exact" mode the MLPs are exact sites in
    `basis` and attention is heads or attention SAEs (`attention`; `interp.graph.exact.exact_sites`).
    """
    if mode not in MODES:
        raise InterpError(f"unknown graph mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "bilinear-exact":
        from interp.graph.exact import exact_sites

        return exact_sites(model, transcoders, attn_saes, basis, attention)
    cfg = model.cfg
    if set(transcoders) != set(range(cfg.n_layers)):
        raise InterpError(f"transcoders cover layers {sorted(transcoders)} but the model has {cfg.n_layers} layers "
                          "(0..n_layers-1): the dictionaries were made for another model")
    sites = []
    use_attn = mode == "full" and attn_saes
    if mode == "full" and not attn_saes:
        raise InterpError("full mode needs attention SAEs for every layer; pass them, or use --graph-mode transcoder-only")
    if use_attn and set(attn_saes) != set(range(cfg.n_layers)):
        raise InterpError(f"attention SAEs cover layers {sorted(attn_saes)} but the model has {cfg.n_layers} layers: "
                          "the dictionaries were made for another model")
    for layer in range(cfg.n_layers):
        if use_attn:
            sae = attn_saes[layer]
            hook, _ = _hook_names(sae)
            expected = f"blocks.{layer}.hook_attn_out"
            hook = hook or expected
            if hook != expected:
                raise InterpError(f"attention SAE of layer {layer} reads {hook!r}; the graph needs SAEs on {expected!r}")
            _check_width(sae, cfg.d_model, cfg.d_model, f"attention SAE of layer {layer}")
            sites.append(Site("attn", layer, sae, hook, hook))
        sae = transcoders[layer]
        read, write = _hook_names(sae)
        read = read or f"blocks.{layer}.ln2.hook_normalized"
        write = write or f"blocks.{layer}.hook_mlp_out"
        allowed = (f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_resid_mid")
        if read not in allowed or write != f"blocks.{layer}.hook_mlp_out":
            raise InterpError(f"transcoder of layer {layer} maps {read!r} -> {write!r}; the graph needs "
                              f"{allowed[0]!r} (or hook_resid_mid) -> 'blocks.{layer}.hook_mlp_out'")
        if read not in model.hook_dict:
            raise InterpError(f"the model has no hook {read!r} (normalization_type={cfg.normalization_type}); "
                              "the transcoders were made for another model")
        _check_width(sae, cfg.d_model, cfg.d_model, f"transcoder of layer {layer}")
        sites.append(Site("mlp", layer, sae, read, write))
    return sites


def _check_width(sae: SAE, d_in: int, d_out: int, what: str) -> None:
    if sae.cfg.normalize_activations not in ("none", None):
        raise InterpError(f"{what} normalises its input ({sae.cfg.normalize_activations}); fold the normalisation "
                          "into its weights first, the graph needs a linear encoder")
    if sae.W_enc.shape[0] != d_in or sae.W_dec.shape[1] != d_out:
        raise InterpError(f"{what} maps width {sae.W_enc.shape[0]} -> {sae.W_dec.shape[1]} but the model's d_model is "
                          f"{d_in}: the dictionaries were made for another model")


@dataclass
class Snapshot:
    """What one real forward pass leaves behind for the replacement model (batch of one)."""

    tokens: torch.Tensor                  # [pos]
    logits: torch.Tensor                  # [pos, d_vocab], the real model's
    scales: dict[str, torch.Tensor]       # hook name -> LayerNorm scale [1, pos, 1]
    patterns: dict[str, torch.Tensor]     # hook name -> attention pattern [1, heads, q, k]
    reads: list[torch.Tensor]             # per site: its input [pos, d_in]
    acts: list[torch.Tensor]              # per site: feature activations [pos, d_sae]
    errors: list[torch.Tensor]            # per site: true output - reconstruction [pos, d_out]
    embed: torch.Tensor                   # [pos, d_model], what hook_embed carries (W_E[tokens])
    linear_logits: torch.Tensor | None = None   # [pos, d_vocab] before an output soft cap (Gemma 2); else logits
    # per site, for exact sites (interp.graph.exact): the prompt's encoder [pos, d_read, n] and decoder
    # [pos, n, d_out]; None for dictionaries (their W_enc / W_dec do not depend on the prompt)
    encoders: list[torch.Tensor | None] = field(default_factory=list)
    decoders: list[torch.Tensor | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.linear_logits is None:
            self.linear_logits = self.logits


@dataclass
class ReplacementModel:
    """A model with its dictionaries; `snapshot` runs the real model, `forward` the frozen replacement."""

    model: HookedTransformer
    sites: list[Site]
    mode: str = "full"
    options: dict = field(default_factory=dict)     # bilinear-exact: basis, attention, the eigen direction
    frozen_hooks: tuple[str, ...] = field(default=(), init=False)
    # writers[j]: (site i, decoder [d_sae, d_out]) of every dictionary whose features write output j, the write
    # hook of site j: the site itself and, for cross-layer transcoders, every earlier layer's features.
    writers: list[list[tuple[int, torch.Tensor]]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        mlp_site = {s.layer: j for j, s in enumerate(self.sites) if s.kind == "mlp"}
        # An exact site's decoder is its prompt's (Snapshot.decoders): None here.
        self.writers = [[(j, None if site.exact else site.W_dec)] for j, site in enumerate(self.sites)]
        for i, site in enumerate(self.sites):
            for layer, w in site.extra_writes:
                if layer not in mlp_site or layer <= site.layer:
                    raise InterpError(f"the cross-layer transcoder of layer {site.layer} writes layer {layer}, "
                                      f"which has no MLP output in this model of {self.n_layers} layers")
                self.writers[mlp_site[layer]].append((i, w))

    def reconstruct(self, acts: list[torch.Tensor], j: int, snap: Snapshot | None = None) -> torch.Tensor:
        """Output j's reconstruction from every site's activations: b_dec + Σ acts_i @ W_dec(i → j), with an
        exact site's decoder the prompt's (`snap.decoders`, per position)."""
        out = self.sites[j].b_dec
        for i, w in self.writers[j]:
            if self.sites[i].exact:
                if snap is None or not snap.decoders:
                    raise ValueError("an exact site decodes with its prompt's decoder: pass the snapshot")
                w = snap.decoders[i]
            out = out + decode(acts[i], w)
        return out

    @classmethod
    def build(cls, model: HookedTransformer, transcoders: dict[int, SAE] | None, attn_saes: dict[int, SAE] | None = None,
              mode: str = "full", basis: str = "hidden", attention: str = "heads") -> "ReplacementModel":
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        for sae in list((transcoders or {}).values()) + list((attn_saes or {}).values()):
            sae.eval()
            for p in sae.parameters():
                p.requires_grad_(False)
        options = {"basis": basis, "attention": attention} if mode == "bilinear-exact" else {}
        return cls(model=model, sites=make_sites(model, transcoders, attn_saes, mode, basis, attention), mode=mode,
                   options=options)

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers

    @property
    def dtype(self) -> torch.dtype:
        return self.model.W_E.dtype

    def check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.model.W_E.device).reshape(-1)
        if tokens.numel() == 0:
            raise InterpError("empty prompt: give at least one word")
        if tokens.numel() > self.model.cfg.n_ctx:
            raise InterpError(f"prompt has {tokens.numel()} tokens but the model's context is {self.model.cfg.n_ctx}; "
                              "shorten it")
        if int(tokens.max()) >= self.model.cfg.d_vocab or int(tokens.min()) < 0:
            raise InterpError(f"token ids outside the model's vocabulary of {self.model.cfg.d_vocab}")
        return tokens

    @torch.no_grad()
    def snapshot(self, tokens: torch.Tensor) -> Snapshot:
        """Run the real model once on `tokens` [pos] and record what the replacement freezes."""
        tokens = self.check_tokens(tokens)
        wanted = {s.read_hook for s in self.sites} | {s.write_hook for s in self.sites}

        def keep(name: str) -> bool:
            return name.endswith(("hook_scale", "hook_pattern")) or name in wanted or name == "hook_embed"

        with self.linear_output():
            linear, cache = self.model.run_with_cache(tokens[None], names_filter=keep)
        cap = self.model.cfg.output_logits_soft_cap
        logits = cap * torch.tanh(linear / cap) if cap > 0 else linear
        scales = {k: v for k, v in cache.items() if k.endswith("hook_scale")}
        patterns = {k: v for k, v in cache.items() if k.endswith("hook_pattern")}
        reads, acts, errors, encoders, decoders = [], [], [], [], []
        for site in self.sites:
            x = cache[site.read_hook][0]
            reads.append(x)
            acts.append(site.encode(x).to(self.dtype))
            enc, dec = site.linearize(x) if site.exact else (None, None)
            encoders.append(enc)
            decoders.append(dec)
        snap = Snapshot(tokens=tokens, logits=logits[0], scales=scales, patterns=patterns, reads=reads, acts=acts,
                        errors=errors, embed=cache["hook_embed"][0], linear_logits=linear[0], encoders=encoders,
                        decoders=decoders)
        for j, (site, x) in enumerate(zip(self.sites, reads)):
            # An exact site's error is rounding only: a constant of the forward pass, not a node.
            errors.append(cache[site.write_hook][0] - self.reconstruct(acts, j, snap) - site.skip(x))
        return snap

    @contextlib.contextmanager
    def linear_output(self) -> Iterator[None]:
        """Switch off an output soft cap (Gemma 2's cap · tanh(logits / cap)) for the block: the graph's logit
        nodes are the logits before it, which are linear in the residual stream; probabilities use the capped ones."""
        cap = self.model.cfg.output_logits_soft_cap
        self.model.cfg.output_logits_soft_cap = -1.0
        try:
            yield
        finally:
            self.model.cfg.output_logits_soft_cap = cap

    def forward(self, snap: Snapshot, batch: int = 1, acts: list[torch.Tensor] | None = None,
                errors: list[torch.Tensor] | None = None, embed: torch.Tensor | None = None,
                requires_grad: bool = False, last_position_only: bool = False
                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The frozen local replacement model on `batch` copies of the prompt.

        `acts`, `errors` and `embed` replace the clean node values (to ablate or zero them); every
        other feature keeps its clean activation (nothing downstream is recomputed). Returns
        (logits [batch, pos, vocab], reads per site [batch, pos, d_in], leaves) where leaves are the
        embedding followed by each site's output [batch, pos, d] — with `requires_grad` these are
        leaf tensors whose gradients are the direct linear paths. With `last_position_only` the logits
        are those of the last position only ([batch, 1, vocab]): the final normalisation's output is
        cut to that position before the unembedding.
        """
        acts = snap.acts if acts is None else acts
        errors = snap.errors if errors is None else errors
        embed = snap.embed if embed is None else embed
        n_pos = snap.tokens.numel()

        def leaf(value: torch.Tensor) -> torch.Tensor:
            return value.detach().expand(batch, *value.shape).clone().requires_grad_(requires_grad)

        leaves = [leaf(embed)] + [leaf(self.reconstruct(acts, j, snap) + e) for j, e in enumerate(errors)]
        reads: list[torch.Tensor | None] = [None] * len(self.sites)
        hooks = [("hook_embed", lambda x, hook: leaves[0])]
        for name, value in list(snap.scales.items()) + list(snap.patterns.items()):
            hooks.append((name, lambda x, hook, v=value: v.expand(batch, *v.shape[1:])))
        for i, site in enumerate(self.sites):
            def read_fn(x, hook, i=i):
                reads[i] = x
                return x

            def write_fn(x, hook, i=i, site=site):
                # A skip transcoder's output also reads this forward pass's input, so paths run through it.
                return leaves[i + 1] + site.skip(reads[i])

            hooks.append((site.read_hook, read_fn))  # reads before writes when read_hook == write_hook
            hooks.append((site.write_hook, write_fn))
        if last_position_only and "ln_final.hook_normalized" in self.model.hook_dict:
            hooks.append(("ln_final.hook_normalized", lambda x, hook: x[:, -1:]))
        tokens = snap.tokens[None].expand(batch, n_pos)
        with torch.set_grad_enabled(requires_grad), self.linear_output():
            logits = self.model.run_with_hooks(tokens, fwd_hooks=hooks)
        if last_position_only:
            logits = logits[:, -1:]
        return logits, reads, leaves
