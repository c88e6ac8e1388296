"""Relevance maps: an image (or a prompt); deep Taylor decomposition and the baselines side by side,
exact pair relevance for bilinear models, and the pixel-flipping curves."""

import streamlit as st

import ui
from interp import catalog

ui.setup("Relevance maps", icon=":material/local_fire_department:")
engine, evaluate, viz = ui.require("interp.relevance.engine", "interp.relevance.evaluate", "interp.viz.relevance")
from interp.errors import InterpError  # noqa: E402

roots = ui.roots()
# The methods shown side by side: the deep Taylor rule map, and the baselines it is compared with.
METHODS = {"deep Taylor (DTD)": "dtd", "LRP-ε": "epsilon", "gradient × input": "gradient_x_input", "gradient": "gradient"}
FLIP_IMAGES = ui.FLIP_IMAGES


# Cached in `ui` (shared with the background warm-up, which fills the default view when the server starts).
maps, pairs = ui.relevance_maps, ui.pair_relevance


def flipping(path: str, n_images: int) -> dict:
    return ui.pixel_flipping(path, n_images)


mode = st.radio("Explain", ["an image", "a prompt"], horizontal=True, key="mode")

if mode == "a prompt":
    _, tokens_module = ui.require("interp.models.lm", "interp.relevance.tokens")
    lms = catalog.language_models(roots)
    if not lms:
        st.info("No language model under the checkpoint folders yet (`interp train lm`, or a Hugging Face folder).")
        st.stop()
    chosen = ui.pick_checkpoint("Language model", lms, key="lm", prefer=("lm-bilinear",))
    lm = ui.language_model(str(chosen.path))
    prompt = st.text_input("Prompt", value=ui.example_prompt("ioi"), key="prompt")
    target_text = st.text_input("Explain the logit of (empty: the top prediction)", value="", key="target_token")
    try:
        result = tokens_module.prompt_relevance(lm, prompt, target_text.strip() or None)
    except InterpError as e:
        ui.fail(e)
    target_name = result.target
    c1, c2, c3 = st.columns(3)
    c1.metric("Explained logit", f"{result.output:.3f}", help=f"the logit of {target_name!r} at the last position")
    c2.metric("Σ token relevance", f"{result.relevance_sum:.3f}")
    c3.metric("Constant (positions, biases)", f"{result.constant:.3f}")
    st.plotly_chart(viz.token_relevance_figure(result.tokens, result.relevance,
                                               f"token relevance for {target_name!r}"), key="token_relevance")
    mlps = ("bilinear MLPs are split exactly" if result.mlp_rule == "bilinear" else
            "each MLP's activation is frozen at its ratio f(h)/h on this prompt")
    st.caption(f"Attention patterns and normalisation scales are frozen at their values on this prompt and {mlps}, "
               "so the relevance of the tokens plus the constant is the logit.")
    st.stop()

classifiers = catalog.image_classifiers(roots)
if not classifiers:
    st.info("No image classifier under the checkpoint folders yet.")
    st.stop()
top = st.columns([2, 3, 2])
with top[0]:
    chosen = ui.pick_checkpoint("Model", classifiers, key="model", prefer=("fmnist-bilinear", "fmnist-cnn"))
model, config, data = ui.open_image_model(chosen.path)
names = data.class_names
with top[1]:
    index = st.slider("Test image", min_value=0, max_value=min(len(data.test), 1000) - 1, value=0, key="index")
with top[2]:
    label = int(data.test.labels[index])
    choice = st.selectbox("Explain the logit of", ["predicted class"] + [f"{i}: {n}" for i, n in enumerate(names)],
                          key="target")
target = None if choice == "predicted class" else int(choice.split(":")[0])

try:
    result = maps(str(chosen.path), index, target)
except InterpError as e:
    ui.fail(e)
explained = names[result["target"]]
prediction = names[result["predicted"]]
st.markdown(f"True label **{names[label]}**, predicted **{prediction}**; explaining the logit of "
            f"**{explained}** = {result['output']:.3f} "
            f"(Σ DTD relevance {result['dtd_total']:.3f}, absorbed by biases {result['absorbed']:.3g}).")
image = data.test.images[index].tolist()
st.plotly_chart(viz.method_maps_figure(image, {title: result[key] for title, key in METHODS.items()}), key="maps")
with st.expander("Rules per layer"):
    st.json(result["rules"])

if chosen.arch == "bilinear":
    st.subheader("Pair relevance (exact for a bilinear layer)")
    pair = pairs(str(chosen.path), index, result["target"])
    d = len(pair.relevance)
    width = data.image_shape[1]
    left, right = st.columns([1, 2])
    with left:
        # Keyed by image and class, so that a new image starts again from its own strongest pixel.
        pixel = st.number_input("Pixel (row-major index)", min_value=0, max_value=d - 1, value=pair.strongest,
                                key=f"pixel_{index}_{result['target']}", help="default: the pixel with the largest |R_i|")
        st.metric("Σ R_ij", f"{pair.total:.4f}", help=f"the logit is {pair.output:.4f}")
        st.caption(f"R_ij = x_i Q_ij x_j; R_i = Σ_j R_ij. Pixel {pixel} is row {pixel // width}, column {pixel % width}.")
    with right:
        st.plotly_chart(viz.pair_relevance_figure(pair.pairs, data.image_shape, int(pixel)), key="pairs")

st.subheader("Pixel flipping")
flip = flipping(str(chosen.path), FLIP_IMAGES)
st.plotly_chart(viz.flipping_curves_figure(flip["curves"], flip["pixels_per_step"], flip["aopc"],
                                           title=f"Pixel flipping, most relevant first, on the first {flip['n_images']} "
                                                 f"test images (higher AOPC: a better explanation)"), key="flipping")
