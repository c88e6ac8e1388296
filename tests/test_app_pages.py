"""Every page of the app through Streamlit's `AppTest`: it runs without an exception and shows the
widgets and charts it should, on the shipped checkpoints (and on folders given at start-up)."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    assert len(at.get("page_link")) == 5


def test_models_lists_every_shipped_checkpoint(project_roots):
    at = run_page("1_Models.py")
    names = [c.name for c in catalog.list_checkpoints(catalog.roots_from([], environ={}))]
    assert names, "no checkpoint shipped under checkpoints/"
    table = at.dataframe[0].value
    assert list(table["name"]) == names
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


def test_bilinear_spectra_page(digits_roots):
    at = run_page("3_Bilinear_spectra.py")
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
