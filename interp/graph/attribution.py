"""Attribution graphs: nodes, exact edge weights, and the `max_feature_nodes` cap.

Nodes, in circuit-tracer's order: active features (by layer, then attention before MLP, then
position, then feature index), error nodes (per site, then position), token embeddings (per
position), target logits. The adjacency is `A[target, source]`:

- a feature source contributes `activation × W_dec[f]` at its site's output hook, an error source
  its frozen error vector there, a token source `W_E[token]` at `hook_embed` (positional
  embeddings and biases are constants, not nodes);
- a feature target is its pre-activation `W_enc[:, f] · x` at its input hook (no `b_enc`); a
  logit target is the demeaned logit `(W_U[:, v] − mean_v' W_U[:, v']) · ln_final(x)` at the last
  position (no `b_U`), or a difference of two logits.

`A[t, s] = value_s · (∂ target_t / ∂ write_s)` through the frozen replacement model, which is
linear, so the gradient is exact and does not depend on where it is taken. Rows are computed in
batches: one forward pass on `batch_size` copies of the prompt, then one backward pass per batch
of targets, each copy carrying a different target's cotangent.

With `zero_bos` (circuit-tracer's default) features and errors at position 0 are not attributed:
they stay in the forward pass as constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from interp.errors import InterpError
from interp.graph.replacement import ReplacementModel, Snapshot
from interp.results import Result

FEATURE_KINDS = ("attn", "mlp")


@dataclass
class Node:
    """One node: kind is "attn"/"mlp" (features), "attn_error"/"mlp_error", "embedding" or "logit"."""

    kind: str
    layer: int       # -1 for embeddings, n_layers for logits
    pos: int
    index: int       # feature index, token id, or vocab id (the first token of a contrast)
    activation: float
    label: str = ""

    @property
    def is_feature(self) -> bool:
        return self.kind in FEATURE_KINDS


@dataclass
class LogitTarget:
    """A logit node: the direction on the last position's logits it reads, and its weight in influence."""

    vocab_id: int
    direction: torch.Tensor   # [d_vocab]; e_v − 1/V (demeaned) or e_a − e_b (contrast)
    weight: float             # the token's probability (top logits) or 1 (chosen token, contrast)
    label: str


