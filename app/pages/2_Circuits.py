"""Circuits: a saved attribution graph under circuits/, or one extracted live from a prompt.

The graph is drawn by layer (up) and token position (across); thresholds prune what is shown;
selecting a node (click it, or pick its id) shows its feature card, its strongest paths and links,
and how ablating it moves the next-token logits. Nodes can be labelled, pinned and grouped into
supernodes; the pinned subgraph is drawn alone and saved into the graph JSON (`clerp`, `qParams`).
"""

import json
from pathlib import Path

import streamlit as st

import ui
from interp import catalog

ui.setup("Circuits", icon=":material/hub:")
# Reading and drawing a saved graph needs only these; the model side (TransformerLens, SAE-Lens: seconds to
# import) is imported when a live extraction, a live feature card or an ablation asks for it.
export, viz, graph_view = ui.require("interp.graph.export", "interp.viz.graph", "interp.graph.view")
MODEL_SIDE = ("interp.graph.setup", "interp.graph.pipeline", "interp.graph.replacement", "interp.graph.prune",
              "interp.graph.features", "interp.graph.interventions")


def model_side():
    """(setup, pipeline, replacement, prune, features, interventions) modules, imported on first use."""
    return ui.require(*MODEL_SIDE)

from interp.graph import FEATURE_CORPUS_SEED  # noqa: E402
from interp.errors import InterpError  # noqa: E402

roots = ui.roots()
# Live cards use half the sequences of saved ones (they are computed on a click), from the same seed.
CORPUS_SEQUENCES, CORPUS_SEED = 64, FEATURE_CORPUS_SEED
LINKS_PER_NODE = [1, 2, 3, 5, 10, "all"]
# Live mode starts at the thresholds extraction uses; a saved graph is shown as it was saved (pruned then).
LIVE_THRESHOLDS, SAVED_THRESHOLDS = (0.8, 0.98), (1.0, 1.0)


# ---- cached heavy work ------------------------------------------------------------------------------

def setup_key(mode: str, basis: str | None = None, prompt: str = "", target: str = "", contrast=None) -> tuple:
    """The cache key of a replacement model: (graph mode, basis, what an eigen basis was set for). Only
    bilinear-exact has a basis; the eigen basis is set from each prompt's target direction, so an eigen setup
    belongs to one prompt, target and contrast."""
    if mode != "bilinear-exact":
        return (mode, None, None)
    basis = basis or "hidden"
    return (mode, basis, (prompt, target, contrast) if basis == "eigen" else None)


@st.cache_resource(show_spinner="Loading the model and its dictionaries…", max_entries=4)
def setup_for(model_dir: str, mode: tuple):
    graph_mode, basis, _ = mode
    return model_side()[0].load_setup(model_dir, mode=graph_mode, basis=basis or "hidden")


@st.cache_data(show_spinner="Reading the feature's bilinear MLP from its weights…", max_entries=32)
def weights_vs_edges(model_dir: str, mode: tuple, prompt: str, target: str, contrast, nid: str) -> dict:
    """The selected MLP feature's input pairs from the weights against its incoming edges on the prompt
    (`interp.graph.agreement`), on the unpruned graph of the prompt (incoming edges do not depend on the target)."""
    from interp.graph.agreement import node_index, weights_vs_edges as compare

    ex = extraction(model_dir, mode, prompt, target, contrast)
    setup = setup_for(model_dir, mode)
    return compare(setup.replacement, ex.graph, node_index(ex.graph, nid)).to_dict()


@st.cache_resource(show_spinner="Extracting the attribution graph…", max_entries=8)
def extraction(model_dir: str, mode: tuple, prompt: str, target: str, contrast: tuple[str, str] | None):
    setup = setup_for(model_dir, mode)
    return model_side()[1].extract(setup, prompt, target=target or None, contrast=contrast, node_threshold=1.0,
                           edge_threshold=1.0, slug="live")


