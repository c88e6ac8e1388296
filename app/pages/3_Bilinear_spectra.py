"""Bilinear spectra: a bilinear model and an output direction; its eigenvalue spectrum, its top
eigenvectors (as images for image models), and the truncation curve."""

import streamlit as st

import ui
from interp import catalog

ui.setup("Bilinear spectra", icon=":material/show_chart:")
analysis, core, viz = ui.require("interp.bilinear.analysis", "interp.bilinear.core", "interp.viz.bilinear")
from interp.errors import InterpError  # noqa: E402

roots = ui.roots()


@st.cache_data(show_spinner="Spectra of every class and the truncation curve on the test set…")
def report(path: str) -> dict:
    model, config = ui.image_model(path)
    data = ui.image_dataset(config["dataset"])
    return analysis.eigen_report(model, data.test.images, data.test.labels, data.class_names).to_dict()


@st.cache_data(show_spinner="Eigendecomposing the direction…")
def spectrum(path: str, direction: str, n_vectors: int) -> dict:
    model, config = ui.image_model(path)
    weights = core.classifier_weights(model)
    names = ui.image_dataset(config["dataset"]).class_names
    u = core.parse_direction(direction, weights.d_out, names)
    return analysis.direction_spectrum(weights, u, label=direction, n_values=60, n_vectors=n_vectors).to_dict()


bilinear_classifiers = [c for c in catalog.image_classifiers(roots) if c.arch == "bilinear"]
if not bilinear_classifiers:
    st.info("No bilinear image classifier under the checkpoint folders yet "
            "(`interp train classifier --arch bilinear --out checkpoints/NAME`).")
    st.stop()

left, middle, right = st.columns([2, 2, 2])
with left:
    chosen = ui.pick_checkpoint("Model", bilinear_classifiers, key="model", prefer=("fmnist-bilinear",))
try:
    model, config = ui.image_model(str(chosen.path))
    data = ui.image_dataset(config["dataset"])
except InterpError as e:
    ui.fail(e)
names = data.class_names
labels = [f"{i}: {n}" for i, n in enumerate(names)]
with middle:
    positive = st.selectbox("Output direction: class", labels, index=0, key="class_a")
with right:
    negative = st.selectbox("minus class (a logit difference)", ["—"] + labels, index=0, key="class_b")
n_vectors = st.slider("Eigenvectors shown", min_value=1, max_value=16, value=8, key="n_vectors")

a = labels.index(positive)
direction = str(a) if negative == "—" else f"{a}-{labels.index(negative)}"
title = names[a] if negative == "—" else f"{names[a]} − {names[labels.index(negative)]}"
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
shape = data.image_shape
grid = viz.eigenvector_grid(result["top_eigenvectors"][:n_vectors], result["top_eigenvalues"][:n_vectors], shape,
                            columns=min(4, n_vectors), title=f"Top {n_vectors} eigenvectors for {title} "
                                                              "(red positive, blue negative)")
st.plotly_chart(ui.square_images(grid), key="eigenvectors")
st.caption("Each logit is exactly Σₖ λₖ (vₖᵀx)²: an image drives the output by how strongly it matches "
           "each eigenvector, squared; positive λ push the output up, negative λ push it down.")

curves = report(str(chosen.path))
left, right = st.columns(2)
with left:
    st.plotly_chart(viz.truncation_figure(curves["truncation"], curves["full_accuracy"]), key="truncation")
with right:
    st.plotly_chart(viz.class_spectra_figure(curves["classes"]), key="class_spectra")
