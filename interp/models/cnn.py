"""A small CNN for Fashion-MNIST: (conv → ReLU → pool) × n → flatten → linear.

Only layer types that deep Taylor decomposition has rules for: Conv2d, ReLU, average or sum
pooling (`nn.AvgPool2d(divisor_override=1)` sums), Linear. No biases by default, so relevance is
conserved exactly from the logit down to the pixels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class AddChannel(nn.Module):
    """(N, H, W) or (N, H·W) images → (N, 1, H, W); a reshape, so relevance passes through unchanged."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, self.image_size, self.image_size)


class SmallCNN(nn.Module):
    arch = "cnn"

    def __init__(self, n_classes: int = 10, image_size: int = 28, channels: list[int] | tuple[int, ...] = (16, 32),
                 kernel: int = 5, pool: str = "avg", bias: bool = False) -> None:
        super().__init__()
        if pool not in ("avg", "sum"):
            raise ValueError(f"pool must be 'avg' or 'sum', not {pool!r}")
        self.n_classes, self.image_size, self.channels = n_classes, image_size, list(channels)
        self.kernel, self.pool, self.bias_flag = kernel, pool, bias
        layers: list[nn.Module] = [AddChannel(image_size)]
        c_in, size = 1, image_size
        for c_out in self.channels:
            layers += [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias), nn.ReLU(),
                       nn.AvgPool2d(2, divisor_override=1 if pool == "sum" else None)]
            c_in, size = c_out, size // 2
        layers += [nn.Flatten(), nn.Linear(c_in * size * size, n_classes, bias=bias)]
        self.layers = nn.Sequential(*layers)

    @property
    def d_in(self) -> int:
        """Number of input pixels (the flat size other classifiers call d_in)."""
        return self.image_size * self.image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "n_classes": self.n_classes, "image_size": self.image_size,
                "channels": self.channels, "kernel": self.kernel, "pool": self.pool, "bias": self.bias_flag}


def _register_canonizers() -> None:
    from interp.relevance.canonizers import register_canonizer
    from interp.relevance.layers import Reshape

    register_canonizer(SmallCNN, lambda model: [("layers", model.layers)])
    register_canonizer(AddChannel, lambda layer: [("", Reshape(1, layer.image_size, layer.image_size))])


_register_canonizers()
