"""Small Streamlit helpers shared by the pages: page set-up, the readable roots, and a clear message
when an analysis module is missing. Rendering only; every computation lives in `interp`."""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import sys
import threading
import time
from types import ModuleType

import streamlit as st

from interp import catalog
from interp.errors import InterpError


# Importing torch, TransformerLens and SAE-Lens takes seconds, and so do pandas (every `st.dataframe`), the
# first plotly figure, loading the default models and the whole-test-set analyses. So a background thread
# does all of that once per server process, as early as it can: `app/serve.py` (what `make app` runs)
# starts it when the server starts, before anyone connects; started with a plain `streamlit run
# app/Home.py` the first page a browser opens starts it instead (`setup` below). Either way every later
# first visit finds its imports done and its default view cached. (Python's import lock makes a
# concurrent import safe; `st.cache_*` functions are safe to fill from another thread, and a page that
# asks for a value the warm-up is computing waits for it rather than computing it twice.)
#
# The order matters on a small machine, where the warm-up competes with the first visits for the CPU
# and the GIL: what every page needs and is quick comes first (pandas and pyarrow, which `st.dataframe`
# imports; plotly and its first figure; the app's light modules; the default saved graph, whose view at
# thresholds of 1.0 needs no torch), then torch and the image pages' default views, and TransformerLens
# and SAE-Lens (~11 s here, holding the import lock and the GIL for seconds) last: only a live
# extraction or a live feature card needs them.
WARM_MODULES_FIRST = ("pandas", "pyarrow", "plotly.graph_objects", "interp.viz.models", "interp.viz.lm",
                      "interp.graph.view", "interp.graph.export", "interp.viz.graph")
WARM_MODULES = ("torch", "interp.bilinear.analysis", "interp.viz.bilinear", "interp.harmless.layers",
                "interp.relevance.engine", "interp.relevance.evaluate", "interp.viz.relevance",
                "interp.harmless.apply", "interp.viz.harmless")
WARM_MODULES_LAST = ("interp.graph.pipeline", "interp.models.lm")
# Started by a page (no launcher): let that page render before the warm-up takes the CPU.
WARM_DELAY_FROM_PAGE_S = 1.0
# The models pages open on: warmed in this order when they exist.
DEFAULT_IMAGE_MODELS = ("fmnist-bilinear",)


class _QuietWarmUp(logging.Filter):
    """Drops Streamlit's warnings about what the warm-up does on purpose: filling caches outside a script run
    ("missing ScriptRunContext", once per call) and, started by the launcher, defining and filling them before
    the server's runtime exists ("No runtime found"). A filter, not a log level: Streamlit resets its
    loggers' levels when it reads its config."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (not threading.current_thread().name.startswith(WARM_THREAD)
                and not record.getMessage().startswith("No runtime found"))


WARM_THREAD = "interp-warm-up"
for _name in ("streamlit.runtime.scriptrunner_utils.script_run_context", "streamlit.runtime.caching.cache_data_api"):
    logging.getLogger(_name).addFilter(_QuietWarmUp())


def _warm_up(delay: float) -> None:
    time.sleep(delay)
    _import_all(WARM_MODULES_FIRST)
    for step in (_warm_dataframe, _warm_plotly, _warm_saved_graph):  # the saved graph's default view needs no torch
        _best_effort(step)
    _import_all(WARM_MODULES)
    _best_effort(_warm_image_models)
    _import_all(WARM_MODULES_LAST)


def _best_effort(step) -> None:
    try:
        step()
    except Exception:  # noqa: BLE001 — warming is best effort; the page shows any real error itself
        pass


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a page that needs it says so


def _warm_dataframe() -> None:
    """What the first `st.dataframe` of a process costs beyond pandas: Streamlit's conversion to Arrow."""
    from streamlit import dataframe_util

    dataframe_util.convert_anything_to_arrow_bytes([{"name": "warm", "value": 1.0, "n": 1, "flag": True}])


def _warm_plotly() -> None:
    import plotly.graph_objects as go

    go.Figure(go.Scatter(x=[0], y=[0]), layout={"title": "warm"}).to_json()  # loads plotly's validators
    go.Figure(go.Bar(x=["a"], y=[1])).to_json()


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
            # What each page shows first, quickest first; the whole-test-set analyses (which the Bilinear
            # spectra page shows when they are ready, see `soon`) last.
            direction_spectrum(path, "0", 16)
            model, _ = image_model(path)
            maps = relevance_maps(path, 0, None)
            if names[name].arch == "bilinear":
                pair_relevance(path, 0, maps["target"])
            hidden_image(path, next(iter(harmless_layers(model))), 0, 1, 100.0)
            pixel_flipping(path, FLIP_IMAGES)
            eigen_report(path)


_warm_started = threading.Event()
_warm_lock = threading.Lock()


def start_warm_up(delay: float = 0.0) -> bool:
    """Start the warm-up thread once per process, after `delay` seconds; True if this call started it.
    `app/serve.py` calls it when the server starts; `setup` calls it on every page run (a no-op after the
    first), for an app started without the launcher."""
    with _warm_lock:
        if _warm_started.is_set():
            return False
        _warm_started.set()
    threading.Thread(target=_warm_up, args=(delay,), name=WARM_THREAD, daemon=True).start()
    return True


