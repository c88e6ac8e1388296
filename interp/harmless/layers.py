"""Which harmless subspaces an image classifier offers, by layer name, in input (pixel) coordinates.

- `BilinearClassifier` without embedding: `bilinear`, the common null space of W and V (the
  first layer). With a bias the constant column of the augmented input is left out: δ only
  moves the pixels.
- `BilinearClassifier` with a linear embedding E: the first layer is the embedding, so `embed`
  is null(E); `bilinear` is the common null space of W E and V E, the pixel directions the
  bilinear layer cannot see through the embedding (it contains null(E)).
- `ReluMLP`: `fc1`, the null space of the first linear layer (harmless at any magnitude), and
  `fc1.relu`, the input-dependent space at x from the units inactive there (needs `x`).
- A CNN (`interp.models.cnn`): its first conv's operator null space and `<conv>.relu` likewise.
"""

from __future__ import annotations

import torch
from torch import nn

from interp.errors import InterpError
from interp.harmless.subspace import (DTYPE, ConvOperator, HarmlessSubspace, MatrixOperator, Operator,
                                      null_space, relu_local_space)
from interp.models.bilinear import BilinearClassifier, ReluMLP

RELU_SUFFIX = ".relu"


def _first_weight_layer(model: nn.Module) -> tuple[str, nn.Module]:
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            return name, module
    raise InterpError(f"{type(model).__name__} has no linear or conv layer to take a null space of")


def _followed_by_relu(model: nn.Module) -> bool:
    """CNNs built in this project put a ReLU after their first conv (an nn.ReLU or F.relu)."""
    return getattr(model, "arch", None) in ("relu", "cnn") or any(isinstance(m, nn.ReLU) for m in model.modules())


def harmless_layers(model: nn.Module) -> dict[str, str]:
    """Layer names this model offers, each with what its space is (first entry = the default)."""
    if isinstance(model, BilinearClassifier):
        if model.embed is not None:
            return {"embed": "null space of the linear embedding (the first layer), any magnitude when exact",
                    "bilinear": "common null space of W·E and V·E: pixels the bilinear layer cannot see, "
                                "any magnitude when exact"}
        return {"bilinear": "common null space of W and V (the first layer), any magnitude when exact"}
    if isinstance(model, ReluMLP):
        return {"fc1": "null space of the first linear layer, any magnitude when exact",
                "fc1" + RELU_SUFFIX: "units inactive at x: harmless only while the activation pattern holds"}
    name, module = _first_weight_layer(model)
    kind = "conv operator" if isinstance(module, nn.Conv2d) else "linear layer"
    layers = {name: f"null space of the first {kind}, any magnitude when exact"}
    if _followed_by_relu(model):
        layers[name + RELU_SUFFIX] = "units inactive at x: harmless only while the activation pattern holds"
    return layers


def depends_on_input(layer: str) -> bool:
    """Whether the harmless space of `layer` (a name of `harmless_layers`) depends on the input image: a `.relu`
    layer's space holds only while that image's activation pattern does."""
    return layer.endswith(RELU_SUFFIX)


def layer_operator(model: nn.Module, layer: str, image_shape: tuple[int, ...]) -> tuple[Operator, torch.Tensor | None, str]:
    """(linear operator on flattened images, bias or None, kind) for a layer name of `harmless_layers`."""
    known = harmless_layers(model)
    if layer not in known:
        raise InterpError(f"no layer {layer!r} in this {type(model).__name__}; choose one of {', '.join(known)}")
    base = layer.removesuffix(RELU_SUFFIX)
    if isinstance(model, BilinearClassifier):
        d = model.bilinear.d_in  # leave out the bias column of the augmented input
        stacked = torch.cat([model.bilinear.W[:, :d], model.bilinear.V[:, :d]]).detach().to(DTYPE)
        if layer == "embed":
            return MatrixOperator(model.embed.weight), None, "linear"
        if model.embed is not None:
            stacked = stacked @ model.embed.weight.detach().to(DTYPE)
        return MatrixOperator(stacked), None, "bilinear"
    module = dict(model.named_modules())[base]
    bias = module.bias.detach() if module.bias is not None else None
    if isinstance(module, nn.Conv2d):
        op = ConvOperator(module, (module.in_channels, *image_shape[-2:]))
        if bias is not None:  # one bias per channel → one per output unit, in the operator's (C, H', W') order
            bias = bias.repeat_interleave(op.n_locations)
        return op, bias, "conv"
    return MatrixOperator(module.weight), bias, "linear"


def harmless_space(model: nn.Module, layer: str | None = None, x: torch.Tensor | None = None,
                   image_shape: tuple[int, ...] = (28, 28), rtol: float | None = None,
                   approx_dim: int = 32, quiet: bool = True) -> HarmlessSubspace:
    """The harmless subspace of `layer` (default: the model's first) in flattened-image coordinates.

    A `.relu` layer needs the input image `x`; its space holds only while x's activation pattern does.
    """
    layer = layer or next(iter(harmless_layers(model)))
    op, bias, kind = layer_operator(model, layer, image_shape)
    shape = list(image_shape)
    if depends_on_input(layer):
        if x is None:
            raise InterpError(f"layer {layer!r} is input-dependent: give an input image (--index)")
        return relu_local_space(op, bias, x, layer, rtol=rtol, approx_dim=approx_dim, input_shape=shape, quiet=quiet)
    return null_space(op, layer, kind, rtol=rtol, approx_dim=approx_dim, input_shape=shape, quiet=quiet)
