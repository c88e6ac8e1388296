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


# Importing TransformerLens and SAE-Lens takes seconds. This module is imported once per server
# process, so start those imports in the background as soon as any page is opened: by the time
# someone opens Circuits, they are done. (Python's import lock makes a concurrent import safe.)
WARM_MODULES = ("interp.graph.pipeline", "interp.models.lm", "interp.bilinear.analysis", "interp.relevance.engine",
                "interp.harmless.layers")
WARM_DELAY_S = 3.0


def _warm_up() -> None:
    time.sleep(WARM_DELAY_S)  # let the page that triggered this render first
    for name in WARM_MODULES:
        importlib.import_module(name)


threading.Thread(target=_warm_up, name="interp-warm-up", daemon=True).start()


def setup(title: str, icon: str = ":material/biotech:") -> None:
    st.set_page_config(page_title=f"{title} · interp", page_icon=icon, layout="wide")
    st.title(title)


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

