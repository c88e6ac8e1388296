"""Circuits: a saved attribution graph under circuits/, or one extracted live from a prompt.

The graph is drawn by layer (up) and token position (across); thresholds prune what is shown;
selecting a node (click it, or pick its id) shows its feature card and strongest links, and
ablating it shows how the next-token logits move.
"""

import json
from pathlib import Path

import streamlit as st

import ui
from interp import catalog

ui.setup("Circuits", icon=":material/hub:")
graph_setup, pipeline, replacement, export, prune_mod, features_mod, interventions, viz, graph_view = ui.require(
    "interp.graph.setup", "interp.graph.pipeline", "interp.graph.replacement", "interp.graph.export", "interp.graph.prune",
    "interp.graph.features", "interp.graph.interventions", "interp.viz.graph", "interp.graph.view")
from interp.graph import FEATURE_CORPUS_SEED  # noqa: E402
from interp.errors import InterpError  # noqa: E402

roots = ui.roots()
# Live cards use half the sequences of saved ones (they are computed on a click), from the same seed.
CORPUS_SEQUENCES, CORPUS_SEED = 64, FEATURE_CORPUS_SEED


# ---- cached heavy work ------------------------------------------------------------------------------

@st.cache_resource(show_spinner="Loading the model and its dictionaries…")
def setup_for(model_dir: str, mode: str):
    return graph_setup.load_setup(model_dir, mode=mode)


@st.cache_resource(show_spinner="Extracting the attribution graph…", max_entries=8)
def extraction(model_dir: str, mode: str, prompt: str, target: str, contrast: tuple[str, str] | None):
    setup = setup_for(model_dir, mode)
    return pipeline.extract(setup, prompt, target=target or None, contrast=contrast, node_threshold=1.0,
                           edge_threshold=1.0, slug="live")


@st.cache_data(show_spinner=False, max_entries=32)
def pruned_json(model_dir: str, mode: str, prompt: str, target: str, contrast, node_threshold: float,
                edge_threshold: float) -> dict:
    ex = extraction(model_dir, mode, prompt, target, contrast)
    pruned = prune_mod.prune(ex.graph, node_threshold, edge_threshold)
    return export.export_graph(ex.graph, pruned, slug="live", scan=Path(model_dir).name, node_threshold=node_threshold,
                               edge_threshold=edge_threshold,
                               scores={"replacement_score": ex.scores.replacement_score,
                                       "completeness_score": ex.scores.completeness_score})


@st.cache_data(show_spinner="Reading the graph…", max_entries=16)
def saved_graph(path: str, mtime: float) -> dict:
    return export.read_graph_json(path)


@st.cache_resource(show_spinner="Feature activations over the corpus…")
def corpus_tokens(model_dir: str, mode: str):
    return features_mod.corpus_windows(setup_for(model_dir, mode), CORPUS_SEQUENCES, CORPUS_SEED)


@st.cache_data(show_spinner="Computing the feature card…", max_entries=64)
def live_feature_card(model_dir: str, mode: str, kind: str, layer: int, feature: int) -> dict:
    setup = setup_for(model_dir, mode)
    return features_mod.feature_card(setup.replacement, kind, layer, feature, corpus_tokens(model_dir, mode),
                                     setup.vocab)


@st.cache_data(show_spinner="Ablating…", max_entries=64)
def ablation(model_dir: str, mode: str, prompt: str, kind: str, layer: int, pos: int, feature: int, how: str) -> dict:
    setup = setup_for(model_dir, mode)
    result = interventions.intervene(setup.replacement, setup.encode(prompt),
                                     [interventions.Intervention(kind, layer, pos, feature, 0.0)], mode=how)
    return {"clean": result.clean_logits.tolist(), "new": result.new_logits.tolist()}


# ---- rendering helpers --------------------------------------------------------------------------------

def feature_card(card: dict) -> None:
    st.markdown(f"**{card['kind']} feature {card['feature']} at layer {card['layer']}** · active on "
                f"{100 * card['activation_frequency']:.2f}% of corpus tokens · max activation {card['act_max']:.3f}")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("Top activating contexts")
        examples = card["examples_quantiles"][0]["examples"] if card["examples_quantiles"] else []
        if not examples:
            st.caption("never active on the corpus")
        peak = card["act_max"] or 1.0
        for ex in examples[:6]:
            # A window around the strongest token, so that long contexts stay readable.
            st.markdown(viz.highlighted_context(ex, peak), unsafe_allow_html=True)
    with right:
        st.markdown("Top logits: " + ", ".join(f"`{t}`" for t in card["top_logits"][:8]))
        st.markdown("Bottom logits: " + ", ".join(f"`{t}`" for t in card["bottom_logits"][:8]))
        st.plotly_chart(viz.activation_histogram_figure(card), key="histogram")


