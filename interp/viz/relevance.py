"""Plotly figures for relevance: pixel maps, pixel-pair maps, token relevance, pixel-flipping curves.

Relevance is drawn on a diverging red (positive: evidence for the output) / blue (against) scale,
symmetric around 0 so that white always means "no relevance". `relevance_png` renders the same
picture without plotly's image export, for `interp relevance --out FILE.png`.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

SCALE = "RdBu_r"


def _array(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def _limit(values: np.ndarray) -> float:
    limit = float(np.abs(values).max()) if values.size else 0.0
    return limit if limit > 0 else 1.0


def pixel_relevance_figure(image, relevance, title: str = "") -> go.Figure:
    """The image (grey) beside its relevance map (red for, blue against), both (H, W)."""
    image, relevance = _array(image), _array(relevance)
    limit = _limit(relevance)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("input", "relevance"), horizontal_spacing=0.08)
    fig.add_trace(go.Heatmap(z=image, colorscale="gray_r", showscale=False,
                             hovertemplate="row %{y}, col %{x}<br>value %{z:.3f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=relevance, colorscale=SCALE, zmin=-limit, zmax=limit, colorbar=dict(title="R"),
                             hovertemplate="row %{y}, col %{x}<br>R %{z:.4g}<extra></extra>"), 1, 2)
    for col in (1, 2):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col,
                         showticklabels=False)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    fig.update_layout(title=title, height=380, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def method_maps_figure(image, named_maps: dict[str, Sequence]) -> go.Figure:
    """The input, then one relevance map per method (title → map), each on its own symmetric red/blue scale."""
    fig = make_subplots(rows=1, cols=1 + len(named_maps), subplot_titles=["input", *named_maps],
                        horizontal_spacing=0.02)
    fig.add_trace(go.Heatmap(z=image, colorscale="gray_r", showscale=False), 1, 1)
    for col, values in enumerate(named_maps.values(), start=2):
        limit = max(abs(v) for row in values for v in row) or 1.0
        fig.add_trace(go.Heatmap(z=values, colorscale=SCALE, zmin=-limit, zmax=limit, showscale=False,
                                 hovertemplate="row %{y}, col %{x}<br>R %{z:.4g}<extra></extra>"), 1, col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    for col in range(1, 2 + len(named_maps)):
        fig.update_yaxes(scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def pair_relevance_figure(pairs, image_shape: Sequence[int] | None = None, pixel: int | None = None,
                          title: str = "") -> go.Figure:
    """Pair relevance R_ij of a bilinear model.

    With `pixel` and `image_shape`: row `pixel` of R drawn as an image (which pixels it interacts
    with, and how). Otherwise the whole matrix R_ij (features × features).
    """
    pairs = _array(pairs)
    if pixel is not None and image_shape is not None:
        h, w = image_shape
        row = pairs[pixel, :h * w].reshape(h, w)
        limit = _limit(row)
        fig = go.Figure(go.Heatmap(z=row, colorscale=SCALE, zmin=-limit, zmax=limit, colorbar=dict(title="R_ij"),
                                   hovertemplate="row %{y}, col %{x}<br>R_ij %{z:.4g}<extra></extra>"))
        r, c = divmod(pixel, w)
        fig.add_trace(go.Scatter(x=[c], y=[r], mode="markers", marker=dict(symbol="x", size=12, color="black"),
                                 name=f"pixel {pixel}", hoverinfo="skip"))
        fig.update_yaxes(autorange="reversed", scaleanchor="x")
        fig.update_layout(title=title or f"pair relevance with pixel ({r}, {c})", height=420, showlegend=False)
        return fig
    limit = _limit(pairs)
    fig = go.Figure(go.Heatmap(z=pairs, colorscale=SCALE, zmin=-limit, zmax=limit, colorbar=dict(title="R_ij"),
                               hovertemplate="i %{y}, j %{x}<br>R_ij %{z:.4g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(title=title or "pair relevance R_ij", height=520)
    return fig


def token_relevance_figure(tokens: Sequence[str], relevance, title: str = "") -> go.Figure:
    """One bar per token (position order), red for positive relevance, blue for negative."""
    values = _array(relevance)
    labels = [f"{i}:{t!r}" if isinstance(t, str) else f"{i}:{t}" for i, t in enumerate(tokens)]
    limit = _limit(values)
    fig = go.Figure(go.Bar(x=labels, y=values, marker=dict(color=values, colorscale=SCALE, cmin=-limit, cmax=limit),
                           hovertemplate="%{x}<br>R %{y:.4g}<extra></extra>"))
    fig.update_layout(title=title or "token relevance", xaxis_title="token", yaxis_title="relevance",
                      height=380, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def flipping_curves_figure(curves: dict[str, Sequence[float]], pixels_per_step: int, aopc: dict[str, float] | None = None,
                           title: str = "") -> go.Figure:
    """Mean explained logit against the number of pixels flipped, one line per method."""
    fig = go.Figure()
    for method, curve in curves.items():
        label = method if aopc is None or method not in aopc else f"{method} (AOPC {aopc[method]:.3f})"
        fig.add_trace(go.Scatter(x=[k * pixels_per_step for k in range(len(curve))], y=list(curve), mode="lines",
                                 name=label))
    fig.update_layout(title=title or "pixel flipping (most relevant first)", xaxis_title="pixels flipped",
                      yaxis_title="mean logit of the explained class", height=400)
    return fig


def relevance_png(image, relevance, scale: int = 8) -> bytes:
    """PNG bytes: the image (grey) and its relevance map (red/blue, symmetric), side by side."""
    from PIL import Image

    image, relevance = _array(image), _array(relevance)
    grey = np.clip(image / (image.max() if image.max() > 0 else 1.0), 0, 1)
    left = np.repeat((255 * (1 - grey))[..., None], 3, axis=2)
    r = relevance / _limit(relevance)
    right = np.ones(relevance.shape + (3,)) * 255
    pos, neg = np.clip(r, 0, 1), np.clip(-r, 0, 1)
    right[..., 1] -= 255 * (pos + neg)  # white → red (positive) or blue (negative)
    right[..., 2] -= 255 * pos
    right[..., 0] -= 255 * neg
    gap = np.full((image.shape[0], 1, 3), 255.0)
    both = np.concatenate([left, gap, right], axis=1).clip(0, 255).astype(np.uint8)
    picture = Image.fromarray(both).resize((both.shape[1] * scale, both.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
