"""Every page of the app through Streamlit's `AppTest`: it runs without an exception and shows the
widgets and charts it should, on the shipped checkpoints (and on folders given at start-up)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from interp import catalog
from interp.models.bilinear import BilinearClassifier
from interp.models.checkpoints import save_classifier

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "app" / "Home.py")
# The first run of a page loads models and fills caches; the machine is shared.
TIMEOUT = 120


def run_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    if page:
        at.switch_page(f"pages/{page}")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def plotly_charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def shipped(kind: str) -> list[str]:
    return [c.name for c in catalog.list_checkpoints(catalog.roots_from([], environ={}), kind=kind)]


@pytest.fixture
def project_roots(monkeypatch):
    monkeypatch.delenv(catalog.ENV_CHECKPOINTS, raising=False)
    monkeypatch.delenv(catalog.ENV_CIRCUITS, raising=False)


def test_home_counts_and_links(project_roots):
    at = run_page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Checkpoints"] == str(len(catalog.list_checkpoints(catalog.roots_from([], environ={}))))
    assert "Saved graphs" in metrics
    assert len(at.get("page_link")) == 6


def test_models_lists_every_shipped_checkpoint(project_roots):
    at = run_page("1_Models.py")
    names = [c.name for c in catalog.list_checkpoints(catalog.roots_from([], environ={}))]
    assert names, "no checkpoint shipped under checkpoints/"
    listed = [name for table in at.dataframe for name in table.value["name"]]
    assert sorted(listed) == sorted(names)
    # One table per kind, none with an empty column.
    for table in at.dataframe:
        assert all(table.value[column].notna().any() for column in table.value.columns)
    assert at.selectbox(key="checkpoint").options == names
    assert len(at.json) >= 2  # config and metrics
    if shipped("classifier"):
        assert plotly_charts(at), "no accuracy chart"
    # Choosing another checkpoint shows its own config.
    at.selectbox(key="checkpoint").select(names[-1]).run()
    assert not at.exception
    assert at.caption[0].value.endswith(names[-1])


def test_models_reads_folders_given_at_start_and_refuses_others(monkeypatch, tmp_path):
    given = tmp_path / "given"
    save_classifier(given / "tiny-bilinear", BilinearClassifier(d_in=64, n_classes=10, d_hidden=8), "digits",
                    metrics={"test_accuracy": 0.75, "n_params": 1104})
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(given))
    at = run_page("1_Models.py")
    assert list(at.dataframe[0].value["name"]) == ["tiny-bilinear"]
    assert at.dataframe[0].value["test_accuracy"][0] == 0.75
    assert len(plotly_charts(at)) == 1
    # A folder outside the roots is refused with a message, not read.
    at.text_input(key="other_folder").input(str(ROOT / "checkpoints")).run()
    assert not at.exception
    assert any("refused" in e.value for e in at.error)
    assert len(at.json) == 2
    at.text_input(key="other_folder").input(str(given / "tiny-bilinear")).run()
    assert not at.error
    assert len(at.json) == 3 and '"n_params": 1104' in at.json[2].value.replace("\n", "")


def test_models_plots_a_recorded_learning_curve(monkeypatch, tmp_path):
    curve = [{"step": s, "loss": 3.0 / s, "induction": 0.5, "ioi": s / 40, "ioi_logit_diff": 1.0} for s in (10, 20, 30)]
    save_classifier(tmp_path / "with-curve", BilinearClassifier(d_in=64, n_classes=10, d_hidden=4), "digits",
                    metrics={"learning_curve": curve})
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(tmp_path))
    at = run_page("1_Models.py")
    assert not at.exception
    (chart,) = plotly_charts(at)
    traces = json.loads(chart.proto.spec)["data"]
    assert [t["name"] for t in traces] == ["induction", "ioi", "train loss"]
    assert traces[1]["x"] == [10, 20, 30] and traces[1]["y"] == [0.25, 0.5, 0.75]


def test_models_plots_a_dictionaries_folder_per_layer(project_roots):
    dictionaries = [c.name for c in catalog.list_checkpoints(catalog.roots_from([], environ={}))
                    if "layers" in (c.metrics.get("eval") or {})]
    if not dictionaries:
        pytest.skip("no dictionaries shipped")
    at = run_page("1_Models.py")
    before = len(plotly_charts(at))
    at.selectbox(key="checkpoint").select(dictionaries[0]).run()
    assert not at.exception
    assert len(plotly_charts(at)) == before + 1
    traces = json.loads(plotly_charts(at)[-1].proto.spec)["data"]
    assert [t["name"] for t in traces] == ["CE loss recovered", "1 − FVU", "live fraction", "L0"]


def test_folders_given_on_the_command_line(monkeypatch, tmp_path):
    # `streamlit run app/Home.py -- --checkpoints DIR --circuits DIR` hands the script this argv.
    given = tmp_path / "from-argv"
    save_classifier(given / "argv-model", BilinearClassifier(d_in=64, n_classes=10, d_hidden=4), "digits",
                    metrics={"test_accuracy": 0.5})
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(ROOT / "checkpoints"))  # the command line wins
    monkeypatch.setattr("sys.argv", ["app/Home.py", "--checkpoints", str(given), "--circuits", str(tmp_path / "c")])
    at = run_page()
    assert f"checkpoints: {given}" in at.code[0].value and f"circuits:    {tmp_path / 'c'}" in at.code[0].value
    at = run_page("1_Models.py")
    assert list(at.dataframe[0].value["name"]) == ["argv-model"]


def test_models_with_no_checkpoint_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(tmp_path))
    at = run_page("1_Models.py")
    assert any("No checkpoint" in w.value for w in at.warning)


# ---- pages that read image classifiers: tiny digits models trained here, so that the tests do not
# depend on which shipped checkpoints exist (the e2e browser test runs on the shipped ones).

@pytest.fixture(scope="module")
def digits_models(tmp_path_factory):
    from interp.train.classifier import TrainOptions, train_and_save
    from interp.train.cnn import CNNTrainOptions, train_and_save_cnn

    root = tmp_path_factory.mktemp("digits-checkpoints")
    train_and_save(root / "digits-bilinear", TrainOptions(dataset="digits", arch="bilinear", epochs=4, hidden=32, lr=5e-3),
                   quiet=True)
    train_and_save(root / "digits-relu", TrainOptions(dataset="digits", arch="relu", epochs=4, hidden=32, lr=5e-3),
                   quiet=True)
    train_and_save_cnn(root / "digits-cnn", CNNTrainOptions(dataset="digits", epochs=2, channels=(4,), kernel=3),
                       quiet=True)
    return root


@pytest.fixture
def digits_roots(monkeypatch, digits_models):
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(digits_models))
    return digits_models


def settled(at: AppTest) -> AppTest:
    """The page run again once the parts it shows when ready (`ui.soon`) are ready, if it had to wait for any."""
    if any("appear here when ready" in i.value for i in at.info):
        assert sys.modules["ui"].wait_for_soon(TIMEOUT)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    return at


def test_bilinear_spectra_page(digits_roots):
    at = settled(run_page("3_Bilinear_spectra.py"))
    assert at.selectbox(key="model").options == ["digits-bilinear"]  # only bilinear models are offered
    assert len(plotly_charts(at)) == 4  # spectrum, eigenvectors, truncation, per-class spectra
    assert [m.label for m in at.metric][:1] == ["Effective rank (Σ|λ|)²/Σλ²"]
    n_pos, n_neg = int(at.metric[1].value), int(at.metric[2].value)
    assert 0 < n_pos + n_neg <= 64
    # A logit difference and fewer eigenvectors: still renders.
    at.selectbox(key="class_b").select("5: 5").run()
    at.slider(key="n_vectors").set_value(3).run()
    assert not at.exception
    assert len(plotly_charts(at)) == 4
    # A class minus itself is the zero direction: said so, and no empty spectrum or λ = 0 images.
    at.selectbox(key="class_b").select(at.selectbox(key="class_a").value).run()
    assert not at.exception
    assert any("is the zero direction" in i.value for i in at.info)
    assert len(plotly_charts(at)) == 2  # truncation and per-class spectra only
    heat = json.loads(plotly_charts(at)[1].proto.spec)["data"][0]
    assert heat["type"] == "heatmap"


def test_bilinear_spectra_page_renders_before_the_whole_test_set_is_done(digits_roots, monkeypatch):
    """The per-class spectra and truncation curve (the whole test set) are shown when ready, not waited for."""
    import threading

    run_page()
    ui = sys.modules["ui"]
    gate, real = threading.Event(), ui.eigen_report

    def slow_eigen_report(path):
        gate.wait(TIMEOUT)
        return real(path)

    monkeypatch.setattr(ui, "eigen_report", slow_eigen_report)
    try:
        at = run_page("3_Bilinear_spectra.py")
        assert len(plotly_charts(at)) == 2  # spectrum and eigenvectors; the rest is on its way
        assert any("appear here when ready" in i.value for i in at.info)
    finally:
        gate.set()
    assert ui.wait_for_soon(TIMEOUT)
    at.run()
    assert not at.exception
    assert len(plotly_charts(at)) == 4 and not any("appear here when ready" in i.value for i in at.info)


@pytest.mark.parametrize("name, charts", [("digits-bilinear", 3), ("digits-cnn", 2), ("digits-relu", 2)])
def test_relevance_page_on_images(digits_roots, name, charts):
    at = run_page("4_Relevance_maps.py")
    at.selectbox(key="model").select(name).run()
    assert not at.exception
    # Maps side by side and the flipping curves; bilinear models add the pair relevance.
    assert len(plotly_charts(at)) == charts
    at.slider(key="index").set_value(7).run()
    at.selectbox(key="target").select("3: 3").run()
    assert not at.exception
    assert "explaining the logit of **3**" in at.markdown[0].value


# ---- the Circuits page: a tiny random LM with dictionaries, and a graph saved from it with its
# feature JSON files (as `interp extract --recipe` writes them).

@pytest.fixture(scope="module")
def tiny_circuits(tmp_path_factory):
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from graph_helpers import save_tiny_lm

    from interp.data.corpus import training_tokens
    from interp.graph.features import write_feature_jsons
    from interp.graph.pipeline import extract
    from interp.graph.setup import load_setup
    from interp.io import write_json

    root = tmp_path_factory.mktemp("tiny-lm")
    model_dir = save_tiny_lm(root / "checkpoints" / "tiny-lm")
    setup = load_setup(model_dir)
    ex = extract(setup, "when Mary and John went to the store , John gave a drink to", node_threshold=0.9,
                 edge_threshold=0.95, slug="tiny")
    write_json(root / "circuits" / "tiny" / "tiny-00.json", ex.json)
    wanted = {(n.kind, n.layer, n.index) for j, n in enumerate(ex.graph.nodes[:ex.graph.n_features])
              if ex.pruned.node_mask[j]}
    corpus = torch.tensor(training_tokens(setup.tokenizer, 16, setup.replacement.model.cfg.n_ctx, 1))
    write_feature_jsons(setup.replacement, wanted, corpus, setup.vocab, root / "circuits" / "tiny" / "features")
    return root, ex.json


@pytest.fixture
def circuits_roots(monkeypatch, tiny_circuits):
    root, _ = tiny_circuits
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(root / "checkpoints"))
    monkeypatch.setenv(catalog.ENV_CIRCUITS, str(root / "circuits"))
    return tiny_circuits


def test_circuits_saved_graph(circuits_roots):
    root, graph = circuits_roots
    at = run_page("2_Circuits.py")
    assert at.selectbox(key="graph").options[0].startswith("tiny/tiny-00.json")
    assert {m.label: m.value for m in at.metric}["Nodes shown"] == str(len(graph["nodes"]))
    assert at.get("download_button"), "no download button"
    # The node list starts with the most influential feature; its card comes from the saved feature JSON.
    node_box = at.selectbox(key="node")
    first = next(n for n in graph["nodes"] if n["node_id"] == node_box.value)
    assert first["feature_type"] in ("cross layer transcoder", "attention sae feature")
    assert any("Top logits" in m.value for m in at.markdown)
    charts = plotly_charts(at)
    assert len(charts) == 2  # graph, activation histogram (the ablation is on demand)
    at.radio(key="ablation_mode").set_value("constrained").run()
    assert len(plotly_charts(at)) == 3  # and the ablation
    # Inputs and outputs of the node, from the graph's links.
    incoming = [e for e in graph["links"] if e["target"] == first["node_id"]]
    assert len(at.dataframe[0].value) == min(10, len(incoming))
    # Thresholds shrink the graph.
    at.slider(key="node_threshold").set_value(0.3).run()
    at.slider(key="edge_threshold").set_value(0.5).run()
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    assert int(shown["Nodes shown"]) < len(graph["nodes"]) and int(shown["Links shown"]) < len(graph["links"])
    # Another node: an embedding has no feature card and cannot be ablated.
    embedding = next(n["node_id"] for n in graph["nodes"] if n["feature_type"] == "embedding")
    at.selectbox(key="node").select(embedding).run()
    assert not at.exception
    assert any("Only dictionary features can be ablated" in c.value for c in at.caption)


def test_circuits_ablation_changes_logits(circuits_roots):
    import torch

    from interp.graph.interventions import Intervention, intervene
    from interp.graph.setup import load_setup

    root, graph = circuits_roots
    at = run_page("2_Circuits.py")
    at.radio(key="ablation_mode").set_value("free").run()
    assert not at.exception
    change = next(c.value for c in at.caption if c.value.startswith("Largest logit change"))
    shown = float(change.split()[3].rstrip(";"))
    # The same ablation through the library: the node the page shows, set to 0 in free mode.
    node = next(n for n in graph["nodes"] if n["node_id"] == at.selectbox(key="node").value)
    where = catalog.feature_node(node)
    setup = load_setup(root / "checkpoints" / "tiny-lm")
    result = intervene(setup.replacement, setup.encode(graph["metadata"]["prompt"]),
                       [Intervention(where.kind, where.layer, where.pos, where.feature, 0.0)], mode="free")
    expected = float((result.new_logits - result.clean_logits).abs().max())
    assert expected > 1e-3 and shown == pytest.approx(expected, abs=6e-5)     # the caption rounds to 4 decimals
    assert torch.isfinite(result.new_logits).all()


def test_circuits_refuses_paths_outside_the_roots(circuits_roots):
    root, _ = circuits_roots
    at = run_page("2_Circuits.py")
    at.text_input(key="graph_path").input(str(ROOT / "pyproject.toml")).run()
    assert not at.exception
    assert any("refused" in e.value for e in at.error)
    at.text_input(key="graph_path").input(str(root / "circuits" / "tiny" / "tiny-00.json")).run()
    assert not at.error and not at.exception


def test_circuits_live_extraction(circuits_roots):
    at = run_page("2_Circuits.py")
    at.radio(key="source").set_value("extract live").run()
    assert not at.exception
    at.text_input(key="prompt").input("the dog sees a ball and the dog sees a").run()
    at.button[0].click().run()  # the form's Extract button
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Nodes shown"]) > 0
    assert any(c.value.startswith("Size: influence") and "replacement score" in c.value for c in at.caption)
    # A feature card computed live from the corpus, and the ablation chart.
    assert any("Top logits" in m.value for m in at.markdown)
    assert len(plotly_charts(at)) == 2
    at.radio(key="ablation_mode").set_value("free").run()
    assert len(plotly_charts(at)) == 3


def test_harmless_page_exact_space_keeps_logits(digits_roots):
    at = run_page("5_Harmless_perturbations.py")
    at.selectbox(key="model").select("digits-relu").run()
    assert [o.split(" — ")[0] for o in at.selectbox(key="layer").options] == ["fc1", "fc1.relu"]
    assert len(plotly_charts(at)) == 4  # images, logits, singular values, basis images
    at.select_slider(key="magnitude").set_value(1000.0).run()
    at.slider(key="secret").set_value(5).run()
    assert not at.exception and not at.warning
    metrics = {m.label: m.value for m in at.metric}
    # The ReLU MLP's first layer has fewer units than the 64 pixels: an exact null space.
    assert int(metrics["Harmless dimension"]) == 64 - int(at.metric[0].help.split("rank ")[1].rstrip(")"))
    prediction = next(m for m in at.metric if m.label == "Prediction after")
    assert prediction.delta == "unchanged"
    assert type(prediction.proto).MetricDirection.Name(prediction.proto.direction) == "NONE"  # no arrow
    max_logit = float(at.metric[1].help.split("= ")[1])
    assert float(metrics["Max |Δlogit|"]) <= 1e-4 * max_logit
    assert float(metrics["Perturbation recovered (cosine)"]) > 0.99


def test_harmless_page_relu_pattern_and_approximate_spaces(digits_roots):
    at = run_page("5_Harmless_perturbations.py")
    at.selectbox(key="model").select("digits-relu").run()
    at.selectbox(key="layer").select("fc1.relu").run()
    assert not at.exception
    # Input-dependent: the page says whether the pattern holds at this magnitude.
    assert any("activation pattern" not in e.value and "ReLU pattern" in e.value for e in [*at.success, *at.error])
    for name in ("digits-bilinear", "digits-cnn"):
        at.selectbox(key="model").select(name).run()
        assert not at.exception
        assert len(plotly_charts(at)) == 4
        # 2×32 bilinear rows / 4 conv channels see all 64 pixels: only the approximate space exists.
        assert any("approximate space" in w.value for w in at.warning)


def test_bilinear_spectra_page_on_a_language_model(circuits_roots):
    at = run_page("3_Bilinear_spectra.py")
    assert any("No bilinear image classifier" in i.value for i in at.info)  # only an LM in these roots
    at.radio(key="kind").set_value("language model").run()
    assert not at.exception
    assert at.selectbox(key="lm").options == ["tiny-lm"]
    assert at.text_input(key="output").value.startswith("token:")
    assert len(plotly_charts(at)) == 1  # the spectrum
    pairs = at.dataframe[0].value
    assert len(pairs) == 20 and (pairs["coefficient"].abs().diff().dropna() <= 1e-9).all()  # sorted by |C|
    at.selectbox(key="inputs").select("features:1").run()
    at.checkbox(key="heads").check().run()
    assert not at.exception
    assert all(a.startswith(("1:", "1 (")) for a in at.dataframe[0].value["a"])  # layer-1 decoder rows (or the constant)
    heads = at.dataframe[1].value
    assert len(heads) == 2 * 2  # every head of layers 0 and 1
    at.text_input(key="output").input("token:nonexistentword").run()
    assert not at.exception and at.error


def test_relevance_page_on_a_prompt(circuits_roots):
    at = run_page("4_Relevance_maps.py")
    at.radio(key="mode").set_value("a prompt").run()
    assert not at.exception
    assert len(plotly_charts(at)) == 1
    metrics = {m.label: float(m.value) for m in at.metric}
    # Token relevance plus the constant adds up to the explained logit (printed to 3 decimals).
    total = metrics["Σ token relevance"] + metrics["Constant (positions, biases)"]
    assert abs(total - metrics["Explained logit"]) <= 2e-3
    at.text_input(key="prompt").input("the dog sees").run()
    assert not at.exception and len(plotly_charts(at)) == 1


def test_a_missing_analysis_module_fails_loudly(monkeypatch, project_roots):
    import sys

    # A module the page needs that cannot be imported is a bug: the page shows the error, it does not hide it.
    monkeypatch.setitem(sys.modules, "interp.viz.harmless", None)
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    at.switch_page("pages/5_Harmless_perturbations.py")
    at.run()
    assert at.exception and "interp.viz.harmless" in at.exception[0].message
    assert not plotly_charts(at)


def test_circuits_live_modes_are_the_engines_and_each_extracts(circuits_roots):
    from interp.graph.replacement import MODES

    at = run_page("2_Circuits.py")
    at.radio(key="source").set_value("extract live").run()
    assert not at.exception
    assert at.selectbox(key="mode").options == list(MODES)
    at.text_input(key="prompt").input("the dog sees a ball and the dog sees a").run()
    for mode in MODES:
        at.selectbox(key="mode").select(mode).run()
        at.button[0].click().run()  # the form's Extract button
        assert not at.exception, [e.message for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        assert int({m.label: m.value for m in at.metric}["Nodes shown"]) > 0
        assert len(plotly_charts(at)) == 2  # graph, live feature card (the ablation is on demand)


def test_circuits_graph_with_a_node_past_the_prompt_shows_an_error(monkeypatch, tiny_circuits, tmp_path):
    root, graph = tiny_circuits
    damaged = json.loads(json.dumps(graph))
    n_tokens = len(damaged["metadata"]["prompt_tokens"])
    for node in damaged["nodes"]:
        if catalog.feature_node(node) is not None:
            node["ctx_idx"] = n_tokens + 3
    (tmp_path / "circuits" / "bad").mkdir(parents=True)
    (tmp_path / "circuits" / "bad" / "bad-00.json").write_text(json.dumps(damaged))
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(root / "checkpoints"))
    monkeypatch.setenv(catalog.ENV_CIRCUITS, str(tmp_path / "circuits"))
    at = run_page("2_Circuits.py")
    assert at.selectbox(key="graph").options[0].startswith("bad/bad-00.json")
    assert any(f"outside the prompt's {n_tokens} tokens" in e.value for e in at.error), [e.value for e in at.error]
    assert not plotly_charts(at)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_bilinear_spectra_lm_output_direction_that_is_not_finite_shows_an_error(circuits_roots, bad):
    at = run_page("3_Bilinear_spectra.py")
    at.radio(key="kind").set_value("language model").run()
    assert not at.exception and len(plotly_charts(at)) == 1
    d_model = ui_lm_width(circuits_roots)
    at.text_input(key="output").input(",".join([bad] + ["0.5"] * (d_model - 1))).run()
    assert not at.exception, [e.message for e in at.exception]
    assert [e.value for e in at.error] == [f"an output vector needs finite numbers; "
                                           f"{','.join([bad] + ['0.5'] * (d_model - 1))!r} holds NaN or infinity"]
    # A finite vector of the same size is read.
    at.text_input(key="output").input(",".join(["0.5"] * d_model)).run()
    assert not at.exception and not at.error and len(plotly_charts(at)) == 1


def ui_lm_width(circuits_roots) -> int:
    root, _ = circuits_roots
    config = json.loads((root / "checkpoints" / "tiny-lm" / "config.json").read_text())
    return config["hooked_transformer_config"]["d_model"]


def test_harmless_page_labels_the_space_by_the_analysis(digits_roots):
    from interp.harmless.layers import harmless_space
    from interp.models.checkpoints import load_classifier

    at = run_page("5_Harmless_perturbations.py")
    exact = {}
    for name in ("digits-cnn", "digits-relu"):
        at.selectbox(key="model").select(name).run()
        assert not at.exception
        layer = at.selectbox(key="layer").value  # the first layer: a fixed (not input-dependent) space
        space = harmless_space(load_classifier(digits_roots / name)[0], layer, image_shape=(8, 8))
        exact[name] = space.exact
        caption = next(c.value for c in at.caption if c.value.startswith(f"{space.kind} layer:"))
        if space.exact:
            assert "harmless at any magnitude" in caption and "not harmless" not in caption
        else:
            assert "not harmless: no exact null space" in caption and "any magnitude" not in caption
            assert any("approximate space" in w.value for w in at.warning)
            assert not at.success
    # The CNN's 4 channels × 64 locations see all 64 pixels: no exact space; the MLP's 32 units leave one.
    assert exact == {"digits-cnn": False, "digits-relu": True}


@pytest.fixture(scope="module")
def hf_root(tmp_path_factory):
    """A checkpoints root holding one Hugging Face GPT-2 folder with transcoders and attention SAEs of its own."""
    import json

    from graph_helpers import tiny_dictionaries
    from hf_helpers import make_hf_folder
    from interp.models.hf import load_hf_lm

    root = tmp_path_factory.mktemp("hf-app")
    folder = root / "checkpoints" / "tiny-gpt2"
    make_hf_folder("gpt2", folder)
    model = load_hf_lm(folder).model
    transcoders, attn_saes = tiny_dictionaries(model, d_sae=40, seed=1, dtype="float32")
    for name, dicts, kind in (("transcoders", transcoders, "transcoder"), ("attn-saes", attn_saes, "attn_sae")):
        for layer, sae in dicts.items():
            sae.save_model(str(folder / name / f"layer_{layer}"))
        (folder / name / "config.json").write_text(json.dumps({"kind": "dictionaries", "type": kind, "model": "..",
                                                               "layers": sorted(dicts)}))
    (root / "circuits").mkdir()
    return root


def test_a_hugging_face_folder_is_listed_and_extracted_live(monkeypatch, hf_root):
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(hf_root / "checkpoints"))
    monkeypatch.setenv(catalog.ENV_CIRCUITS, str(hf_root / "circuits"))
    listed = catalog.language_models(catalog.roots_from([]))
    assert [(c.name, c.kind, c.arch) for c in listed] == [("tiny-gpt2", "hf", "gpt2")]
    at = run_page("1_Models.py")
    assert not at.exception
    at = run_page("2_Circuits.py")
    at.radio(key="source").set_value("extract live").run()
    at.text_input(key="prompt").input("the dog sees a ball and the dog sees a").run()
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Nodes shown"]) > 0


def test_token_relevance_page_on_a_hugging_face_folder(monkeypatch, hf_root):
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(hf_root / "checkpoints"))
    monkeypatch.setenv(catalog.ENV_CIRCUITS, str(hf_root / "circuits"))
    at = run_page("4_Relevance_maps.py")
    at.radio(key="mode").set_value("a prompt").run()
    assert not at.exception, [e.message for e in at.exception]
    metrics = {m.label: float(m.value) for m in at.metric}
    # The tokens' relevance plus the constant is the explained logit.
    assert abs(metrics["Σ token relevance"] + metrics["Constant (positions, biases)"]
               - metrics["Explained logit"]) <= 2e-3
    assert "frozen at its ratio" in at.caption[-1].value


# ---- the circuit viewer (issue 16): labels, paths, pins and supernodes saved into the graph, links from
# the Recipes page, live thresholds, a missing path.

def figure_of(chart):
    import plotly.graph_objects as go

    return go.Figure(json.loads(chart.proto.spec))


@pytest.fixture
def writable_circuits(monkeypatch, tiny_circuits, tmp_path):
    """The tiny graph and its feature JSONs copied to a circuits root of this test only (the page writes it)."""
    import shutil

    root, graph = tiny_circuits
    shutil.copytree(root / "circuits", tmp_path / "circuits")
    monkeypatch.setenv(catalog.ENV_CHECKPOINTS, str(root / "checkpoints"))
    monkeypatch.setenv(catalog.ENV_CIRCUITS, str(tmp_path / "circuits"))
    return tmp_path / "circuits" / "tiny" / "tiny-00.json", graph


def test_circuits_graph_has_no_overlaps_labels_and_paths(circuits_roots):
    from interp.graph.view import top_paths
    from interp.viz.graph import marker_overlaps

    root, graph = circuits_roots
    at = run_page("2_Circuits.py")
    fig = figure_of(plotly_charts(at)[0])
    assert marker_overlaps(fig) == []
    assert list(fig.layout.xaxis.ticktext) == graph["metadata"]["prompt_tokens"]
    # Every feature node carries a label (from its feature card) in its hover text.
    hovers = {i: h for t in fig.data if t.mode == "markers" for i, h in zip(t.customdata, t.hovertext)}
    features = [n["node_id"] for n in graph["nodes"] if catalog.feature_node(n) is not None]
    assert features and all(hovers[i].startswith("<b>") for i in features if i in hovers)
    # The selected node: the box, the heading and the ringed marker name the same node.
    selected = at.selectbox(key="node").value
    assert any(h.value.startswith(f"Node {selected} — ") for h in at.subheader)
    ringed = [i for t in fig.data if t.mode == "markers" for i, w in zip(t.customdata, t.marker.line.width) if w > 1]
    assert ringed == [selected]
    # Its top paths, as the library finds them.
    upstream = at.dataframe[2].value
    expected = top_paths(graph, selected, "upstream", k=5)
    assert list(upstream["nodes"]) == [" → ".join(p.nodes) for p in expected]


def test_circuits_pin_group_label_survive_save_and_reload(writable_circuits):
    path, graph = writable_circuits
    at = run_page("2_Circuits.py")
    first = at.selectbox(key="node").value
    at.button(key="pin_toggle").click().run()
    assert at.multiselect(key="pinned_ids").value == [first]
    second = next(i for i in catalog.node_order(graph["nodes"]) if i != first)
    at.multiselect(key="pinned_ids").select(second).run()
    at.multiselect(key="group_members").select(first).select(second).run()
    at.text_input(key="group_name").input("pair").run()
    at.button(key="group").click().run()
    assert not at.exception and not at.error
    assert any(m.value.startswith("**pair**") for m in at.markdown)
    assert len(plotly_charts(at)) == 3  # graph, histogram, pinned subgraph
    sub = figure_of(plotly_charts(at)[2])
    assert [i for t in sub.data if t.mode == "markers" for i in t.customdata] == ["supernode:pair"]
    at.text_input(key=f"label::{first}").input("my label").run()
    at.button(key="save_graph").click().run()
    assert not at.exception and any("Saved into tiny-00.json" in m.value for m in at.success)
    saved = json.loads(path.read_text())
    assert saved["qParams"]["pinnedIds"] == [first, second]
    assert saved["qParams"]["supernodes"] == [["pair", first, second]]
    assert next(n for n in saved["nodes"] if n["node_id"] == first)["clerp"] == "my label"
    # A new session opens the graph as it was left.
    again = run_page("2_Circuits.py")
    assert again.multiselect(key="pinned_ids").value == [first, second]
    assert any(m.value.startswith("**pair**") for m in again.markdown)
    assert "my label" in again.selectbox(key="node").format_func(first)


def test_circuits_opens_the_graph_a_link_names(circuits_roots, tmp_path):
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Circuits.py")
    at.query_params["graph"] = "tiny/tiny-00.json"
    at.run()
    assert not at.exception
    assert at.selectbox(key="graph").value.startswith("tiny/tiny-00.json")


def test_circuits_missing_graph_path_is_one_error_line(circuits_roots):
    root, _ = circuits_roots
    at = run_page("2_Circuits.py")
    at.text_input(key="graph_path").input(str(root / "circuits" / "tiny" / "nope.json")).run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"no graph file at {root / 'circuits' / 'tiny' / 'nope.json'}"]


def test_circuits_live_mode_starts_at_extraction_thresholds(circuits_roots):
    at = run_page("2_Circuits.py")
    assert (at.slider(key="node_threshold").value, at.slider(key="edge_threshold").value) == (1.0, 1.0)
    saved_labels = [at.slider(key="node_threshold").label, at.slider(key="edge_threshold").label]
    at.radio(key="source").set_value("extract live").run()
    assert not at.exception
    assert (at.slider(key="live_node_threshold").value, at.slider(key="live_edge_threshold").value) == (0.8, 0.98)
    # One pruning rule, one name for each threshold in both modes.
    assert [at.slider(key="live_node_threshold").label, at.slider(key="live_edge_threshold").label] == saved_labels


def test_recipes_page_summarises_and_links_each_graph(project_roots):
    recipes = catalog.list_recipes(catalog.roots_from([], environ={}))
    if not recipes:
        pytest.skip("no recipe summary shipped")
    at = run_page("6_Recipes.py")
    overview = at.dataframe[0].value
    assert list(overview["recipe"]) == [r.name for r in recipes]
    first = recipes[0]
    assert overview["top-10 drop"][0] == pytest.approx(first.summary["top10_ablation_drop"])
    assert [m.label for m in at.metric] == ["Top-10 drop", "Random-10 drop (control)", "Replacement score",
                                            "Completeness score"]
    ablations = at.dataframe[1].value
    assert list(ablations["ablation"])[0] == "top-10 features" and "constrained" in ablations
    links = at.get("page_link")
    assert [link.proto.query_string for link in links] == [
        "graph=" + name.replace("/", "%2F") for name, _ in first.graphs]
    assert all(link.proto.page == "Circuits" for link in links)


def test_recipes_page_without_summaries_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv(catalog.ENV_CIRCUITS, str(tmp_path))
    at = run_page("6_Recipes.py")
    assert any("No recipe summary" in i.value for i in at.info)


def test_circuits_compares_an_mlp_feature_with_its_weights(circuits_roots):
    """The toggle under an MLP feature shows the library's weights-vs-edges comparison of that node."""
    from interp.graph.agreement import node_index, weights_vs_edges
    from interp.graph.pipeline import extract
    from interp.graph.setup import load_setup

    root, graph = circuits_roots
    at = run_page("2_Circuits.py")
    mlp = next(n["node_id"] for n in graph["nodes"] if n["feature_type"] == "cross layer transcoder")
    at.selectbox(key="node").select(mlp).run()
    at.toggle(key="weights_vs_edges").set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    caption = next(c.value for c in at.caption if c.value.startswith("Top-10 overlap"))
    setup = load_setup(root / "checkpoints" / "tiny-lm")
    ex = extract(setup, graph["metadata"]["prompt"], node_threshold=1.0, edge_threshold=1.0, slug="check")
    expected = weights_vs_edges(setup.replacement, ex.graph, node_index(ex.graph, mlp))
    assert caption.startswith(f"Top-10 overlap {expected.top_overlap:.2f}, Spearman {expected.spearman:.2f} over "
                              f"{len(expected.inputs)} inputs")