@dataclass
class AttributionGraph(Result):
    """The unpruned graph of one prompt. `adjacency[t, s]` is the direct effect of node s on node t."""

    prompt: str
    tokens: list[int]
    token_strings: list[str]
    mode: str
    n_layers: int
    nodes: list[Node]
    adjacency: torch.Tensor
    logit_weights: list[float]
    n_features: int
    n_errors: int
    n_tokens: int
    n_logits: int
    target_values: list[float] = field(default_factory=list)  # per node: pre-activation (features, logits)
    settings: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    d_saes: dict[str, int] = field(default_factory=dict)       # "attn"/"mlp" -> dictionary width

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def logit_weight_vector(self) -> torch.Tensor:
        w = torch.zeros(self.n_nodes, dtype=self.adjacency.dtype)
        w[self.n_nodes - self.n_logits:] = torch.tensor(self.logit_weights, dtype=self.adjacency.dtype)
        return w

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the adjacency is stored sparsely as [target, source, weight] triples."""
        out = super().to_dict()
        t, s = self.adjacency.nonzero(as_tuple=True)
        out["adjacency"] = {"shape": list(self.adjacency.shape),
                            "edges": [[int(a), int(b), float(w)] for a, b, w in zip(t, s, self.adjacency[t, s])]}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AttributionGraph":
        data = dict(data)
        adj = torch.zeros(data["adjacency"]["shape"], dtype=torch.float64)
        for t, s, w in data["adjacency"]["edges"]:
            adj[t, s] = w
        data["adjacency"] = adj
        data["nodes"] = [Node(**n) for n in data["nodes"]]
        return super().from_dict(data)


def logit_targets(replacement: ReplacementModel, snap: Snapshot, target: int | None = None,
                  contrast: tuple[int, int] | None = None, max_n_logits: int = 10,
                  desired_logit_prob: float = 0.95, vocab: list[str] | None = None) -> list[LogitTarget]:
    """The logit nodes: a chosen token, a contrast (a − b), or the top logits up to a cumulative probability."""
    d_vocab = replacement.model.cfg.d_vocab
    dtype = replacement.dtype

    def name(v: int) -> str:
        return vocab[v] if vocab is not None else str(v)

    def demeaned(v: int) -> torch.Tensor:
        d = torch.full((d_vocab,), -1.0 / d_vocab, dtype=dtype)
        d[v] += 1.0
        return d

    for v in ([target] if target is not None else []) + list(contrast or []):
        if not 0 <= v < d_vocab:
            raise InterpError(f"target token id {v} is not in the model's vocabulary of {d_vocab}")
    probs = torch.softmax(snap.logits[-1].double(), dim=-1)
    if contrast is not None:
        a, b = contrast
        if a == b:
            raise InterpError("the two contrast tokens are the same; give two different words")
        d = torch.zeros(d_vocab, dtype=dtype)
        d[a], d[b] = 1.0, -1.0
        return [LogitTarget(a, d, 1.0, f'Output "{name(a)}" − "{name(b)}"')]
    if target is not None:
        return [LogitTarget(target, demeaned(target), 1.0, f'Output "{name(target)}" (p={probs[target]:.3f})')]
    top_p, top_v = probs.sort(descending=True)
    n = int(torch.searchsorted(top_p.cumsum(0), torch.tensor(desired_logit_prob, dtype=top_p.dtype))) + 1
    n = max(1, min(n, max_n_logits, d_vocab))
    return [LogitTarget(int(v), demeaned(int(v)), float(p), f'Output "{name(int(v))}" (p={p:.3f})')
            for p, v in zip(top_p[:n], top_v[:n])]


class EdgeEngine:
    """Computes rows of the adjacency: one forward pass on `batch_size` copies, then one backward
    pass per batch of up to `batch_size` targets (each copy carries one target's cotangent)."""

    def __init__(self, replacement: ReplacementModel, snap: Snapshot, zero_bos: bool, batch_size: int):
        self.rep, self.snap, self.batch = replacement, snap, batch_size
        self.n_pos = snap.tokens.numel()
        self.logits, self.reads, self.leaves = replacement.forward(snap, batch=batch_size, requires_grad=True)
        first = 1 if zero_bos else 0
        # Active features per site (never at position 0 with zero_bos).
        self.active = []
        for acts in snap.acts:
            mask = acts != 0
            mask[:first] = False
            self.active.append(mask.nonzero())           # [n, 2]: (pos, feature)
        self.error_mask = torch.ones(self.n_pos, dtype=snap.embed.dtype)
        self.error_mask[:first] = 0.0

    def features(self) -> list[tuple[int, int, int, float]]:
        """(site, pos, feature, activation) of every active feature, in node order."""
        out = []
        for i, idx in enumerate(self.active):
            for p, f in idx.tolist():
                out.append((i, p, f, float(self.snap.acts[i][p, f])))
        return out

    def rows(self, targets: list[tuple], progress: tqdm | None = None) -> torch.Tensor:
        """Edge rows for `targets`: ("feature", site, pos, f) or ("logit", LogitTarget).
        Columns: all active features (in `features()` order), errors (site-major), tokens."""
        n_feat = sum(len(a) for a in self.active)
        n_sites = len(self.rep.sites)
        n_cols = n_feat + n_sites * self.n_pos + self.n_pos
        out = torch.zeros(len(targets), n_cols, dtype=self.snap.embed.dtype)
        for start in range(0, len(targets), self.batch):
            chunk = targets[start:start + self.batch]
            out[start:start + len(chunk)] = self._chunk(chunk, n_feat)[:len(chunk)]
            if progress is not None:
                progress.update(len(chunk))
        return out

    def _chunk(self, chunk: list[tuple], n_feat: int) -> torch.Tensor:
        # Group the chunk's targets by where their cotangent goes (a site's read, or -1 for the logits) and
        # write each group with one indexed assignment: copy b of the batch carries target b.
        groups: dict[int, list[int]] = {}
        for b, t in enumerate(chunk):
            groups.setdefault(t[1] if t[0] == "feature" else -1, []).append(b)
        grads_out: dict[int, torch.Tensor] = {}      # site index -> cotangent on its read; -1 for logits
        for key, rows in groups.items():
            rows_t = torch.tensor(rows, dtype=torch.long)
            if key == -1:
                grads_out[key] = torch.zeros_like(self.logits)
                grads_out[key][rows_t, -1] = torch.stack([chunk[b][1].direction for b in rows]).to(self.logits.dtype)
            else:
                grads_out[key] = torch.zeros_like(self.reads[key])
                pos = torch.tensor([chunk[b][2] for b in rows], dtype=torch.long)
                feats = torch.tensor([chunk[b][3] for b in rows], dtype=torch.long)
                grads_out[key][rows_t, pos] = self.rep.sites[key].W_enc[:, feats].T.to(self.reads[key].dtype)
        outputs = [self.logits if k == -1 else self.reads[k] for k in grads_out]
        grads = torch.autograd.grad(outputs, self.leaves, grad_outputs=list(grads_out.values()),
                                    retain_graph=True, allow_unused=True)
        grads = [torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, self.leaves)]
        feature_cols, error_cols = [], []
        for i, site in enumerate(self.rep.sites):
            g = grads[i + 1]                                             # [B, pos, d]
            p, f = self.active[i][:, 0], self.active[i][:, 1]
            # edge = activation × (gradient at its position · its decoder row), for active features only.
            # Project onto every decoder row first ([B, pos, d_sae], one matmul) and then pick the active
            # (pos, feature) pairs: gathering g at each active position instead builds a [B, n_active, d]
            # copy, which dominated the cost.
            d_sae = site.W_dec.shape[0]
            along = (g @ site.W_dec.to(g.dtype).T).flatten(1).index_select(1, p * d_sae + f)
            feature_cols.append(along * self.snap.acts[i][p, f][None])
            error_cols.append((g * self.snap.errors[i][None]).sum(-1) * self.error_mask)
        token_cols = (grads[0] * self.snap.embed[None]).sum(-1)          # [B, pos]
        return torch.cat(feature_cols + error_cols + [token_cols], dim=1)


