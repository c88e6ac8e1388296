"""The bilinear layer `g(x) = (W x) ⊙ (V x)` and the image classifiers built on it.

A bilinear layer has no elementwise nonlinearity and no bias by default; a bias enters by
augmenting x with a constant 1 (`bias=True`), so the layer stays an exact quadratic form in the
augmented input. With a head P the output is `y = P g(x)` (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Bilinear(nn.Module):
    """`g(x) = (W x̃) ⊙ (V x̃)` with x̃ = [x, 1] when `bias=True`, else x̃ = x."""

    def __init__(self, d_in: int, d_hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.d_in, self.d_hidden, self.bias = d_in, d_hidden, bias
        d = d_in + int(bias)
        self.W = nn.Parameter(torch.empty(d_hidden, d))
        self.V = nn.Parameter(torch.empty(d_hidden, d))
        # Scaled so that (Wx)⊙(Vx) has roughly unit variance for unit-variance inputs.
        nn.init.normal_(self.W, std=d ** -0.5)
        nn.init.normal_(self.V, std=d ** -0.5)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.bias:
            return x
        return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.augment(x)
        return (x @ self.W.T) * (x @ self.V.T)


class BilinearClassifier(nn.Module):
    """`(optional linear embedding) → Bilinear → linear head`, all without biases by default.

    The logits are then an exact quadratic form of the (augmented) flattened image, which is what
    `interp.bilinear` reads.
    """

    arch = "bilinear"

    def __init__(self, d_in: int, n_classes: int, d_hidden: int = 512, d_embed: int | None = None,
                 bias: bool = False) -> None:
        super().__init__()
        self.d_in, self.n_classes, self.d_hidden, self.d_embed, self.bias_flag = d_in, n_classes, d_hidden, d_embed, bias
        self.embed = nn.Linear(d_in, d_embed, bias=False) if d_embed else None
        self.bilinear = Bilinear(d_embed or d_in, d_hidden, bias=bias)
        self.head = nn.Linear(d_hidden, n_classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input the bilinear layer reads (after flattening and the optional embedding)."""
        x = x.reshape(x.shape[0], -1)
        return self.embed(x) if self.embed is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bilinear(self.features(x)))

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "d_in": self.d_in, "n_classes": self.n_classes, "d_hidden": self.d_hidden,
                "d_embed": self.d_embed, "bias": self.bias_flag}


class ReluMLP(nn.Module):
    """The baseline: `Linear → ReLU → Linear` (with biases), sized to match a bilinear model's parameters."""

    arch = "relu"

    def __init__(self, d_in: int, n_classes: int, d_hidden: int = 1024) -> None:
        super().__init__()
        self.d_in, self.n_classes, self.d_hidden = d_in, n_classes, d_hidden
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.reshape(x.shape[0], -1))))

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "d_in": self.d_in, "n_classes": self.n_classes, "d_hidden": self.d_hidden}

    @staticmethod
    def hidden_for_params(d_in: int, n_classes: int, n_params: int) -> int:
        """The hidden width whose parameter count is closest to `n_params`."""
        return max(1, round((n_params - n_classes) / (d_in + 1 + n_classes)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# What the relevance engine reads of each model (see interp.relevance.canonizers): its forward pass as layers.

def _bilinear_layers(model: BilinearClassifier) -> list[tuple[str, nn.Module]]:
    embed = [("embed", model.embed)] if model.embed is not None else []
    return [("flatten", nn.Flatten()), *embed, ("bilinear", model.bilinear), ("head", model.head)]


def _relu_layers(model: ReluMLP) -> list[tuple[str, nn.Module]]:
    return [("flatten", nn.Flatten()), ("fc1", model.fc1), ("relu", nn.ReLU()), ("fc2", model.fc2)]


def _register_canonizers() -> None:
    from interp.relevance.canonizers import register_canonizer
    from interp.relevance.layers import BilinearForm

    register_canonizer(Bilinear, lambda layer: [("", BilinearForm(layer.W, layer.V, layer.bias))])
    register_canonizer(BilinearClassifier, _bilinear_layers)
    register_canonizer(ReluMLP, _relu_layers)


_register_canonizers()