# ---- the page -----------------------------------------------------------------------------------------

head = st.columns([1, 3])
with head[0]:
    source = st.radio("Graph", ["saved graph", "extract live"], key="source")
lms = [c for c in catalog.language_models(roots) if (c.path / "transcoders").is_dir()]
lm_by_name = {c.path.name: c for c in lms}
graph_path: Path | None = None

if source == "saved graph":
    graphs = catalog.list_graphs(roots)
    with head[1]:
        with st.expander("Open a graph file by path"):
            typed = st.text_input("Graph JSON file", key="graph_path",
                                  help="only files inside the circuits folders can be read")
        if typed:
            graph_path = ui.guarded(typed, within=roots.circuits)
        elif graphs:
            labels = [f"{g.name} — {g.prompt[:70]}" for g in graphs]
            chosen = st.selectbox("Saved graph", labels, key="graph")
            graph_path = graphs[labels.index(chosen)].path
        else:
            st.info("No saved graph under " + ", ".join(str(r) for r in roots.circuits) + " yet (`interp extract "
                    "--recipe circuits/NAME.toml --out-dir circuits/NAME`); extract one live instead.")
            st.stop()
    row = st.columns(4)
    node_threshold = row[0].slider("Node threshold (cumulative influence)", 0.05, 1.0, 1.0, 0.05, key="node_threshold")
    edge_threshold = row[1].slider("Edge threshold (cumulative influence)", 0.05, 1.0, 1.0, 0.01, key="edge_threshold")
    try:
        full = saved_graph(str(graph_path), graph_path.stat().st_mtime)
    except (InterpError, OSError) as e:
        ui.fail(e)
    data = graph_view.view_graph(full, node_threshold, edge_threshold)
    prompt = full["metadata"].get("prompt", "")
    model = lm_by_name.get(str(full["metadata"].get("scan", "")))
    mode = (full["metadata"].get("interp") or {}).get("mode", "full")
else:
    if not lms:
        st.info("No language model with dictionaries (a `transcoders/` folder) under the checkpoint folders yet.")
        st.stop()
    with head[1]:
        top = st.columns([2, 1])
        with top[0]:
            model = ui.pick_checkpoint("Model", lms, key="lm", prefer=("lm-bilinear",))
        with top[1]:
            mode = st.selectbox("Replacement model", list(replacement.MODES), key="mode",
                                help="full: transcoders and attention SAEs; transcoder-only: attention passed "
                                     "through linearly (as circuit-tracer builds it)")
        with st.form("extract"):
            prompt = st.text_input("Prompt", value=ui.example_prompt("ioi"), key="prompt")
            c1, c2 = st.columns(2)
            target = c1.text_input("Target token (empty: the top logits)", key="target")
            contrast_text = c2.text_input("…or a contrast A,B (logit A − logit B)", key="contrast")
            st.form_submit_button("Extract")
    contrast = tuple(w.strip() for w in contrast_text.split(",")) if contrast_text.strip() else None
    if contrast is not None and len(contrast) != 2:
        ui.fail(InterpError("a contrast is two words separated by a comma, e.g. Mary,John"))
    row = st.columns(4)
    node_threshold = row[0].slider("Node threshold (cumulative influence)", 0.05, 1.0, 0.8, 0.05, key="node_threshold")
    edge_threshold = row[1].slider("Edge threshold (cumulative influence)", 0.05, 1.0, 0.98, 0.01, key="edge_threshold")
    try:
        data = pruned_json(str(model.path), mode, prompt, target.strip(), contrast, node_threshold, edge_threshold)
    except InterpError as e:
        ui.fail(e)
    full = data

meta = data["metadata"]
scores = meta.get("interp") or {}
row[2].metric("Nodes shown", len(data["nodes"]), help=f"of {len(full['nodes'])} in the graph")
row[3].metric("Links shown", len(data["links"]), help=f"of {len(full['links'])} in the graph")