def test_circuits_live_exact_graph_offers_each_basis(circuits_roots):
    from interp.graph import EXACT_BASES

    at = run_page("2_Circuits.py")
    at.radio(key="source").set_value("extract live").run()
    at.selectbox(key="mode").select("bilinear-exact").run()
    assert at.selectbox(key="basis").options == list(EXACT_BASES)
    at.text_input(key="prompt").input("the dog sees a ball and the dog sees a").run()
    for basis in EXACT_BASES:
        at.selectbox(key="basis").select(basis).run()
        at.button[0].click().run()
        assert not at.exception, [e.message for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        # An exact graph has no error nodes: replacement and completeness are 1 (the caption shows 3 decimals).
        assert int({m.label: m.value for m in at.metric}["Nodes shown"]) > 0
        scores = next(c.value for c in at.caption if "replacement score" in c.value)
        assert "replacement score 1.000" in scores and "completeness score 1.000" in scores, scores


def test_the_launcher_passes_streamlit_its_options_and_the_app_its_folders(monkeypatch, tmp_path):
    """`app/serve.py` (what `make app` runs): the app's folders are what follows `--`, as under `streamlit run`,
    and the warm-up it starts before the server reads them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serve", ROOT / "app" / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    assert serve.app_args(["--server.port", "8502", "--", "--checkpoints", "/a", "--circuits", "/b"]) == \
        ["--checkpoints", "/a", "--circuits", "/b"]
    assert serve.app_args(["--server.port", "8502"]) == []
    monkeypatch.setattr("sys.argv", ["app/serve.py"])
    started = []
    monkeypatch.syspath_prepend(str(ROOT / "app"))
    import ui

    monkeypatch.setattr(ui, "start_warm_up", lambda delay=0.0: started.append(catalog.roots_from(sys.argv[1:])))
    serve.start_warm_up(["--server.headless", "true", "--", "--checkpoints", str(tmp_path)])
    assert started and started[0].checkpoints == (tmp_path.resolve(),)
    assert sys.argv == [str(ROOT / "app" / "Home.py"), "--checkpoints", str(tmp_path)]
