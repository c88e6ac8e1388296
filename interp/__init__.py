"""interp: a mechanistic interpretability workbench.

Train small interpretable models, read circuits from their weights, extract attribution graphs
from activations, and look at all of it in a browser. See README.md for the module map.
"""

__version__ = "0.1.0"