# Node selection: a click on the plot (read back from the chart's state) or the selectbox below.
by_id = {n["node_id"]: n for n in data["nodes"]}
node_ids = catalog.node_order(data["nodes"])
clicked = st.session_state.get("graph_chart")
points = (clicked or {}).get("selection", {}).get("points", []) if clicked else []
picked = next((p["customdata"] for p in points if p.get("customdata") in by_id), None)
if picked and picked != st.session_state.get("_last_clicked"):
    st.session_state["_last_clicked"] = picked
    st.session_state["node"] = picked
if st.session_state.get("node") not in by_id:
    st.session_state.pop("node", None)

fig = viz.graph_figure(data, title=f"“{prompt}”")
fig.update_layout(clickmode="event+select", dragmode="pan")
st.plotly_chart(fig, key="graph_chart", on_select="rerun", selection_mode="points")
st.caption("Node colour: type. Edge width: |weight|; blue positive, red negative. Click a node to select it. "
           + " · ".join(f"{k.replace('_', ' ')} {scores[k]:.3f}" for k in ("replacement_score", "completeness_score")
                        if isinstance(scores.get(k), (int, float))))

name = (str(graph_path.name) if graph_path else "live-graph.json").removesuffix(".json")
st.download_button("Download graph JSON", json.dumps(data, indent=1), file_name=f"{name}.json",
                   mime="application/json", key="download")

if not node_ids:
    st.stop()
node_id = st.selectbox("Selected node", node_ids, key="node",
                       format_func=lambda i: f"{i} · {by_id[i]['feature_type']} · {by_id[i].get('clerp') or ''}")
node = by_id[node_id]
prompt_tokens = meta.get("prompt_tokens") or []
if not (isinstance(node.get("ctx_idx"), int) and 0 <= node["ctx_idx"] < len(prompt_tokens)):
    ui.fail(InterpError(f"node {node_id} is at position {node.get('ctx_idx')!r}, outside the prompt's "
                        f"{len(prompt_tokens)} tokens"))
st.subheader(f"Node {node_id}")
st.caption(f"{node['feature_type']} · layer {node['layer']} · position {node['ctx_idx']} "
           f"({prompt_tokens[node['ctx_idx']]!r})"
           + (f" · activation {node['activation']:.4g}" if isinstance(node.get("activation"), (int, float)) else "")
           + (f" · influence {node['influence']:.4g}" if isinstance(node.get("influence"), (int, float)) else ""))

where = catalog.feature_node(node)
card = None
if where is not None:
    if source == "saved graph":
        path = catalog.feature_file(graph_path, full, node)
        if path is not None:
            card = json.loads(ui.guarded(str(path), within=roots.circuits).read_text(encoding="utf-8"))
    if card is None and model is not None:
        try:
            card = live_feature_card(str(model.path), mode, where.kind, where.layer, where.feature)
        except InterpError as e:
            st.warning(str(e))
    if card is not None:
        feature_card(card)
    else:
        st.info("No feature JSON beside this graph and no model to compute one from.")

incoming, outgoing = catalog.node_links(data, node_id)
left, right = st.columns(2)
with left:
    st.markdown("Strongest inputs")
    st.dataframe(catalog.link_rows(incoming, "source", by_id), hide_index=True, key="inputs")
with right:
    st.markdown("Strongest outputs")
    st.dataframe(catalog.link_rows(outgoing, "target", by_id), hide_index=True, key="outputs")

st.subheader("Ablate this feature")
if where is None:
    st.caption("Only dictionary features can be ablated; pick a feature node.")
elif model is None:
    st.info(f"The model this graph was made from ({meta.get('scan')!r}) is not under the checkpoint folders.")
else:
    how = st.radio("Recompute", list(interventions.MODES), horizontal=True, key="ablation_mode",
                   help="constrained: the replacement model with attention patterns and normalisation frozen; "
                        "replacement: the replacement model run freely, errors at their clean values; "
                        "free: the real model with only this feature's decoder contribution removed")
    try:
        logits = ablation(str(model.path), mode, prompt, where.kind, where.layer, where.pos, where.feature, how)
    except InterpError as e:
        ui.fail(e)
    vocab = setup_for(str(model.path), mode).vocab
    st.plotly_chart(viz.ablation_figure(logits["clean"], logits["new"], vocab,
                                        title=f"Next-token logits before and after setting {node_id} to 0 ({how})"),
                    key="ablation_chart")
    shift = viz.logit_shift(logits["clean"], logits["new"], vocab)
    st.caption(f"Largest logit change {shift['max_change']:.4f}; top token before "
               f"{shift['top_before']!r}, after {shift['top_after']!r}.")
