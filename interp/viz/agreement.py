"""Weights and activations side by side for one feature node (`interp.graph.agreement.weights_vs_edges`)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def weights_vs_edges_figure(result: dict[str, Any]) -> go.Figure:
    """Two bar charts side by side: left, the input pairs the bilinear MLP's weights say write the feature's
    direction on this prompt (score = weight coefficient × the two inputs' activations); right, the graph's
    strongest incoming edges. Green bars are positive, red negative; the title gives the top-k overlap of the
    per-input shares with the edges and their Spearman correlation. `result` is `WeightsVsEdges.to_dict()`."""
    pairs = result["pairs"][::-1]            # largest at the top of a horizontal bar chart
    edges = result["edges"][::-1]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.25,
                        subplot_titles=("weights: input pairs × activations", "graph: incoming edges"))

    def colors(values: list[float]) -> list[str]:
        return ["#2ca02c" if v >= 0 else "#d62728" for v in values]

    scores = [p["score"] for p in pairs]
    fig.add_bar(x=scores, y=[f"{p['a']} × {p['b']}" if p["a"] != p["b"] else f"{p['a']}²" for p in pairs],
                orientation="h", marker_color=colors(scores), name="pair score",
                customdata=[p["coefficient"] for p in pairs],
                hovertemplate="%{y}<br>score %{x:.4g}<br>coefficient (weights alone) %{customdata:.4g}<extra></extra>",
                row=1, col=1)
    weights = [e["weight"] for e in edges]
    fig.add_bar(x=weights, y=[e["source"] for e in edges], orientation="h", marker_color=colors(weights),
                name="edge", hovertemplate="%{y}<br>edge %{x:.4g}<extra></extra>", row=1, col=2)
    fig.update_xaxes(title_text="contribution to uᵀ(MLP output)", row=1, col=1)
    fig.update_xaxes(title_text="edge weight", row=1, col=2)
    fig.update_layout(showlegend=False, height=max(320, 28 * max(len(pairs), len(edges)) + 140),
                      title=(f"{result['node']}: {result['output']} — top-{result['k']} overlap "
                             f"{result['top_overlap']:.2f}, Spearman {result['spearman']:.2f}"),
                      margin={"l": 10, "r": 10, "t": 80, "b": 40})
    return fig
