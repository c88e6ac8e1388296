"""Relevance maps."""

import ui

ui.setup("Relevance maps", icon=":material/local_fire_department:")
ui.require("interp.viz.relevance")
