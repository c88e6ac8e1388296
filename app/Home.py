"""The interp workbench: `make app`, or `python app/serve.py -- --checkpoints DIR --circuits DIR` (which is
`streamlit run app/Home.py` with the caches warming from server start; see app/serve.py)."""

import streamlit as st

import ui
from interp import catalog

ui.setup("interp — a mechanistic interpretability workbench")
roots = ui.roots()

st.markdown(
    "Small interpretable models read from their weights and from their activations. "
    "Every page only calls into the `interp` package and renders what it returns; "
    "the same functions back the `interp` command line."
)

checkpoints = catalog.list_checkpoints(roots)
graphs = catalog.list_graphs(roots)
left, right = st.columns(2)
left.metric("Checkpoints", len(checkpoints))
right.metric("Saved graphs", len(graphs))

st.subheader("Pages")
st.page_link("pages/1_Models.py", label="Models — every checkpoint with its config and metrics", icon=":material/inventory_2:")
st.page_link("pages/2_Circuits.py", label="Circuits — attribution graphs, feature cards, ablations", icon=":material/hub:")
st.page_link("pages/3_Bilinear_spectra.py", label="Bilinear spectra — eigenvalues, eigenvectors, truncation", icon=":material/show_chart:")
st.page_link("pages/4_Relevance_maps.py", label="Relevance maps — deep Taylor decomposition and baselines", icon=":material/local_fire_department:")
st.page_link("pages/5_Harmless_perturbations.py", label="Harmless perturbations — hide an image in the null space", icon=":material/visibility_off:")
st.page_link("pages/6_Recipes.py", label="Recipes — each planted task's circuits, ablations and controls", icon=":material/science:")

st.subheader("What this app may read")
st.markdown("Only these folders (set others with `-- --checkpoints DIR --circuits DIR` when starting the app, "
            "or `INTERP_CHECKPOINTS` / `INTERP_CIRCUITS`); any other path is refused.")
st.code("\n".join([f"checkpoints: {p}" for p in roots.checkpoints] + [f"circuits:    {p}" for p in roots.circuits]),
        language=None)
