"""Weights and activations side by side: what a bilinear MLP's weights say drives a feature, against the graph's edges.

Take an MLP feature node t of a graph (a transcoder feature, or an exact MLP node of a bilinear-exact graph) at
layer L and position p, and u its write direction (the transcoder's decoder row; an exact node's decoder at p).
Everything the graph's nodes at p write before the MLP reads arrives at its input x̂_p (`ln2.hook_normalized`)
as c_s = centre(write_s) / σ_p (frozen LayerNorm scale σ_p); what no node writes (biases, positional embeddings,
position 0 with zero_bos) is one more input, k_p = x̂_p − Σ c_s, with the constant coordinate. Then
(`interp.bilinear.lm`, exact, with x̃ = [x̂_p, 1])

    uᵀ(mlp_out_p − b_out) = x̃ᵀ Q_u x̃ = Σ_{a ≤ b} S[a, b],   S = pair scores of the inputs on this prompt:

the weight-based pair coefficient C[a, b] (`feature_pair_matrix` on the inputs' unit-activation directions,
what `interp bilinear-lm` lists) times the two inputs' activations. Each input's share is its row of
the symmetric form, s_a = ĉ_aᵀ Q_u x̃ (a pair's score split equally between its two inputs, a square counted
once): what the weights say that input contributes to the feature's output on this prompt.

The graph's side is t's incoming edges A[t, s] (what the feature reads: its encoder, or an exact node's
linearisation). Agreement over the graph's sources at p: the overlap of the two top-k sets by magnitude, and
the Spearman rank correlation of the signed shares and edges. Attention must be nodes (graph modes "full" and
"bilinear-exact"), so that every edge into t comes from its own position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.bilinear.core import interaction_matrices
from interp.bilinear.lm import feature_pair_matrix, mlp_weights
from interp.errors import InterpError
from interp.graph.attribution import AttributionGraph
from interp.graph.export import node_id
from interp.graph.replacement import ReplacementModel, Snapshot
from interp.results import Result

CONSTANT = "constants (biases, positions, LN bias)"


@dataclass
class WeightsVsEdges(Result):
    """One feature node: the weight-based input pairs and the graph's incoming edges, and how far they agree.

    pairs: the top pairs by |score|, each {"a", "b", "coefficient" (weights alone, per unit activation at σ = 1),
    "score" (on the prompt)}; edges: the top incoming edges {"source", "weight"}; inputs, weight_scores,
    edge_scores: per source node at the feature's position, its weight-based share and its edge; total:
    Σ scores = uᵀ(mlp_out − b_out), the feature's write direction read off the real MLP output.
    """

    node: str
    layer: int
    pos: int
    feature: int
    output: str
    pairs: list[dict]
    edges: list[dict]
    inputs: list[str]
    weight_scores: list[float]
    edge_scores: list[float]
    top_overlap: float
    spearman: float
    k: int
    total: float


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when either side is constant."""
    def ranks(x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        order = x.argsort()
        r = torch.empty_like(x)
        r[order] = torch.arange(len(x), dtype=x.dtype)
        for v in x.unique():                  # average the ranks of ties
            tie = x == v
            if int(tie.sum()) > 1:
                r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.norm() * rb.norm())
    return float((ra @ rb) / denom) if denom > 0 else float("nan")


def node_index(graph: AttributionGraph, nid: str) -> int:
    """The index in `graph.nodes` of the node the exported JSON calls `nid` (the viewer selects nodes by id)."""
    for j, n in enumerate(graph.nodes):
        if node_id(n, graph.n_layers) == nid:
            return j
    raise InterpError(f"node {nid} is not in this graph")


