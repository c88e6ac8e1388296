"""Relevance rules as small objects, and rule maps that say which layer gets which rule.

A rule takes one layer, the layer's input `x` and the relevance `R` on its output, and returns the
relevance on its input. For a linear-type layer (Linear, Conv2d, pooling) every rule has the form

    z = (modified layer)(x),   s = R / z,   R_in = x ⊙ (modified layer)ᵀ s,

so the transposed product is one vector-Jacobian product of the modified layer (the "gradient
trick"); no dense matrix is ever formed. Formulas (DESIGN.md, Montavon et al. 2017):

    LRP-0   R_i = Σ_j x_i w_ij / z_j · R_j              z_j = Σ_i x_i w_ij + b_j
    ε       as LRP-0 with z_j + ε·sign(z_j)
    z⁺      R_i = Σ_j x_i w⁺_ij / Σ_i' x_i' w⁺_i'j · R_j   (for x ≥ 0; biases ignored)
    zᴮ      R_i = Σ_j (x_i w_ij − l_i w⁺_ij − h_i w⁻_ij) / Σ_i'(…) · R_j   (l ≤ x ≤ h, per pixel)
    w²      R_i = Σ_j w²_ij / Σ_i' w²_i'j · R_j           (unbounded input)

A bilinear layer g(x) = (Wx) ⊙ (Vx) is a quadratic form per unit, g_h = xᵀ Q_h x, whose second-order
Taylor expansion at 0 is exact: R_i = Σ_h R_h / g_h · x_i (Q_h x)_i sums to R_h exactly.

Relevance a rule does not pass down (a bias's share, a unit whose denominator is 0) is not lost
silently: the engine reports, layer by layer, Σ R_out − Σ R_in as the part absorbed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from interp.errors import InterpError
from interp.models.bilinear import Bilinear

# Division guard: moves exact zeros away from 0 without changing any z of ordinary size.
TINY = 1e-12


def stabilize(z: torch.Tensor, eps: float = TINY) -> torch.Tensor:
    """z + eps·sign(z), with sign(0) = +1, so that R / z never divides by zero."""
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


# ---------------------------------------------------------------- the linear operators rules modify

LINEAR_TYPES = (nn.Linear, nn.Conv2d, nn.Conv1d)
POOL_TYPES = (nn.AvgPool2d, nn.AvgPool1d)
PASS_TYPES = (nn.ReLU, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout)


def _operator(layer: nn.Module, weight: torch.Tensor | None, bias: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layer's linear map with `weight` and `bias` put in place of its own."""
    if isinstance(layer, nn.Linear):
        return lambda x: F.linear(x, weight, bias)
    if isinstance(layer, (nn.Conv2d, nn.Conv1d)):
        return lambda x: layer._conv_forward(x, weight, bias)
    if isinstance(layer, POOL_TYPES):
        return layer  # all weights are positive constants: w = w⁺, w⁻ = 0
    raise InterpError(f"layer type {type(layer).__name__} is not a linear layer this rule can modify")


