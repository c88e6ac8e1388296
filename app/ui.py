"""Small Streamlit helpers shared by the pages: page set-up, the readable roots, and a clear message
when an analysis module is missing. Rendering only; every computation lives in `interp`."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from types import ModuleType

import streamlit as st

from interp import catalog
from interp.errors import InterpError


# Importing torch, TransformerLens and SAE-Lens takes seconds, and so do the first plotly figure, loading
# the default models and the whole-test-set analyses. This module is imported once per server process, so
# start all of that in the background as soon as any page is opened: by the time someone opens another
# page, its imports are done and its default view is cached. (Python's import lock makes a concurrent
# import safe; `st.cache_*` functions are safe to fill from another thread.)
WARM_MODULES = ("plotly.graph_objects", "interp.viz.models", "interp.viz.lm", "interp.graph.view", "interp.graph.export",
                "interp.viz.graph", "torch", "interp.bilinear.analysis", "interp.viz.bilinear", "interp.harmless.layers", "interp.relevance.engine")
# TransformerLens and SAE-Lens (~11 s here) come last: importing them holds the import lock and the GIL for
# seconds, and every page's default view but a live extraction can be ready before then.
WARM_MODULES_LAST = ("interp.graph.pipeline", "interp.models.lm")
WARM_DELAY_S = 1.0
# The models pages open on: warmed in this order when they exist.
DEFAULT_IMAGE_MODELS = ("fmnist-bilinear",)


def _warm_up() -> None:
    import logging

    time.sleep(WARM_DELAY_S)  # let the page that triggered this render first
    # Filling a cache outside a script run makes Streamlit warn once per call; nothing is wrong.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    logging.getLogger("streamlit.runtime.caching.cache_data_api").setLevel(logging.ERROR)
    _import_all(WARM_MODULES)
    steps = [_warm_plotly, _warm_saved_graph, _warm_image_models]
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 — warming is best effort; the page shows any real error itself
            pass
    _import_all(WARM_MODULES_LAST)


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a page that needs it says so


def _warm_plotly() -> None:
    import plotly.graph_objects as go

    go.Figure(go.Scatter(x=[0], y=[0]), layout={"title": "warm"}).to_json()  # loads plotly's validators


def _warm_saved_graph() -> None:
    graphs = catalog.list_graphs(roots())
    if graphs:
        path = graphs[0].path  # the Circuits page's default selection
        mtime = path.stat().st_mtime
        saved_view(str(path), mtime, 1.0, 1.0)
        saved_cards(str(path), mtime)


def _warm_image_models() -> None:
    """The default view of the image pages: Bilinear spectra, Relevance maps, Harmless perturbations."""
    from interp.harmless.layers import harmless_layers

    names = {c.name: c for c in catalog.image_classifiers(roots())}
    for name in DEFAULT_IMAGE_MODELS:
        if name in names:
            path = str(names[name].path)
            direction_spectrum(path, "0", 16)
            eigen_report(path)
            maps = relevance_maps(path, 0, None)
            if names[name].arch == "bilinear":
                pair_relevance(path, 0, maps["target"])
            pixel_flipping(path, FLIP_IMAGES)
            model, _ = image_model(path)
            hidden_image(path, next(iter(harmless_layers(model))), 0, 1, 100.0)


_warm_started = threading.Event()


def start_warm_up() -> None:
    """Start the warm-up once per server process (any page's first run starts it)."""
    if not _warm_started.is_set():
        _warm_started.set()
        threading.Thread(target=_warm_up, name="interp-warm-up", daemon=True).start()


def wait_for_warm_up(timeout: float | None = None) -> bool:
    """Block until the warm-up has finished (for benchmarks); True if it has."""
    thread = next((t for t in threading.enumerate() if t.name == "interp-warm-up"), None)
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return _warm_started.is_set()


def setup(title: str, icon: str = ":material/biotech:") -> None:
    st.set_page_config(page_title=f"{title} · interp", page_icon=icon, layout="wide")
    st.title(title)
    start_warm_up()


def roots() -> catalog.Roots:
    """The folders this app may read, from `streamlit run app/Home.py -- --checkpoints DIR --circuits DIR`
    or the environment (see `interp.catalog`)."""
    return catalog.roots_from(sys.argv[1:])


def require(*module_names: str) -> list[ModuleType]:
    """Import the analysis modules a page needs, when the page runs (not when the app starts: they import
    TransformerLens and SAE-Lens, which take seconds). A missing module is a bug and fails loudly."""
    return [importlib.import_module(name) for name in module_names]


def fail(error: Exception) -> None:
    """Show a bad-input error as one line and stop the page."""
    st.error(str(error) if isinstance(error, InterpError) else f"{type(error).__name__}: {error}")
    st.stop()


def pick_checkpoint(label: str, choices: list[catalog.CheckpointInfo], key: str,
                    prefer: tuple[str, ...] = ()) -> catalog.CheckpointInfo:
    """A selectbox over checkpoint folders; stops the page with a message when there are none."""
    if not choices:
        st.warning(f"No suitable checkpoint under {', '.join(str(r) for r in roots().checkpoints)}.")
        st.stop()
    names = [c.name for c in choices]
    index = next((names.index(p) for p in prefer if p in names), 0)
    name = st.selectbox(label, names, index=index, key=key)
    return choices[names.index(name)]


def guarded(path: str, within: tuple | None = None):
    """`catalog.guard` for a path the user typed; the refusal is shown as an error message."""
    try:
        return catalog.guard(path, roots(), within=within)
    except InterpError as e:
        fail(e)


@st.cache_resource(show_spinner="Loading the model…")
def image_model(path: str):
    """(model in eval mode, config) of an image-classifier checkpoint, shared by every page."""
    from interp.models.checkpoints import load_classifier

    model, config, _ = load_classifier(path)
    return model, config


@st.cache_resource(show_spinner="Loading the test set…")
def image_dataset(name: str):
    from interp.data.images import load_image_dataset

    return load_image_dataset(name)


def open_image_model(path) -> tuple:
    """(model, config, dataset) of an image-classifier checkpoint for a page, or the page stops with the error."""
    try:
        model, config = image_model(str(path))
        return model, config, image_dataset(config["dataset"])
    except InterpError as e:
        fail(e)


@st.cache_resource(show_spinner="Loading the language model…")
def language_model(path: str):
    """An `interp.models.lm.LoadedLM` (model, tokenizer, config, metrics), shared by every page."""
    from interp.models.lm import load_lm

    return load_lm(path)


def example(task: str = "ioi"):
    """The first held-out example of a planted task (prompt, target, contrast), or None."""
    try:
        from interp.data.corpus import task_examples

        return task_examples(task, n=1)[0]
    except (ImportError, IndexError, InterpError):
        return None


def example_prompt(task: str = "ioi") -> str:
    """The first held-out prompt of a planted task, to start from something the model can do."""
    found = example(task)
    return found.prompt if found is not None else ""



# ---- caches shared by the pages and the warm-up --------------------------------------------------------

@st.cache_data(show_spinner="Reading the graph…", max_entries=16)
def saved_graph(path: str, mtime: float) -> dict:
    from interp.graph.export import read_graph_json

    return read_graph_json(path)


@st.cache_data(show_spinner=False, max_entries=32)
def saved_view(path: str, mtime: float, node_threshold: float, edge_threshold: float) -> dict:
    """What the Circuits page shows of a saved graph at these thresholds (`interp.graph.view.view_graph`)."""
    from interp.graph.view import view_graph

    return view_graph(saved_graph(path, mtime), node_threshold, edge_threshold)


@st.cache_data(show_spinner="Reading the feature cards…", max_entries=16)
def saved_cards(path: str, mtime: float) -> dict:
    """The feature JSONs beside a saved graph, by node id (only inside its circuits root)."""
    from pathlib import Path

    root = next((r for r in roots().circuits if catalog.is_inside(Path(path), r)), None)
    return catalog.feature_cards(Path(path), saved_graph(path, mtime), root=root)


@st.cache_data(show_spinner="Spectra of every class and the truncation curve on the test set…")
def eigen_report(path: str) -> dict:
    from interp.bilinear.analysis import eigen_report as report

    model, config = image_model(path)
    data = image_dataset(config["dataset"])
    return report(model, data.test.images, data.test.labels, data.class_names).to_dict()


@st.cache_data(show_spinner="Eigendecomposing the direction…")
def direction_spectrum(path: str, direction: str, n_vectors: int) -> dict:
    from interp.bilinear.analysis import classifier_direction_spectrum

    model, config = image_model(path)
    names = image_dataset(config["dataset"]).class_names
    return classifier_direction_spectrum(model, direction, names, n_values=60, n_vectors=n_vectors).to_dict()


FLIP_IMAGES = 100  # the Relevance page's pixel-flipping set: the first test images


@st.cache_data(show_spinner="Relevance maps…")
def relevance_maps(path: str, index: int, target: int | None) -> dict:
    from interp.relevance.evaluate import method_maps

    model, config = image_model(path)
    image = image_dataset(config["dataset"]).test.images[index]
    return method_maps(model, image, target).to_dict()


@st.cache_resource(show_spinner="Pair relevance…", max_entries=16)
def pair_relevance(path: str, index: int, target: int):
    """A (d × d) tensor: kept as the Result object (cache_resource), not pickled into a list of lists."""
    from interp.relevance.engine import bilinear_pair_relevance

    model, config = image_model(path)
    image = image_dataset(config["dataset"]).test.images[index]
    return bilinear_pair_relevance(model, image, target)


@st.cache_data(show_spinner=f"Pixel flipping on {FLIP_IMAGES} test images…")
def pixel_flipping(path: str, n_images: int) -> dict:
    from interp.relevance.evaluate import pixel_flipping as flip

    model, config = image_model(path)
    images = image_dataset(config["dataset"]).test.images[:n_images]
    return flip(model, images, "dtd", steps=25, pixels_per_step=16, quiet=True).to_dict()


@st.cache_resource(show_spinner="Computing the harmless subspace…", max_entries=16)
def harmless_space(path: str, layer: str, index: int | None):
    """The subspace of `layer`; an input-dependent (ReLU) one also depends on the carrier `index`."""
    from interp.harmless.layers import harmless_space as space

    model, config = image_model(path)
    data = image_dataset(config["dataset"])
    x = data.test.images[index] if index is not None else None
    return space(model, layer, x, image_shape=data.image_shape)


@st.cache_resource(show_spinner="Hiding the secret…", max_entries=64)
def hidden_image(path: str, layer: str, carrier: int, secret: int, magnitude: float):
    """(space, hidden image, check) of the Harmless page for one carrier, secret and magnitude."""
    from interp.harmless import apply
    from interp.harmless.layers import depends_on_input

    model, config = image_model(path)
    data = image_dataset(config["dataset"])
    space = harmless_space(path, layer, carrier if depends_on_input(layer) else None)
    images = data.test.images
    hidden = apply.hide_image(model, space, images[carrier], images[secret], scales=(magnitude,))
    # The same δ direction as a plain check, for the ReLU case: does the activation pattern still hold?
    check = apply.check_perturbation(model, images[carrier], space, magnitude, direction=images[secret].flatten())
    return space, hidden, check
