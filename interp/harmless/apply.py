"""Using a harmless subspace: check it, hide an image in another, tell two models apart.

All checks run a float64 copy of the model by default: at 100× the input's norm, float32
rounding alone moves logits by about 1e-5 of their size, which would hide what is being measured.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import nn

from interp.errors import InterpError
from interp.harmless.layers import layer_operator
from interp.harmless.subspace import DTYPE, HarmlessSubspace, valid_magnitude
from interp.results import Result

SCALES = (10.0, 100.0)


def _as_dtype(model: nn.Module, dtype: torch.dtype, device: torch.device | str = "cpu") -> nn.Module:
    return copy.deepcopy(model).to(device=device, dtype=dtype).eval()


@torch.no_grad()
def _logits(model: nn.Module, images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    device = next(model.parameters()).device
    return model(images.to(device=device, dtype=dtype)).to(device="cpu", dtype=DTYPE)


def harmless_direction(space: HarmlessSubspace, direction: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """A unit vector (d_in) in the space: `direction` projected onto it, or a seeded random one."""
    if direction is None:
        g = torch.Generator().manual_seed(seed)
        direction = torch.randn(space.d_in, generator=g, dtype=DTYPE)
    d = space.project(direction.reshape(-1))
    norm = d.norm()
    if float(norm) == 0.0:
        raise ValueError("the direction has no component in the harmless space")
    return d / norm


@dataclasses.dataclass
class PerturbationCheck(Result):
    """Logits at x and at x + δ, δ in the space with ‖δ‖ = magnitude · ‖x‖."""

    layer: str
    exact: bool
    valid: str
    dimension: int
    magnitude: float  # ‖δ‖ / ‖x‖
    perturbation_norm: float
    input_norm: float
    max_abs_logit: float
    max_abs_logit_change: float
    relative_logit_change: float  # max |Δlogit| / max |logit|
    prediction_before: int
    prediction_after: int
    valid_magnitude: float | None  # relu-local: largest ‖δ‖/‖x‖ along δ keeping the pattern (None: any)
    pattern_holds: bool | None  # relu-local: magnitude ≤ valid_magnitude
    dtype: str
    logits_before: list[float]
    logits_after: list[float]


def check_perturbation(model: nn.Module, x: torch.Tensor, space: HarmlessSubspace, magnitude: float = 100.0,
                       direction: torch.Tensor | None = None, seed: int = 0,
                       dtype: torch.dtype = DTYPE, device: torch.device | str = "cpu") -> PerturbationCheck:
    """Add δ = magnitude·‖x‖·d (d a unit vector of the space) to the image x and compare logits."""
    d = harmless_direction(space, direction, seed)
    x = x.detach().to(DTYPE)
    x_norm = float(x.norm())
    delta = (magnitude * x_norm * d).reshape(x.shape)
    run = _as_dtype(model, dtype, device)
    before, after = _logits(run, x[None], dtype)[0], _logits(run, (x + delta)[None], dtype)[0]
    change = float((after - before).abs().max())
    biggest = float(before.abs().max())
    bound = None
    holds = None
    if space.pre_activation is not None:
        op, _, _ = layer_operator(model, space.layer, tuple(space.input_shape or x.shape))
        t = valid_magnitude(op, space, d)
        bound = t / x_norm if math.isfinite(t) else None
        holds = bound is None or magnitude <= bound
    return PerturbationCheck(space.layer, space.exact, space.valid, space.dimension, magnitude, magnitude * x_norm,
                             x_norm, biggest, change, change / biggest if biggest else math.inf,
                             int(before.argmax()), int(after.argmax()), bound, holds, str(dtype).removeprefix("torch."),
                             before.tolist(), after.tolist())


@dataclasses.dataclass
class HiddenAtScale(Result):
    scale: float  # ‖δ‖ / ‖carrier‖
    max_abs_logit_change: float
    relative_logit_change: float
    prediction_unchanged: bool
    # Recovery without the carrier: P(result) normalised, against the projected secret (cosine).
    recovered_cosine: float
    # Recovery knowing the carrier: (P(result) − P(carrier)) rescaled, relative error to the projected secret.
    recovered_error_known_carrier: float
    logits_after: list[float]
    result_image: list[list[float]] = dataclasses.field(repr=False)


@dataclasses.dataclass
class HiddenImage(Result):
    """A secret image projected into the harmless space and added to a carrier at several scales."""

    layer: str
    exact: bool
    dimension: int
    max_abs_logit: float
    secret_kept: float  # ‖P secret‖ / ‖secret‖: how much of the secret the space can carry
    secret_cosine: float  # cosine(P secret, secret); equals secret_kept, P being an orthogonal projector
    logits_before: list[float]
    scales: list[HiddenAtScale]
    carrier: list[list[float]] = dataclasses.field(repr=False)
    secret: list[list[float]] = dataclasses.field(repr=False)
    projected_secret: list[list[float]] = dataclasses.field(repr=False)
    recovered: list[list[float]] = dataclasses.field(repr=False)  # P(result) at the largest scale


def hide_image(model: nn.Module, space: HarmlessSubspace, carrier: torch.Tensor, secret: torch.Tensor,
               scales: tuple[float, ...] = SCALES, dtype: torch.dtype = DTYPE,
               device: torch.device | str = "cpu") -> HiddenImage:
    """Hide `secret` in `carrier`: result = carrier + s·‖carrier‖·P(secret)/‖P(secret)‖ for each scale s.

    The logits do not move (exactly, for an exact space), and projecting the result onto the
    space gives back P(secret) up to the carrier's own small component P(carrier), which is at
    most 1/s of the result's projection.
    """
    carrier, secret = carrier.detach().to(DTYPE), secret.detach().to(DTYPE)
    projected = space.project(secret)
    unit = projected / projected.norm()
    run = _as_dtype(model, dtype, device)
    before = _logits(run, carrier[None], dtype)[0]
    biggest = float(before.abs().max())
    carrier_part = space.project(carrier)
    rows, recovered = [], projected
    for s in scales:
        amount = s * float(carrier.norm())
        result = carrier + amount * unit
        after = _logits(run, result[None], dtype)[0]
        change = float((after - before).abs().max())
        recovered = space.project(result)
        cosine = float((recovered.flatten() @ unit.flatten()) / recovered.norm())
        known = (recovered - carrier_part) / amount
        rows.append(HiddenAtScale(s, change, change / biggest if biggest else math.inf,
                                  int(after.argmax()) == int(before.argmax()), cosine,
                                  float((known - unit).norm()), after.tolist(), result.tolist()))
    return HiddenImage(space.layer, space.exact, space.dimension, biggest, float(projected.norm() / secret.norm()),
                       float((projected.flatten() @ secret.flatten()) / (projected.norm() * secret.norm())),
                       before.tolist(), rows, carrier.tolist(), secret.tolist(), projected.tolist(), recovered.tolist())


@dataclasses.dataclass
class ModelIdentification(Result):
    """A perturbation harmless for model A, tried on model B (e.g. the same recipe, another seed)."""

    layer: str
    exact: bool
    magnitude: float
    n_inputs: int
    max_relative_change_a: float  # over the inputs: max |Δlogit_A| / max |logit_A|
    mean_relative_change_b: float  # mean over inputs of max |Δlogit_B| / max |logit_B|
    predictions_changed_a: int
    predictions_changed_b: int
    ratio: float  # mean_relative_change_b / max_relative_change_a: how much more B moves than A
    identifies: bool  # A unmoved (≤ 1e-4) while B moves by more than 1e-2 on average


def identify_model(model_a: nn.Module, model_b: nn.Module, space_a: HarmlessSubspace, images: torch.Tensor,
                   magnitude: float = 10.0, seed: int = 0, dtype: torch.dtype = DTYPE,
                   device: torch.device | str = "cpu") -> ModelIdentification:
    """Add to each image a δ (‖δ‖ = magnitude·‖x‖) from A's harmless space; compare both models' logits.

    A model whose logits do not move is A (or shares its first layer); one whose logits move is not.
    An input-dependent (ReLU) space belongs to one image: pass only that image.
    """
    if space_a.pre_activation is not None and len(images) != 1:
        raise InterpError(f"{space_a.layer} is input-dependent (its ReLU pattern at one image): identify on that image only")
    images = images.detach().to(DTYPE)
    d = harmless_direction(space_a, seed=seed).reshape(images.shape[1:])
    norms = images.reshape(len(images), -1).norm(dim=1).reshape(-1, *[1] * (images.dim() - 1))
    perturbed = images + magnitude * norms * d
    rel, changed = [], []
    for model in (model_a, model_b):
        run = _as_dtype(model, dtype, device)
        before, after = _logits(run, images, dtype), _logits(run, perturbed, dtype)
        rel.append((after - before).abs().amax(dim=1) / before.abs().amax(dim=1))
        changed.append(int((after.argmax(1) != before.argmax(1)).sum()))
    max_a, mean_b = float(rel[0].max()), float(rel[1].mean())
    ratio = mean_b / max_a if max_a > 0 else math.inf
    return ModelIdentification(space_a.layer, space_a.exact, magnitude, len(images), max_a, mean_b, changed[0],
                               changed[1], ratio, max_a <= 1e-4 and mean_b > 1e-2)
