"""Plotly figures for language models and their dictionaries (shared by the app and the CLI)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go


def task_accuracy_figure(evaluations: dict[str, dict[str, Any]]) -> go.Figure:
    """Grouped bars: held-out accuracy per planted task, one group per model.
    `evaluations` maps a model name to the dict of `evaluate_lm_tasks(...).to_dict()`."""
    fig = go.Figure()
    for name, evaluation in evaluations.items():
        tasks = {t: v for t, v in evaluation["tasks"].items() if isinstance(v.get("accuracy"), (int, float))}
        fig.add_bar(name=name, x=list(tasks), y=[v["accuracy"] for v in tasks.values()])
    fig.update_layout(barmode="group", yaxis=dict(title="held-out accuracy", range=[0, 1.05]),
                      title="Held-out task accuracy of the language models", legend_title="model")
    return fig


def dictionary_layers_figure(evaluation: dict[str, Any], title: str = "Dictionaries") -> go.Figure:
    """Per-layer CE loss recovered, 1 − FVU and live fraction, with L0 on a second axis."""
    layers = evaluation["layers"]
    x = [f"layer {row['layer']}" for row in layers]
    fig = go.Figure()
    fig.add_bar(name="CE loss recovered", x=x, y=[row["ce_loss_recovered"] for row in layers])
    fig.add_bar(name="1 − FVU", x=x, y=[1 - row["fvu"] for row in layers])
    fig.add_bar(name="live fraction", x=x, y=[1 - row["dead_fraction"] for row in layers])
    fig.add_scatter(name="L0", x=x, y=[row["l0"] for row in layers], mode="markers+lines", yaxis="y2")
    fig.update_layout(barmode="group", title=f"{title} (all spliced: CE recovered "
                                             f"{evaluation['ce_loss_recovered_all']:.3f})",
                      yaxis=dict(title="fraction", range=[0, 1.05]),
                      yaxis2=dict(title="L0", overlaying="y", side="right", rangemode="tozero"),
                      # The legend above the plot: at the right it would sit on the L0 axis.
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0.0, xanchor="left"),
                      margin=dict(t=90))
    return fig


def learning_curve_figure(curve: list[dict[str, float]], title: str = "Held-out tasks over training") -> go.Figure:
    """Held-out task accuracy against training step (an LM's `learning_curve` from `--eval-every`), with the
    training loss on a second axis."""
    steps = [point["step"] for point in curve]
    fig = go.Figure()
    tasks = [key for key in curve[0] if key not in ("step", "loss", "ioi_logit_diff")] if curve else []
    for task in tasks:
        fig.add_scatter(name=task, x=steps, y=[point.get(task) for point in curve], mode="lines+markers")
    fig.add_scatter(name="train loss", x=steps, y=[point.get("loss") for point in curve], mode="lines",
                    line=dict(dash="dot", color="gray"), yaxis="y2")
    fig.update_layout(title=title, xaxis_title="step", yaxis=dict(title="held-out accuracy", range=[0, 1.05]),
                      yaxis2=dict(title="loss", overlaying="y", side="right", rangemode="tozero"))
    return fig
