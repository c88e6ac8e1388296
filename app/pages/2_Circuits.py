"""Circuits."""

import ui

ui.setup("Circuits", icon=":material/hub:")
ui.require("interp.viz.graph")
