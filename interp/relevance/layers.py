"""The few layer types the relevance rules know besides torch's own (Linear, Conv, pooling, ReLU, ...).

Canonizers (`interp.relevance.canonizers`) turn a model's own modules into these, so the engine and
the rules never need a project model class:

- `BilinearForm`: g(x) = (W x̃) ⊙ (V x̃) with x̃ = [E x, 1] (the embedding E and the constant 1 are
  optional). With an embedding it is still one quadratic form over the layer's input x.
- `Reshape`: a view of each example with another shape; relevance passes through unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BilinearForm(nn.Module):
    """`g(x) = (W x̃) ⊙ (V x̃)`, x̃ = [E x, 1] with `bias`, else E x; E x = x without `embed`.

    W, V (d_hidden × (d_embed + bias)) and E (d_embed × d_in) are the model's own tensors, not copies.
    """

    def __init__(self, W: torch.Tensor, V: torch.Tensor, bias: bool, embed: torch.Tensor | None = None) -> None:
        super().__init__()
        self.W, self.V, self.bias, self.embed = W, V, bias, embed
        self.d_embed = W.shape[1] - int(bias)
        self.d_in = embed.shape[1] if embed is not None else self.d_embed

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x̃, the vector the two factors read."""
        if self.embed is not None:
            x = F.linear(x, self.embed)
        if self.bias:
            x = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)
        return x

    def factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(W x̃, V x̃)."""
        xt = self.features(x)
        return xt @ self.W.T, xt @ self.V.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = self.factors(x)
        return left * right

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W', V') reading [x, 1] (or x) directly: W' = [W_x E, w_1], the embedding multiplied out."""
        W, V = self.W.detach(), self.V.detach()
        if self.embed is None:
            return W, V
        embed = self.embed.detach()

        def fold(weight: torch.Tensor) -> torch.Tensor:
            new = weight[:, :self.d_embed] @ embed
            return torch.cat([new, weight[:, self.d_embed:]], dim=1) if self.bias else new

        return fold(W).to(embed.dtype), fold(V).to(embed.dtype)


class Reshape(nn.Module):
    """(N, ...) → (N, *shape): a view of each example, so relevance passes through unchanged."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)
