"""Linear computation graphs: replacement model, attribution, pruning, interventions, export.

    from interp.graph import load_setup, extract, intervene, Intervention
    setup = load_setup("checkpoints/lm-bilinear")                 # LM + transcoders + attention SAEs
    ex = extract(setup, "when Eva and Leo arrived at the lake , Leo handed a cup to", contrast=("Eva", "Leo"))
    ex.scores.replacement_score, ex.json["nodes"][0]              # scores; Neuronpedia graph JSON
"""

from interp.graph.attribution import AttributionGraph, attribute
from interp.graph.export import export_graph, read_graph_json
from interp.graph.interventions import Intervention, intervene
from interp.graph.prune import hierarchical_attribution, prune
from interp.graph.recipes import extract, load_setup, run_recipe
from interp.graph.replacement import ReplacementModel
from interp.graph.scores import graph_scores

__all__ = ["AttributionGraph", "Intervention", "ReplacementModel", "attribute", "export_graph", "extract",
           "graph_scores", "hierarchical_attribution", "intervene", "load_setup", "prune", "read_graph_json",
           "run_recipe"]
