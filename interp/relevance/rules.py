"""Relevance rules: each one a few modifiers over one generic rule, `BasicRule` (zennit's BasicHook idea).

A rule takes one layer, the layer's input `x` and the relevance `R` on its output, and returns the
relevance on its input. `BasicRule` computes, for terms k = 1..K,

    x_k = (input modifier k)(x),   layer_k = the layer with (parameter modifier k) applied,
    z = Σ_k c_k layer_k(x_k)       (c_k: output modifier k, ±1),
    s = R / stabilizer(z),
    R_in = reducer = Σ_k c_k x_k ⊙ layer_kᵀ s,

where layer_kᵀ s is one vector-Jacobian product of the modified layer (the "gradient trick"); no dense
matrix is ever formed. The rules (docs/architecture.md, Montavon et al. 2017):

    LRP-0   R_i = Σ_j x_i w_ij / z_j · R_j              z_j = Σ_i x_i w_ij + b_j    (= ε-rule, ε = 0)
    ε       as LRP-0 with z_j + ε·sign(z_j)
    z⁺      R_i = Σ_j x_i w⁺_ij / Σ_i' x_i' w⁺_i'j · R_j   (for x ≥ 0; biases ignored)
    zᴮ      R_i = Σ_j (x_i w_ij − l_i w⁺_ij − h_i w⁻_ij) / Σ_i'(…) · R_j   (l ≤ x ≤ h, per pixel)
    w²      R_i = Σ_j w²_ij / Σ_i' w²_i'j · R_j           (unbounded input)
    γ       R_i = Σ_j x_i (w_ij + γw⁺_ij) / Σ_i' x_i' (w_i'j + γw⁺_i'j) + b_j + γb⁺_j · R_j   (x ≥ 0)
    αβ      α R⁺ − β R⁻: positive and negative contributions normalised apart (a sum of two BasicRules)

A bilinear layer g(x) = (Wx̃) ⊙ (Vx̃) is a quadratic form per unit, g_h = x̃ᵀ Q_h x̃, so x·∇g_h = 2 g_h
restricted to the non-constant inputs: the bilinear rule is the same BasicRule with the reducer
½ x ⊙ ∇g·s. Its second-order Taylor expansion at 0 is exact: R_i = Σ_h R_h / g_h · x_i (Q_h x̃)_i.

Relevance a rule does not pass down (a bias's share, a unit whose denominator is 0) is not lost
silently: the engine reports, layer by layer, Σ R_out − Σ R_in as the part absorbed there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from interp.errors import InterpError
from interp.relevance.canonizers import canonical_layer
from interp.relevance.layers import BilinearForm, Reshape

# Division guard: the value an exact zero denominator is moved to.
TINY = 1e-12

LINEAR_TYPES = (nn.Linear, nn.Conv2d, nn.Conv1d)
POOL_TYPES = (nn.AvgPool2d, nn.AvgPool1d)
PASS_TYPES = (nn.ReLU, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, Reshape)


# ------------------------------------------------------------------------------------ the stabiliser

@dataclass(frozen=True)
class Stabilizer:
    """z + ε·sign(z), sign(0) = +1; with ε = 0 only an exact zero changes (to TINY), so R / z never divides by 0."""

    epsilon: float = TINY

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if self.epsilon == 0:
            return torch.where(z == 0, TINY, z)
        return z + self.epsilon * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def stabilize(z: torch.Tensor, eps: float = TINY) -> torch.Tensor:
    return Stabilizer(eps)(z)


# ------------------------------------------------------------------------- the layers rules can modify

def _forward(layer: nn.Module, weight: torch.Tensor | None, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """The layer's output on `x` with `weight` and `bias` put in place of its own."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, bias)
    if isinstance(layer, (nn.Conv2d, nn.Conv1d)):
        return layer._conv_forward(x, weight, bias)
    if isinstance(layer, POOL_TYPES + (BilinearForm,)):
        return layer(x)  # pooling: all weights are positive constants (w = w⁺); bilinear: unmodified
    raise InterpError(f"layer type {type(layer).__name__} is not a linear layer this rule can modify")


