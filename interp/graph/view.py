"""What a viewer shows of a graph JSON: the same influence pruning as extraction, applied to the links the file holds.

A saved graph (ours, circuit-tracer's or Neuronpedia's) and a live one are filtered by one rule,
`interp.graph.prune.prune_adjacency`: node influence on the logits (weighted by each logit's
`token_prob`) reaching `node_threshold`, then edge influence reaching `edge_threshold`, then
dangling nodes dropped. On a file that was already pruned at extraction, influence is computed on
the links it holds, so thresholds of 1.0 show the file as it is.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from interp.errors import InterpError

# Nodes every view keeps: the prompt's tokens and the logits it explains.
ALWAYS_SHOWN = ("embedding", "logit")
# Feature nodes (dropped when nothing feeds them); errors and tokens are sources only.
FEATURE_TYPES = ("cross layer transcoder", "attention sae feature")


def view_graph(data: Mapping[str, Any], node_threshold: float = 1.0, edge_threshold: float = 1.0) -> dict[str, Any]:
    """A copy of the graph JSON `data` with only the nodes and links the thresholds keep."""
    nodes = list(data["nodes"])
    index = {n["node_id"]: i for i, n in enumerate(nodes)}
    links = data["links"]
    # The adjacency A[target, source] as the links fill it (a repeated pair: its last link's weight).
    pairs = [(index[link["target"]], index[link["source"]]) for link in links]
    entry: dict[tuple[int, int], float] = {}
    for pair, link in zip(pairs, links):
        entry[pair] = float(link["weight"])
    if node_threshold == 1.0 and edge_threshold == 1.0:
        # What `prune_adjacency` keeps at thresholds of 1.0, without forming A or computing influence (the
        # default view of a saved graph, thousands of nodes: instant, and no torch to import): every node,
        # and every link whose entry of A is not zero.
        return {**data, "nodes": nodes, "links": [link for pair, link in zip(pairs, links) if entry[pair] != 0.0]}
    import torch

    from interp.graph.prune import prune_adjacency

    A = torch.zeros(len(nodes), len(nodes), dtype=torch.float64)
    if entry:
        where = torch.tensor(list(entry), dtype=torch.long)
        A[where[:, 0], where[:, 1]] = torch.tensor(list(entry.values()), dtype=torch.float64)
    kinds = [n.get("feature_type", "") for n in nodes]
    weights = torch.tensor([float(n.get("token_prob") or 0.0) if k == "logit" else 0.0
                            for n, k in zip(nodes, kinds)], dtype=torch.float64)
    if not weights.any():   # a graph without logit probabilities: weigh its logits alike
        weights = torch.tensor([1.0 if k == "logit" else 0.0 for k in kinds], dtype=torch.float64)
    always = torch.tensor([k in ALWAYS_SHOWN for k in kinds], dtype=torch.bool)
    is_feature = torch.tensor([k in FEATURE_TYPES for k in kinds], dtype=torch.bool)
    pruned = prune_adjacency(A, weights, always, is_feature, node_threshold, edge_threshold)
    node_mask = pruned.node_mask
    if pairs:
        targets, sources = torch.tensor(pairs, dtype=torch.long).unbind(1)
        keep = (node_mask[targets] & node_mask[sources] & pruned.edge_mask[targets, sources]).tolist()
    else:
        keep = []
    kept_nodes = node_mask.tolist()
    return {**data, "nodes": [n for n, k in zip(nodes, kept_nodes) if k],
            "links": [link for link, k in zip(links, keep) if k]}


# ---- what the Circuits page draws: layout, strongest links, labels, paths, pinned subgraphs -----------
#
# Everything below works on a graph JSON (ours, circuit-tracer's or Neuronpedia's) and returns plain
# typed values; `interp.viz.graph` turns a `GraphLayout` into a plotly figure.


# Nodes drawn smaller and fainter: they carry what the dictionaries do not explain (errors) or the input.
QUIET_TYPES = ("embedding", "mlp reconstruction error", "attention reconstruction error")
SUPERNODE = "supernode"
HIDDEN = "hidden nodes"


def _kind(node: Mapping[str, Any]) -> str:
    return str(node.get("feature_type", ""))


def _layer(node: Mapping[str, Any]) -> int:
    try:
        return int(node.get("layer"))
    except (TypeError, ValueError):
        return 0


def row_key(node: Mapping[str, Any], n_layers: int) -> tuple[int, int]:
    """The vertical slot of a node, in drawing order: embeddings (0, 0), layer L's attention (L + 1, 0),
    its MLP (L + 1, 1), logits (n_layers + 1, 0). Errors sit beside the features they correct."""
    kind = _kind(node)
    if kind == "embedding":
        return (0, 0)
    if kind == "logit":
        return (n_layers + 1, 0)
    return (_layer(node) + 1, 0 if "attention" in kind else 1)


def row_name(key: tuple[int, int], n_layers: int) -> str:
    if key == (0, 0):
        return "tokens"
    if key[0] == n_layers + 1:
        return "logits"
    return f"L{key[0] - 1} {'attn' if key[1] == 0 else 'mlp'}"


def importance(node: Mapping[str, Any]) -> float:
    """How influential a node is, in [0, 1]: 1 − its cumulative influence rank (circuit-tracer's `influence`,
    which is smallest for the most influential node); 0.5 when the file has none."""
    value = node.get("influence")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.5
    return max(0.0, min(1.0, 1.0 - float(value)))


def strongest_links(links: Sequence[Mapping[str, Any]], k: int | None) -> list[Mapping[str, Any]]:
    """The links among the `k` strongest (|weight|) into their target or out of their source; all for k=None."""
    if k is None:
        return list(links)
    incoming: dict[str, list[int]] = {}
    outgoing: dict[str, list[int]] = {}
    for i, e in enumerate(links):
        incoming.setdefault(e["target"], []).append(i)
        outgoing.setdefault(e["source"], []).append(i)
    keep: set[int] = set()
    for groups in (incoming, outgoing):
        for members in groups.values():
            keep.update(heapq.nlargest(k, members, key=lambda i: abs(float(links[i]["weight"]))))
    return [links[i] for i in sorted(keep)]


@dataclasses.dataclass(frozen=True)
class DrawnNode:
    """One marker: a graph node, or the aggregate of a cell's nodes left out (`kind` == "hidden nodes")."""

    node_id: str
    kind: str
    x: float            # in slots (one slot per marker), see GraphLayout
    y: float            # row index
    size_px: float      # marker diameter
    label: str
    hover: str
    quiet: bool
    pinned: bool


