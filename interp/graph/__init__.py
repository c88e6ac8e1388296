"""Linear computation graphs: replacement model, attribution, pruning, interventions, export."""
