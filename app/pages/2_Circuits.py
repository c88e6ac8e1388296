"""Circuits: a saved attribution graph under circuits/, or one extracted live from a prompt.

The graph is drawn by layer (up) and token position (across); thresholds prune what is shown;
selecting a node (click it, or pick its id) shows its feature card and strongest links, and
ablating it shows how the next-token logits move.
"""

import html
import json
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
import torch

import ui
from interp import catalog

ui.setup("Circuits", icon=":material/hub:")
graph_setup, pipeline, replacement, export, prune_mod, features_mod, interventions, viz, graph_view = ui.require(
    "interp.graph.setup", "interp.graph.pipeline", "interp.graph.replacement", "interp.graph.export", "interp.graph.prune",
    "interp.graph.features", "interp.graph.interventions", "interp.viz.graph", "interp.graph.view")
from interp.errors import InterpError  # noqa: E402

roots = ui.roots()
CORPUS_SEQUENCES, CORPUS_SEED = 64, 12345  # the contexts feature cards are computed over, live


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
    from interp.data.corpus import training_tokens

    setup = setup_for(model_dir, mode)
    return torch.tensor(training_tokens(setup.tokenizer, CORPUS_SEQUENCES, setup.replacement.model.cfg.n_ctx,
                                        CORPUS_SEED))


@st.cache_data(show_spinner="Computing the feature card…", max_entries=64)
def live_feature_card(model_dir: str, mode: str, kind: str, layer: int, feature: int) -> dict:
    setup = setup_for(model_dir, mode)
    rep = setup.replacement
    site = next(i for i, s in enumerate(rep.sites) if (s.kind, s.layer) == (kind, layer))
    corpus = corpus_tokens(model_dir, mode)
    acts = features_mod.feature_activations(rep, corpus, {site: [feature]})[site][..., 0]
    return features_mod.feature_json(rep, site, feature, acts, corpus, setup.vocab)


@st.cache_data(show_spinner="Ablating…", max_entries=64)
def ablation(model_dir: str, mode: str, prompt: str, kind: str, layer: int, pos: int, feature: int, how: str) -> dict:
    setup = setup_for(model_dir, mode)
    result = interventions.intervene(setup.replacement, setup.encode(prompt),
                                     [interventions.Intervention(kind, layer, pos, feature, 0.0)], mode=how)
    return {"clean": result.clean_logits.tolist(), "new": result.new_logits.tolist()}


# ---- rendering helpers --------------------------------------------------------------------------------

def highlighted_context(tokens: list[str], acts: list[float], peak: float) -> str:
    """One context as HTML: each token shaded by its activation (orange, scaled to the feature's max)."""
    spans = []
    for token, a in zip(tokens, acts):
        alpha = max(0.0, min(1.0, a / peak)) if peak > 0 else 0.0
        style = f"background: rgba(255,140,0,{alpha:.2f}); padding: 0 2px; border-radius: 3px"
        spans.append(f'<span style="{style}" title="{a:.3f}">{html.escape(token)}</span>')
    return " ".join(spans)


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
            # Show a window around the strongest token so that long contexts stay readable.
            centre = ex["train_token_ind"]
            lo, hi = max(0, centre - 12), centre + 4
            st.markdown(highlighted_context(ex["tokens"][lo:hi], ex["tokens_acts_list"][lo:hi], peak),
                        unsafe_allow_html=True)
    with right:
        st.markdown("Top logits: " + ", ".join(f"`{t}`" for t in card["top_logits"][:8]))
        st.markdown("Bottom logits: " + ", ".join(f"`{t}`" for t in card["bottom_logits"][:8]))
        hist = card["histogram"]
        width = (card["act_max"] or 1.0) / max(1, len(hist))
        fig = go.Figure(go.Bar(x=[(i + 0.5) * width for i in range(len(hist))], y=hist, marker_color="#ff8c00"))
        fig.update_layout(title="activation histogram (active tokens)", height=240, bargap=0.05,
                          margin=dict(l=30, r=10, t=40, b=30), xaxis_title="activation", yaxis_title="tokens")
        st.plotly_chart(fig, key="histogram")


def links_table(links: list[dict], other: str, by_id: dict) -> list[dict]:
    return [{other: e[other], "type": by_id.get(e[other], {}).get("feature_type", ""),
             "label": by_id.get(e[other], {}).get("clerp", ""), "weight": round(e["weight"], 4)} for e in links]


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
features_first = sorted(data["nodes"], key=lambda n: (catalog.feature_node(n) is None,
                                                      n.get("influence") if n.get("influence") is not None else 2.0))
node_ids = [n["node_id"] for n in features_first]
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
    st.dataframe(links_table(incoming, "source", by_id), hide_index=True, key="inputs")
with right:
    st.markdown("Strongest outputs")
    st.dataframe(links_table(outgoing, "target", by_id), hide_index=True, key="outputs")

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
    clean, new = torch.tensor(logits["clean"]), torch.tensor(logits["new"])
    shown = sorted(set(clean.topk(8).indices.tolist()) | set((new - clean).abs().topk(4).indices.tolist()),
                   key=lambda i: -float(clean[i]))
    fig = go.Figure([go.Bar(name="before", x=[vocab[i] for i in shown], y=[float(clean[i]) for i in shown]),
                     go.Bar(name="after ablation", x=[vocab[i] for i in shown], y=[float(new[i]) for i in shown])])
    fig.update_layout(barmode="group", height=320, margin=dict(l=30, r=10, t=40, b=30),
                      title=f"Next-token logits before and after setting {node_id} to 0 ({how})")
    st.plotly_chart(fig, key="ablation_chart")
    st.caption(f"Largest logit change {float((new - clean).abs().max()):.4f}; top token before "
               f"{vocab[int(clean.argmax())]!r}, after {vocab[int(new.argmax())]!r}.")