@dataclasses.dataclass(frozen=True)
class DrawnLink:
    source: str
    target: str
    weight: float


@dataclasses.dataclass(frozen=True)
class GraphLayout:
    """Where every marker of a graph view goes. x is in slots: the nodes of one (row, position) cell stand
    side by side, one slot each, so no two markers can meet: a marker is at most `fill` of a slot wide and
    of a row high at the figure's size (`width_px` × `height_px`, minus `margin`)."""

    nodes: list[DrawnNode]
    links: list[DrawnLink]
    x_ticks: list[float]
    x_labels: list[str]
    y_ticks: list[int]
    y_labels: list[str]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width_px: int
    height_px: int
    margin: dict[str, int]
    n_hidden: int          # graph nodes folded into "hidden nodes" markers


def _cells(nodes: Sequence[Mapping[str, Any]], ranked: Sequence[Mapping[str, Any]], n_layers: int,
           pinned_set: set[str], max_nodes: int, max_per_cell: int):
    """Which nodes are drawn (tokens, logits and pinned always; then by influence, at most `max_nodes` and
    `max_per_cell` per cell): (drawn members per cell, folded members per cell, marker id of every node)."""
    drawn_ids: set[str] = set()
    per_cell: dict[tuple, int] = {}
    for n in ranked:
        cell = (row_key(n, n_layers), int(n.get("ctx_idx") or 0))
        must = _kind(n) in ALWAYS_SHOWN or n["node_id"] in pinned_set
        if must or (len(drawn_ids) < max_nodes and per_cell.get(cell, 0) < max_per_cell):
            drawn_ids.add(n["node_id"])
            per_cell[cell] = per_cell.get(cell, 0) + 1
    # Cells: drawn members in a stable order (by id), plus one aggregate marker for the rest.
    cells: dict[tuple, list[Mapping[str, Any]]] = {}
    hidden: dict[tuple, list[Mapping[str, Any]]] = {}
    owner: dict[str, str] = {}
    for n in nodes:
        cell = (row_key(n, n_layers), int(n.get("ctx_idx") or 0))
        if n["node_id"] in drawn_ids:
            cells.setdefault(cell, []).append(n)
            owner[n["node_id"]] = n["node_id"]
        else:
            hidden.setdefault(cell, []).append(n)
    for cell, members in hidden.items():
        agg = f"hidden:{cell[0][0]}.{cell[0][1]}:{cell[1]}"
        for n in members:
            owner[n["node_id"]] = agg
    return cells, hidden, owner