@st.cache_data(show_spinner=False, max_entries=32)
def pruned_json(model_dir: str, mode: tuple, prompt: str, target: str, contrast, node_threshold: float,
                edge_threshold: float) -> dict:
    ex = extraction(model_dir, mode, prompt, target, contrast)
    pruned = model_side()[3].prune(ex.graph, node_threshold, edge_threshold)
    return export.export_graph(ex.graph, pruned, slug="live", scan=Path(model_dir).name, node_threshold=node_threshold,
                               edge_threshold=edge_threshold,
                               scores={"replacement_score": ex.scores.replacement_score,
                                       "completeness_score": ex.scores.completeness_score})


# Saved graphs are read through `ui` (shared caches, filled in the background when the server starts).
saved_graph, saved_view, saved_cards = ui.saved_graph, ui.saved_view, ui.saved_cards


@st.cache_resource(show_spinner="Feature activations over the corpus…")
def corpus_tokens(model_dir: str, mode: tuple):
    return model_side()[4].corpus_windows(setup_for(model_dir, mode), CORPUS_SEQUENCES, CORPUS_SEED)


@st.cache_data(show_spinner="Computing the feature card…", max_entries=64)
def live_feature_card(model_dir: str, mode: tuple, kind: str, layer: int, feature: int) -> dict:
    setup = setup_for(model_dir, mode)
    return model_side()[4].feature_card(setup.replacement, kind, layer, feature, corpus_tokens(model_dir, mode),
                                     setup.vocab)


@st.cache_data(show_spinner="Labelling the features…", max_entries=16)
def live_cards(model_dir: str, mode: tuple, features: tuple) -> dict:
    setup = setup_for(model_dir, mode)
    cards = model_side()[4].feature_cards(setup.replacement, set(features), corpus_tokens(model_dir, mode), setup.vocab)
    return {f"{card['kind']}:{card['layer']}:{card['feature']}": card for card in cards}


@st.cache_data(show_spinner="Ablating…", max_entries=64)
def ablation(model_dir: str, mode: tuple, prompt: str, kind: str, layer: int, pos: int, feature: int, how: str) -> dict:
    setup = setup_for(model_dir, mode)
    interventions = model_side()[5]
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
        st.markdown("Activation histogram (active tokens)")
        st.plotly_chart(viz.activation_histogram_figure(card), key="histogram")


def path_rows(paths, labels: dict) -> list[dict]:
    # "▸" between steps: feature labels themselves start with "→" (the tokens they promote).
    return [{"path": "  ▸  ".join(labels.get(i, i) for i in p.nodes), "weight product": float(f"{p.weight:.4g}"),
             "nodes": " → ".join(p.nodes)} for p in paths]


# ---- which graph ----------------------------------------------------------------------------------------

head = st.columns([1, 3])
with head[0]:
    source = st.radio("Graph", ["saved graph", "extract live"], key="source")
lms = [c for c in catalog.language_models(roots) if (c.path / "transcoders").is_dir()]
lm_by_name = {c.path.name: c for c in lms}
graph_path: Path | None = None
cards: dict = {}