def wait_for_warm_up(timeout: float | None = None) -> bool:
    """Block until the warm-up has finished (for benchmarks); True if it has."""
    thread = next((t for t in threading.enumerate() if t.name == WARM_THREAD), None)
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return _warm_started.is_set()


# Results a page shows once they are ready, computed in the background meanwhile (see `soon`).
_soon_jobs: dict[tuple, concurrent.futures.Future] = {}
_soon_lock = threading.Lock()


def _in_background(function, *args) -> concurrent.futures.Future:
    """`function(*args)` on a daemon thread (a server that stops does not wait for it)."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(function(*args))
            except BaseException as e:  # noqa: BLE001 — handed to whoever asks for the result
                future.set_exception(e)

    threading.Thread(target=run, name=f"{WARM_THREAD}-soon", daemon=True).start()
    return future


def soon(cached, *args, wait: float = 0.25):
    """`cached(*args)` (one of this module's cached functions) if it is ready, else None while it goes on in the
    background, once per arguments (a value the warm-up is computing is waited for, not computed twice). The
    call that starts it waits up to `wait` seconds for it (a quick value then shows at once); later calls, a
    rerun while it is still going, do not wait. For a page's slow, secondary part: the page renders now and
    shows it when ready (`poll_until_ready`) instead of freezing. A failure is raised here, as a direct call
    would raise it, and forgotten: the next call tries again."""
    key = (cached.__name__, args)
    with _soon_lock:
        job = _soon_jobs.get(key)
        started = job is None
        if started:
            job = _soon_jobs[key] = _in_background(cached, *args)
    try:
        return job.result(timeout=wait if started else 0.0)
    except concurrent.futures.TimeoutError:
        return None
    except BaseException:
        with _soon_lock:
            if _soon_jobs.get(key) is job:
                del _soon_jobs[key]
        raise


def _soon_finished(cached, *args) -> bool:
    job = _soon_jobs.get((cached.__name__, args))
    return job is None or job.done()


def wait_for_soon(timeout: float | None = None) -> bool:
    """Block until every `soon` job has finished (for tests and benchmarks); True if they have."""
    with _soon_lock:
        jobs = list(_soon_jobs.values())
    done, pending = concurrent.futures.wait(jobs, timeout=timeout)
    return not pending


def poll_until_ready(cached, *args, message: str, every: float = 1.0) -> None:
    """Where a `soon` value will go: `message` now, and the whole page run again once the value is ready."""

    @st.fragment(run_every=every)
    def _poll() -> None:
        if _soon_finished(cached, *args):  # ready, or failed: the page's own call shows it
            st.rerun()
        st.info(message, icon=":material/hourglass_top:")

    _poll()


# ---- the width a chart is drawn at ------------------------------------------------------------------
#
# A chart with width="stretch" is drawn as wide as its column, which the server cannot know (a 1400 px
# window gives the main column ~1000 px, a 900 px one ~450 px beside the sidebar). The graph's markers are
# sized in pixels, so the page asks the browser: this small component measures its own width (that of the
# column it sits in) and sends it back, again whenever it changes by 10 px or more (a resized window);
# each change reruns the page, which lays the graph out for that width.
WIDTH_PROBE_JS = """
export default function(component) {
  const { data, setStateValue, parentElement } = component;
  const box = parentElement instanceof Element ? parentElement : parentElement.host;  // a shadow root's host
  let timer = null;
  const report = () => {
    const width = Math.floor(box.getBoundingClientRect().width / 10) * 10;
    if (width > 0 && Math.abs(width - ((data && data.width) || 0)) >= 10) setStateValue('width', width);
  };
  const observer = new ResizeObserver(() => { clearTimeout(timer); timer = setTimeout(report, 200); });
  observer.observe(box);
  report();
  return () => { observer.disconnect(); clearTimeout(timer); };
}
"""
_width_probe = None


def column_width(key: str, default: int = 900) -> int:
    """The width in pixels of the column this is called in, as the browser last reported it; `default`
    before it has (a first run) and where there is no browser (tests)."""
    global _width_probe
    if _width_probe is None:
        _width_probe = st.components.v2.component("interp_width_probe", js=WIDTH_PROBE_JS)
    state = st.session_state.get(key)
    known = state.get("width") if hasattr(state, "get") else None
    result = _width_probe(key=key, data={"width": known}, default={"width": None}, on_width_change=lambda: None,
                          height=1)
    width = result.get("width") if hasattr(result, "get") else None
    return int(width) if isinstance(width, (int, float)) and width >= 200 else default


def setup(title: str, icon: str = ":material/biotech:") -> None:
    st.set_page_config(page_title=f"{title} · interp", page_icon=icon, layout="wide")
    st.title(title)
    start_warm_up(WARM_DELAY_FROM_PAGE_S)  # a no-op when the launcher (or an earlier page) started it


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


def class_names_and_shape(config: dict) -> tuple[list[str], tuple[int, int]]:
    """The class names and image shape of a classifier checkpoint, from its config.json (saved since
    `save_classifier` records them), else from its data set, which then has to be loaded (seconds)."""
    names, shape = config.get("class_names"), config.get("image_shape")
    if isinstance(names, list) and isinstance(shape, list) and len(shape) == 2:
        return [str(n) for n in names], (int(shape[0]), int(shape[1]))
    data = image_dataset(config["dataset"])
    return data.class_names, data.image_shape


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
    names, _ = class_names_and_shape(config)
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