def layout_graph(data: Mapping[str, Any], labels: Mapping[str, str] | None = None, pinned: Sequence[str] = (),
                 k_links: int | None = 3, max_nodes: int = 400, max_per_cell: int = 16, width_px: int = 900,
                 height_px: int = 640, min_size: float = 6.0, max_size: float = 20.0, fill: float = 0.8,
                 min_slot_px: float = 9.0) -> GraphLayout:
    """The drawing of a graph JSON: tokens across (the prompt's tokens as labels), layers up; markers sized
    by influence; links of the `k_links` strongest per node (None: all). At most `max_nodes` nodes, and
    `max_per_cell` per (row, position) cell, are drawn (the most influential, pinned ones always); the rest
    of each cell become one "hidden nodes" marker whose links are the sums of theirs.

    Markers are sized to fit at exactly `width_px` × `height_px` (give the width the figure is drawn at: a
    narrower drawing would bring them together). Where a slot would be narrower than `min_slot_px` at that
    width, cells draw fewer nodes each (folding more into their "+n more" marker); only when one node per
    cell is still too many does the figure grow wider than `width_px`."""
    labels = labels or {}
    pinned_set = set(pinned)
    nodes = list(data["nodes"])
    tokens = list(data.get("metadata", {}).get("prompt_tokens") or [])
    feature_layers = [_layer(n) for n in nodes if _kind(n) not in ("logit", "embedding")]
    logit_layers = [_layer(n) - 1 for n in nodes if _kind(n) == "logit"]
    n_layers = max(feature_layers + logit_layers + [0]) + 1 if (feature_layers or logit_layers) else 1
    # Which nodes are drawn: always tokens, logits and pinned; then by influence.
    ranked = sorted(nodes, key=lambda n: (not (_kind(n) in ALWAYS_SHOWN or n["node_id"] in pinned_set),
                                          -importance(n)))
    margin = {"l": 70, "r": 20, "t": 50, "b": 130}
    fit_w = width_px - margin["l"] - margin["r"]
    gap = 0.6
    cap = max(1, max_per_cell)
    while True:
        cells, hidden, owner = _cells(nodes, ranked, n_layers, pinned_set, max_nodes, cap)
        rows = sorted({cell[0] for cell in list(cells) + list(hidden)})
        row_index = {r: i for i, r in enumerate(rows)}
        positions = sorted({cell[1] for cell in list(cells) + list(hidden)} | set(range(len(tokens))))
        widths = {p: 1 for p in positions}
        for (row, p), members in cells.items():
            widths[p] = max(widths[p], len(members) + (1 if (row, p) in hidden else 0))
        for (row, p) in hidden:
            widths[p] = max(widths[p], 1 + len(cells.get((row, p), [])))
        total = max(sum(widths.values()) + gap * (len(positions) - 1), 1.0)
        if total * min_slot_px <= fit_w or cap == 1:
            break
        cap = max(1, min(cap - 1, int(cap * 0.75)))  # fewer per cell: the rest fold into "+n more"
    start, x = {}, 0.0
    for p in positions:
        start[p] = x
        x += widths[p] + gap
    plot_w = max(fit_w, total * min_slot_px)
    width_px = int(math.ceil(plot_w + margin["l"] + margin["r"]))
    plot_h = height_px - margin["t"] - margin["b"]
    slot_px = plot_w / total
    row_px = plot_h / max(len(rows), 1)
    biggest = min(max_size, fill * slot_px, fill * row_px)
    smallest = min(min_size, biggest)

    def hover(n: Mapping[str, Any], label: str) -> str:
        parts = [f"<b>{label}</b>" if label else "", f"{n['node_id']} · {_kind(n)}"]
        for key in ("activation", "influence"):
            if isinstance(n.get(key), (int, float)):
                parts.append(f"{key} {float(n[key]):.4g}")
        return "<br>".join(p for p in parts if p)

    drawn: list[DrawnNode] = []
    for cell in sorted(set(cells) | set(hidden)):
        members = sorted(cells.get(cell, []), key=lambda n: str(n["node_id"]))
        count = len(members) + (1 if cell in hidden else 0)
        (row, p) = cell
        left = start[p] + (widths[p] - count) / 2.0
        for i, n in enumerate(members):
            kind, quiet = _kind(n), _kind(n) in QUIET_TYPES
            if kind == "logit":  # what the graph explains: large, more so the likelier it is
                weight = 0.6 + 0.4 * float(n.get("token_prob") or 0.0)
            else:
                weight = 0.3 if quiet else importance(n)
            size = smallest + (biggest - smallest) * min(1.0, weight)
            label = labels.get(n["node_id"]) or str(n.get("clerp") or "")
            drawn.append(DrawnNode(n["node_id"], kind, left + i + 0.5, row_index[row], size, label, hover(n, label),
                                   quiet, n["node_id"] in pinned_set))
        if cell in hidden:
            rest = hidden[cell]
            agg = owner[rest[0]["node_id"]]
            drawn.append(DrawnNode(agg, HIDDEN, left + len(members) + 0.5, row_index[row], smallest,
                                   f"+{len(rest)} more", f"{len(rest)} nodes not drawn here (less influential); "
                                   "their links are summed into this marker", True, False))
    # Links between drawn markers; those of hidden nodes summed per marker pair.
    summed: dict[tuple[str, str], float] = {}
    plain: list[Mapping[str, Any]] = []
    for e in data["links"]:
        s, t = owner.get(e["source"]), owner.get(e["target"])
        if s is None or t is None or s == t:
            continue
        if s == e["source"] and t == e["target"]:
            plain.append(e)
        else:
            summed[(s, t)] = summed.get((s, t), 0.0) + float(e["weight"])
    plain += [{"source": s, "target": t, "weight": w} for (s, t), w in summed.items()]
    links = [DrawnLink(e["source"], e["target"], float(e["weight"])) for e in strongest_links(plain, k_links)]
    centres = [start[p] + widths[p] / 2.0 for p in positions]
    return GraphLayout(
        nodes=drawn, links=links, x_ticks=centres,
        x_labels=[tokens[p] if 0 <= p < len(tokens) else str(p) for p in positions],
        y_ticks=list(range(len(rows))), y_labels=[row_name(r, n_layers) for r in rows],
        x_range=(0.0, total), y_range=(-0.5, len(rows) - 0.5), width_px=width_px, height_px=height_px,
        margin=margin, n_hidden=sum(len(v) for v in hidden.values()))