if source == "saved graph":
    graphs = catalog.list_graphs(roots)
    labels_of = [f"{g.name} — {g.prompt[:70]}" for g in graphs]
    # A link from the Recipes page names the graph: ?graph=ioi/ioi-00.json
    wanted = st.query_params.get("graph")
    if wanted and wanted != st.session_state.get("_graph_from_link"):
        st.session_state["_graph_from_link"] = wanted
        match = next((label for g, label in zip(graphs, labels_of) if g.name == wanted), None)
        if match is not None:
            st.session_state["graph"] = match
    with head[1]:
        with st.expander("Open a graph file by path"):
            typed = st.text_input("Graph JSON file", key="graph_path",
                                  help="only files inside the circuits folders can be read")
        if typed:
            graph_path = ui.guarded(typed, within=roots.circuits)
            if not graph_path.is_file():
                ui.fail(InterpError(f"no graph file at {typed.strip()}"))
        elif graphs:
            chosen = st.selectbox("Saved graph", labels_of, key="graph")
            graph_path = graphs[labels_of.index(chosen)].path
        else:
            st.info("No saved graph under " + ", ".join(str(r) for r in roots.circuits) + " yet (`interp extract "
                    "--recipe circuits/NAME.toml --out-dir circuits/NAME`); extract one live instead.")
            st.stop()
    row = st.columns(5)
    node_threshold = row[0].slider("Node threshold (cumulative influence)", 0.05, 1.0, SAVED_THRESHOLDS[0], 0.05,
                                   key="node_threshold")
    edge_threshold = row[1].slider("Edge threshold (cumulative influence)", 0.05, 1.0, SAVED_THRESHOLDS[1], 0.01,
                                   key="edge_threshold")
    try:
        mtime = graph_path.stat().st_mtime
        full = saved_graph(str(graph_path), mtime)
        data = saved_view(str(graph_path), mtime, node_threshold, edge_threshold)
        cards = saved_cards(str(graph_path), mtime)
    except InterpError as e:
        ui.fail(e)
    except OSError as e:  # e.g. removed since it was listed
        ui.fail(InterpError(f"cannot read the graph file {graph_path.name}: {e.strerror or e}"))
    prompt = full["metadata"].get("prompt", "")
    model = lm_by_name.get(str(full["metadata"].get("scan", "")))
    saved_meta = full["metadata"].get("interp") or {}
    target, contrast = "", None
    mode = setup_key(saved_meta.get("mode", "full"), saved_meta.get("basis"), prompt)
    graph_id = f"saved:{graph_path}"
else:
    if not lms:
        st.info("No language model with dictionaries (a `transcoders/` folder) under the checkpoint folders yet.")
        st.stop()
    with head[1]:
        top = st.columns([2, 1])
        with top[0]:
            model = ui.pick_checkpoint("Model", lms, key="lm", prefer=("lm-bilinear",))
        with top[1]:
            graph_mode = st.selectbox("Replacement model", list(model_side()[2].MODES), key="mode",
                                      help="full: transcoders and attention SAEs; transcoder-only: attention passed "
                                           "through linearly (as circuit-tracer builds it); bilinear-exact: a "
                                           "bilinear LM read exactly, no dictionary and no error nodes")
            basis = None
            if graph_mode == "bilinear-exact":
                from interp.graph import EXACT_BASES
                basis = st.selectbox("MLP basis", list(EXACT_BASES), key="basis",
                                     help="hidden: the hidden units; eigen: eigenvectors of the MLP's form for the "
                                          "target's direction; dictionary: the transcoders' decoder rows, as a "
                                          "read-out basis")
        with st.form("extract"):
            prompt = st.text_input("Prompt", value=ui.example_prompt("ioi"), key="prompt")
            c1, c2 = st.columns(2)
            target = c1.text_input("Target token (empty: the top logits)", key="target")
            contrast_text = c2.text_input("…or a contrast A,B (logit A − logit B)", key="contrast")
            st.form_submit_button("Extract")
    contrast = tuple(w.strip() for w in contrast_text.split(",")) if contrast_text.strip() else None
    if contrast is not None and len(contrast) != 2:
        ui.fail(InterpError("a contrast is two words separated by a comma, e.g. Mary,John"))
    mode = setup_key(graph_mode, basis, prompt, target.strip(), contrast)
    row = st.columns(5)
    # Their own keys: a saved graph's 1.0 / 1.0 must not carry over to a live extraction.
    node_threshold = row[0].slider("Node threshold (cumulative influence)", 0.05, 1.0, LIVE_THRESHOLDS[0], 0.05,
                                   key="live_node_threshold")
    edge_threshold = row[1].slider("Edge threshold (cumulative influence)", 0.05, 1.0, LIVE_THRESHOLDS[1], 0.01,
                                   key="live_edge_threshold")
    try:
        data = pruned_json(str(model.path), mode, prompt, target.strip(), contrast, node_threshold, edge_threshold)
        wanted_features = tuple(sorted({(w.kind, w.layer, w.feature) for n in data["nodes"]
                                        if (w := catalog.feature_node(n)) is not None}))
        by_feature = live_cards(str(model.path), mode, wanted_features)
    except InterpError as e:
        ui.fail(e)
    cards = {n["node_id"]: by_feature[f"{w.kind}:{w.layer}:{w.feature}"] for n in data["nodes"]
             if (w := catalog.feature_node(n)) is not None and f"{w.kind}:{w.layer}:{w.feature}" in by_feature}
    full = data
    graph_id = f"live:{model.path}:{mode}:{prompt}:{target}:{contrast_text}"

