"""Interactive plotly figure of an attribution graph JSON (ours or any circuit-tracer/Neuronpedia export).

Token positions run left to right (the prompt's tokens as labels), layers bottom (tokens) to top
(logits); nodes sharing a (layer, position) cell stand side by side, one slot each, and never overlap
(the layout is `interp.graph.view.layout_graph`). Edge width grows with |weight|, colour gives its sign
(blue positive, red negative); node colour gives its type. Works on the exported JSON, so the app
can draw imported files.
"""

from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go

NODE_COLOURS = {"embedding": "#9e9e9e", "cross layer transcoder": "#1f77b4", "attention sae feature": "#2ca02c",
                "mlp reconstruction error": "#e3a3a3", "attention reconstruction error": "#f2c4c4",
                "logit": "#9467bd", "supernode": "#ff7f0e", "hidden nodes": "#d0d0d0"}
SIGN_COLOURS = {True: "rgba(31, 119, 180, {a})", False: "rgba(214, 39, 40, {a})"}
N_WIDTH_BINS = 4


def graph_figure(data: dict[str, Any], title: str | None = None, labels: dict[str, str] | None = None,
                 pinned: Sequence[str] = (), selected: str | None = None, k_links: int | None = 3,
                 max_nodes: int = 400, width_px: int = 900, height_px: int = 640) -> go.Figure:
    """The figure of a graph JSON (see `interp.graph.view.layout_graph`): tokens across, layers up; markers
    sized by influence and coloured by type (errors and tokens fainter); links of the `k_links` strongest per
    node (None: all), width by |weight|, blue positive, red negative. Hovering shows a node's label; pinned
    nodes carry it beside them; the `selected` node is ringed. Each marker's customdata is its node id."""
    from interp.graph.view import layout_graph

    lay = layout_graph(data, labels=labels, pinned=pinned, k_links=k_links, max_nodes=max_nodes,
                       width_px=width_px, height_px=height_px)
    return layout_figure(lay, title if title is not None else data.get("metadata", {}).get("prompt", ""), selected)


def layout_figure(lay, title: str = "", selected: str | None = None) -> go.Figure:
    """A plotly figure of an `interp.graph.view.GraphLayout`, at exactly its size."""
    where = {n.node_id: (n.x, n.y) for n in lay.nodes}
    fig = go.Figure()
    links = [e for e in lay.links if e.source in where and e.target in where]
    if links:
        biggest = max(abs(e.weight) for e in links) or 1.0
        # One trace per (sign, width bin): thousands of separate line traces would make plotly crawl.
        groups: dict[tuple[bool, int], tuple[list, list]] = {}
        for e in links:
            b = min(N_WIDTH_BINS - 1, int(abs(e.weight) / biggest * N_WIDTH_BINS))
            xs, ys = groups.setdefault((e.weight >= 0, b), ([], []))
            (x0, y0), (x1, y1) = where[e.source], where[e.target]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
        for (positive, b), (xs, ys) in sorted(groups.items()):
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                     line={"width": 0.6 + 1.4 * b,
                                           "color": SIGN_COLOURS[positive].format(a=0.25 + 0.15 * b)}))
    by_kind: dict[str, list] = {}
    for n in lay.nodes:
        by_kind.setdefault(n.kind, []).append(n)
    for kind, members in by_kind.items():
        quiet = members[0].quiet
        fig.add_trace(go.Scatter(
            x=[n.x for n in members], y=[n.y for n in members], mode="markers", name=kind,
            hovertext=[n.hover for n in members], hoverinfo="text", customdata=[n.node_id for n in members],
            marker={"size": [n.size_px for n in members], "color": NODE_COLOURS.get(kind, "#bcbd22"),
                    "opacity": 0.55 if quiet else 0.95,
                    "symbol": "square" if kind.endswith("error") or kind == "hidden nodes" else "circle",
                    "line": {"width": [2.5 if n.node_id == selected else 0.5 for n in members],
                             "color": ["black" if n.node_id == selected else "white" for n in members]}}))
    shown = [n for n in lay.nodes if n.pinned or n.node_id == selected]
    if shown:
        fig.add_trace(go.Scatter(x=[n.x for n in shown], y=[n.y for n in shown], mode="text", showlegend=False,
                                 text=[f"  {n.label}" for n in shown], textposition="middle right",
                                 textfont={"size": 10}, hoverinfo="skip", name="labels"))
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"}, width=lay.width_px, height=lay.height_px,
        margin=lay.margin, plot_bgcolor="white", autosize=False,
        xaxis={"tickmode": "array", "tickvals": lay.x_ticks, "ticktext": lay.x_labels, "range": list(lay.x_range),
               "showgrid": False, "zeroline": False, "title": "token position", "tickangle": -45},
        yaxis={"tickmode": "array", "tickvals": lay.y_ticks, "ticktext": lay.y_labels, "range": list(lay.y_range),
               "zeroline": False, "showgrid": True, "gridcolor": "#f0f0f0"},
        # The legend under the axis: above the plot it would meet the title and the chart's toolbar.
        legend={"orientation": "h", "y": -0.22, "yanchor": "top", "x": 0.0, "xanchor": "left"})
    return fig