# ---- labels -------------------------------------------------------------------------------------------

def auto_label(card: Mapping[str, Any], n_logits: int = 2, n_tokens: int = 2, max_chars: int = 40) -> str:
    """A short label for a feature from its feature JSON: its top output tokens and the tokens it fires on
    most, e.g. `→ Omar, Troy · on "and", "to"`; empty if the card has neither."""
    outputs = [str(t).strip() for t in (card.get("top_logits") or []) if str(t).strip()][:n_logits]
    seen: list[str] = []
    for quantile in card.get("examples_quantiles") or []:
        for ex in quantile.get("examples") or []:
            tokens, at = ex.get("tokens") or [], ex.get("train_token_ind")
            if isinstance(at, int) and 0 <= at < len(tokens):
                token = str(tokens[at]).strip()
                if token and token not in seen:
                    seen.append(token)
            if len(seen) >= n_tokens:
                break
        if len(seen) >= n_tokens:
            break
    parts = []
    if outputs:
        parts.append("→ " + ", ".join(outputs))
    if seen:
        parts.append("on " + ", ".join(f'"{t}"' for t in seen))
    label = " · ".join(parts)
    return label if len(label) <= max_chars else label[:max_chars - 1] + "…"


def default_label(node: Mapping[str, Any]) -> str:
    """What a node is called when neither the file nor a feature card names it."""
    kind = _kind(node)
    if kind in FEATURE_TYPES:
        return f"{'attn' if 'attention' in kind else 'mlp'} L{node.get('layer')} #{node.get('feature')}"
    if kind.endswith("error"):
        return f"{'attn' if 'attention' in kind else 'mlp'} error L{node.get('layer')}"
    return str(node.get("clerp") or node["node_id"])


