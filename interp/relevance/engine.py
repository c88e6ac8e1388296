"""The relevance engine: run a model as a list of layers, then hand relevance down layer by layer.

The engine knows no model class. Canonizers (`interp.relevance.canonizers`, registered by each model
package) turn a model into plain layers; a composite (`interp.relevance.composites`) gives each layer a
rule; `relevance(model, x, target, rules)` starts from the chosen logit and applies those rules,
recording how much relevance each layer absorbs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from interp.errors import InterpError
from interp.relevance.canonizers import Canonizer, canonical_layers
from interp.relevance.composites import Composite, composite
from interp.relevance.layers import BilinearForm
from interp.relevance.rules import PASS_TYPES
from interp.results import Result


@dataclass
class RelevanceMaps(Result):
    """Relevance of every input feature for one output per example.

    `relevance` has the input's shape; `output` is the explained logit; `absorbed` is
    output − Σ relevance (0 up to rounding for a bias-free network), split by layer in
    `absorbed_by_layer` (biases, units with a zero denominator, the constant of a bilinear layer).
    """

    relevance: torch.Tensor
    output: torch.Tensor
    target: torch.Tensor
    absorbed: torch.Tensor
    absorbed_by_layer: dict[str, torch.Tensor]
    rules: dict[str, str]
    rule_map: str


def resolve_target(logits: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    n, n_classes = logits.shape
    if target is None:
        return logits.argmax(-1)
    target = torch.as_tensor(target, device=logits.device).long().expand(n).clone()
    if ((target < 0) | (target >= n_classes)).any():
        raise InterpError(f"class {target.tolist()[0] if n == 1 else target.tolist()} does not exist: "
                          f"the model has classes 0..{n_classes - 1}")
    return target


def relevance(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None,
              rules: Composite | str = "dtd", canonizers: tuple[Canonizer, ...] | None = None) -> RelevanceMaps:
    """Deep Taylor / LRP relevance of `x` (a batch) for logit `target` (default: the predicted class)."""
    rules = composite(rules) if isinstance(rules, str) else rules
    layers = canonical_layers(model, canonizers)
    chosen = rules.assign(layers)

    with torch.no_grad():
        activations = [x]
        for _, layer in layers:
            activations.append(layer(activations[-1]))
        logits = activations[-1]
        if logits.ndim != 2:
            raise InterpError(f"the model's output has shape {tuple(logits.shape)}; relevance needs (batch, classes)")
        target = resolve_target(logits, target)
        rows = torch.arange(len(x), device=x.device)
        R = torch.zeros_like(logits)
        R[rows, target] = logits[rows, target]
        output = logits[rows, target]

        absorbed_by_layer: dict[str, torch.Tensor] = {}
        for i in reversed(range(len(layers))):
            name, layer = layers[i]
            R_in = chosen[i].relevance(layer, activations[i], R, output=activations[i + 1])
            absorbed_by_layer[name] = (R.flatten(1).sum(1) - R_in.flatten(1).sum(1))
            R = R_in
    return RelevanceMaps(relevance=R, output=output, target=target, absorbed=output - R.flatten(1).sum(1),
                         absorbed_by_layer=dict(reversed(list(absorbed_by_layer.items()))),
                         rules={name: repr(rule) for (name, _), rule in zip(layers, chosen)}, rule_map=rules.name)


def gradient_maps(model: nn.Module, x: torch.Tensor, target: int | torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gradient of the target logit w.r.t. x, the target logit, the target) in one forward+backward."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        target = resolve_target(logits.detach(), target)
        output = logits.gather(1, target[:, None])[:, 0]
        (grad,) = torch.autograd.grad(output.sum(), x)
    return grad, output.detach(), target


@dataclass
class PairRelevance(Result):
    """Bilinear classifier, one image: R_ij = x̃_i Q_ij x̃_j (x̃ = [x, 1] with a bias), R_i = Σ_j R_ij.

    Σ_ij R_ij is the logit exactly. `pairs` is over the input features (and the constant last, if
    any); `relevance` is R_i for the input features; `absorbed` is the constant's share Σ_j R_1j.
    """

    pairs: torch.Tensor
    relevance: torch.Tensor
    output: float
    target: int
    absorbed: float

    @property
    def total(self) -> float:
        """Σ_ij R_ij (the logit, up to rounding)."""
        return float(self.pairs.sum())

    @property
    def strongest(self) -> int:
        """The input feature with the largest |R_i|."""
        return int(self.relevance.abs().argmax())


def _quadratic_classifier(model: nn.Module) -> tuple[BilinearForm, nn.Linear]:
    """(bilinear form, linear head) of a model whose canonical layers are reshapes, one bilinear form, a head."""
    layers = [layer for _, layer in canonical_layers(model) if not isinstance(layer, PASS_TYPES)]
    if len(layers) != 2 or not isinstance(layers[0], BilinearForm) or type(layers[1]) is not nn.Linear:
        raise InterpError(f"pair relevance needs a bilinear classifier, not a {type(model).__name__}")
    return layers[0], layers[1]


def interaction_matrix(model: nn.Module, target: int) -> torch.Tensor:
    """Q for logit `target` in (augmented) pixel space: Q = ½(W'ᵀ diag(P_c) V' + V'ᵀ diag(P_c) W')."""
    form, head = _quadratic_classifier(model)
    W, V = form.folded()
    half = (W.T * head.weight.detach()[target]) @ V
    return 0.5 * (half + half.T)


def bilinear_pair_relevance(model: nn.Module, x: torch.Tensor, target: int | None = None) -> PairRelevance:
    """Exact pixel and pixel-pair relevance of one image (any shape; flattened) for a bilinear classifier."""
    form, head = _quadratic_classifier(model)
    if head.bias is not None:
        raise InterpError("pair relevance needs a bias-free head (the logit is then exactly a quadratic form)")
    flat = x.reshape(1, -1)
    with torch.no_grad():
        logits = model(flat)
        target_t = resolve_target(logits, target)
        target = int(target_t[0])
        xt = BilinearForm(*form.folded(), form.bias).features(flat)[0]
        pairs = xt[:, None] * interaction_matrix(model, target) * xt[None, :]
        per_feature = pairs.sum(1)
    d = form.d_in
    return PairRelevance(pairs=pairs, relevance=per_feature[:d], output=float(logits[0, target]), target=target,
                         absorbed=float(per_feature[d:].sum()))
