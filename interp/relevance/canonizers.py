"""Canonizers: turn a model's own structure into the plain list of layers the relevance rules know.

Like zennit's canonizers, they run before any rule is chosen and keep the model's function unchanged.
Two kinds:

- expanders, registered per module type with `register_canonizer(ModelType, expand)`: `expand(module)`
  returns the (name, layer) list that module computes, in order. Expansion repeats until no layer
  has an expander; `nn.Sequential` expands into its children. A model package registers its own
  (see interp/models/bilinear.py), so a new model type plugs in without touching the engine.
- structure canonizers over the whole list (`Canonizer.apply`), e.g. `MergeEmbeddingIntoBilinear`:
  a bias-free linear map read only by a bilinear layer becomes part of one bilinear form over the
  linear map's input.
"""

from __future__ import annotations

import abc
from typing import Callable

from torch import nn

from interp.errors import InterpError
from interp.relevance.layers import BilinearForm

Layers = list[tuple[str, nn.Module]]
Expander = Callable[[nn.Module], Layers]

_EXPANDERS: dict[type, Expander] = {nn.Sequential: lambda module: list(module.named_children())}


def register_canonizer(module_type: type, expand: Expander) -> None:
    """From now on `module_type` is read as the layers `expand(module)` returns (a name "" keeps the parent's)."""
    _EXPANDERS[module_type] = expand


def _expander(module: nn.Module) -> Expander | None:
    for cls in type(module).__mro__:
        if cls in _EXPANDERS:
            return _EXPANDERS[cls]
    return None


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent and child else parent or child


class Canonizer(abc.ABC):
    """Rewrites a list of (name, layer) into an equivalent one; each canonizer says how."""

    @abc.abstractmethod
    def apply(self, layers: Layers) -> Layers: ...


class ExpandModules(Canonizer):
    """Replaces every module that has a registered expander by the layers it computes, recursively."""

    def apply(self, layers: Layers) -> Layers:
        out: Layers = []
        for name, layer in layers:
            expand = _expander(layer)
            if expand is None:
                out.append((name, layer))
            else:
                out += self.apply([(_join(name, child), sub) for child, sub in expand(layer)])
        return out


class MergeEmbeddingIntoBilinear(Canonizer):
    """A bias-free `nn.Linear` E followed by a `BilinearForm` without embedding becomes one `BilinearForm`
    reading E's input (x̃ = [E x, 1]), named "<E's name>+<the bilinear layer's name>".

    The bilinear rule then decomposes the quadratic form over x directly, R_i = ½ x_i (∇_x g · s)_i,
    which is exact in input space whatever rule a composite gives the input layer.
    """

    def apply(self, layers: Layers) -> Layers:
        out: Layers = []
        for name, layer in layers:
            if out and isinstance(layer, BilinearForm) and layer.embed is None:
                prev_name, prev = out[-1]
                if type(prev) is nn.Linear and prev.bias is None and prev.out_features == layer.d_embed:
                    out[-1] = (f"{prev_name}+{name}", BilinearForm(layer.W, layer.V, layer.bias, embed=prev.weight))
                    continue
            out.append((name, layer))
        return out


DEFAULT_CANONIZERS: tuple[Canonizer, ...] = (ExpandModules(), MergeEmbeddingIntoBilinear())


def canonical_layers(model: nn.Module, canonizers: tuple[Canonizer, ...] | None = None) -> Layers:
    """The model as a list of (name, layer) whose composition is its forward pass."""
    if _expander(model) is None:
        raise InterpError(f"relevance does not know how to read a {type(model).__name__}; use an nn.Sequential, a "
                          "model whose package registers a canonizer (ReluMLP, BilinearClassifier, SmallCNN), "
                          "or register one with interp.relevance.canonizers.register_canonizer")
    layers: Layers = [("", model)]
    for canonizer in DEFAULT_CANONIZERS if canonizers is None else canonizers:
        layers = canonizer.apply(layers)
    return layers


def canonical_layer(layer: nn.Module) -> nn.Module:
    """One layer in the form the rules know (e.g. a model's bilinear layer as a `BilinearForm`)."""
    expanded = ExpandModules().apply([("", layer)])
    return expanded[0][1] if len(expanded) == 1 else layer
