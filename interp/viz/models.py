"""Plotly figures of the checkpoint catalog (the app's Models page): headline metrics side by side."""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from interp.catalog import CheckpointInfo, task_metrics
from interp.viz.lm import task_accuracy_figure

COMPACT = dict(height=320, margin=dict(l=40, r=20, t=50, b=40))


def classifier_accuracy_figure(checkpoints: Sequence[CheckpointInfo]) -> go.Figure | None:
    """Bars of the test accuracy of every checkpoint that records one; None when none does."""
    scored = [c for c in checkpoints if isinstance(c.metrics.get("test_accuracy"), (int, float))]
    if not scored:
        return None
    accuracies = [c.metrics["test_accuracy"] for c in scored]
    fig = go.Figure(go.Bar(x=[c.name for c in scored], y=accuracies, text=[f"{a:.3f}" for a in accuracies],
                           textposition="outside", marker_color="#4C78A8"))
    fig.update_layout(title="Test accuracy of the image classifiers", yaxis_range=[0, 1.05], **COMPACT)
    return fig


def lm_tasks_figure(checkpoints: Sequence[CheckpointInfo]) -> go.Figure | None:
    """Held-out task accuracy of every checkpoint that records task metrics; None when none does."""
    evaluations = {c.name: {"tasks": task_metrics(c.metrics)} for c in checkpoints if task_metrics(c.metrics)}
    if not evaluations:
        return None
    fig = task_accuracy_figure(evaluations)
    fig.update_layout(**COMPACT)
    return fig