def weights_vs_edges(replacement: ReplacementModel, graph: AttributionGraph, node: int, snap: Snapshot | None = None,
                     k: int = 10) -> WeightsVsEdges:
    """Compare, for feature node `node` of `graph` (an MLP node of a bilinear LM), the inputs its bilinear MLP's
    weights say produce its output on the prompt with the graph's incoming edges (see the module doc)."""
    t = graph.nodes[node] if 0 <= node < graph.n_nodes else None
    if t is None or t.kind != "mlp":
        raise InterpError(f"node {node} is not an MLP feature node of this graph; weights and edges compare MLP "
                          "features of a bilinear layer")
    if graph.mode == "transcoder-only":
        raise InterpError("weights vs edges needs attention as nodes (graph mode full or bilinear-exact): in "
                          "transcoder-only graphs edges also arrive through attention from other positions")
    model = replacement.model
    weights = mlp_weights(model, t.layer)            # refuses a model whose MLPs are not bilinear
    snap = snap if snap is not None else replacement.snapshot(torch.tensor(graph.tokens))
    site_index = {(s.kind, s.layer): i for i, s in enumerate(replacement.sites)}
    i = site_index[("mlp", t.layer)]
    site = replacement.sites[i]
    p, f = t.pos, t.index
    dtype = snap.reads[i].dtype
    u = (snap.decoders[i][p, f] if site.exact else site.W_dec[f]).to(dtype)
    sigma = float(snap.scales[f"blocks.{t.layer}.ln2.hook_scale"][0, p, 0])
    centre = model.cfg.normalization_type in ("LN", "LNPre")

    # Each source node at p that writes before site i: its write into the residual stream at p.
    labels, writes, acts, columns = [], [], [], []
    for s, n in enumerate(graph.nodes[:graph.n_features + graph.n_errors + graph.n_tokens]):
        if n.pos != p:
            continue
        if n.is_feature:
            j = site_index[(n.kind, n.layer)]
            decs = [(o, w) for o, writers in enumerate(replacement.writers) for jj, w in writers if jj == j and o < i]
            if not decs:
                continue
            write = sum((snap.decoders[j][p, n.index] if replacement.sites[j].exact else w[n.index]).to(dtype)
                        for _, w in decs) * n.activation
        elif n.kind.endswith("_error"):
            o = site_index[(n.kind[:-len("_error")], n.layer)]
            if o >= i:
                continue
            write = snap.errors[o][p]
        else:
            write = snap.embed[p]
        labels.append(node_id(n, graph.n_layers))
        writes.append(write)
        acts.append(n.activation)
        columns.append(s)
    W = torch.stack(writes) if writes else torch.zeros(0, model.cfg.d_model, dtype=dtype)
    c = (W - W.mean(-1, keepdim=True) if centre else W) / sigma           # [n, d] contributions to x̂_p
    constant = snap.reads[i][p] - c.sum(0)                                # k_p: what no node writes
    inputs = torch.cat([torch.cat([c, torch.zeros_like(c[:, :1])], 1),
                        torch.cat([constant, torch.ones(1, dtype=dtype)])[None]])   # [n + 1, d + 1] in x̃ space
    w = weights.to(dtype)
    S = feature_pair_matrix(w, u, inputs)                                 # pair scores on the prompt
    x = inputs.sum(0)
    Q = interaction_matrices(w, u[None])[0]
    shares = inputs @ Q @ x                                               # per input: its row of the form
    # The coefficients per unit activation at σ = 1: divide the scores by the activations (and σ²).
    scale = torch.tensor([a / sigma for a in acts] + [1.0], dtype=dtype)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    C = S / (scale[:, None] * scale[None, :])
    names = labels + [CONSTANT]
    n = S.shape[0]
    order = S.abs().flatten().argsort(descending=True)[:k]
    pairs = [{"a": names[int(q) // n], "b": names[int(q) % n], "coefficient": float(C.flatten()[q]),
              "score": float(S.flatten()[q])} for q in order if float(S.flatten()[q]) != 0.0]
    row = graph.adjacency[node]
    top_edges = row.abs().argsort(descending=True)[:k]
    edges = [{"source": node_id(graph.nodes[int(s)], graph.n_layers), "weight": float(row[s])}
             for s in top_edges if float(row[s]) != 0.0]
    edge_scores = row[columns].to(dtype) if columns else torch.zeros(0, dtype=dtype)
    weight_scores = shares[:-1]
    kk = min(k, len(columns))
    top_w = set(weight_scores.abs().argsort(descending=True)[:kk].tolist())
    top_e = set(edge_scores.abs().argsort(descending=True)[:kk].tolist())
    return WeightsVsEdges(
        node=node_id(t, graph.n_layers), layer=t.layer, pos=p, feature=f,
        output=f"{'exact node' if site.exact else 'transcoder feature'} {t.layer}:{f}'s write direction",
        pairs=pairs, edges=edges, inputs=labels, weight_scores=weight_scores.tolist(), edge_scores=edge_scores.tolist(),
        top_overlap=len(top_w & top_e) / kk if kk else float("nan"),
        spearman=spearman(weight_scores, edge_scores) if len(columns) > 1 else float("nan"), k=kk,
        total=float(S.sum()))