def node_labels(data: Mapping[str, Any], cards: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """A label for every node: the file's `clerp` (a user's label), else the automatic label from the node's
    feature card (`cards` by node id), else a plain description; embeddings are their token."""
    cards = cards or {}
    tokens = list(data.get("metadata", {}).get("prompt_tokens") or [])
    out = {}
    for n in data["nodes"]:
        label = str(n.get("clerp") or "").strip()
        if not label and n["node_id"] in cards:
            label = auto_label(cards[n["node_id"]])
        if not label and _kind(n) == "embedding" and isinstance(n.get("ctx_idx"), int) and n["ctx_idx"] < len(tokens):
            label = f'token "{tokens[n["ctx_idx"]]}"'
        out[n["node_id"]] = label or default_label(n)
    return out


# ---- paths by weight product ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WeightPath:
    """A chain of links in the direction information flows (`nodes[0]` → … → `nodes[-1]`) and the product
    of their weights."""

    nodes: tuple[str, ...]
    weight: float


def top_paths(data: Mapping[str, Any], node_id: str, direction: str = "upstream", k: int = 5) -> list[WeightPath]:
    """The `k` paths with the largest |product of link weights| that lead into `node_id` from a node with no
    input (direction "upstream": tokens, errors) or lead out of it to a node with no output ("downstream":
    logits), through the graph's links; ranked by |product| (ties by path). Exact: the k best paths of a
    DAG are kept per node, since |product| only grows with each factor's size."""
    if direction not in ("upstream", "downstream"):
        raise InterpError(f"direction must be upstream or downstream, not {direction!r}")
    ids = {n["node_id"] for n in data["nodes"]}
    if node_id not in ids:
        raise InterpError(f"no node {node_id!r} in this graph")
    step: dict[str, list[tuple[str, float]]] = {}
    for e in data["links"]:
        a, b = (e["target"], e["source"]) if direction == "upstream" else (e["source"], e["target"])
        step.setdefault(a, []).append((b, float(e["weight"])))
    # The nodes reachable from `node_id` this way, then their order with every node after the nodes it
    # steps to (Kahn's algorithm on the reversed steps); the k best paths of each node from those of its steps.
    reach, stack = {node_id}, [node_id]
    while stack:
        for v, _ in step.get(stack.pop(), []):
            if v not in reach:
                reach.add(v)
                stack.append(v)
    pending = {u: len(step.get(u, [])) for u in reach}
    back: dict[str, list[str]] = {}
    for u in reach:
        for v, _ in step.get(u, []):
            back.setdefault(v, []).append(u)
    ready = [u for u, c in pending.items() if c == 0]
    best: dict[str, list[tuple[float, tuple[str, ...]]]] = {}
    while ready:
        u = ready.pop()
        if not step.get(u):
            best[u] = [(1.0, (u,))]
        else:
            options = [(w * value, (u,) + rest) for v, w in step[u] for value, rest in best[v]]
            best[u] = heapq.nsmallest(k, options, key=lambda o: (-abs(o[0]), o[1]))
        for parent in back.get(u, []):
            pending[parent] -= 1
            if pending[parent] == 0:
                ready.append(parent)
    if node_id not in best:
        stuck = sorted(u for u in reach if u not in best)
        raise InterpError(f"the graph's links form a cycle through {stuck[0]}: paths are not defined")
    found = best[node_id]
    result = []
    for value, chain in found:
        if len(chain) == 1:
            continue  # the node alone: it has no link this way
        result.append(WeightPath(tuple(reversed(chain)) if direction == "upstream" else chain, value))
    return result


# ---- pinned nodes, supernodes, and the pinned subgraph ---------------------------------------------------

@dataclasses.dataclass
class Supernode:
    name: str
    members: list[str]


@dataclasses.dataclass
class Subgraph:
    """What a user pinned, and how they grouped it: Neuronpedia's `qParams.pinnedIds` and
    `qParams.supernodes` (each `[name, member, member, …]`)."""

    pinned: list[str] = dataclasses.field(default_factory=list)
    supernodes: list[Supernode] = dataclasses.field(default_factory=list)


def read_subgraph(data: Mapping[str, Any]) -> Subgraph:
    """The pinned nodes and supernodes saved in a graph JSON (ids not in the graph dropped)."""
    ids = {n["node_id"] for n in data["nodes"]}
    q = data.get("qParams") if isinstance(data.get("qParams"), Mapping) else {}
    pinned = [str(i) for i in (q.get("pinnedIds") or []) if str(i) in ids]
    if isinstance(q.get("pinnedIds"), str):  # Neuronpedia's URL form: comma-separated
        pinned = [i for i in q["pinnedIds"].split(",") if i in ids]
    supernodes = []
    for entry in q.get("supernodes") or []:
        if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
            members = [str(i) for i in entry[1:] if str(i) in ids]
            if members:
                supernodes.append(Supernode(entry[0], members))
    for s in supernodes:  # a supernode's members are pinned
        pinned += [m for m in s.members if m not in pinned]
    return Subgraph(list(dict.fromkeys(pinned)), supernodes)


def group_nodes(subgraph: Subgraph, name: str, members: Sequence[str]) -> Subgraph:
    """A copy with `members` (pinned nodes) grouped as supernode `name`; a node leaves any group it was in,
    a group of the same name is replaced, and empty groups disappear."""
    name = name.strip()
    if not name:
        raise InterpError("a supernode needs a name")
    if not members:
        raise InterpError("choose the pinned nodes to group")
    missing = [m for m in members if m not in subgraph.pinned]
    if missing:
        raise InterpError(f"only pinned nodes can be grouped; not pinned: {', '.join(missing)}")
    kept = [Supernode(s.name, [m for m in s.members if m not in members]) for s in subgraph.supernodes
            if s.name != name]
    return Subgraph(list(subgraph.pinned), [s for s in kept if s.members] + [Supernode(name, list(members))])


def ungroup(subgraph: Subgraph, name: str) -> Subgraph:
    return Subgraph(list(subgraph.pinned), [s for s in subgraph.supernodes if s.name != name])


def set_pinned(subgraph: Subgraph, pinned: Sequence[str]) -> Subgraph:
    """A copy pinning exactly `pinned`; unpinned nodes leave their groups."""
    pinned = list(dict.fromkeys(pinned))
    groups = [Supernode(s.name, [m for m in s.members if m in pinned]) for s in subgraph.supernodes]
    return Subgraph(pinned, [s for s in groups if s.members])


def with_subgraph(data: Mapping[str, Any], subgraph: Subgraph, labels: Mapping[str, str] | None = None) -> dict:
    """A copy of the graph JSON carrying `subgraph` in `qParams` and the given labels as `clerp`."""
    labels = labels or {}
    q = dict(data.get("qParams") or {})
    q["pinnedIds"] = list(subgraph.pinned)
    q["supernodes"] = [[s.name, *s.members] for s in subgraph.supernodes]
    nodes = [{**n, "clerp": labels[n["node_id"]]} if n["node_id"] in labels else n for n in data["nodes"]]
    return {**data, "nodes": nodes, "qParams": q}


def subgraph_view(data: Mapping[str, Any], subgraph: Subgraph) -> dict[str, Any]:
    """The pinned nodes alone, as a graph JSON: each supernode one node (id `supernode:NAME`, placed at its
    highest member's layer and last position, as influential as its most influential member), and each link
    between two drawn nodes the sum of the weights of the graph's links between their members."""
    by_id = {n["node_id"]: n for n in data["nodes"]}
    owner: dict[str, str] = {}
    nodes: list[dict[str, Any]] = []
    grouped = {m for s in subgraph.supernodes for m in s.members}
    for i in subgraph.pinned:
        if i in by_id and i not in grouped:
            owner[i] = i
            nodes.append(dict(by_id[i]))
    for s in subgraph.supernodes:
        members = [by_id[m] for m in s.members if m in by_id]
        if not members:
            continue
        sid = f"{SUPERNODE}:{s.name}"
        for m in members:
            owner[m["node_id"]] = sid
        top = max(members, key=lambda m: (row_key(m, 10 ** 6), int(m.get("ctx_idx") or 0)))
        influences = [float(m["influence"]) for m in members if isinstance(m.get("influence"), (int, float))]
        nodes.append({"node_id": sid, "feature_type": _kind(top) if len({_kind(m) for m in members}) == 1 else SUPERNODE,
                      "layer": top.get("layer"), "ctx_idx": max(int(m.get("ctx_idx") or 0) for m in members),
                      "clerp": s.name, "feature": None, "members": [m["node_id"] for m in members],
                      "influence": min(influences) if influences else None})
    summed: dict[tuple[str, str], float] = {}
    for e in data["links"]:
        s, t = owner.get(e["source"]), owner.get(e["target"])
        if s is None or t is None or s == t:
            continue
        summed[(s, t)] = summed.get((s, t), 0.0) + float(e["weight"])
    links = [{"source": s, "target": t, "weight": w} for (s, t), w in summed.items()]
    return {**data, "nodes": nodes, "links": links}


def save_graph_edits(path: str | Path, subgraph: Subgraph | None = None, labels: Mapping[str, str] | None = None) -> dict:
    """Write pinned nodes, supernodes and edited labels into the graph JSON at `path` (atomically: a temporary
    file renamed over it; no other file is touched) and return what was written. Labels are node `clerp`s;
    an empty label clears one. The file must already be a graph JSON."""
    from interp.io import read_json, write_json

    path = Path(path)
    data = read_json(path, "graph JSON")
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not isinstance(data.get("links"), list):
        raise InterpError(f"{path} is not a graph JSON (no nodes and links): not overwritten")
    ids = {n["node_id"] for n in data["nodes"]}
    unknown = sorted(set(labels or {}) - ids)
    if unknown:
        raise InterpError(f"no node {unknown[0]!r} in {path.name}: nothing written")
    updated = with_subgraph(data, subgraph if subgraph is not None else read_subgraph(data), labels)
    write_json(path, updated)
    return updated