def marker_overlaps(fig: go.Figure) -> list[tuple[str, str]]:
    """Pairs of node markers of a `graph_figure` that touch, in pixels at the figure's own size."""
    lay = fig.layout
    w = lay.width - lay.margin.l - lay.margin.r
    h = lay.height - lay.margin.t - lay.margin.b
    (x0, x1), (y0, y1) = lay.xaxis.range, lay.yaxis.range
    points = []
    for t in fig.data:
        if t.mode != "markers":
            continue
        sizes = t.marker.size if isinstance(t.marker.size, (list, tuple)) else [t.marker.size] * len(t.x)
        for x, y, s, i in zip(t.x, t.y, sizes, t.customdata):
            points.append(((x - x0) / (x1 - x0) * w, (y - y0) / (y1 - y0) * h, s / 2.0, i))
    clashes = []
    for a in range(len(points)):
        for b in range(a + 1, len(points)):
            (xa, ya, ra, ia), (xb, yb, rb, ib) = points[a], points[b]
            if (xa - xb) ** 2 + (ya - yb) ** 2 < (ra + rb) ** 2:
                clashes.append((ia, ib))
    return clashes


# ---- a feature card and an ablation (the app's Circuits page) -----------------------------------------

def highlighted_context(example: dict[str, Any], peak: float, before: int = 12, after: int = 4) -> str:
    """One top-activating context of a feature JSON as HTML: the tokens around its strongest token (`before`
    tokens and `after` - 1 after it), each shaded by its activation (orange, scaled to `peak`)."""
    import html

    centre = example["train_token_ind"]
    lo, hi = max(0, centre - before), centre + after
    spans = []
    for token, a in zip(example["tokens"][lo:hi], example["tokens_acts_list"][lo:hi]):
        alpha = max(0.0, min(1.0, a / peak)) if peak > 0 else 0.0
        style = f"background: rgba(255,140,0,{alpha:.2f}); padding: 0 2px; border-radius: 3px"
        spans.append(f'<span style="{style}" title="{a:.3f}">{html.escape(token)}</span>')
    return " ".join(spans)


def activation_histogram_figure(card: dict[str, Any]) -> go.Figure:
    """The activation histogram of a feature JSON (active tokens), bins spread over [0, act_max]."""
    hist = card["histogram"]
    width = (card["act_max"] or 1.0) / max(1, len(hist))
    fig = go.Figure(go.Bar(x=[(i + 0.5) * width for i in range(len(hist))], y=hist, marker_color="#ff8c00"))
    # No title inside the figure: the chart's toolbar sits at its top right and would cover it; the page
    # names the chart above it.
    fig.update_layout(height=220, bargap=0.05, margin=dict(l=30, r=10, t=10, b=30),
                      xaxis_title="activation (active tokens)", yaxis_title="tokens")
    return fig


def logit_shift(clean, new, vocab: list[str]) -> dict[str, Any]:
    """How an intervention moved the next-token logits: the largest |change| and the top token before and after."""
    clean, new = [float(v) for v in clean], [float(v) for v in new]
    change = max((abs(n - c) for c, n in zip(clean, new)), default=0.0)
    return {"max_change": change, "top_before": vocab[max(range(len(clean)), key=clean.__getitem__)],
            "top_after": vocab[max(range(len(new)), key=new.__getitem__)]}


def ablation_figure(clean, new, vocab: list[str], title: str = "", n_top: int = 8, n_moved: int = 4) -> go.Figure:
    """Grouped bars of the next-token logits before and after an intervention, over the `n_top` largest clean
    logits and the `n_moved` tokens whose logit moved most, in order of the clean logit."""
    import torch

    clean, new = torch.as_tensor(clean, dtype=torch.float64), torch.as_tensor(new, dtype=torch.float64)
    shown = sorted(set(clean.topk(min(n_top, len(clean))).indices.tolist())
                   | set((new - clean).abs().topk(min(n_moved, len(clean))).indices.tolist()),
                   key=lambda i: -float(clean[i]))
    fig = go.Figure([go.Bar(name="before", x=[vocab[i] for i in shown], y=[float(clean[i]) for i in shown]),
                     go.Bar(name="after ablation", x=[vocab[i] for i in shown], y=[float(new[i]) for i in shown])])
    fig.update_layout(barmode="group", height=320, margin=dict(l=30, r=10, t=40, b=30), title=title)
    return fig
