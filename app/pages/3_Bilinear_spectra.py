"""Bilinear spectra: a bilinear model and an output direction; its eigenvalue spectrum, its top
eigenvectors (as images for image models), and the truncation curve."""

from pathlib import Path

import streamlit as st

import ui
from interp import catalog

ui.setup("Bilinear spectra", icon=":material/show_chart:")
analysis, viz = ui.require("interp.bilinear.analysis", "interp.viz.bilinear")
from interp.errors import InterpError  # noqa: E402

roots = ui.roots()


def spectrum(path: str, direction: str, n_vectors: int) -> dict:
    return ui.direction_spectrum(path, direction, n_vectors)


@st.cache_resource(show_spinner="Loading the dictionaries…")
def dictionaries(folder: str):
    from interp.models.dictionaries import load_dictionaries

    return load_dictionaries(folder)


@st.cache_data(show_spinner="Reading the MLP from its weights…", max_entries=32)
def lm_reading(path: str, layer: int, output: str, inputs: str, top: int, heads: bool) -> dict:
    from interp.bilinear import lm as lm_module  # checked by `ui.require` before this is called

    loaded = ui.language_model(path)
    tc_folder = Path(path) / "transcoders"
    dicts = dictionaries(str(tc_folder)) if tc_folder.is_dir() else None
    return lm_module.read_bilinear_mlp(loaded.model, layer, output, inputs, loaded.tokenizer, dicts, top=top,
                                       heads=heads, head_top=5, spectrum_values=60).to_dict()


kind = st.radio("Model", ["image classifier", "language model"], horizontal=True, key="kind",
                label_visibility="collapsed")
