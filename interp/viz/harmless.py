"""Plotly figures for harmless perturbations (shared by the app and the CLI).

Each function takes a Result from `interp.harmless` and returns a `go.Figure`.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.harmless.apply import HiddenImage, PerturbationCheck
from interp.harmless.subspace import HarmlessSubspace


def _heatmap(image: Sequence[Sequence[float]], colorscale: str, symmetric: bool = False) -> go.Heatmap:
    flat = [v for row in image for v in row]
    bound = max(abs(v) for v in flat) or 1.0
    zmin, zmax = (-bound, bound) if symmetric else (min(flat), max(flat))
    # Rows top to bottom as in the image; the y axis is reversed by the caller.
    return go.Heatmap(z=[list(r) for r in image], colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=False,
                      hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra></extra>")


def _grey(image: Sequence[Sequence[float]]) -> go.Heatmap:
    """An image in grey from its own minimum to its own maximum, as the secret is drawn: a projection onto a
    null space has negative pixels and a few large ones, and on a symmetric red-blue scale it reads as noise."""
    flat = sorted(v for row in image for v in row)
    lo, hi = flat[int(0.01 * (len(flat) - 1))], flat[int(0.99 * (len(flat) - 1))]  # 1% clipped each side
    return go.Heatmap(z=[list(r) for r in image], colorscale="Greys", zmin=lo,
                      zmax=hi if hi > lo else lo + 1.0, showscale=False,
                      hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra></extra>")


def hidden_image_figure(hidden: HiddenImage, title: str | None = None) -> go.Figure:
    """Carrier, secret, the secret projected into the harmless space (the perturbation's direction),
    the result at each scale, and what projecting the largest result gives back. The perturbation and the
    recovered image are drawn alike (grey like the secret, each from its minimum to its maximum), so that a recovery with
    cosine 1 looks the same as the perturbation it recovers."""
    panels = [("carrier", hidden.carrier, "Greys", False), ("secret", hidden.secret, "Greys", False),
              ("perturbation<br>(projected secret)", hidden.projected_secret, "grey", False)]
    panels += [(f"carrier + {s.scale:g}×‖carrier‖<br>perturbation", s.result_image, "RdBu", True) for s in hidden.scales]
    panels.append(("recovered<br>(projection of the result)", hidden.recovered, "grey", False))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.03)
    for col, (_, image, scale, symmetric) in enumerate(panels, start=1):
        trace = _grey(image) if scale == "grey" else _heatmap(image, scale, symmetric)
        fig.add_trace(trace, row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor=f"x{col}", row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    fig.update_annotations(font_size=11)  # the subplot titles, two short lines each
    kind = "exact null space" if hidden.exact else "approximate space (not exactly harmless)"
    changes = ", ".join(f"{s.scale:g}×: max |Δlogit| = {s.max_abs_logit_change:.2g}" for s in hidden.scales)
    fig.update_layout(title=title or f"Hidden image in the {kind} of {hidden.layer} (dim {hidden.dimension}); {changes}",
                      height=300, margin=dict(t=100, l=10, r=10, b=10))
    return fig


def _logit_bars(before: Sequence[float], afters: dict[str, Sequence[float]], class_names: Sequence[str] | None,
                title: str) -> go.Figure:
    names = list(class_names) if class_names else [str(i) for i in range(len(before))]
    fig = go.Figure(go.Bar(x=names, y=list(before), name="before", marker_color="#7f8c8d"))
    for (label, values), color in zip(afters.items(), ["#c0392b", "#2471a3", "#27ae60", "#8e44ad"]):
        fig.add_trace(go.Bar(x=names, y=list(values), name=label, marker_color=color))
    fig.update_layout(barmode="group", title=title, xaxis_title="class", yaxis_title="logit")
    return fig


def logits_figure(check: PerturbationCheck, class_names: Sequence[str] | None = None) -> go.Figure:
    """Logits at x and at x + δ, side by side per class."""
    after = {f"after (‖δ‖ = {check.magnitude:g}×‖x‖)": check.logits_after}
    return _logit_bars(check.logits_before, after, class_names,
                       f"Logits before and after: max |Δlogit| = {check.max_abs_logit_change:.3g} "
                       f"(max |logit| = {check.max_abs_logit:.3g})")


def hidden_logits_figure(hidden: HiddenImage, class_names: Sequence[str] | None = None) -> go.Figure:
    """Logits of the carrier and of carrier + hidden secret at each scale."""
    afters = {f"with secret at {s.scale:g}×‖carrier‖": s.logits_after for s in hidden.scales}
    worst = max(s.max_abs_logit_change for s in hidden.scales)
    return _logit_bars(hidden.logits_before, afters, class_names,
                       f"Logits with the hidden image: max |Δlogit| = {worst:.3g} "
                       f"(max |logit| = {hidden.max_abs_logit:.3g})")


def singular_values_figure(space: HarmlessSubspace) -> go.Figure:
    """The layer's singular values (log scale) with the tolerance below which they count as zero."""
    values = [max(v, 1e-300) for v in space.singular_values]
    fig = go.Figure(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name="σ",
                               marker=dict(size=3)))
    fig.add_hline(y=max(space.tolerance, 1e-300), line_dash="dash", line_color="#c0392b",
                  annotation_text=f"tolerance {space.tolerance:.2g}")
    fig.update_layout(title=f"Singular values of {space.layer}: rank {space.rank} of {space.d_in}, "
                            f"harmless dimension {space.null_dimension}", xaxis_title="index",
                      yaxis_title="singular value σ", yaxis_type="log")
    return fig


def basis_images_figure(space: HarmlessSubspace, n: int = 8) -> go.Figure:
    """The first n basis directions of the space as images (needs `space.input_shape`)."""
    h, w = space.input_shape or (space.d_in, 1)
    n = min(n, space.dimension)
    fig = make_subplots(rows=1, cols=max(n, 1), horizontal_spacing=0.01)
    for k in range(n):
        image = space.basis[:, k].reshape(h, w).tolist()
        fig.add_trace(_heatmap(image, "RdBu", symmetric=True), row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=k + 1)
        fig.update_xaxes(showticklabels=False, row=1, col=k + 1)
    fig.update_layout(title=f"Harmless directions of {space.layer} ({'exact' if space.exact else 'approximate'})",
                      height=200, margin=dict(t=50, l=10, r=10, b=10))
    return fig
