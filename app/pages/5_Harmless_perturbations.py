"""Harmless perturbations: hide a secret image in a carrier image along directions the model's first
layer cannot see; the logits do not move, whatever the magnitude (for an exact null space)."""

import streamlit as st

import ui
from interp import catalog

ui.setup("Harmless perturbations", icon=":material/visibility_off:")
apply, layers_mod, viz = ui.require("interp.harmless.apply", "interp.harmless.layers", "interp.viz.harmless")
from interp.errors import InterpError  # noqa: E402

roots = ui.roots()
MAGNITUDES = [0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]


# Cached in `ui` (shared with the background warm-up, which fills the default view when the server starts).
space_for, hidden_for = ui.harmless_space, ui.hidden_image


classifiers = catalog.image_classifiers(roots)
if not classifiers:
    st.info("No image classifier under the checkpoint folders yet.")
    st.stop()
top = st.columns(2)
with top[0]:
    chosen = ui.pick_checkpoint("Model", classifiers, key="model", prefer=("fmnist-bilinear", "fmnist-relu"))
model, config, data = ui.open_image_model(chosen.path)
try:
    layers = layers_mod.harmless_layers(model)
except InterpError as e:
    ui.fail(e)
with top[1]:
    layer = st.selectbox("Layer", list(layers), key="layer", format_func=lambda name: f"{name} — {layers[name]}")
names = data.class_names
n_images = min(len(data.test), 1000)
row = st.columns(3)
with row[0]:
    carrier = st.slider("Carrier image (test index)", 0, n_images - 1, 0, key="carrier")
with row[1]:
    secret = st.slider("Secret image (test index)", 0, n_images - 1, 1, key="secret")
with row[2]:
    magnitude = st.select_slider("Magnitude (‖δ‖ / ‖carrier‖)", MAGNITUDES, value=100.0, key="magnitude")

try:
    space, hidden, check = hidden_for(str(chosen.path), layer, carrier, secret, float(magnitude))
except (InterpError, ValueError) as e:
    ui.fail(e)

at_scale = hidden.scales[0]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Harmless dimension", space.dimension, help=f"of {space.d_in} input dimensions (rank {space.rank})")
c2.metric("Max |Δlogit|", f"{at_scale.max_abs_logit_change:.2e}", help=f"max |logit| = {hidden.max_abs_logit:.3g}")
same = check.prediction_before == check.prediction_after
c3.metric("Prediction after", names[check.prediction_after], delta="unchanged" if same else
          f"was {names[check.prediction_before]}", delta_color="off" if same else "inverse",
          delta_arrow="off" if same else "auto")
c4.metric("Perturbation recovered (cosine)", f"{at_scale.recovered_cosine:.4f}",
          help="the result projected onto the harmless space, against the perturbation (the projected secret); "
               f"the perturbation itself keeps cosine {hidden.secret_cosine:.3f} with the original secret")

if not space.exact:
    st.warning(f"The exact null space of {layer} is empty (input dimension not above the rank): this is the "
               f"approximate space of the {space.dimension} smallest singular values, which still moves the output. "
               + (space.note or ""))
if check.valid_magnitude is not None or check.pattern_holds is not None:
    bound = "any magnitude" if check.valid_magnitude is None else f"magnitudes up to {check.valid_magnitude:.3g}×‖carrier‖"
    text = (f"This space depends on the carrier: harmless only while its ReLU pattern holds, along this δ for {bound}.")
    (st.success if check.pattern_holds and space.exact else st.error)(
        text + ("" if check.pattern_holds else " At this magnitude the pattern breaks.")
        + ("" if space.exact else f" Even so, it is {space.validity}."))
else:
    st.caption(f"{space.kind} layer: {space.validity}; the secret keeps {100 * hidden.secret_kept:.1f}% of its "
               f"norm in the space (cosine with the original {hidden.secret_cosine:.3f}).")

st.plotly_chart(viz.hidden_image_figure(hidden, title=f"Carrier ({names[int(data.test.labels[carrier])]}), secret "
                                                     f"({names[int(data.test.labels[secret])]}), perturbation, result, "
                                                     "recovered"), key="images")
st.plotly_chart(viz.hidden_logits_figure(hidden, names), key="logits")
with st.expander("The subspace"):
    st.plotly_chart(viz.singular_values_figure(space), key="singular_values")
    if space.input_shape:
        st.plotly_chart(viz.basis_images_figure(space), key="basis")