k_choice = row[2].selectbox("Links per node", LINKS_PER_NODE, index=2, key="k_links",
                            help="each node's strongest incoming and outgoing links (by |weight|); all: every link")
k_links = None if k_choice == "all" else int(k_choice)
meta = data["metadata"]
scores = meta.get("interp") or {}
row[3].metric("Nodes shown", len(data["nodes"]), help=f"of {len(full['nodes'])} in the graph")
row[4].metric("Links shown", len(data["links"]), help=f"of {len(full['links'])} in the graph")

# ---- per-graph state: pinned nodes, supernodes, edited labels (start from what the file holds) -------------

if st.session_state.get("_state_for") != graph_id:
    st.session_state["_state_for"] = graph_id
    saved_sub = graph_view.read_subgraph(full)
    st.session_state["pinned_ids"] = list(saved_sub.pinned)
    st.session_state["supernodes"] = [[s.name, *s.members] for s in saved_sub.supernodes]
    st.session_state["label_edits"] = {}
    st.session_state.pop("node", None)
all_ids = {n["node_id"] for n in full["nodes"]}
st.session_state["pinned_ids"] = [i for i in st.session_state["pinned_ids"] if i in all_ids]
subgraph = graph_view.set_pinned(
    graph_view.Subgraph(list(st.session_state["pinned_ids"]),
                        [graph_view.Supernode(s[0], list(s[1:])) for s in st.session_state["supernodes"]]),
    st.session_state["pinned_ids"])
edits: dict = st.session_state["label_edits"]
labels = {**graph_view.node_labels(full, cards), **{i: v for i, v in edits.items() if v}}

# ---- node selection: a click on the plot (read back from the chart's state) or the selectbox -------------

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
if node_ids and "node" not in st.session_state:
    st.session_state["node"] = node_ids[0]
selected = st.session_state.get("node")

# Markers are sized in pixels to stand apart at the width the chart is drawn at: the main column's, as the
# browser reports it (`ui.column_width`; a narrow window lays the graph out again, narrower).
chart_width = ui.column_width("graph_width")
fig = viz.graph_figure(data, title=f"“{prompt}”", labels=labels, pinned=subgraph.pinned, selected=selected,
                       k_links=k_links, width_px=chart_width)
fig.update_layout(clickmode="event+select", dragmode="pan", meta={"laid_out_for_px": chart_width})
st.plotly_chart(fig, key="graph_chart", on_select="rerun", selection_mode="points", width="stretch")
st.caption("Size: influence. Colour: type (errors and tokens faint). Links: blue positive, red negative, width "
           "|weight|. Hover for a label; click a node to select it; “+n more” markers fold a cell's least "
           "influential nodes. " + " · ".join(f"{k.replace('_', ' ')} {scores[k]:.3f}"
                                                for k in ("replacement_score", "completeness_score")
                                                if isinstance(scores.get(k), (int, float))))

if not node_ids:
    st.stop()

# ---- the selected node ----------------------------------------------------------------------------------

node_id = st.selectbox("Selected node", node_ids, key="node",
                       format_func=lambda i: f"{i} · {by_id[i]['feature_type']} · {labels.get(i, '')}")
node = by_id[node_id]
prompt_tokens = meta.get("prompt_tokens") or []
if not (isinstance(node.get("ctx_idx"), int) and 0 <= node["ctx_idx"] < len(prompt_tokens)):
    ui.fail(InterpError(f"node {node_id} is at position {node.get('ctx_idx')!r}, outside the prompt's "
                        f"{len(prompt_tokens)} tokens"))