def _weights(layer: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    weight = getattr(layer, "weight", None)
    bias = getattr(layer, "bias", None)
    return (weight.detach() if weight is not None else None), (bias.detach() if bias is not None else None)


def _transpose(layer: nn.Module, op: Callable[[torch.Tensor], torch.Tensor], weight: torch.Tensor | None,
               x_shape: torch.Size, s: torch.Tensor) -> torch.Tensor:
    """(op)ᵀ s, op being `layer`'s linear map with `weight`: a direct transposed product where there is
    one (Linear, Conv), else the vector-Jacobian product of `op` by autograd."""
    if isinstance(layer, nn.Linear):
        return s @ weight
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)) and layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        grad_input = torch.nn.grad.conv2d_input if isinstance(layer, nn.Conv2d) else torch.nn.grad.conv1d_input
        return grad_input(x_shape, weight, s, layer.stride, layer.padding, layer.dilation, layer.groups)
    probe = torch.zeros(x_shape, dtype=s.dtype, device=s.device, requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(op(probe), probe, grad_outputs=s)
    return grad


def _positive(w: torch.Tensor | None) -> torch.Tensor | None:
    return None if w is None else w.clamp(min=0)


def _negative(w: torch.Tensor | None) -> torch.Tensor | None:
    return None if w is None else w.clamp(max=0)


# ---------------------------------------------------------------------------------------- the rules

class Rule:
    """relevance(layer, x, R) -> R_in, the relevance on the layer's input."""

    name = "rule"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        """`output` is the layer's output on `x` when the caller has it (saves recomputing W x + b)."""
        raise InterpError(f"rule {self.name} is abstract")

    def __repr__(self) -> str:
        return self.name


class Pass(Rule):
    """Layers that only reshape or gate (ReLU, Flatten, ...): relevance passes through unchanged.

    A ReLU needs nothing more: relevance arriving at a unit is proportional to its activation, so an
    inactive unit already carries none.
    """

    name = "pass"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        return R.reshape(x.shape)


@dataclass(repr=False)
class LRP0(Rule):
    """R_i = Σ_j x_i w_ij / z_j · R_j with z_j = Σ_i x_i w_ij + b_j (equals gradient×input on ReLU nets)."""

    name = "lrp0"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = _weights(layer)
        z = output if output is not None else _operator(layer, weight, bias)(x)
        s = R / stabilize(z)
        return x * _transpose(layer, _operator(layer, weight, None), weight, x.shape, s)


@dataclass(repr=False)
class Epsilon(Rule):
    """LRP-ε: as LRP-0 with z_j + ε·sign(z_j); weak and contradictory contributions are absorbed."""

    epsilon: float = 1e-2
    name = "epsilon"

    def __repr__(self) -> str:
        return f"epsilon({self.epsilon:g})"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = _weights(layer)
        z = output if output is not None else _operator(layer, weight, bias)(x)
        s = R / stabilize(z, self.epsilon)
        return x * _transpose(layer, _operator(layer, weight, None), weight, x.shape, s)


@dataclass(repr=False)
class ZPlus(Rule):
    """z⁺: R_i = Σ_j x_i w⁺_ij / Σ_i' x_i' w⁺_i'j · R_j, for non-negative inputs (after a ReLU)."""

    name = "zplus"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        weight, _ = _weights(layer)
        positive = _positive(weight)
        op = _operator(layer, positive, None)
        s = R / stabilize(op(x))
        return x * _transpose(layer, op, positive, x.shape, s)


def _bound(value: torch.Tensor | float, x: torch.Tensor, which: str) -> torch.Tensor:
    """A zᴮ bound as one example of `x` (shape (1, *x.shape[1:])).

    A bound that broadcasts against one example is expanded; one with as many elements as an
    example but another shape (28×28 image bounds for an MLP reading 784 features) is reshaped;
    anything else is an InterpError.
    """
    bound = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    example = x.shape[1:]
    try:
        return bound.expand(example)[None]
    except RuntimeError:
        pass
    if bound.numel() == example.numel():
        return bound.reshape(example)[None]
    raise InterpError(f"the zᴮ {which} bound has shape {tuple(bound.shape)} ({bound.numel()} values), but the input "
                      f"layer reads {tuple(example)} ({example.numel()} values) per example; give one bound per input "
                      f"feature or a single number")


@dataclass(repr=False)
class ZB(Rule):
    """zᴮ for a bounded input l ≤ x ≤ h (per pixel: `low`/`high` broadcast against one input).

    R_i = Σ_j (x_i w_ij − l_i w⁺_ij − h_i w⁻_ij) / Σ_i'(x_i' w_i'j − l_i' w⁺_i'j − h_i' w⁻_i'j) · R_j
    """

    low: torch.Tensor | float = 0.0
    high: torch.Tensor | float = 1.0
    name = "zb"

    def __repr__(self) -> str:
        if isinstance(self.low, (int, float)) and isinstance(self.high, (int, float)):
            return f"zb[{self.low:g}, {self.high:g}]"
        return "zb[per-pixel bounds]"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = _weights(layer)
        # Bounds are per input feature, the same for every example: the bound terms l·w⁺ and h·w⁻
        # are computed once, on a batch of one, and broadcast.
        low, high = _bound(self.low, x, "lower"), _bound(self.high, x, "upper")
        positive, negative = _positive(weight), _negative(weight)
        plain = _operator(layer, weight, None)
        pos, neg = _operator(layer, positive, None), _operator(layer, negative, None)
        lower_is_zero = bool((low == 0).all())  # the usual pixel range [0, h]: skip the l terms
        if output is not None:
            z = output - bias.reshape(-1, *[1] * (output.ndim - 2)) if bias is not None else output
        else:
            z = plain(x)
        z = z - neg(high)
        if not lower_is_zero:
            z = z - pos(low)
        s = R / stabilize(z)
        R_in = x * _transpose(layer, plain, weight, x.shape, s) - high * _transpose(layer, neg, negative, x.shape, s)
        if not lower_is_zero:
            R_in = R_in - low * _transpose(layer, pos, positive, x.shape, s)
        return R_in


@dataclass(repr=False)
class WSquare(Rule):
    """w²: R_i = Σ_j w²_ij / Σ_i' w²_i'j · R_j; for an unbounded input, independent of x."""

    name = "w2"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        weight, _ = _weights(layer)
        if weight is None:
            raise InterpError(f"the w² rule needs a layer with weights, not {type(layer).__name__}")
        squared = weight * weight
        op = _operator(layer, squared, None)
        s = R / stabilize(op(torch.ones_like(x[:1])))  # Σ_i w²_ij does not depend on the example
        return _transpose(layer, op, squared, x.shape, s)


@dataclass(repr=False)
class BilinearExact(Rule):
    """Exact second-order decomposition of g(x) = (W x̃) ⊙ (V x̃), x̃ = [x, 1] with a bias.

    g_h = x̃ᵀ Q_h x̃ with Q_h = ½(w_h v_hᵀ + v_h w_hᵀ), so R_i = Σ_h R_h/g_h · x̃_i (Q_h x̃)_i and
    Σ_i R_i = Σ_h R_h exactly. The share of the constant 1 (a bias) is absorbed and reported.
    """

    name = "bilinear"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(layer, Bilinear):
            raise InterpError(f"the bilinear rule needs a Bilinear layer, not {type(layer).__name__}")
        xt = layer.augment(x)
        left, right = xt @ layer.W.detach().T, xt @ layer.V.detach().T
        s = R / stabilize(left * right)
        R_in = 0.5 * xt * ((s * right) @ layer.W.detach() + (s * left) @ layer.V.detach())
        return R_in[..., :layer.d_in]


class LinearIntoBilinear(nn.Linear):
    """A bias-free linear map E read only by a bilinear layer (a bilinear classifier's embedding).

    The bilinear rule hands it R_k = e_k u_k (e = E x), so LRP-0 gives R_i = x_i Σ_k E_ki u_k, which
    is exactly the pixel-space decomposition x_i (Eᵀ Q E x)_i. It therefore always gets LRP-0,
    whatever a rule map says about the input layer: any other rule would break that exactness.
    """


# -------------------------------------------------------------------------------------- rule maps

@dataclass
class RuleMap:
    """Which rule each layer gets: by type, with overrides for the first and the last weight layer.

    Like zennit's composites, this is kept apart from the rules themselves; `rule_for` raises an
    InterpError naming the layer type when the map has no rule for it.
    """

    name: str
    by_type: list[tuple[type | tuple[type, ...], Rule]]
    first: Rule | None = None  # the weight layer that reads the input
    last: Rule | None = None  # the weight layer that produces the output
    description: str = ""

    def rule_for(self, layer: nn.Module, is_first: bool, is_last: bool) -> Rule:
        if isinstance(layer, LinearIntoBilinear):
            return LRP0()
        if isinstance(layer, LINEAR_TYPES):
            if is_first and self.first is not None:
                return self.first
            if is_last and self.last is not None:
                return self.last
        for types, rule in self.by_type:
            if isinstance(layer, types):
                return rule
        raise InterpError(f"layer type {type(layer).__name__} has no rule in the rule map {self.name!r}; "
                          f"use a model made of {', '.join(sorted(KNOWN_LAYER_NAMES))} or add a rule for it")


KNOWN_LAYER_NAMES = {t.__name__ for t in LINEAR_TYPES + POOL_TYPES + PASS_TYPES} | {"Bilinear"}


def _common(linear: Rule) -> list[tuple[type | tuple[type, ...], Rule]]:
    from interp.models.cnn import AddChannel

    return [(LINEAR_TYPES, linear), (POOL_TYPES, ZPlus()), (Bilinear, BilinearExact()),
            (PASS_TYPES + (AddChannel,), Pass())]


def rule_map(name: str, low: torch.Tensor | float = 0.0, high: torch.Tensor | float = 1.0,
             epsilon: float = 1e-2) -> RuleMap:
    """The named rule maps. `low`/`high` bound the input (pixels: 0 and 1, or per-pixel tensors)."""
    if name == "dtd":
        return RuleMap("dtd", _common(ZPlus()), first=ZB(low, high), last=LRP0(),
                       description="deep Taylor: zᴮ on the input layer, z⁺ on hidden layers, LRP-0 on the linear "
                                   "output layer, exact second-order decomposition on bilinear layers")
    if name == "w2":
        return RuleMap("w2", _common(ZPlus()), first=WSquare(), last=LRP0(),
                       description="deep Taylor for unbounded input: w² on the input layer, z⁺ hidden, LRP-0 output")
    if name == "zplus":
        return RuleMap("zplus", _common(ZPlus()), description="z⁺ on every linear layer")
    if name == "lrp0":
        return RuleMap("lrp0", _common(LRP0()), description="LRP-0 on every layer (gradient×input on ReLU nets)")
    if name == "epsilon":
        return RuleMap("epsilon", _common(Epsilon(epsilon)), description=f"LRP-ε (ε={epsilon}) on every layer")
    raise InterpError(f"unknown rule map {name!r}; choose one of {', '.join(RULE_MAPS)}")


RULE_MAPS = ("dtd", "w2", "zplus", "lrp0", "epsilon")
