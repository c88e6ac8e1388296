"""The figures and small readings the app's pages used to build inline, now in `interp` (issue 15):
each figure carries the traces and data the page showed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from interp import catalog
from interp.viz import graph as graph_viz
from interp.viz.bilinear import eigenvector_grid
from interp.viz.models import classifier_accuracy_figure, lm_tasks_figure
from interp.viz.relevance import method_maps_figure


def checkpoint(name: str, metrics: dict, kind: str = "classifier") -> catalog.CheckpointInfo:
    return catalog.CheckpointInfo(name=name, path=Path("/nowhere") / name, kind=kind, config={"arch": "bilinear"},
                                  metrics=metrics, size_bytes=2_500_000)


CHECKPOINTS = [checkpoint("a", {"test_accuracy": 0.9, "n_params": 10}),
               checkpoint("b", {"learning_curve": []}),
               checkpoint("lm", {"eval": {"tasks": {"ioi": {"accuracy": 0.75}, "induction": {"accuracy": 1.0}}}}, "lm"),
               checkpoint("c", {"test_accuracy": 0.5})]


def test_classifier_accuracy_figure_bars_every_scored_checkpoint():
    fig = classifier_accuracy_figure(CHECKPOINTS)
    (bar,) = fig.data
    assert bar.type == "bar" and list(bar.x) == ["a", "c"] and list(bar.y) == [0.9, 0.5]
    assert list(bar.text) == ["0.900", "0.500"]
    assert fig.layout.height == 320 and tuple(fig.layout.yaxis.range) == (0, 1.05)
    assert classifier_accuracy_figure(CHECKPOINTS[1:3]) is None


def test_lm_tasks_figure_groups_task_accuracy_per_model():
    fig = lm_tasks_figure(CHECKPOINTS)
    (bars,) = fig.data
    assert bars.name == "lm" and list(bars.x) == ["ioi", "induction"] and list(bars.y) == [0.75, 1.0]
    assert fig.layout.height == 320
    assert lm_tasks_figure(CHECKPOINTS[:2]) is None


def test_checkpoint_table_has_headline_metrics_and_task_accuracy():
    table = catalog.checkpoint_table(CHECKPOINTS)
    assert [row["name"] for row in table] == ["a", "b", "lm", "c"]
    assert table[0] == {"name": "a", "kind": "classifier", "arch": "bilinear", "size (MB)": 2.5, "test_accuracy": 0.9,
                        "n_params": 10}
    assert table[2]["ioi accuracy"] == 0.75 and table[2]["induction accuracy"] == 1.0


def test_activation_histogram_spreads_bins_over_the_max():
    fig = graph_viz.activation_histogram_figure({"histogram": [5, 3, 1, 0], "act_max": 2.0})
    (bar,) = fig.data
    assert list(bar.x) == [0.25, 0.75, 1.25, 1.75] and list(bar.y) == [5, 3, 1, 0]
    # No title inside the figure (the chart's toolbar would cover it): the page names the chart above it.
    assert fig.layout.title.text is None and fig.layout.xaxis.title.text == "activation (active tokens)"


def test_highlighted_context_windows_and_escapes():
    example = {"train_token_ind": 20, "tokens": [f"t{i}" for i in range(30)] + ["<b>"],
               "tokens_acts_list": [0.0] * 20 + [2.0] + [1.0] * 10}
    html = graph_viz.highlighted_context(example, peak=2.0)
    assert html.count("<span") == 16 and "t8" in html and "t7<" not in html and "t23" in html and "t24" not in html
    assert "rgba(255,140,0,1.00)" in html and "rgba(255,140,0,0.50)" in html
    tail = {"train_token_ind": 30, "tokens": [f"t{i}" for i in range(30)] + ["<b>"],
            "tokens_acts_list": [0.0] * 31}
    assert "&lt;b&gt;" in graph_viz.highlighted_context(tail, peak=0.0)


def test_ablation_figure_shows_top_and_most_moved_logits():
    vocab = [f"w{i}" for i in range(12)]
    clean = [float(i) for i in range(12)]  # w11 the top logit
    new = list(clean)
    new[0] = 20.0  # the bottom token jumps to the top
    fig = graph_viz.ablation_figure(clean, new, vocab, title="t", n_top=3, n_moved=1)
    before, after = fig.data
    assert (before.name, after.name) == ("before", "after ablation")
    assert list(before.x) == ["w11", "w10", "w9", "w0"] and list(before.y) == [11.0, 10.0, 9.0, 0.0]
    assert list(after.y) == [11.0, 10.0, 9.0, 20.0]
    assert fig.layout.barmode == "group" and fig.layout.title.text == "t"
    assert graph_viz.logit_shift(clean, new, vocab) == {"max_change": 20.0, "top_before": "w11", "top_after": "w0"}


def test_node_order_and_link_rows():
    nodes = [{"node_id": "E_1_0", "feature_type": "embedding", "influence": 0.1},
             {"node_id": "0_5_1", "feature_type": "cross layer transcoder", "influence": 0.6},
             {"node_id": "1_2_1", "feature_type": "cross layer transcoder", "influence": 0.2},
             {"node_id": "A0_3_1", "feature_type": "attention sae feature"}]
    assert catalog.node_order(nodes) == ["1_2_1", "0_5_1", "A0_3_1", "E_1_0"]
    by_id = {n["node_id"]: {**n, "clerp": n["node_id"].lower()} for n in nodes}
    rows = catalog.link_rows([{"source": "0_5_1", "weight": 0.123456}, {"source": "gone", "weight": -1.0}], "source",
                             by_id)
    assert rows == [{"source": "0_5_1", "type": "cross layer transcoder", "label": "0_5_1", "weight": 0.1235},
                    {"source": "gone", "type": "", "label": "", "weight": -1.0}]


def test_method_maps_figure_puts_the_input_then_one_map_per_method():
    image = [[0.0, 1.0], [1.0, 0.0]]
    maps = {"A": [[1.0, -2.0], [0.0, 0.5]], "B": [[0.0, 0.0], [0.0, 0.0]]}
    fig = method_maps_figure(image, maps)
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    assert [a.text for a in fig.layout.annotations] == ["input", "A", "B"]
    assert fig.data[1].zmin == -2.0 and fig.data[1].zmax == 2.0 and fig.data[2].zmax == 1.0  # a blank map: scale 1
    assert [fig.layout[f"yaxis{s}"].scaleanchor for s in ("", "2", "3")] == ["x", "x2", "x3"]


def test_eigenvector_grid_draws_every_image_square():
    vectors = [[float(i)] * 4 for i in range(1, 6)]
    fig = eigenvector_grid(vectors, [1.0, -1.0, 0.5, 0.2, 0.1], (2, 2), columns=3)
    assert len(fig.data) == 5
    anchors = {name: fig.layout[name].scaleanchor for name in fig.layout if name.startswith("yaxis")}
    assert anchors == {"yaxis": "x", **{f"yaxis{i}": f"x{i}" for i in range(2, 7)}}


def test_method_maps_and_pair_helpers_on_a_tiny_bilinear_classifier():
    from interp.bilinear.analysis import classifier_direction_spectrum, direction_spectrum
    from interp.bilinear.core import classifier_weights, parse_direction
    from interp.models.bilinear import BilinearClassifier
    from interp.relevance.engine import bilinear_pair_relevance
    from interp.relevance.evaluate import method_maps

    torch.manual_seed(0)
    model = BilinearClassifier(d_in=16, n_classes=3, d_hidden=6).eval()
    image = torch.rand(4, 4)
    maps = method_maps(model, image)
    logits = model(image.reshape(1, -1))[0]
    assert maps.predicted == int(logits.argmax()) == maps.target
    assert maps.logits == pytest.approx(logits.tolist())
    assert all(len(getattr(maps, k)) == 4 and len(getattr(maps, k)[0]) == 4
               for k in ("dtd", "gradient_x_input", "gradient", "epsilon"))
    assert maps.dtd_total == pytest.approx(sum(map(sum, maps.dtd)))
    assert method_maps(model, image, target=2).target == 2
    pair = bilinear_pair_relevance(model, image, 1)
    assert pair.total == pytest.approx(float(pair.pairs.sum()))
    assert pair.strongest == int(pair.relevance.abs().argmax())
    spectrum = classifier_direction_spectrum(model, "0-2", ["a", "b", "c"], n_values=5, n_vectors=2)
    weights = classifier_weights(model)
    expected = direction_spectrum(weights, parse_direction("0-2", 3, ["a", "b", "c"]), label="0-2", n_values=5,
                                  n_vectors=2)
    assert spectrum.to_dict() == expected.to_dict()


def test_class_spectra_are_a_heatmap_and_truncation_ticks_are_the_ks():
    from interp.viz.bilinear import class_spectra_figure, truncation_figure

    classes = [{"class": i, "name": f"c{i}", "effective_rank": 2.0, "top_eigenvalues": [1.0, -0.8, 0.5][: 3 - i]}
               for i in range(3)]
    (heat,) = class_spectra_figure(classes).data
    assert heat.type == "heatmap" and len(heat.y) == 3 and list(heat.z[2]) == [1.0, None, None]
    assert heat.zmin == -1.0 and heat.zmax == 1.0
    fig = truncation_figure({"1": 0.5, "2": 0.6, "5": 0.7, "10": 0.8, "20": 0.85, "50": 0.9}, 0.9)
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.ticktext) == ["1", "2", "5", "10", "20", "50"]


def test_hidden_image_draws_perturbation_and_recovery_alike():
    from types import SimpleNamespace

    from interp.viz.harmless import hidden_image_figure

    image = [[0.0, 1.0], [2.0, -9.0]]
    scale = SimpleNamespace(scale=10.0, result_image=image, max_abs_logit_change=0.0)
    hidden = SimpleNamespace(carrier=image, secret=image, projected_secret=image, recovered=image, scales=[scale],
                             exact=True, layer="fc", dimension=3)
    fig = hidden_image_figure(hidden)
    perturbation, recovered = fig.data[2], fig.data[-1]
    assert perturbation.colorscale == recovered.colorscale and perturbation.zmin == recovered.zmin
    assert all("<br>" in a.text for a in fig.layout.annotations[2:])   # titles on two short lines
