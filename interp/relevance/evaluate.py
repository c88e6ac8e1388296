"""Pixel flipping and AOPC (Samek et al. 2017): does removing the most relevant pixels first hurt most?

For each image, pixels are ranked by a method's score (most relevant first) and replaced, a fixed
number per step; the explained logit is recorded after each step. AOPC = mean over images of
(1/(L+1)) Σ_{k=0..L} (f(x⁰) − f(xᵏ)): higher means the ranking found the pixels the model relies on.

Replacement: "zero" (default) removes the pixel — Fashion-MNIST's background is 0, so this takes
ink away without adding anything the model never saw. "uniform" draws values from [0, 1] (Samek et
al.'s choice for natural images), once per image from a seeded generator and shared by all methods;
on these images noise in the black background is itself a strong signal, so a random order, which
mostly hits background, scores highest there (measured; see the README).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.relevance.engine import gradient_maps, relevance
from interp.relevance.composites import RuleMap
from interp.results import Result

METHODS = ("dtd", "gradient_x_input", "gradient", "random")


@dataclass
class FlippingResult(Result):
    aopc: dict[str, float]
    aopc_stderr: dict[str, float]  # standard error of the mean over images
    curves: dict[str, list[float]]  # mean explained logit after k = 0..steps flipping steps
    n_images: int
    steps: int
    pixels_per_step: int
    rule_map: str
    replacement: str
    target: str = "predicted class"
    gradient: str = "|∂f/∂x| (sensitivity)"


def method_scores(model: nn.Module, x: torch.Tensor, target: torch.Tensor, rules: RuleMap | str,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-pixel scores (higher = flip earlier) of every method, flattened to (N, D)."""
    grad, _, _ = gradient_maps(model, x, target)
    dtd = relevance(model, x, target, rules).relevance
    return {"dtd": dtd.flatten(1), "gradient_x_input": (grad * x).flatten(1), "gradient": grad.abs().flatten(1),
            "random": torch.rand(x.flatten(1).shape, generator=generator).to(x)}


@dataclass
class MethodMaps(Result):
    """One image explained by every method side by side: the deep Taylor map and its baselines, each with
    the image's shape, for the logit of class `target`.

    `dtd`, `gradient_x_input` and `gradient` are the scores pixel flipping ranks by (`method_scores`);
    `epsilon` is LRP-ε. `output` is the explained logit, `absorbed` what the DTD map leaves to biases,
    `dtd_total` the sum of the DTD map, `predicted` the class with the largest logit.
    """

    target: int
    output: float
    absorbed: float
    rules: dict[str, str]
    dtd: list
    gradient_x_input: list
    gradient: list
    epsilon: list
    logits: list[float]
    predicted: int
    dtd_total: float


def method_maps(model: nn.Module, image: torch.Tensor, target: int | None = None, rules: RuleMap | str = "dtd"
                ) -> MethodMaps:
    """Relevance maps of one image (no batch dimension) by every method, for `target` (default: predicted)."""
    x = image[None]
    dtd = relevance(model, x, target, rules)
    scores = method_scores(model, x, dtd.target, rules, torch.Generator().manual_seed(0))
    maps = {key: scores[key].reshape(image.shape) for key in ("dtd", "gradient_x_input", "gradient")}
    with torch.no_grad():
        logits = model(x)[0]
    return MethodMaps(target=int(dtd.target[0]), output=float(dtd.output[0]), absorbed=float(dtd.absorbed[0]),
                      rules=dtd.rules, **{k: v.tolist() for k, v in maps.items()},
                      epsilon=relevance(model, x, dtd.target, "epsilon").relevance[0].tolist(),
                      logits=logits.tolist(), predicted=int(logits.argmax()),
                      dtd_total=sum(sum(row) for row in maps["dtd"].tolist()))


@torch.no_grad()
def flip_curve(model: nn.Module, x: torch.Tensor, target: torch.Tensor, scores: torch.Tensor,
               replacement: torch.Tensor, steps: int, pixels_per_step: int) -> torch.Tensor:
    """(N, steps + 1): the target logit after flipping the k·pixels_per_step highest-scoring pixels."""
    flat = x.flatten(1)
    rank = torch.empty_like(scores, dtype=torch.long)
    order = scores.argsort(dim=1, descending=True, stable=True)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=x.device).expand_as(order))
    rows = torch.arange(len(x), device=x.device)
    curve = []
    for k in range(steps + 1):
        flipped = torch.where(rank < k * pixels_per_step, replacement, flat).reshape(x.shape)
        curve.append(model(flipped)[rows, target])
    return torch.stack(curve, dim=1)


REPLACEMENTS = ("zero", "uniform")
REPLACEMENT_NOTES = {"zero": "zero (the pixel is removed: set to the black background)",
                     "uniform": "uniform[0,1], seeded, the same values for all methods"}


def pixel_flipping(model: nn.Module, images: torch.Tensor, rules: RuleMap | str = "dtd", steps: int = 50,
                   pixels_per_step: int = 8, seed: int = 0, batch_size: int = 250, replacement: str = "zero",
                   quiet: bool = False) -> FlippingResult:
    """AOPC and mean flipping curves of DTD, gradient×input, gradient and random on `images`."""
    if steps < 1 or pixels_per_step < 1:
        raise InterpError("--steps and --pixels-per-step must be at least 1")
    n_pixels = images[0].numel()
    if pixels_per_step > n_pixels:
        raise InterpError(f"--pixels-per-step {pixels_per_step} is more than the {n_pixels} pixels of an image")
    if len(images) == 0:
        raise InterpError("no images to evaluate on")
    if replacement not in REPLACEMENTS:
        raise InterpError(f"unknown replacement {replacement!r}; choose one of {', '.join(REPLACEMENTS)}")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(images.flatten(1).shape, generator=generator).to(images)
    replacement_all = noise if replacement == "uniform" else torch.zeros_like(noise)
    curves: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}
    bar = tqdm(range(0, len(images), batch_size), desc="pixel flipping", disable=quiet, unit="batch")
    for start in bar:
        x = images[start:start + batch_size]
        with torch.no_grad():
            target = model(x).argmax(-1)
        for method, scores in method_scores(model, x, target, rules, generator).items():
            curves[method].append(flip_curve(model, x, target, scores, replacement_all[start:start + batch_size],
                                             steps, pixels_per_step))
    aopc, stderr, mean_curves = {}, {}, {}
    for method in METHODS:
        curve = torch.cat(curves[method]).double()
        per_image = (curve[:, :1] - curve).mean(1)
        aopc[method] = float(per_image.mean())
        stderr[method] = float(per_image.std() / len(per_image) ** 0.5) if len(per_image) > 1 else 0.0
        mean_curves[method] = [float(v) for v in curve.mean(0)]
    name = rules if isinstance(rules, str) else rules.name
    return FlippingResult(aopc=aopc, aopc_stderr=stderr, curves=mean_curves, n_images=len(images), steps=steps,
                          pixels_per_step=pixels_per_step, rule_map=name,
                          replacement=REPLACEMENT_NOTES[replacement])