st.subheader(f"Node {node_id} — {labels.get(node_id, '')}")
st.caption(f"{node['feature_type']} · layer {node['layer']} · position {node['ctx_idx']} "
           f"({prompt_tokens[node['ctx_idx']]!r})"
           + (f" · activation {node['activation']:.4g}" if isinstance(node.get("activation"), (int, float)) else "")
           + (f" · influence {node['influence']:.4g}" if isinstance(node.get("influence"), (int, float)) else ""))


def _toggle_pin(i: str) -> None:
    pinned = list(st.session_state["pinned_ids"])
    st.session_state["pinned_ids"] = [p for p in pinned if p != i] if i in pinned else pinned + [i]


def _edit_label(i: str, key: str) -> None:
    st.session_state["label_edits"][i] = st.session_state[key].strip()


tools = st.columns([1, 3])
tools[0].button("Unpin" if node_id in subgraph.pinned else "Pin", key="pin_toggle", on_click=_toggle_pin,
                args=(node_id,), help="pinned nodes are labelled in the graph and make up the subgraph below")
label_key = f"label::{node_id}"
tools[1].text_input("Label (saved as the node's clerp)", value=labels.get(node_id, ""), key=label_key,
                    on_change=_edit_label, args=(node_id, label_key))

where = catalog.feature_node(node)
card = cards.get(node_id)
if where is not None:
    if card is None and model is not None:
        try:
            card = live_feature_card(str(model.path), mode, where.kind, where.layer, where.feature)
        except InterpError as e:
            st.warning(str(e))
    if card is not None:
        feature_card(card)
    else:
        st.info("No feature JSON beside this graph and no model to compute one from.")
    # Weights beside activations: for an MLP feature of a bilinear LM, the input pairs its weights say drive it,
    # against its incoming edges on this prompt. On demand: it needs the model and the unpruned graph.
    if where.kind == "mlp" and model is not None and model.arch == "bilinear" and not mode[0].startswith("transcoder"):
        if st.toggle("Compare with the weights", key="weights_vs_edges",
                     help="the input pairs that drive this feature according to the bilinear MLP's weights, next "
                          "to its strongest incoming edges in the graph, and how far they agree"):
            try:
                result = weights_vs_edges(str(model.path), mode, prompt, target.strip(), contrast, node_id)
            except InterpError as e:
                st.caption(str(e))
            else:
                from interp.viz.agreement import weights_vs_edges_figure
                st.plotly_chart(weights_vs_edges_figure(result), key="pairs_chart")
                st.caption(f"Top-10 overlap {result['top_overlap']:.2f}, Spearman {result['spearman']:.2f} over "
                           f"{len(result['inputs'])} inputs at position {result['pos']}.")

incoming, outgoing = catalog.node_links(data, node_id)
labelled = {i: {**n, "clerp": labels.get(i, n.get("clerp", ""))} for i, n in by_id.items()}
left, right = st.columns(2)
with left:
    st.markdown("Strongest inputs")
    st.dataframe(catalog.link_rows(incoming, "source", labelled), hide_index=True, key="inputs")
with right:
    st.markdown("Strongest outputs")
    st.dataframe(catalog.link_rows(outgoing, "target", labelled), hide_index=True, key="outputs")

try:
    upstream = graph_view.top_paths(data, node_id, "upstream", k=5)
    downstream = graph_view.top_paths(data, node_id, "downstream", k=5)
except InterpError as e:
    ui.fail(e)
left, right = st.columns(2)
with left:
    st.markdown("Top upstream paths (largest |product of link weights|, from an input)")
    st.dataframe(path_rows(upstream, labels), hide_index=True, key="upstream_paths")
with right:
    st.markdown("Top downstream paths (to a logit)")
    st.dataframe(path_rows(downstream, labels), hide_index=True, key="downstream_paths")

# ---- pinned subgraph ------------------------------------------------------------------------------------

