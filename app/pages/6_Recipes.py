"""Recipes: what `interp extract --recipe` found for each planted task — how much the top-10 features'
ablation moves the metric against random controls, the replacement and completeness scores — with a
link into each of its graphs on the Circuits page."""

import streamlit as st

import ui
from interp import catalog

ui.setup("Recipes", icon=":material/science:")
roots = ui.roots()

recipes = catalog.list_recipes(roots)
if not recipes:
    st.info("No recipe summary (`*/summary.json`) under " + ", ".join(str(r) for r in roots.circuits)
            + " yet: `interp extract --recipe circuits/NAME.toml --out-dir circuits/NAME` writes one.")
    st.stop()

overview = [{"recipe": r.name, "prompts": r.summary.get("n_prompts"),
             "top-10 drop": r.summary.get("top10_ablation_drop"),
             "random-10 drop": r.summary.get("random10_ablation_drop"),
             "replacement score": r.summary.get("replacement_score"),
             "completeness score": r.summary.get("completeness_score")} for r in recipes]
st.dataframe(overview, hide_index=True, key="overview",
             column_config={k: st.column_config.NumberColumn(format="%.3f") for k in
                            ("top-10 drop", "random-10 drop", "replacement score", "completeness score")})
st.caption("Drop: how far the metric (the target logit, or target − contrast) falls when 10 features are set to 0, "
           "averaged over the recipe's prompts. A circuit is faithful when its top-10 drop is far above the "
           "random controls'.")

name = st.selectbox("Recipe", [r.name for r in recipes], key="recipe")
recipe = next(r for r in recipes if r.name == name)
s = recipe.summary
c = st.columns(4)
c[0].metric("Top-10 drop", f"{s.get('top10_ablation_drop', float('nan')):.3f}",
            help=f"ablation mode {s.get('ablation_mode', 'free')}; clean metric {s.get('metric_clean', float('nan')):.3f}")
c[1].metric("Random-10 drop (control)", f"{s.get('random10_ablation_drop', float('nan')):.3f}")
c[2].metric("Replacement score", f"{s.get('replacement_score', float('nan')):.3f}")
c[3].metric("Completeness score", f"{s.get('completeness_score', float('nan')):.3f}")

st.markdown("**Mean metric drop per ablation** (columns: how the rest of the model is recomputed)")
table = catalog.recipe_table(s)
st.dataframe(table, hide_index=True, key="ablations",
             column_config={k: st.column_config.NumberColumn(format="%.3f") for k in table[0] if k != "ablation"}
             if table else None)

st.markdown("**Prompts** — open a graph on the Circuits page")
rows = {r["graph"]: r for r in catalog.recipe_prompt_rows(s)}
for graph_name, prompt in recipe.graphs:
    slug = graph_name.rsplit("/", 1)[-1].removesuffix(".json")
    r = rows.get(slug, {})
    cols = st.columns([2, 5, 2])
    with cols[0]:
        st.page_link("pages/2_Circuits.py", label=slug, icon=":material/hub:", query_params={"graph": graph_name})
    cols[1].markdown(f"“{prompt}” → `{r.get('target')}`" + (f" vs `{r['contrast']}`" if r.get("contrast") else ""))
    if isinstance(r.get("top-10 drop"), (int, float)):
        cols[2].markdown(f"drop {r['top-10 drop']:.3f} (random {r.get('random-10 drop') or 0:.3f})")
