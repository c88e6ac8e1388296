"""Interactive plotly figure of an attribution graph JSON (ours or any circuit-tracer/Neuronpedia export).

Token positions run left to right, layers bottom (embeddings) to top (logits); nodes sharing a
(position, layer) cell are spread sideways. Edge width grows with |weight|, colour gives its sign
(blue positive, red negative); node colour gives its type. Works on the exported JSON, so the app
can draw imported files.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

NODE_COLOURS = {"embedding": "#7f7f7f", "cross layer transcoder": "#1f77b4", "attention sae feature": "#2ca02c",
                "mlp reconstruction error": "#d62728", "attention reconstruction error": "#ff9896",
                "logit": "#9467bd"}
SIGN_COLOURS = {True: "rgba(31, 119, 180, 0.55)", False: "rgba(214, 39, 40, 0.55)"}
N_WIDTH_BINS = 4


def _row(node: dict[str, Any], n_layers: int) -> float:
    """Vertical position: embeddings at 0, layer L's attention at L + 0.75, its MLP at L + 1.25, logits on top."""
    kind = node["feature_type"]
    if kind == "embedding":
        return 0.0
    if kind == "logit":
        return n_layers + 1.0
    layer = int(node["layer"])
    return layer + (0.75 if "attention" in kind else 1.25)


def node_positions(data: dict[str, Any]) -> dict[str, tuple[float, float]]:
    nodes = data["nodes"]
    layers = [int(n["layer"]) for n in nodes if str(n["layer"]).lstrip("-").isdigit() and n["feature_type"] != "logit"]
    n_layers = max(layers) + 1 if layers else 1
    cells: dict[tuple[int, float], list[dict]] = {}
    for n in nodes:
        cells.setdefault((n["ctx_idx"], _row(n, n_layers)), []).append(n)
    pos = {}
    for (ctx, row), members in cells.items():
        members.sort(key=lambda n: str(n["node_id"]))
        k = len(members)
        for i, n in enumerate(members):
            offset = 0.0 if k == 1 else (i / (k - 1) - 0.5) * 0.7
            pos[n["node_id"]] = (ctx + offset, row)
    return pos


def graph_figure(data: dict[str, Any], max_links: int = 2000, title: str | None = None) -> go.Figure:
    """The figure of a graph JSON; draws the `max_links` strongest links."""
    pos = node_positions(data)
    links = sorted(data["links"], key=lambda e: -abs(e["weight"]))[:max_links]
    fig = go.Figure()
    if links:
        biggest = abs(links[0]["weight"]) or 1.0
        # One trace per (sign, width bin): thousands of separate line traces would make plotly crawl.
        groups: dict[tuple[bool, int], tuple[list, list]] = {}
        for e in links:
            if e["source"] not in pos or e["target"] not in pos:
                continue
            b = min(N_WIDTH_BINS - 1, int(abs(e["weight"]) / biggest * N_WIDTH_BINS))
            xs, ys = groups.setdefault((e["weight"] >= 0, b), ([], []))
            (x0, y0), (x1, y1) = pos[e["source"]], pos[e["target"]]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
        for (positive, b), (xs, ys) in sorted(groups.items()):
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                     line={"width": 0.5 + 1.5 * b, "color": SIGN_COLOURS[positive]}))
    by_type: dict[str, list[dict]] = {}
    for n in data["nodes"]:
        by_type.setdefault(n["feature_type"], []).append(n)
    for kind, members in by_type.items():
        text = [f"{n['node_id']}<br>{n.get('clerp') or ''}<br>activation: {n.get('activation')}"
                f"<br>influence: {n.get('influence')}" for n in members]
        fig.add_trace(go.Scatter(
            x=[pos[n["node_id"]][0] for n in members], y=[pos[n["node_id"]][1] for n in members], mode="markers",
            name=kind, text=text, hoverinfo="text", customdata=[n["node_id"] for n in members],
            marker={"size": 9, "color": NODE_COLOURS.get(kind, "#bcbd22"), "line": {"width": 0.5, "color": "white"}}))
    tokens = data["metadata"].get("prompt_tokens", [])
    fig.update_layout(
        title=title or data["metadata"].get("prompt", ""), height=600, plot_bgcolor="white",
        xaxis={"tickmode": "array", "tickvals": list(range(len(tokens))), "ticktext": tokens, "title": "token position"},
        yaxis={"title": "layer (embeddings at 0, logits on top)", "zeroline": False},
        legend={"orientation": "h", "y": -0.2})
    return fig


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
    fig.update_layout(title="activation histogram (active tokens)", height=240, bargap=0.05,
                      margin=dict(l=30, r=10, t=40, b=30), xaxis_title="activation", yaxis_title="tokens")
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
