"""Plotly figures for bilinear analyses (shared by the app and `interp eigen --out-html`).

Each function takes a Result (or plain lists) from `interp.bilinear` and returns a `go.Figure`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.io import atomic_write_text

DIVERGING = "RdBu"


def _image(vector: Sequence[float], shape: tuple[int, int]) -> list[list[float]]:
    """First h·w entries of a vector (the constant coordinate under bias is dropped) as rows, top row first."""
    h, w = shape
    values = list(vector)[: h * w]
    return [values[r * w:(r + 1) * w] for r in range(h)]


def spectrum_figure(eigenvalues: Sequence[float], title: str = "Eigenvalue spectrum") -> go.Figure:
    """Eigenvalues by |λ| rank, positive and negative coloured apart."""
    ranks = list(range(1, len(eigenvalues) + 1))
    colors = ["#c0392b" if v >= 0 else "#2471a3" for v in eigenvalues]
    fig = go.Figure(go.Bar(x=ranks, y=list(eigenvalues), marker_color=colors,
                           hovertemplate="rank %{x}<br>λ = %{y:.4g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="rank by |λ|", yaxis_title="eigenvalue λ", bargap=0.1)
    return fig


def class_spectra_figure(classes: Sequence[dict], title: str = "Top eigenvalues per class") -> go.Figure:
    """A heatmap: one row per class, its top eigenvalues by |λ| rank across (red positive, blue negative, on
    one symmetric scale); classes as in EigenReport.to_dict()['classes']. (Lines of alternating-sign
    eigenvalues would cross one another in a zigzag.)"""
    rows = [list(c["top_eigenvalues"]) for c in classes]
    width = max((len(r) for r in rows), default=0)
    z = [r + [None] * (width - len(r)) for r in rows]
    limit = max((abs(v) for r in rows for v in r), default=1.0) or 1.0
    names = [f"{c['class']}: {c['name']} (eff. rank {c['effective_rank']:.1f})" for c in classes]
    fig = go.Figure(go.Heatmap(z=z, x=list(range(1, width + 1)), y=names, zmin=-limit, zmax=limit,
                               colorscale=DIVERGING, reversescale=True, colorbar={"title": "λ"},
                               hovertemplate="%{y}<br>rank %{x}: λ = %{z:.4g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="rank by |λ|", yaxis={"autorange": "reversed"},
                      height=max(320, 28 * len(classes) + 140))
    return fig


def eigenvector_grid(eigenvectors: Sequence[Sequence[float]], eigenvalues: Sequence[float] | None = None,
                     shape: tuple[int, int] = (28, 28), columns: int = 4, title: str = "Top eigenvectors") -> go.Figure:
    """Eigenvectors as images on a shared symmetric colour scale (red positive, blue negative)."""
    n = len(eigenvectors)
    rows = max(1, math.ceil(n / columns))
    titles = [f"λ = {eigenvalues[i]:.3g}" if eigenvalues is not None else f"#{i + 1}" for i in range(n)]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.06)
    limit = max((abs(v) for vec in eigenvectors for v in list(vec)[: shape[0] * shape[1]]), default=1.0) or 1.0
    for i, vec in enumerate(eigenvectors):
        fig.add_trace(go.Heatmap(z=_image(vec, shape), zmin=-limit, zmax=limit, colorscale=DIVERGING, reversescale=True,
                                 showscale=i == 0, hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>"),
                      row=i // columns + 1, col=i % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(title=title, height=220 * rows + 80, width=220 * columns + 80)
    return square_images(fig)


def square_images(fig: go.Figure) -> go.Figure:
    """Give every subplot of an image grid square pixels: each y axis is scaled to its own x axis
    (anchoring every y axis to the first x axis would draw only the first image square)."""
    for name in list(fig.layout):
        if name.startswith("yaxis"):
            fig.layout[name].scaleanchor = f"x{name.removeprefix('yaxis')}"
    return fig


def truncation_figure(truncation: dict[str, float], full_accuracy: float,
                      title: str = "Accuracy with each class's top-k eigencomponents") -> go.Figure:
    ks = sorted(truncation, key=int)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[int(k) for k in ks], y=[truncation[k] for k in ks], mode="lines+markers",
                             name="truncated", hovertemplate="k = %{x}<br>accuracy %{y:.4f}<extra></extra>"))
    fig.add_hline(y=full_accuracy, line_dash="dash", annotation_text=f"full model {full_accuracy:.4f}")
    # Ticks at the k measured, written out (plotly's log axis labels minor ticks "2, 5" without the decade).
    fig.update_layout(title=title, xaxis_title="k (components per class, by |λ|)", yaxis_title="test accuracy",
                      xaxis={"type": "log", "tickmode": "array", "tickvals": [int(k) for k in ks],
                             "ticktext": [str(int(k)) for k in ks]})
    return fig


def mask_figure(mask: dict, shape: tuple[int, int] = (28, 28)) -> go.Figure:
    """The adversarial mask as an image, beside the accuracy it costs vs the permuted mask (MaskResult dict)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                        subplot_titles=(f"mask towards {mask['target_name'] or mask['target']} (norm {mask['norm']:g})",
                                        "non-target test images"))
    limit = max(abs(v) for v in mask["mask"]) or 1.0
    fig.add_trace(go.Heatmap(z=_image(mask["mask"], shape), zmin=-limit, zmax=limit, colorscale=DIVERGING,
                             reversescale=True, showscale=False), row=1, col=1)
    names = ["clean", "eigenvector mask", "permuted mask"]
    fig.add_trace(go.Bar(x=names, y=[mask["clean_accuracy"], mask["masked_accuracy"], mask["permuted_accuracy"]],
                         name="accuracy"), row=1, col=2)
    fig.add_trace(go.Bar(x=names, y=[mask["clean_to_target"], mask["masked_to_target"], mask["permuted_to_target"]],
                         name="classified as target"), row=1, col=2)
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(barmode="group", title="Adversarial mask from eigenvectors")
    return fig


def hosvd_figure(hosvd: dict, shape: tuple[int, int] = (28, 28), n: int = 8) -> go.Figure:
    """The input-mode singular vectors of the tensor as images (HOSVDResult dict)."""
    return eigenvector_grid(hosvd["input_singular_vectors"][:n], hosvd["input_singular_values"][:n], shape,
                            title="HOSVD: input directions the layer reads most (σ)")


def report_figures(report: dict, shape: tuple[int, int], top_vectors: dict[str, list] | None = None) -> list[go.Figure]:
    """Every figure for an EigenReport dict, in reading order."""
    figures = [truncation_figure(report["truncation"], report["full_accuracy"]), class_spectra_figure(report["classes"])]
    if "direction" in report:
        d = report["direction"]
        figures.append(spectrum_figure(d["top_eigenvalues"], title=f"Spectrum of Q for direction {d['label']}"))
        if d["top_eigenvectors"]:
            figures.append(eigenvector_grid(d["top_eigenvectors"], d["top_eigenvalues"], shape,
                                            title=f"Top eigenvectors for direction {d['label']}"))
    for name, (vectors, values) in (top_vectors or {}).items():
        figures.append(eigenvector_grid(vectors, values, shape, title=f"Top eigenvectors of class {name}"))
    if "hosvd" in report:
        figures.append(hosvd_figure(report["hosvd"], shape))
    if "mask" in report:
        figures.append(mask_figure(report["mask"], shape))
    return figures


def write_html(path: str | Path, figures: Sequence[go.Figure], title: str = "interp") -> None:
    """All figures in one self-contained HTML page (plotly.js inlined once), written atomically."""
    parts = [f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"]
    for i, fig in enumerate(figures):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
