"""Bilinear spectra."""

import ui

ui.setup("Bilinear spectra", icon=":material/show_chart:")
ui.require("interp.viz.bilinear")
