"""Interventions on features: ablate them or set them to a value, and read off the new logits.

Three modes; with no intervention each gives the clean logits exactly.

- "free": the real model runs, and at each output a changed feature writes, only that feature's
  decoder contribution changes: (value − its live activation) × its decoder row is added. Everything
  else, MLPs and their reconstruction errors included, is recomputed by the model itself;
- "replacement": the replacement model runs freely: every site's output is its dictionary's
  reconstruction from recomputed feature activations plus the clean run's error term (errors do
  not follow the intervention); attention and normalisation are recomputed;
- "constrained": as "replacement", but attention patterns and normalisation scales stay frozen at
  the clean run's values.

With `freeze_features` every feature not intervened on keeps its clean activation: in constrained
mode that is the frozen local replacement model, where an edge weight is exactly a direct effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from interp.errors import InterpError
from interp.graph.replacement import ReplacementModel, Snapshot
from interp.results import Result

MODES = ("constrained", "replacement", "free")


@dataclass
class Intervention:
    """Set feature `feature` of the site (`kind` "attn"/"mlp", `layer`) at position `pos` to `value` (0 = ablate)."""

    kind: str
    layer: int
    pos: int
    feature: int
    value: float = 0.0


@dataclass
class InterventionResult(Result):
    mode: str
    interventions: list[dict]
    clean_logits: torch.Tensor      # [d_vocab] at the last position
    new_logits: torch.Tensor        # [d_vocab]
    reads: list[torch.Tensor] = field(default_factory=list, repr=False)   # per site input after the intervention


def intervene(replacement: ReplacementModel, tokens_or_snap: torch.Tensor | Snapshot,
              interventions: list[Intervention], mode: str = "constrained",
              freeze_features: bool = False) -> InterventionResult:
    if mode not in MODES:
        raise InterpError(f"unknown intervention mode {mode!r}; choose one of {', '.join(MODES)}")
    snap = tokens_or_snap if isinstance(tokens_or_snap, Snapshot) else replacement.snapshot(tokens_or_snap)
    site_index = {(s.kind, s.layer): i for i, s in enumerate(replacement.sites)}
    n_pos = snap.tokens.numel()
    by_site: dict[int, list[Intervention]] = {}
    for iv in interventions:
        if (iv.kind, iv.layer) not in site_index:
            raise InterpError(f"no {iv.kind} dictionary at layer {iv.layer} in this graph's mode ({replacement.mode})")
        i = site_index[(iv.kind, iv.layer)]
        if not 0 <= iv.pos < n_pos or not 0 <= iv.feature < replacement.sites[i].d_sae:
            site = replacement.sites[i]
            # Exact sites of bilinear-exact graphs have heads, hidden units or basis directions, not features.
            units = ("heads" if site.kind == "attn" else "units") if site.exact else "features"
            where = f"the {site.kind} site's basis" if site.exact else "the dictionary"
            raise InterpError(f"intervention at position {iv.pos}, index {iv.feature} is outside the prompt "
                              f"({n_pos} tokens) or {where} ({site.d_sae} {units})")
        by_site.setdefault(i, []).append(iv)

    if mode == "free":
        return _free(replacement, snap, interventions, by_site)
    reads: list[torch.Tensor | None] = [None] * len(replacement.sites)
    acts_now: list[torch.Tensor | None] = [None] * len(replacement.sites)
    hooks = []
    if mode == "constrained":
        for name, value in list(snap.scales.items()) + list(snap.patterns.items()):
            hooks.append((name, lambda x, hook, v=value: v))
    for i, site in enumerate(replacement.sites):
        def read_fn(x, hook, i=i, site=site):
            reads[i] = x[0]
            acts = snap.acts[i].clone() if freeze_features else site.encode(reads[i]).to(x.dtype)
            for iv in by_site.get(i, []):
                acts[iv.pos, iv.feature] = iv.value
            acts_now[i] = acts
            return x

        def write_fn(x, hook, i=i, site=site):
            # Every writer of this output read earlier in the forward pass (a cross-layer transcoder's
            # earlier layers included), so their activations are in acts_now.
            return (replacement.reconstruct(acts_now, i, snap) + site.skip(reads[i]) + snap.errors[i])[None]

        hooks.append((site.read_hook, read_fn))
        hooks.append((site.write_hook, write_fn))
    with torch.no_grad():
        logits = replacement.model.run_with_hooks(snap.tokens[None], fwd_hooks=hooks)
    return InterventionResult(mode=mode, interventions=[iv.__dict__ for iv in interventions],
                              clean_logits=snap.logits[-1], new_logits=logits[0, -1], reads=reads)


def _free(replacement: ReplacementModel, snap: Snapshot, interventions: list[Intervention],
          by_site: dict[int, list[Intervention]]) -> InterventionResult:
    """The real model with only the changed features' decoder contributions replaced. Attention heads of a
    bilinear-exact graph are set where they read instead: their z is scaled so that the output's norm is the
    value (0 ablates the head at that position exactly)."""
    live: dict[int, torch.Tensor] = {}
    hooks = []
    for i in by_site:
        def read_fn(x, hook, i=i):
            site = replacement.sites[i]
            if hasattr(site, "scale_read"):
                x = x.clone()
                for iv in by_site[i]:
                    site.scale_read(x[0], iv.pos, iv.feature, iv.value)
                return x
            live[i] = site.encode(x[0]).to(x.dtype)
            return x

        hooks.append((replacement.sites[i].read_hook, read_fn))
    for j, writers in enumerate(replacement.writers):
        # An exact site writes with its prompt's per-position decoder.
        changed = [(i, snap.decoders[i] if replacement.sites[i].exact else w) for i, w in writers
                   if i in by_site and not hasattr(replacement.sites[i], "scale_read")]
        if not changed:
            continue

        def write_fn(x, hook, changed=changed):
            x = x.clone()
            for i, w in changed:
                for iv in by_site[i]:
                    row = w[iv.feature] if w.ndim == 2 else w[iv.pos, iv.feature]
                    x[0, iv.pos] += (iv.value - live[i][iv.pos, iv.feature]) * row.to(x.dtype)
            return x

        hooks.append((replacement.sites[j].write_hook, write_fn))
    with torch.no_grad():
        logits = replacement.model.run_with_hooks(snap.tokens[None], fwd_hooks=hooks)
    return InterventionResult(mode="free", interventions=[iv.__dict__ for iv in interventions],
                              clean_logits=snap.logits[-1], new_logits=logits[0, -1], reads=[])
