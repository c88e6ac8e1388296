"""Models: every checkpoint under the checkpoint roots, with its config and metrics."""

import plotly.graph_objects as go
import streamlit as st

import ui
from interp import catalog
from interp.viz.lm import dictionary_layers_figure, learning_curve_figure, task_accuracy_figure

ui.setup("Models", icon=":material/inventory_2:")
roots = ui.roots()


# Listing is a directory walk and a few small JSON reads: fast enough to redo on every run, and
# never stale after a new checkpoint is written.
rows = [{"name": c.name, "kind": c.kind, "arch": c.arch, "path": str(c.path), "size_MB": round(c.size_bytes / 1e6, 2),
         "config": c.config, "metrics": c.metrics} for c in catalog.list_checkpoints(roots)]
if not rows:
    st.warning("No checkpoint folder (a folder with a config.json holding a \"kind\") under "
               + ", ".join(str(r) for r in roots.checkpoints))
    st.stop()

# One row per checkpoint with its headline metrics side by side.
HEADLINE = ("test_accuracy", "n_params", "train_seconds", "ce_loss_recovered_all")
table = []
for r in rows:
    flat = catalog.flatten(r["metrics"])
    row = {"name": r["name"], "kind": r["kind"], "arch": r["arch"] or "", "size (MB)": r["size_MB"]}
    for key in HEADLINE:
        if key in flat:
            row[key] = flat[key]
    for task, values in catalog.task_metrics(r["metrics"]).items():
        if isinstance(values.get("accuracy"), (int, float)):
            row[f"{task} accuracy"] = values["accuracy"]
    table.append(row)
st.dataframe(table, hide_index=True, width="stretch")

# Accuracy of every classifier, and task metrics of every LM, as bars.
classifiers = [r for r in rows if isinstance(r["metrics"].get("test_accuracy"), (int, float))]
if classifiers:
    fig = go.Figure(go.Bar(x=[r["name"] for r in classifiers], y=[r["metrics"]["test_accuracy"] for r in classifiers],
                           text=[f"{r['metrics']['test_accuracy']:.3f}" for r in classifiers], textposition="outside",
                           marker_color="#4C78A8"))
    fig.update_layout(title="Test accuracy of the image classifiers", yaxis_range=[0, 1.05], height=320,
                      margin=dict(l=40, r=20, t=50, b=40))
    st.plotly_chart(fig, key="accuracy_chart")

lms = [r for r in rows if catalog.task_metrics(r["metrics"])]
if lms:
    fig = task_accuracy_figure({r["name"]: {"tasks": catalog.task_metrics(r["metrics"])} for r in lms})
    fig.update_layout(height=320, margin=dict(l=40, r=20, t=50, b=40))
    st.plotly_chart(fig, key="lm_task_chart")

st.subheader("Config and metrics")
name = st.selectbox("Checkpoint", [r["name"] for r in rows], key="checkpoint")
chosen = next(r for r in rows if r["name"] == name)
st.caption(chosen["path"])
made_by = chosen["metrics"].get("command") or chosen["config"].get("command")
if made_by:
    st.markdown("Made by")
    st.code(made_by if isinstance(made_by, str) else " ".join(map(str, made_by)), language="bash")
curve = chosen["metrics"].get("learning_curve")
if curve:
    st.plotly_chart(learning_curve_figure(curve, f"{name}: held-out tasks over training"), key="learning_curve")
dictionary_eval = chosen["metrics"].get("eval")
if isinstance(dictionary_eval, dict) and "layers" in dictionary_eval:
    st.plotly_chart(dictionary_layers_figure(dictionary_eval, name), key="dictionary_chart")
left, right = st.columns(2)
with left:
    st.markdown("**config.json**")
    st.json(chosen["config"], expanded=2)
with right:
    st.markdown("**metrics.json**")
    st.json(chosen["metrics"], expanded=2)

with st.expander("Open another folder"):
    typed = st.text_input("Checkpoint folder", key="other_folder",
                          help="Only folders inside the checkpoint roots can be read.")
    if typed:
        folder = ui.guarded(typed, within=roots.checkpoints)
        found = [c for c in catalog.list_checkpoints(catalog.Roots((folder,), ())) if c.path == folder]
        if not found:
            st.error(f"{folder} has no config.json with a \"kind\": not a checkpoint folder")
        else:
            st.json({"config": found[0].config, "metrics": found[0].metrics}, expanded=1)