def _influence_order(partial: torch.Tensor, logit_weights: torch.Tensor) -> torch.Tensor:
    from interp.graph.prune import node_influence

    return node_influence(partial, logit_weights)


def attribute(replacement: ReplacementModel, tokens: torch.Tensor, *, prompt: str = "",
              token_strings: list[str] | None = None, vocab: list[str] | None = None,
              target: int | None = None, contrast: tuple[int, int] | None = None,
              max_n_logits: int = 10, desired_logit_prob: float = 0.95, max_feature_nodes: int | None = None,
              batch_size: int = 64, zero_bos: bool = True, progress: bool = False,
              model_name: str = "") -> AttributionGraph:
    """Build the attribution graph of `tokens` [pos] (BOS first) in the local replacement model.

    With `max_feature_nodes`, feature rows are computed in order of influence on the logits (as
    circuit-tracer does): after the logit rows, repeatedly estimate every feature's influence from
    the rows so far and compute the rows of the most influential features not yet visited.
    """
    snap = replacement.snapshot(tokens)
    n_pos = snap.tokens.numel()
    logits_t = logit_targets(replacement, snap, target, contrast, max_n_logits, desired_logit_prob, vocab)
    engine = EdgeEngine(replacement, snap, zero_bos, batch_size)
    feats = engine.features()
    n_active = len(feats)
    n_sites = len(replacement.sites)
    n_err, n_tok, n_log = n_sites * n_pos, n_pos, len(logits_t)
    cap = n_active if max_feature_nodes is None else min(max_feature_nodes, n_active)

    bar = tqdm(total=n_log + cap, desc="edges", unit="row", disable=not progress, leave=False)
    logit_rows = engine.rows([("logit", t) for t in logits_t], bar)
    feature_targets = [("feature", i, p, f) for i, p, f, _ in feats]
    if cap == n_active:
        selected = list(range(n_active))
        feature_rows = engine.rows(feature_targets, bar)
    else:
        # Square matrix over [all active features, errors, tokens, logits] filled as rows arrive.
        n_all = n_active + n_err + n_tok + n_log
        partial = torch.zeros(n_all, n_all, dtype=logit_rows.dtype)
        partial[n_all - n_log:, :n_all - n_log] = logit_rows
        weights = torch.zeros(n_all, dtype=logit_rows.dtype)
        weights[n_all - n_log:] = torch.tensor([t.weight for t in logits_t], dtype=logit_rows.dtype)
        visited = torch.zeros(n_active, dtype=torch.bool)
        selected = []
        while len(selected) < cap:
            influence = _influence_order(partial, weights)[:n_active].clone()
            influence[visited] = -1.0
            take = min(batch_size, cap - len(selected))
            batch = influence.topk(take).indices.tolist()
            rows = engine.rows([feature_targets[j] for j in batch], bar)
            for j, row in zip(batch, rows):
                partial[j, :n_all - n_log] = row
            visited[batch] = True
            selected += batch
        selected.sort()
        feature_rows = partial[selected, :n_all - n_log]
    bar.close()

    # Assemble A over [selected features, errors, tokens, logits]; drop unselected feature columns.
    cols = torch.tensor(selected + list(range(n_active, n_active + n_err + n_tok)), dtype=torch.long)
    n_sel = len(selected)
    n = n_sel + n_err + n_tok + n_log
    A = torch.zeros(n, n, dtype=logit_rows.dtype)
    A[:n_sel, :n - n_log] = feature_rows[:, cols]
    A[n - n_log:, :n - n_log] = logit_rows[:, cols]

    sites = replacement.sites
    nodes: list[Node] = []
    values: list[float] = []
    for j in selected:
        i, p, f, a = feats[j]
        nodes.append(Node(sites[i].kind, sites[i].layer, p, f, a))
        values.append(float(snap.reads[i][p] @ sites[i].W_enc[:, f]))
    for i, site in enumerate(sites):
        for p in range(n_pos):
            e = snap.errors[i][p]
            nodes.append(Node(f"{site.kind}_error", site.layer, p, -1, float(e.norm())))
            values.append(float("nan"))
    for p, tok in enumerate(snap.tokens.tolist()):
        nodes.append(Node("embedding", -1, p, tok, float(snap.embed[p].norm()),
                          token_strings[p] if token_strings else ""))
        values.append(float("nan"))
    for t in logits_t:
        v = float(snap.logits[-1] @ t.direction)
        nodes.append(Node("logit", replacement.n_layers, n_pos - 1, t.vocab_id, v, t.label))
        values.append(v)
    d_saes = {s.kind: s.d_sae for s in sites}
    return AttributionGraph(
        prompt=prompt, tokens=snap.tokens.tolist(), token_strings=token_strings or [str(t) for t in snap.tokens.tolist()],
        mode=replacement.mode, n_layers=replacement.n_layers, nodes=nodes, adjacency=A,
        logit_weights=[t.weight for t in logits_t], n_features=n_sel, n_errors=n_err, n_tokens=n_tok,
        n_logits=n_log, target_values=values, model_name=model_name, d_saes=d_saes,
        settings={"max_n_logits": max_n_logits, "desired_logit_prob": desired_logit_prob, "batch_size": batch_size,
                  "max_feature_nodes": max_feature_nodes if max_feature_nodes is not None else n_active,
                  "zero_bos": zero_bos, "n_active_features": n_active,
                  "target": target, "contrast": list(contrast) if contrast else None})


def constant_terms(replacement: ReplacementModel, snap: Snapshot, zero_bos: bool = True
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and site inputs of the replacement model with every node's contribution removed: what
    biases, positional embeddings and (with `zero_bos`) position 0 contribute on their own."""
    first = 1 if zero_bos else 0
    acts = [a.clone() for a in snap.acts]
    errors = [e.clone() for e in snap.errors]
    for a, e in zip(acts, errors):
        a[first:] = 0
        e[first:] = 0
    with torch.no_grad():
        logits, reads, _ = replacement.forward(snap, acts=acts, errors=errors, embed=torch.zeros_like(snap.embed))
    return logits[0], [r[0] for r in reads]
