"""The relevance engine: run a model as a list of layers, then hand relevance down layer by layer.

`layers_of(model)` turns each of our classifiers into the plain sequence of layers it computes
(an embedding before a bilinear layer always gets LRP-0, which keeps the bilinear decomposition
exact in pixel space; see `LinearIntoBilinear`). `relevance(model, x, target, rules)` starts from the chosen logit and applies
the rule the rule map gives each layer, recording how much relevance each layer absorbs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from interp.errors import InterpError
from interp.models.bilinear import Bilinear, BilinearClassifier, ReluMLP
from interp.models.cnn import SmallCNN
from interp.relevance.rules import LINEAR_TYPES, LinearIntoBilinear, RuleMap, rule_map
from interp.results import Result


def fold_bilinear(model: BilinearClassifier) -> Bilinear:
    """The classifier's bilinear layer reading the flat image directly: W' = W·E, V' = V·E."""
    layer = model.bilinear
    if model.embed is None:
        return layer
    embed = model.embed.weight.detach()
    folded = Bilinear(model.d_in, layer.d_hidden, bias=layer.bias)
    with torch.no_grad():
        for name in ("W", "V"):
            weight = getattr(layer, name).detach()
            new = weight[:, :layer.d_in] @ embed
            if layer.bias:
                new = torch.cat([new, weight[:, layer.d_in:]], dim=1)
            getattr(folded, name).copy_(new)
    return folded.to(embed.dtype)


def layers_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model as a list of (name, layer) whose composition is the model's forward pass."""
    if isinstance(model, SmallCNN):
        return [(f"layers.{i}", layer) for i, layer in enumerate(model.layers)]
    if isinstance(model, ReluMLP):
        return [("flatten", nn.Flatten()), ("fc1", model.fc1), ("relu", nn.ReLU()), ("fc2", model.fc2)]
    if isinstance(model, BilinearClassifier):
        if model.embed is None:
            return [("flatten", nn.Flatten()), ("bilinear", model.bilinear), ("head", model.head)]
        # The embedding keeps its own (cheaper) shape; its fixed LRP-0 rule keeps the decomposition exact.
        embed = LinearIntoBilinear(model.d_in, model.d_embed, bias=False, device="meta")
        embed.weight = model.embed.weight
        return [("flatten", nn.Flatten()), ("embed", embed), ("bilinear", model.bilinear), ("head", model.head)]
    if isinstance(model, nn.Sequential):
        return [(name, layer) for name, layer in model.named_children()]
    raise InterpError(f"relevance does not know how to read a {type(model).__name__}; "
                      "use a ReluMLP, BilinearClassifier, SmallCNN or an nn.Sequential")


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
              rules: RuleMap | str = "dtd") -> RelevanceMaps:
    """Deep Taylor / LRP relevance of `x` (a batch) for logit `target` (default: the predicted class)."""
    rules = rule_map(rules) if isinstance(rules, str) else rules
    layers = layers_of(model)
    weighted = [i for i, (_, layer) in enumerate(layers) if isinstance(layer, LINEAR_TYPES + (Bilinear,))]
    if not weighted:
        raise InterpError("the model has no layer with weights to explain")
    chosen = [rules.rule_for(layer, i == weighted[0], i == weighted[-1]) for i, (_, layer) in enumerate(layers)]

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


def interaction_matrix(model: BilinearClassifier, target: int) -> torch.Tensor:
    """Q for logit `target` in (augmented) pixel space: Q = ½(W'ᵀ diag(P_c) V' + V'ᵀ diag(P_c) W')."""
    layer = fold_bilinear(model)
    head = model.head.weight.detach()[target]
    W, V = layer.W.detach(), layer.V.detach()
    half = (W.T * head) @ V
    return 0.5 * (half + half.T)


def bilinear_pair_relevance(model: BilinearClassifier, x: torch.Tensor, target: int | None = None) -> PairRelevance:
    """Exact pixel and pixel-pair relevance of one image (any shape; flattened) for a bilinear classifier."""
    if not isinstance(model, BilinearClassifier):
        raise InterpError(f"pair relevance needs a bilinear classifier, not a {type(model).__name__}")
    if model.head.bias is not None:
        raise InterpError("pair relevance needs a bias-free head (the logit is then exactly a quadratic form)")
    flat = x.reshape(1, -1)
    with torch.no_grad():
        logits = model(flat)
        target_t = resolve_target(logits, target)
        target = int(target_t[0])
        xt = fold_bilinear(model).augment(flat)[0]
        pairs = xt[:, None] * interaction_matrix(model, target) * xt[None, :]
        per_feature = pairs.sum(1)
    d = model.d_in
    return PairRelevance(pairs=pairs, relevance=per_feature[:d], output=float(logits[0, target]), target=target,
                         absorbed=float(per_feature[d:].sum()))
