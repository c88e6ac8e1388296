"""The bilinear layer `g(x) = (W x) ⊙ (V x)` and the image classifiers built on it.

A bilinear layer has no elementwise nonlinearity and no bias by default; a bias enters by
augmenting x with a constant 1 (`bias=True`), so the layer stays an exact quadratic form in the
augmented input. With a head P the output is `y = P g(x)` (see DESIGN.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from interp.errors import InterpError


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


CLASSIFIERS: dict[str, type[nn.Module]] = {"bilinear": BilinearClassifier, "relu": ReluMLP}


def register(model_class: type[nn.Module]) -> type[nn.Module]:
    """Add an image-classifier class (with `arch` and `config()`) to the registry `build_classifier` reads."""
    CLASSIFIERS[model_class.arch] = model_class
    return model_class


def build_classifier(config: dict[str, Any]) -> nn.Module:
    """Rebuild a classifier from the `config()` dict it was saved with."""
    arch = config.get("arch")
    if arch not in CLASSIFIERS:
        raise InterpError(f"unknown classifier architecture {arch!r}; known: {', '.join(CLASSIFIERS)}")
    kwargs = {k: v for k, v in config.items() if k != "arch"}
    try:
        return CLASSIFIERS[arch](**kwargs)
    except TypeError as e:
        raise InterpError(f"classifier config does not fit architecture {arch!r}: {e}") from None


# Classifiers defined in their own modules register themselves here (after CLASSIFIERS exists).
from interp.models import cnn as _cnn  # noqa: E402,F401
