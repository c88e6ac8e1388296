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
from interp.graph.influence import partial_influence
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
    n = int(torch.searchsorted(top_p.cumsum(0), torch.tensor(desired_logit_prob, dtype=top_p.dtype, device=top_p.device))) + 1
    n = max(1, min(n, max_n_logits, d_vocab))
    return [LogitTarget(int(v), demeaned(int(v)), float(p), f'Output "{name(int(v))}" (p={p:.3f})')
            for p, v in zip(top_p[:n], top_v[:n])]


@dataclass
class ActiveSite:
    """The active features of one site, grouped by position for the edge projection.

    `decoders[o][p, j]` is activation × decoder row (into output `outputs[o]`) of the j-th active feature
    at position p (zero padding up to the most active features at any position), so one batched matmul
    of the gradient at each position with its own few rows gives every edge from this site; a
    cross-layer transcoder's features write several outputs and their edges sum over them. `flat` picks
    the real (pos, slot) entries out of the padded result, in node order.
    """

    positions: torch.Tensor        # [n] position of each active feature, node order (pos, then feature)
    features: torch.Tensor         # [n] feature index
    outputs: list[int]             # the outputs (site indices) these features write
    decoders: list[torch.Tensor]   # per output: [n_pos, k_max, d_out]
    flat: torch.Tensor             # [n] index into the flattened [n_pos, k_max] result

    @classmethod
    def gather(cls, acts: torch.Tensor, writes: list[tuple[int, torch.Tensor]], first: int) -> "ActiveSite":
        mask = acts != 0
        mask[:first] = False
        pos, feat = mask.nonzero(as_tuple=True)                     # row-major: by position, then feature
        n_pos = acts.shape[0]
        counts = torch.bincount(pos, minlength=n_pos)
        k_max = int(counts.max()) if pos.numel() else 0
        slot = torch.arange(pos.numel(), device=acts.device) - (counts.cumsum(0) - counts)[pos]
        decoders = []
        for _, W_dec in writes:
            # A per-position decoder [pos, n, d] (an exact site's) is gathered at each feature's own position.
            rows = W_dec[feat] if W_dec.ndim == 2 else W_dec[pos, feat]
            d = torch.zeros(n_pos, k_max, W_dec.shape[-1], dtype=acts.dtype, device=acts.device)
            d[pos, slot] = rows.to(acts.dtype) * acts[pos, feat][:, None]
            decoders.append(d)
        return cls(pos, feat, [o for o, _ in writes], decoders, pos * k_max + slot)

    def edges(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """[B, n] edges from these features, given the gradient at each output leaf ([B, n_pos, d_out] each)."""
        B = grads[self.outputs[0]].shape[0]
        if self.flat.numel() == 0:
            return grads[self.outputs[0]].new_zeros(B, 0)
        along = None
        for o, d in zip(self.outputs, self.decoders):
            term = torch.bmm(grads[o].transpose(0, 1), d.transpose(1, 2))       # [n_pos, B, k_max]
            along = term if along is None else along + term
        return along.transpose(0, 1).flatten(1).index_select(1, self.flat)


class EdgeEngine:
    """Computes rows of the adjacency: one forward pass of the replacement model, then one batched
    backward pass per batch of up to `batch_size` targets (copy b of the batch carries target b's
    cotangent).

    The replacement model is linear in its leaves, and its backward pass needs none of the forward
    values (patterns and normalisation scales are constants), so the forward pass runs on the prompt
    once and only the backward pass is batched (`is_grads_batched`, a vmap over the backward).
    Expanding the prompt to `batch_size` copies instead would repeat the whole forward pass,
    MLPs and attention scores included, `batch_size` times over.
    """

    def __init__(self, replacement: ReplacementModel, snap: Snapshot, zero_bos: bool, batch_size: int):
        self.rep, self.snap, self.batch = replacement, snap, batch_size
        self.n_pos = snap.tokens.numel()
        # Only the last position's logits are ever a target: unembedding the others is wasted work.
        self.logits, self.reads, self.leaves = replacement.forward(snap, batch=1, requires_grad=True,
                                                                   last_position_only=True)
        first = 1 if zero_bos else 0
        # Active features per site (never at position 0 with zero_bos), with their decoder rows gathered.
        writes: list[list[tuple[int, torch.Tensor]]] = [[] for _ in replacement.sites]
        for j, writers in enumerate(replacement.writers):
            for i, W_dec in writers:
                writes[i].append((j, snap.decoders[i] if replacement.sites[i].exact else W_dec))
        self.active = [ActiveSite.gather(acts, w, first) for acts, w in zip(snap.acts, writes)]
        self.error_mask = torch.ones(self.n_pos, dtype=snap.embed.dtype, device=snap.embed.device)
        self.error_mask[:first] = 0.0
        # Exact sites (graph mode bilinear-exact) have no error nodes.
        self.error_sites = error_sites(replacement)
        self.n_features = sum(a.flat.numel() for a in self.active)
        self.n_columns = self.n_features + len(self.error_sites) * self.n_pos + self.n_pos

    def features(self) -> list[tuple[int, int, int, float]]:
        """(site, pos, feature, activation) of every active feature, in node order."""
        out = []
        for i, site in enumerate(self.active):
            values = self.snap.acts[i][site.positions, site.features].tolist()
            out += [(i, p, f, a) for p, f, a in zip(site.positions.tolist(), site.features.tolist(), values)]
        return out

    def rows(self, targets: list[tuple], out: torch.Tensor | None = None, progress: tqdm | None = None) -> torch.Tensor:
        """Edge rows for `targets`: ("feature", site, pos, f) or ("logit", LogitTarget), written into
        `out` [len(targets), n_columns] when given. Columns: all active features (in `features()`
        order), errors (site-major), tokens."""
        if out is None:
            out = torch.zeros(len(targets), self.n_columns, dtype=self.snap.embed.dtype,
                              device=self.snap.embed.device)
        for start in range(0, len(targets), self.batch):
            chunk = targets[start:start + self.batch]
            self._chunk(chunk, out[start:start + len(chunk)])
            if progress is not None:
                progress.update(len(chunk))
        return out

    def _chunk(self, chunk: list[tuple], out: torch.Tensor) -> None:
        # Group the chunk's targets by where their cotangent goes (a site's read, or -1 for the logits) and
        # run one batched backward pass per group: a pass from a site's read only walks the layers below
        # it, while one pass for a mixed group would walk every layer for every target. Each group's rows
        # are written as soon as its gradients exist, so only one group's gradients are held at a time.
        groups: dict[int, list[int]] = {}
        for b, t in enumerate(chunk):
            groups.setdefault(t[1] if t[0] == "feature" else -1, []).append(b)
        device = self.logits.device
        for key, rows in groups.items():
            output = self.logits if key == -1 else self.reads[key]
            cotangent = output.new_zeros(len(rows), *output.shape)          # [b, 1, pos, d]
            if key == -1:
                directions = torch.stack([chunk[b][1].direction for b in rows])
                cotangent[:, 0, -1] = directions.to(device, output.dtype)
            else:
                pos = torch.tensor([chunk[b][2] for b in rows], dtype=torch.long, device=device)
                feats = torch.tensor([chunk[b][3] for b in rows], dtype=torch.long, device=device)
                # The target's encoder row, gathered for these targets only (flattened: heads read [pos, H, d_head]).
                cotangent.flatten(3)[torch.arange(len(rows), device=device), 0, pos] = \
                    encoder_rows(self.rep, self.snap, key, pos, feats).to(output.dtype)
            grads = torch.autograd.grad([output], self.leaves, grad_outputs=[cotangent], retain_graph=True,
                                        allow_unused=True, is_grads_batched=True)
            del cotangent
            rows_t = torch.tensor(rows, dtype=torch.long, device=device)
            out[rows_t] = self._edges([None if g is None else g[:, 0] for g in grads], len(rows)).to(out.dtype)

    def _edges(self, grads: list[torch.Tensor | None], n: int) -> torch.Tensor:
        """[n, n_columns] edges from the gradients at each leaf (None: no path from the targets)."""
        def grad(i: int) -> torch.Tensor:
            g = grads[i]
            return self.leaves[i].new_zeros(n, *self.leaves[i].shape[1:]) if g is None else g

        outputs = [grad(j + 1) for j in range(len(self.active))]           # [n, pos, d] per output
        # edge = activation × (gradient at its position · its decoder row), active features only.
        feature_cols = [active.edges(outputs) for active in self.active]
        error_cols = [(outputs[i] * self.snap.errors[i][None]).sum(-1) * self.error_mask for i in self.error_sites]
        token_cols = (grad(0) * self.snap.embed[None]).sum(-1)          # [n, pos]
        return torch.cat(feature_cols + error_cols + [token_cols], dim=1)


def error_sites(replacement: ReplacementModel) -> list[int]:
    """The sites whose reconstruction error is a node: every dictionary, no exact site."""
    return [i for i, site in enumerate(replacement.sites) if not site.exact]


def encoder_rows(replacement: ReplacementModel, snap: Snapshot, i: int, pos: torch.Tensor,
                 feats: torch.Tensor) -> torch.Tensor:
    """[k, d_read] the rows whose dot product with site i's (flattened) input at `pos` is feature `feats`' value
    as a target: its encoder column `W_enc[:, f]`, or an exact site's per-position encoder of the prompt."""
    if replacement.sites[i].exact:
        return snap.encoders[i][pos, :, feats]
    return replacement.sites[i].W_enc[:, feats].T


# Peak bytes of pruning and scoring a graph, as a multiple of its adjacency: row-normalised copies,
# the edge-influence matrix, and the sort (values and int64 indices) that finds the edge threshold.
PRUNE_MEMORY_FACTOR = 9


def estimate_memory(n_feature_rows: int, n_nodes: int, n_columns: int, n_logits: int, capped: bool,
                    itemsize: int = 4) -> int:
    """Bytes the graph needs beyond the model: the row buffer (capped) or the whole adjacency, then pruning."""
    adjacency = n_nodes * n_nodes * itemsize
    build = (n_feature_rows + n_logits) * n_columns * itemsize if capped else 0
    return max(build + adjacency, adjacency * PRUNE_MEMORY_FACTOR)


def available_memory(device: torch.device) -> int:
    """Bytes free for the graph: free GPU memory on CUDA, MemAvailable of /proc/meminfo on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 ** 62


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2 ** 30:.1f} GiB" if n_bytes >= 2 ** 30 else f"{n_bytes / 2 ** 20:.1f} MiB"


def _phase(desc: str, total: int, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="row", disable=not progress, leave=False, dynamic_ncols=True)


def attribute(replacement: ReplacementModel, tokens: torch.Tensor, *, prompt: str = "",
              token_strings: list[str] | None = None, vocab: list[str] | None = None,
              target: int | None = None, contrast: tuple[int, int] | None = None,
              max_n_logits: int = 10, desired_logit_prob: float = 0.95, max_feature_nodes: int | None = None,
              batch_size: int = 64, zero_bos: bool = True, progress: bool = False,
              model_name: str = "", update_interval: int = 4, max_memory: int | None = None) -> AttributionGraph:
    """Build the attribution graph of `tokens` [pos] (BOS first) in the local replacement model.

    With `max_feature_nodes` below the number of active features, feature rows are computed in
    order of influence on the logits (as circuit-tracer does) into a row buffer of
    (max_feature_nodes + n_logits) rows: after the logit rows, rank every feature by its influence
    estimated from the rows so far, compute the rows of the `update_interval × batch_size` most
    influential features not yet visited, and rank again. Memory grows with the cap, never with
    the square of the number of active features. Without a cap the whole adjacency is built; its
    memory (and pruning's) is estimated first and refused above `max_memory` bytes (default: what
    the device has free).
    """
    if batch_size < 1:
        raise InterpError(f"batch size must be at least 1, got {batch_size}")
    if update_interval < 1:
        raise InterpError(f"update interval must be at least 1, got {update_interval}")
    device = replacement.model.W_E.device
    bar = _phase("forward", 2, progress)
    snap = replacement.snapshot(tokens)
    bar.update()
    # Edges accumulate in float32 (float64 when the model runs in float64), whatever the model's dtype.
    acc = torch.float64 if snap.embed.dtype == torch.float64 else torch.float32
    n_pos = snap.tokens.numel()
    logits_t = logit_targets(replacement, snap, target, contrast, max_n_logits, desired_logit_prob, vocab)
    n_err, n_tok, n_log = len(error_sites(replacement)) * n_pos, n_pos, len(logits_t)
    if max_feature_nodes is not None and max_feature_nodes < n_log:
        raise InterpError(f"max_feature_nodes {max_feature_nodes} is smaller than the {n_log} logit targets; "
                          f"raise the cap or lower max_n_logits")
    # Count the active features before the batched forward pass, to refuse early.
    first = 1 if zero_bos else 0
    n_active = sum(int((a[first:] != 0).sum()) for a in snap.acts)
    cap = n_active if max_feature_nodes is None else min(max_feature_nodes, n_active)
    capped = cap < n_active
    n_columns = n_active + n_err + n_tok
    n_nodes = cap + n_err + n_tok + n_log
    need = estimate_memory(cap, n_nodes, n_columns, n_log, capped, itemsize=acc.itemsize)
    limit = available_memory(device) if max_memory is None else max_memory
    if need > limit:
        raise InterpError(f"this graph needs about {_size(need)} ({n_active} active features, "
                          f"{'cap ' + str(cap) if capped else 'no cap'}) but {_size(limit)} is allowed; "
                          "set --max-feature-nodes (or a larger --max-memory)")
    engine = EdgeEngine(replacement, snap, zero_bos, batch_size)
    bar.update()
    bar.close()
    feats = engine.features()
    assert len(feats) == n_active
    weights = torch.tensor([t.weight for t in logits_t], dtype=acc, device=device)

    bar = _phase("logit rows", n_log, progress)
    logit_rows = engine.rows([("logit", t) for t in logits_t], out=torch.zeros(n_log, n_columns, dtype=acc, device=device),
                             progress=bar)
    bar.close()
    feature_targets = [("feature", i, p, f) for i, p, f, _ in feats]
    bar = _phase("feature rows", cap, progress)
    if not capped:
        # Every feature has a row: write them straight into the adjacency, in node order.
        selected = list(range(n_active))
        A = torch.zeros(n_nodes, n_nodes, dtype=acc, device=device)
        for start in range(0, n_active, batch_size):
            chunk = feature_targets[start:start + batch_size]
            engine.rows(chunk, out=A[start:start + len(chunk), :n_columns], progress=bar)
        A[n_nodes - n_log:, :n_columns] = logit_rows
    else:
        buffer = torch.zeros(cap + n_log, n_columns, dtype=acc, device=device)
        buffer[:n_log] = logit_rows
        row_columns = torch.full((cap + n_log,), -1, dtype=torch.long, device=device)
        row_weights = torch.zeros(cap + n_log, dtype=acc, device=device)
        row_weights[:n_log] = weights
        abs_sums = torch.zeros(cap + n_log, dtype=acc, device=device)
        abs_sums[:n_log] = logit_rows.abs().sum(1)
        visited = torch.zeros(n_active, dtype=torch.bool, device=device)
        site_of_feature = torch.tensor([i for i, _, _, _ in feats], dtype=torch.long, device=device)
        filled = n_log
        while filled - n_log < cap:
            scores = partial_influence(buffer[:filled], row_columns[:filled], row_weights[:filled],
                                       abs_sums[:filled])[:n_active]
            scores[visited] = -1.0
            take = min(update_interval * batch_size, cap - (filled - n_log))
            queue = scores.topk(take).indices
            # Batches of one site each run shorter backward passes (see EdgeEngine._chunk).
            queue = queue[torch.argsort(site_of_feature[queue], stable=True)]
            for start in range(0, take, batch_size):
                batch = queue[start:start + batch_size]
                rows = buffer[filled:filled + len(batch)]
                engine.rows([feature_targets[j] for j in batch.tolist()], out=rows, progress=bar)
                abs_sums[filled:filled + len(batch)] = rows.abs().sum(1)
                row_columns[filled:filled + len(batch)] = batch
                visited[batch] = True
                filled += len(batch)
        # Assemble A over [selected features (node order), errors, tokens, logits].
        order = row_columns[n_log:].sort()
        selected = order.values.tolist()
        cols = torch.cat([order.values, torch.arange(n_active, n_columns, device=device)])
        # Columns first: the kept columns are few, so no second copy of the whole buffer is ever made.
        kept = buffer[:, cols]
        del buffer
        A = torch.zeros(n_nodes, n_nodes, dtype=acc, device=device)
        A[:cap, :n_nodes - n_log] = kept[n_log + order.indices]
        A[n_nodes - n_log:, :n_nodes - n_log] = kept[:n_log]
        del kept
    bar.close()
    A = A.cpu()

    sites = replacement.sites
    nodes: list[Node] = []
    values: list[float] = []
    for j in selected:
        i, p, f, a = feats[j]
        nodes.append(Node(sites[i].kind, sites[i].layer, p, f, a, sites[i].feature_label(f)))
    if selected:
        # Pre-activations of the kept features, gathered per site.
        by_site: dict[int, list[int]] = {}
        for r, j in enumerate(selected):
            by_site.setdefault(feats[j][0], []).append(r)
        pre = [0.0] * len(selected)
        for i, rs in by_site.items():
            p = torch.tensor([feats[selected[r]][1] for r in rs], device=device)
            f = torch.tensor([feats[selected[r]][2] for r in rs], device=device)
            rows = encoder_rows(replacement, snap, i, p, f)
            v = (snap.reads[i][p].flatten(1) * rows.to(snap.reads[i].dtype)).sum(-1).tolist()
            for r, x in zip(rs, v):
                pre[r] = x
        values += pre
    for i in error_sites(replacement):
        site = sites[i]
        norms = snap.errors[i].norm(dim=-1).tolist()
        for p in range(n_pos):
            nodes.append(Node(f"{site.kind}_error", site.layer, p, -1, float(norms[p])))
            values.append(float("nan"))
    embed_norms = snap.embed.norm(dim=-1).tolist()
    for p, tok in enumerate(snap.tokens.tolist()):
        nodes.append(Node("embedding", -1, p, tok, float(embed_norms[p]), token_strings[p] if token_strings else ""))
        values.append(float("nan"))
    for t in logits_t:
        v = float(snap.linear_logits[-1] @ t.direction.to(snap.logits.device, snap.logits.dtype))
        nodes.append(Node("logit", replacement.n_layers, n_pos - 1, t.vocab_id, v, t.label))
        values.append(v)
    d_saes = {s.kind: s.d_sae for s in sites}
    return AttributionGraph(
        prompt=prompt, tokens=snap.tokens.tolist(), token_strings=token_strings or [str(t) for t in snap.tokens.tolist()],
        mode=replacement.mode, n_layers=replacement.n_layers, nodes=nodes, adjacency=A,
        logit_weights=[t.weight for t in logits_t], n_features=len(selected), n_errors=n_err, n_tokens=n_tok,
        n_logits=n_log, target_values=values, model_name=model_name, d_saes=d_saes,
        settings={"max_n_logits": max_n_logits, "desired_logit_prob": desired_logit_prob, "batch_size": batch_size,
                  "max_feature_nodes": max_feature_nodes if max_feature_nodes is not None else n_active,
                  "zero_bos": zero_bos, "n_active_features": n_active, **replacement.options,
                  "target": target, "contrast": list(contrast) if contrast else None})


def constant_terms(replacement: ReplacementModel, snap: Snapshot, zero_bos: bool = True
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and site inputs of the replacement model with every node's contribution removed: what
    biases, positional embeddings and (with `zero_bos`) position 0 contribute on their own."""
    first = 1 if zero_bos else 0
    acts = [a.clone() for a in snap.acts]
    errors = [e.clone() for e in snap.errors]
    for a, e, site in zip(acts, errors, replacement.sites):
        a[first:] = 0
        if not site.exact:          # an exact site's error (rounding) is a constant, not a node
            e[first:] = 0
    with torch.no_grad():
        logits, reads, _ = replacement.forward(snap, acts=acts, errors=errors, embed=torch.zeros_like(snap.embed))
    return logits[0], [r[0] for r in reads]