def _transpose(layer: nn.Module, weight: torch.Tensor | None, x: torch.Tensor, x_shape: torch.Size,
               s: torch.Tensor) -> torch.Tensor:
    """(∂ layer / ∂x at x)ᵀ s with `weight`: a direct transposed product where there is one (Linear, Conv,
    bilinear), else the vector-Jacobian product by autograd (linear layers: at any point, here 0)."""
    if isinstance(layer, nn.Linear):
        return s @ weight
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)) and layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        grad_input = torch.nn.grad.conv2d_input if isinstance(layer, nn.Conv2d) else torch.nn.grad.conv1d_input
        return grad_input(x_shape, weight, s, layer.stride, layer.padding, layer.dilation, layer.groups)
    if isinstance(layer, BilinearForm):
        left, right = layer.factors(x)
        grad = ((s * right) @ layer.W.detach() + (s * left) @ layer.V.detach())[..., :layer.d_embed]
        return grad @ layer.embed.detach() if layer.embed is not None else grad
    probe = torch.zeros(x_shape, dtype=s.dtype, device=s.device, requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(_forward(layer, weight, None, probe), probe, grad_outputs=s)
    return grad


# ------------------------------------------------------------------------------------------ modifiers

InputModifier = Callable[[torch.Tensor], "torch.Tensor | None"]  # None: the term vanishes


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def positive_part(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(min=0)


def negative_part(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(max=0)


def ones(x: torch.Tensor) -> torch.Tensor:
    """A constant input of ones (one example; it broadcasts): the rule then ignores the data."""
    return torch.ones_like(x[:1])


@dataclass(frozen=True)
class Params:
    """A parameter modifier: `fn` applied to the weight (and to the bias, if kept); `bias=False` drops it."""

    fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    bias: bool = True
    needs_weight: bool = False
    name: str = "identity"

    def __call__(self, layer: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
        weight = weight.detach() if isinstance(weight, torch.Tensor) else None
        bias = bias.detach() if isinstance(bias, torch.Tensor) and self.bias else None
        if weight is None and self.needs_weight:
            raise InterpError(f"the {self.name} rule needs a layer with weights, not {type(layer).__name__}")
        if self.fn is None or weight is None:
            return weight, bias
        return self.fn(weight), (self.fn(bias) if bias is not None else None)

    def from_output(self, layer: nn.Module, output: torch.Tensor) -> torch.Tensor | None:
        """The modified layer's output on the unmodified input, from the layer's own output when that is free."""
        if self.fn is not None:
            return None
        bias = getattr(layer, "bias", None)
        if self.bias or not isinstance(bias, torch.Tensor):
            return output
        return output - bias.detach().reshape(-1, *[1] * (output.ndim - 2))


KEEP = Params()
NO_BIAS = Params(bias=False, name="no-bias")
POSITIVE = Params(lambda w: w.clamp(min=0), bias=False, name="w⁺")
NEGATIVE = Params(lambda w: w.clamp(max=0), bias=False, name="w⁻")
SQUARE = Params(lambda w: w * w, bias=False, needs_weight=True, name="w²")


def term_sum(inputs: list[torch.Tensor], gradients: list[torch.Tensor], coefficients: list[float]) -> torch.Tensor:
    """The default reducer: Σ_k c_k x_k ⊙ g_k."""
    total = None
    for x, g, c in zip(inputs, gradients, coefficients):
        total = _accumulate(total, x * g, c)
    return total


def half_input_times_gradient(inputs: list[torch.Tensor], gradients: list[torch.Tensor],
                              coefficients: list[float]) -> torch.Tensor:
    """The reducer for a function homogeneous of degree 2 (a bilinear layer): x·∇g = 2g, so R = ½ x ⊙ ∇g·s."""
    return 0.5 * term_sum(inputs, gradients, coefficients)


def _accumulate(total: torch.Tensor | None, value: torch.Tensor, c: float) -> torch.Tensor:
    if total is None:
        return value if c == 1 else c * value
    if c == 1:
        return total + value
    return total - value if c == -1 else total + c * value


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


@dataclass(repr=False, eq=False)
class BasicRule(Rule):
    """The one generic rule: input, parameter and output modifiers per term, a stabiliser and a reducer."""

    inputs: tuple[InputModifier, ...] = (identity,)
    params: tuple[Params, ...] = (KEEP,)
    outputs: tuple[float, ...] = (1.0,)  # output modifiers: term k's output enters z as c_k · output
    stabilizer: Stabilizer = field(default_factory=Stabilizer)
    reducer: Callable[..., torch.Tensor] = term_sum
    layer_types: tuple[type, ...] = LINEAR_TYPES + POOL_TYPES
    name: str = "basic"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        layer = canonical_layer(layer)
        if not isinstance(layer, self.layer_types):
            raise InterpError(f"the {self.name} rule does not apply to a {type(layer).__name__} layer")
        terms, z = [], None
        for modify_input, modify_params, c in zip(self.inputs, self.params, self.outputs):
            x_k = modify_input(x)
            if x_k is None:
                continue
            weight, bias = modify_params(layer)
            z_k = modify_params.from_output(layer, output) if output is not None and modify_input is identity else None
            z = _accumulate(z, z_k if z_k is not None else _forward(layer, weight, bias, x_k), c)
            terms.append((x_k, weight, c))
        s = R / self.stabilizer(z)
        gradients = [_transpose(layer, weight, x_k, x.shape, s) for x_k, weight, _ in terms]
        return self.reducer([t[0] for t in terms], gradients, [t[2] for t in terms])


def _basic(name: str, **modifiers) -> Callable[[], BasicRule]:
    return lambda: BasicRule(name=name, **modifiers)


class Epsilon(BasicRule):
    """LRP-ε: z_j + ε·sign(z_j); weak and contradictory contributions are absorbed. ε = 0 is LRP-0."""

    def __init__(self, epsilon: float = 1e-2) -> None:
        super().__init__(stabilizer=Stabilizer(epsilon), name="lrp0" if epsilon == 0 else "epsilon")
        self.epsilon = epsilon

    def __repr__(self) -> str:
        return "lrp0" if self.epsilon == 0 else f"epsilon({self.epsilon:g})"


def LRP0() -> Epsilon:  # noqa: N802 - reads as the rule's name
    """R_i = Σ_j x_i w_ij / z_j · R_j with z_j = Σ_i x_i w_ij + b_j (equals gradient×input on ReLU nets)."""
    return Epsilon(0.0)


ZPlus = _basic("zplus", params=(POSITIVE,))
"""z⁺: R_i = Σ_j x_i w⁺_ij / Σ_i' x_i' w⁺_i'j · R_j, for non-negative inputs (after a ReLU)."""

WSquare = _basic("w2", inputs=(ones,), params=(SQUARE,))
"""w²: R_i = Σ_j w²_ij / Σ_i' w²_i'j · R_j; for an unbounded input, independent of x."""

BilinearExact = _basic("bilinear", reducer=half_input_times_gradient, layer_types=(BilinearForm,))
"""Exact second-order decomposition of g(x) = (W x̃) ⊙ (V x̃): R_i = Σ_h R_h/g_h · x_i (Q_h x̃)_i with
Q_h = ½(w_h v_hᵀ + v_h w_hᵀ); Σ_i R_i = Σ_h R_h exactly without a constant. With an embedding
(x̃ = [E x, 1]) the same holds for the quadratic form over x. The constant's share is absorbed."""


def Gamma(gamma: float = 0.25, epsilon: float = TINY) -> BasicRule:  # noqa: N802
    """γ-rule for x ≥ 0: LRP-0 on the layer with w + γw⁺ (and b + γb⁺)."""
    return BasicRule(params=(Params(lambda w: w + gamma * w.clamp(min=0), name="w+γw⁺"),),
                     stabilizer=Stabilizer(epsilon), name=f"gamma({gamma:g})")


@dataclass(repr=False, eq=False)
class Sum(Rule):
    """Σ_r c_r R_r: a linear combination of rules, each with its own denominator."""

    parts: tuple[tuple[float, Rule], ...]
    name: str = "sum"

    def relevance(self, layer: nn.Module, x: torch.Tensor, R: torch.Tensor,
                  output: torch.Tensor | None = None) -> torch.Tensor:
        total = None
        for c, rule in self.parts:
            total = _accumulate(total, rule.relevance(layer, x, R, output), c)
        return total


def AlphaBeta(alpha: float = 2.0, beta: float = 1.0) -> Sum:  # noqa: N802
    """α R⁺ − β R⁻: R⁺ from the contributions x_i w_ij > 0 (x⁺w⁺ + x⁻w⁻), R⁻ from those < 0; biases dropped."""
    signed = (positive_part, negative_part)
    plus = BasicRule(inputs=signed, params=(POSITIVE, NEGATIVE), outputs=(1.0, 1.0), name="alpha")
    minus = BasicRule(inputs=signed, params=(NEGATIVE, POSITIVE), outputs=(1.0, 1.0), name="beta")
    return Sum(((alpha, plus), (-beta, minus)), name=f"alpha{alpha:g}beta{beta:g}")


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


class ZB(BasicRule):
    """zᴮ for a bounded input l ≤ x ≤ h (per pixel: `low`/`high` broadcast against one input).

    R_i = Σ_j (x_i w_ij − l_i w⁺_ij − h_i w⁻_ij) / Σ_i'(x_i' w_i'j − l_i' w⁺_i'j − h_i' w⁻_i'j) · R_j
    Three terms: (x, w, +1), (h, w⁻, −1), (l, w⁺, −1); the l term vanishes for the usual l = 0.
    """

    def __init__(self, low: torch.Tensor | float = 0.0, high: torch.Tensor | float = 1.0) -> None:
        super().__init__(inputs=(identity, self._high, self._low), params=(NO_BIAS, NEGATIVE, POSITIVE),
                         outputs=(1.0, -1.0, -1.0), name="zb")
        self.low, self.high = low, high

    def _high(self, x: torch.Tensor) -> torch.Tensor:
        return _bound(self.high, x, "upper")

    def _low(self, x: torch.Tensor) -> torch.Tensor | None:
        low = _bound(self.low, x, "lower")
        return None if bool((low == 0).all()) else low

    def __repr__(self) -> str:
        if isinstance(self.low, (int, float)) and isinstance(self.high, (int, float)):
            return f"zb[{self.low:g}, {self.high:g}]"
        return "zb[per-pixel bounds]"
