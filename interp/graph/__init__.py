"""Linear computation graphs: replacement model, attribution, pruning, interventions, export.

    from interp.graph import load_setup, extract, intervene, Intervention
    setup = load_setup("checkpoints/lm-bilinear")                 # LM + transcoders + attention SAEs
    ex = extract(setup, "when Eva and Leo arrived at the lake , Leo handed a cup to", contrast=("Eva", "Leo"))
    ex.scores.replacement_score, ex.json["nodes"][0]              # scores; Neuronpedia graph JSON

The names below load their module on first use (PEP 562), so that importing `interp.graph` (as the
command line does to register its commands) does not import TransformerLens and SAE-Lens.
"""

from __future__ import annotations

import importlib
from typing import Any

# circuit-tracer's command line caps a graph at 7,500 feature nodes; so do we, so that a real model's
# graph (tens of thousands of active features) stays within memory by default.
DEFAULT_MAX_FEATURE_NODES = 7500

# The corpus windows feature cards are computed over (the CLI, recipes and the app use the same ones).
FEATURE_CORPUS_SEQUENCES = 128
FEATURE_CORPUS_SEED = 12345

# Graph mode "bilinear-exact" (interp.graph.exact): the bases a bilinear MLP is read in, and the attention nodes.
EXACT_BASES = ("hidden", "eigen", "dictionary")
EXACT_ATTENTION = ("heads", "saes")

_EXPORTS = {
    "AttributionGraph": "attribution", "attribute": "attribution",
    "export_graph": "export", "read_graph_json": "export",
    "Intervention": "interventions", "intervene": "interventions",
    "hierarchical_attribution": "prune", "prune": "prune",
    "extract": "pipeline", "load_setup": "setup", "run_recipe": "recipes",
    "ReplacementModel": "replacement", "graph_scores": "scores",
}

__all__ = ["DEFAULT_MAX_FEATURE_NODES", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'interp.graph' has no attribute {name!r}")
    return getattr(importlib.import_module(f"interp.graph.{_EXPORTS[name]}"), name)