if kind == "language model":
    ui.require("interp.bilinear.lm", "interp.models.lm", "interp.models.dictionaries")
    lms = [c for c in catalog.language_models(roots) if c.arch == "bilinear"]
    if not lms:
        st.info("No bilinear language model under the checkpoint folders yet (`interp train lm --arch bilinear`).")
        st.stop()
    row = st.columns([2, 1, 2, 2])
    with row[0]:
        chosen = ui.pick_checkpoint("Language model", lms, key="lm", prefer=("lm-bilinear",))
    try:
        loaded = ui.language_model(str(chosen.path))
    except InterpError as e:
        ui.fail(e)
    n_layers = loaded.model.cfg.n_layers
    layer = row[1].selectbox("MLP layer", list(range(n_layers)), index=n_layers - 1, key="lm_layer")
    example = ui.example("ioi")
    output = row[2].text_input("Output direction", value=f"token:{example.target}" if example else "", key="output",
                               help="token:WORD (its demeaned unembedding), feature:LAYER:INDEX (a transcoder "
                                    "feature's encoder row), or d_model comma-separated numbers")
    has_dicts = (chosen.path / "transcoders").is_dir()
    choices = ["tokens"] + ([f"features:{l}" for l in range(layer + 1)] if has_dicts else [])
    inputs = row[3].selectbox("Input features", choices, key="inputs",
                              help="token embeddings, or the decoder rows of a layer's transcoder")
    top = st.slider("Pairs shown", 5, 50, 20, key="top_pairs")
    heads = st.checkbox("Also the direct-path × attention-head pair terms", key="heads")
    try:
        reading = lm_reading(str(chosen.path), int(layer), output.strip(), inputs, int(top), heads)
    except InterpError as e:
        ui.fail(e)
    spec = reading["spectrum"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Effective rank (Σ|λ|)²/Σλ²", f"{spec['effective_rank']:.2f}")
    c2.metric("Positive eigenvalues", spec["n_positive"])
    c3.metric("Negative eigenvalues", spec["n_negative"])
    c4.metric("Share on squares (a = b)", f"{reading['pairs']['diagonal_share']:.3f}")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(viz.spectrum_figure(spec["top_eigenvalues"], title=f"Spectrum of Q for {reading['output_label']} "
                                                                            f"(MLP {layer}, top 60 by |λ|)"),
                        key="spectrum")
    with right:
        st.markdown(f"**Top input-feature pairs** writing along {reading['output_label']}")
        pairs = reading["pairs"]
        # Significant digits, not decimals: coefficients are often far below 1e-3.
        st.dataframe([{"a": a, "b": b, "coefficient": float(f"{c:.4g}")}
                      for (a, b), (_, _, c) in zip(pairs["pair_labels"], pairs["pairs"])],
                     hide_index=True, height=380, key="pairs_table",
                     column_config={"coefficient": st.column_config.NumberColumn(format="%.4g")})
    st.caption("The MLP writes Σ_{a≤b} C[a,b] z_a z_b along the output direction when the normalised residual "
               "stream is Σ z_a (input feature a): exact for a bilinear layer, read from the weights alone. "
               "The truncation curve is an image-classifier analysis; pick one above to see it.")
    if heads:
        st.markdown("**Direct path × head OV path**: heads whose output multiplies the current token most strongly")
        st.dataframe([{"head": h["head"], "norm": round(h["norm"], 4),
                       "top (current token, attended token, value)": ", ".join(f"{t}×{s}: {v:.3g}" for t, s, v in h["top"])}
                      for h in reading["heads"]], hide_index=True, key="heads_table")
    st.stop()

bilinear_classifiers = [c for c in catalog.image_classifiers(roots) if c.arch == "bilinear"]
if not bilinear_classifiers:
    st.info("No bilinear image classifier under the checkpoint folders yet "
            "(`interp train classifier --arch bilinear --out checkpoints/NAME`).")
    st.stop()

left, middle, right = st.columns([2, 2, 2])
with left:
    chosen = ui.pick_checkpoint("Model", bilinear_classifiers, key="model", prefer=("fmnist-bilinear",))
# The model alone (its config names the classes and the image shape): the test set is only needed by the
# curves at the bottom, which load it in the background.
try:
    model, config = ui.image_model(str(chosen.path))
except InterpError as e:
    ui.fail(e)
names, image_shape = ui.class_names_and_shape(config)
labels = [f"{i}: {n}" for i, n in enumerate(names)]
with middle:
    positive = st.selectbox("Output direction: class", labels, index=0, key="class_a")
with right:
    negative = st.selectbox("minus class (a logit difference)", ["—"] + labels, index=0, key="class_b")
n_vectors = st.slider("Eigenvectors shown", min_value=1, max_value=16, value=8, key="n_vectors")

a = labels.index(positive)
direction = str(a) if negative == "—" else f"{a}-{labels.index(negative)}"
title = names[a] if negative == "—" else f"{names[a]} − {names[labels.index(negative)]}"
if negative != "—" and labels.index(negative) == a:
    # A class minus itself: the output direction is zero, so Q is zero and has no spectrum to show.
    st.info(f"{title} is the zero direction: the logit difference of a class with itself is 0 for every image, "
            "so its matrix Q is zero (no eigenvalues, no eigenvectors). Pick two different classes.")
else:
    try:
        result = spectrum(str(chosen.path), direction, 16)
    except InterpError as e:
        ui.fail(e)

    c1, c2, c3 = st.columns(3)
    c1.metric("Effective rank (Σ|λ|)²/Σλ²", f"{result['effective_rank']:.2f}")
    c2.metric("Positive eigenvalues", result["n_positive"])
    c3.metric("Negative eigenvalues", result["n_negative"])

    st.plotly_chart(viz.spectrum_figure(result["top_eigenvalues"], title=f"Spectrum of Q for {title} (top 60 by |λ|)"),
                    key="spectrum")
    shape = image_shape
    grid = viz.eigenvector_grid(result["top_eigenvectors"][:n_vectors], result["top_eigenvalues"][:n_vectors], shape,
                                columns=min(4, n_vectors), title=f"Top {n_vectors} eigenvectors for {title} "
                                                                  "(red positive, blue negative)")
    st.plotly_chart(grid, key="eigenvectors")
    st.caption("Each logit is exactly Σₖ λₖ (vₖᵀx)²: an image drives the output by how strongly it matches "
               "each eigenvector, squared; positive λ push the output up, negative λ push it down.")

# Every class's spectrum and the truncation curve on the whole test set take ~10 s the first time (the warm-up
# computes them when the server starts): the page does not wait for them, it shows them when they are ready.
try:
    curves = ui.soon(ui.eigen_report, str(chosen.path))
except InterpError as e:
    ui.fail(e)
if curves is None:
    ui.poll_until_ready(ui.eigen_report, str(chosen.path),
                        message="Computing the spectra of every class and the truncation curve on the test set "
                                "(once per server; they appear here when ready)…")
else:
    left, right = st.columns(2)
    with left:
        st.plotly_chart(viz.truncation_figure(curves["truncation"], curves["full_accuracy"]), key="truncation")
    with right:
        st.plotly_chart(viz.class_spectra_figure(curves["classes"]), key="class_spectra")
