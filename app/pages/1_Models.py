"""Models: every checkpoint under the checkpoint roots, with its config and metrics."""

import streamlit as st

import ui
from interp import catalog
from interp.viz.lm import dictionary_layers_figure, learning_curve_figure
from interp.viz.models import classifier_accuracy_figure, lm_tasks_figure

ui.setup("Models", icon=":material/inventory_2:")
roots = ui.roots()


# Listing is a directory walk and a few small JSON reads: fast enough to redo on every run, and
# never stale after a new checkpoint is written.
checkpoints = catalog.list_checkpoints(roots)
if not checkpoints:
    st.warning("No checkpoint folder (a folder with a config.json holding a \"kind\") under "
               + ", ".join(str(r) for r in roots.checkpoints))
    st.stop()

# One row per checkpoint with its headline metrics side by side.
# One table per kind, each with the columns that kind records (one table of all would be mostly empty cells).
for kind, rows in catalog.checkpoint_tables(checkpoints).items():
    st.markdown(f"**{catalog.KIND_TITLES.get(kind, kind)}**")
    st.dataframe(rows, hide_index=True, width="stretch", key=f"table_{kind}")

# Accuracy of every classifier, and task metrics of every LM, as bars.
accuracy = classifier_accuracy_figure(checkpoints)
if accuracy is not None:
    st.plotly_chart(accuracy, key="accuracy_chart")
tasks = lm_tasks_figure(checkpoints)
if tasks is not None:
    st.plotly_chart(tasks, key="lm_task_chart")

st.subheader("Config and metrics")
name = st.selectbox("Checkpoint", [c.name for c in checkpoints], key="checkpoint")
chosen = next(c for c in checkpoints if c.name == name)
st.caption(str(chosen.path))
made_by = chosen.metrics.get("command") or chosen.config.get("command")
if made_by:
    st.markdown("Made by")
    st.code(made_by if isinstance(made_by, str) else " ".join(map(str, made_by)), language="bash")
curve = chosen.metrics.get("learning_curve")
if curve:
    st.plotly_chart(learning_curve_figure(curve, f"{name}: held-out tasks over training"), key="learning_curve")
dictionary_eval = chosen.metrics.get("eval")
if isinstance(dictionary_eval, dict) and "layers" in dictionary_eval:
    st.plotly_chart(dictionary_layers_figure(dictionary_eval, name), key="dictionary_chart")
left, right = st.columns(2)
with left:
    st.markdown("**config.json**")
    st.json(chosen.config, expanded=2)
with right:
    st.markdown("**metrics.json**")
    st.json(chosen.metrics, expanded=2)

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
