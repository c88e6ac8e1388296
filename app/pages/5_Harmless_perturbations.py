"""Harmless perturbations."""

import ui

ui.setup("Harmless perturbations", icon=":material/visibility_off:")
ui.require("interp.viz.harmless")
