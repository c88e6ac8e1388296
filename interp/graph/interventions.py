"""Interventions on features: ablate them or set them to a value, and read off the new logits.

Every site's output is its dictionary's reconstruction from (recomputed) feature activations plus
the error term of the clean run, so with no intervention both modes give the clean logits exactly.

- "constrained": attention patterns and LayerNorm scales stay frozen at the clean run's values;
  features downstream of the intervention are recomputed from their new inputs;
- "free": nothing is frozen, attention and LayerNorm are recomputed too.

With `freeze_features` every feature not intervened on keeps its clean activation: in constrained
mode that is the frozen local replacement model, where an edge weight is exactly a direct effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from interp.errors import InterpError
from interp.graph.replacement import ReplacementModel, Snapshot
from interp.results import Result

MODES = ("constrained", "free")


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
        raise InterpError(f"unknown intervention mode {mode!r}; choose constrained or free")
    snap = tokens_or_snap if isinstance(tokens_or_snap, Snapshot) else replacement.snapshot(tokens_or_snap)
    site_index = {(s.kind, s.layer): i for i, s in enumerate(replacement.sites)}
    n_pos = snap.tokens.numel()
    by_site: dict[int, list[Intervention]] = {}
    for iv in interventions:
        if (iv.kind, iv.layer) not in site_index:
            raise InterpError(f"no {iv.kind} dictionary at layer {iv.layer} in this graph's mode ({replacement.mode})")
        i = site_index[(iv.kind, iv.layer)]
        if not 0 <= iv.pos < n_pos or not 0 <= iv.feature < replacement.sites[i].d_sae:
            raise InterpError(f"intervention at position {iv.pos}, feature {iv.feature} is outside the prompt "
                              f"({n_pos} tokens) or the dictionary ({replacement.sites[i].d_sae} features)")
        by_site.setdefault(i, []).append(iv)

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
            return (replacement.reconstruct(acts_now, i) + site.skip(reads[i]) + snap.errors[i])[None]

        hooks.append((site.read_hook, read_fn))
        hooks.append((site.write_hook, write_fn))
    with torch.no_grad():
        logits = replacement.model.run_with_hooks(snap.tokens[None], fwd_hooks=hooks)
    return InterventionResult(mode=mode, interventions=[iv.__dict__ for iv in interventions],
                              clean_logits=snap.logits[-1], new_logits=logits[0, -1], reads=reads)