st.subheader("Pinned subgraph")
full_by_id = {n["node_id"]: n for n in full["nodes"]}
st.multiselect("Pinned nodes", catalog.node_order(full["nodes"]), key="pinned_ids",
               format_func=lambda i: f"{i} · {labels.get(i, '')}")


def _group() -> None:
    try:
        grouped = graph_view.group_nodes(subgraph, st.session_state.get("group_name", ""),
                                         st.session_state.get("group_members", []))
    except InterpError as e:
        st.session_state["_group_error"] = str(e)
        return
    st.session_state["supernodes"] = [[s.name, *s.members] for s in grouped.supernodes]
    st.session_state["group_members"] = []


def _ungroup(name: str) -> None:
    st.session_state["supernodes"] = [s for s in st.session_state["supernodes"] if s[0] != name]


if subgraph.pinned:
    g = st.columns([3, 2, 1])
    g[0].multiselect("Group these pinned nodes…", subgraph.pinned, key="group_members",
                     format_func=lambda i: f"{i} · {labels.get(i, '')}")
    g[1].text_input("…into a supernode named", key="group_name")
    g[2].button("Group", key="group", on_click=_group)
    if st.session_state.get("_group_error"):
        st.error(st.session_state.pop("_group_error"))
    for s in subgraph.supernodes:
        c = st.columns([5, 1])
        c[0].markdown(f"**{s.name}**: " + ", ".join(f"`{m}`" for m in s.members))
        c[1].button("Ungroup", key=f"ungroup::{s.name}", on_click=_ungroup, args=(s.name,))
    sub = graph_view.subgraph_view(full, subgraph)
    sub_labels = {**labels, **{n["node_id"]: n["clerp"] for n in sub["nodes"] if n["node_id"].startswith("supernode:")}}
    st.plotly_chart(viz.graph_figure(sub, title="Pinned subgraph (supernodes merged; links summed)", labels=sub_labels,
                                     pinned=[n["node_id"] for n in sub["nodes"]], k_links=None, height_px=480,
                                     width_px=chart_width),
                    key="subgraph_chart", width="stretch")
else:
    st.caption("Pin nodes (the Pin button above, or this list) to see them alone, group them into supernodes "
               "and save them into the graph file.")

edited_labels = {i: v for i, v in edits.items() if i in all_ids}
out = graph_view.with_subgraph(full, subgraph, edited_labels)
name = (str(graph_path.name) if graph_path else "live-graph.json").removesuffix(".json")
c = st.columns(2)
c[0].download_button("Download graph JSON (labels, pins, supernodes)", json.dumps(out, indent=1),
                     file_name=f"{name}.json", mime="application/json", key="download")
if graph_path is not None:
    if c[1].button("Save labels, pins and supernodes into the graph file", key="save_graph"):
        try:
            graph_view.save_graph_edits(graph_path, subgraph, edited_labels)
        except (InterpError, OSError) as e:
            ui.fail(e)
        st.session_state["label_edits"] = {}
        st.session_state["_state_for"] = None   # read back from the file on the next run
        st.success(f"Saved into {graph_path.name}.")

# ---- ablation -------------------------------------------------------------------------------------------

st.subheader("Ablate this feature")
ABLATION_MODES = ("constrained", "replacement", "free")  # interp.graph.interventions.MODES (checked on use)
if where is None:
    st.caption("Only dictionary features can be ablated; pick a feature node.")
elif model is None:
    st.info(f"The model this graph was made from ({meta.get('scan')!r}) is not under the checkpoint folders.")
else:
    # On demand: the first ablation loads the model (seconds); once on, it follows the selected node.
    how = st.radio("Recompute", ["off", *ABLATION_MODES], horizontal=True, key="ablation_mode",
                   help="off: no ablation; constrained: the replacement model with attention patterns and "
                        "normalisation frozen; replacement: the replacement model run freely, errors at their clean "
                        "values; free: the real model with only this feature's decoder contribution removed")
    if how != "off":
        if how not in model_side()[5].MODES:
            ui.fail(InterpError(f"ablation mode {how!r} is not one of {model_side()[5].MODES}"))
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
