"""Composites: which rule each layer gets, kept apart from the rules (zennit's LayerMapComposite and
SpecialFirstLayerMapComposite).

A `Composite` maps layer types to rules, with overrides for the first weight layer (the one reading the
input) and the last (the one producing the output). Named composites ("dtd", "w2", "zplus", "lrp0",
"epsilon") are built by factories registered with `register_composite`; `composite(name, low, high,
epsilon)` builds one. "Rule map" is this project's older name for a composite (`RuleMap`, `rule_map`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from interp.errors import InterpError
from interp.relevance.layers import BilinearForm
from interp.relevance.rules import (LINEAR_TYPES, PASS_TYPES, POOL_TYPES, ZB, BilinearExact, Epsilon, LRP0, Pass,
                                    Rule, WSquare, ZPlus)

LayerTypes = type | tuple[type, ...]
WEIGHT_TYPES = LINEAR_TYPES + (BilinearForm,)  # the layers "first" and "last" count


@dataclass
class Composite:
    """Rules by layer type (first match wins), with `first`/`last` overriding it on linear weight layers.

    `rule_for` raises an InterpError naming the layer type when the composite has no rule for it.
    """

    name: str
    layer_map: list[tuple[LayerTypes, Rule]]
    first: Rule | None = None  # the weight layer that reads the input
    last: Rule | None = None  # the weight layer that produces the output
    description: str = ""

    def rule_for(self, layer: nn.Module, is_first: bool, is_last: bool) -> Rule:
        if isinstance(layer, LINEAR_TYPES):
            if is_first and self.first is not None:
                return self.first
            if is_last and self.last is not None:
                return self.last
        for types, rule in self.layer_map:
            if isinstance(layer, types):
                return rule
        known = sorted(t.__name__ for types, _ in self.layer_map for t in (types if isinstance(types, tuple) else (types,)))
        raise InterpError(f"layer type {type(layer).__name__} has no rule in the rule map {self.name!r}; "
                          f"use a model made of {', '.join(known)} or add a rule for it")

    def assign(self, layers: list[tuple[str, nn.Module]]) -> list[Rule]:
        """The rule of each (canonical) layer, in order."""
        weighted = [i for i, (_, layer) in enumerate(layers) if isinstance(layer, WEIGHT_TYPES)]
        if not weighted:
            raise InterpError("the model has no layer with weights to explain")
        return [self.rule_for(layer, i == weighted[0], i == weighted[-1]) for i, (_, layer) in enumerate(layers)]


RuleMap = Composite

Factory = Callable[..., Composite]
_COMPOSITES: dict[str, Factory] = {}


def register_composite(name: str) -> Callable[[Factory], Factory]:
    """Decorator: `factory(low=, high=, epsilon=)` builds the composite called `name`."""
    def add(factory: Factory) -> Factory:
        _COMPOSITES[name] = factory
        return factory
    return add


def composite_names() -> tuple[str, ...]:
    return tuple(_COMPOSITES)


def composite(name: str, low: torch.Tensor | float = 0.0, high: torch.Tensor | float = 1.0,
              epsilon: float = 1e-2) -> Composite:
    """The named composites. `low`/`high` bound the input (pixels: 0 and 1, or per-pixel tensors)."""
    if name not in _COMPOSITES:
        raise InterpError(f"unknown rule map {name!r}; choose one of {', '.join(_COMPOSITES)}")
    return _COMPOSITES[name](low=low, high=high, epsilon=epsilon)


rule_map = composite


def layer_map(linear: Rule) -> list[tuple[LayerTypes, Rule]]:
    """`linear` on Linear/Conv layers, z⁺ on pooling, the exact rule on bilinear forms, reshapes and ReLUs pass."""
    return [(LINEAR_TYPES, linear), (POOL_TYPES, ZPlus()), (BilinearForm, BilinearExact()), (PASS_TYPES, Pass())]


@register_composite("dtd")
def _dtd(low, high, epsilon) -> Composite:
    return Composite("dtd", layer_map(ZPlus()), first=ZB(low, high), last=LRP0(),
                     description="deep Taylor: zᴮ on the input layer, z⁺ on hidden layers, LRP-0 on the linear "
                                 "output layer, exact second-order decomposition on bilinear layers")


@register_composite("w2")
def _w2(low, high, epsilon) -> Composite:
    return Composite("w2", layer_map(ZPlus()), first=WSquare(), last=LRP0(),
                     description="deep Taylor for unbounded input: w² on the input layer, z⁺ hidden, LRP-0 output")


@register_composite("zplus")
def _zplus(low, high, epsilon) -> Composite:
    return Composite("zplus", layer_map(ZPlus()), description="z⁺ on every linear layer")


@register_composite("lrp0")
def _lrp0(low, high, epsilon) -> Composite:
    return Composite("lrp0", layer_map(LRP0()), description="LRP-0 on every layer (gradient×input on ReLU nets)")


@register_composite("epsilon")
def _epsilon(low, high, epsilon) -> Composite:
    return Composite("epsilon", layer_map(Epsilon(epsilon)), description=f"LRP-ε (ε={epsilon}) on every layer")
