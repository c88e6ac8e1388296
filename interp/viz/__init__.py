"""Plotly figures shared by the app and the CLI, one module per area (bilinear, graph, relevance, harmless, lm)."""
