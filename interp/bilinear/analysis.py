"""Analyses of a bilinear layer from its weights: per-class spectra, truncation, HOSVD, adversarial masks.

Each analysis is a function `(weights, inputs, options) -> Result`; `eigen_report` bundles what
`interp eigen` prints for an image classifier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from interp.bilinear.core import (BilinearWeights, Eigen, classifier_weights, effective_rank, eigendecompose,
                                  interaction_matrices, parse_direction)
from interp.errors import InterpError
from interp.results import Result

TRUNCATION_KS = (1, 2, 5, 10, 20, 50)


def class_directions(n_out: int, demean: bool = False, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One direction per class: the one-hot e_c, or with `demean` e_c − 1/n (the logit minus the mean
    logit, which changes neither predictions nor probabilities but drops components shared by all classes)."""
    eye = torch.eye(n_out, dtype=dtype)
    return eye - 1.0 / n_out if demean else eye


def class_eigen(weights: BilinearWeights, demean: bool = False) -> Eigen:
    """Eigendecomposition of Q_c for every output c (u = e_c, or e_c − 1/n with `demean`), batched."""
    return eigendecompose(weights, class_directions(weights.d_out, demean, weights.P.dtype))


@dataclass
class DirectionSpectrum(Result):
    """The spectrum of one output direction's interaction matrix."""

    direction: list[float]
    label: str
    top_eigenvalues: list[float]  # by |λ|, largest first
    effective_rank: float
    top_eigenvectors: list[list[float]] = field(default_factory=list)  # (n_vectors, d_input)
    n_positive: int = 0
    n_negative: int = 0


def direction_spectrum(weights: BilinearWeights, direction: torch.Tensor, label: str = "", n_values: int = 20,
                       n_vectors: int = 0) -> DirectionSpectrum:
    """Eigen-spectrum of Q_u for one direction u: top values by |λ|, effective rank, top eigenvectors."""
    if not bool(torch.isfinite(direction).all()):
        named = f" ({label})" if label else ""
        raise InterpError(f"the output direction{named} holds NaN or infinity; give finite numbers")
    eig = eigendecompose(weights, direction[None].to(weights.P.dtype))
    values = eig.eigenvalues[0]
    scale = values.abs().max().clamp_min(1e-30)
    significant = values.abs() > 1e-6 * scale
    return DirectionSpectrum(direction=direction.tolist(), label=label, top_eigenvalues=values[:n_values].tolist(),
                             effective_rank=float(effective_rank(values)),
                             top_eigenvectors=eig.eigenvectors[0, :n_vectors].tolist(),
                             n_positive=int(((values > 0) & significant).sum()),
                             n_negative=int(((values < 0) & significant).sum()))


def classifier_direction_spectrum(model: torch.nn.Module, direction: str, class_names: list[str] | None = None,
                                  n_values: int = 20, n_vectors: int = 0) -> DirectionSpectrum:
    """`direction_spectrum` of a bilinear classifier for a direction named as `core.parse_direction` reads it
    (a class, a difference "3-5", or a vector), labelled with that name."""
    weights = classifier_weights(model)
    u = parse_direction(direction, weights.d_out, class_names)
    return direction_spectrum(weights, u, label=direction, n_values=n_values, n_vectors=n_vectors)


@torch.no_grad()
def truncation_accuracy(eig: Eigen, inputs: torch.Tensor, labels: torch.Tensor, ks=TRUNCATION_KS,
                        batch_size: int = 2000) -> dict[str, float]:
    """Accuracy of the model whose class-c logit is Σ_{top k by |λ|} λ (vᵀx̃)², for each k.

    `eig` holds one eigendecomposition per class (as from `class_eigen`); `inputs` are augmented
    inputs x̃ (N, d_input). A k beyond the rank keeps every component, i.e. the exact model.
    """
    k_max = min(max(ks), eig.eigenvalues.shape[1])
    top = eig.top(k_max)
    correct = {k: 0 for k in ks}
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size].to(top.eigenvectors.dtype)
        y = labels[start:start + batch_size]
        n_dir, r, d = top.eigenvectors.shape
        sq = (x @ top.eigenvectors.reshape(n_dir * r, d).T).reshape(len(x), n_dir, r) ** 2 * top.eigenvalues[None]
        cumulative = sq.cumsum(-1)  # logits with the top 1, 2, ... components
        for k in ks:
            logits = cumulative[:, :, min(k, r) - 1]
            correct[k] += (logits.argmax(-1) == y).sum().item()
    return {str(k): correct[k] / max(1, len(inputs)) for k in ks}



def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal DCT-II matrix C (n × n): row f is √(α_f/n)·cos(π f (2t + 1) / 2n), α_0 = 1, α_f = 2,
    so C x holds the coefficients of x by spatial frequency f (0 = constant) and C Cᵀ = I."""
    f = torch.arange(n, dtype=dtype)[:, None]
    t = torch.arange(n, dtype=dtype)[None, :]
    scale = torch.full((n, 1), (2.0 / n) ** 0.5, dtype=dtype)
    scale[0] = (1.0 / n) ** 0.5
    return scale * torch.cos(torch.pi * f * (2 * t + 1) / (2 * n))


def low_frequency_share(images: torch.Tensor, cutoff: int = 7) -> torch.Tensor:
    """Smoothness of images (..., H, W): the share of each image's energy Σx² in the 2-D DCT coefficients
    with both frequencies below `cutoff` (the cutoff × cutoff lowest-frequency block).

    A constant image gives 1, a checkerboard 0, white noise on average cutoff²/(H·W) (1/16 for 28 × 28
    with the default 7). An all-zero image gives 0."""
    h, w = images.shape[-2:]
    x = images.to(torch.float64)
    coeffs = dct_matrix(h) @ x @ dct_matrix(w).T
    energy = (coeffs ** 2).sum((-2, -1))
    low = (coeffs[..., :cutoff, :cutoff] ** 2).sum((-2, -1))
    return torch.where(energy > 0, low / energy.clamp_min(1e-300), torch.zeros_like(energy))


@dataclass
class SpectrumSummary(Result):
    """How readable a bilinear image classifier's class spectra are, in four numbers (plus per class).

    effective_rank: (Σ|λ|)² / Σλ² of each class form Q_c (`core.effective_rank`, a participation ratio).
    truncated_accuracy: accuracy with only the top `k` eigencomponents (by |λ|) of every class.
    smoothness: `low_frequency_share` of the pixel part of each class's top `n_vectors` eigenvectors,
    averaged over them (white noise: cutoff²/(H·W)).
    """

    full_accuracy: float
    k: int
    truncated_accuracy: float
    effective_rank: list[float]  # per class
    mean_effective_rank: float
    n_vectors: int
    cutoff: int
    smoothness: list[float]  # per class
    mean_smoothness: float


@torch.no_grad()
def spectrum_summary(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, k: int = 10,
                     n_vectors: int = 5, cutoff: int = 7) -> SpectrumSummary:
    """Effective rank, top-k truncation accuracy and eigenvector smoothness of every class of a bilinear
    classifier, on (images (N, H, W), labels)."""
    weights = classifier_weights(model)
    eig = class_eigen(weights)
    shape = tuple(images.shape[1:])
    d_pix = images[0].numel()
    full = (model(images).argmax(-1) == labels).float().mean().item()
    inputs = weights.augment(images.reshape(len(images), -1).to(weights.P.dtype))
    truncated = truncation_accuracy(eig, inputs, labels, ks=(k,))[str(k)]
    ranks = effective_rank(eig.eigenvalues)
    top = eig.eigenvectors[:, :n_vectors, :d_pix]  # drop the constant coordinate under bias
    smooth = low_frequency_share(top.reshape(*top.shape[:2], *shape), cutoff).mean(-1)
    return SpectrumSummary(full_accuracy=full, k=k, truncated_accuracy=truncated, effective_rank=ranks.tolist(),
                           mean_effective_rank=float(ranks.mean()), n_vectors=n_vectors, cutoff=cutoff,
                           smoothness=smooth.tolist(), mean_smoothness=float(smooth.mean()))

@dataclass
class HOSVDResult(Result):
    """HOSVD of the tensor B (out × in × in) when no output direction is given.

    output_singular_values/vectors: SVD of B flattened to (out, in·in): the output directions that
    the layer writes most strongly (each component's in×in matrix is Q_u/σ for that u).
    input_singular_values/vectors: the input-mode factor (the same for both input modes, B being
    symmetric): the input directions the layer reads most, as rows.
    """

    output_singular_values: list[float]
    output_singular_vectors: list[list[float]]
    input_singular_values: list[float]
    input_singular_vectors: list[list[float]]


def hosvd(weights: BilinearWeights, n_input: int = 20) -> HOSVDResult:
    """Higher-order SVD of the symmetric tensor, through Gram matrices (never an (in², out) SVD)."""
    B = bilinear_tensor_in_input_space(weights)
    flat = B.reshape(B.shape[0], -1)
    gram_out = flat @ flat.T  # (out, out)
    out_vals, out_vecs = torch.linalg.eigh(gram_out)
    order = out_vals.argsort(descending=True)
    gram_in = torch.einsum("oij,okj->ik", B, B)  # mode-2 unfolding times its transpose
    in_vals, in_vecs = torch.linalg.eigh(gram_in)
    in_order = in_vals.argsort(descending=True)[:n_input]
    return HOSVDResult(output_singular_values=out_vals[order].clamp_min(0).sqrt().tolist(),
                       output_singular_vectors=out_vecs[:, order].T.tolist(),
                       input_singular_values=in_vals[in_order].clamp_min(0).sqrt().tolist(),
                       input_singular_vectors=in_vecs[:, in_order].T.tolist())


def bilinear_tensor_in_input_space(weights: BilinearWeights) -> torch.Tensor:
    """B in the read space, built from the all-class interaction matrices (one contraction)."""
    return interaction_matrices(weights, torch.eye(weights.d_out, dtype=weights.P.dtype))


@dataclass
class MaskResult(Result):
    """An adversarial mask for a target class, built from its top positive eigenvectors.

    Accuracies are over the test images whose label is not the target; `*_to_target` is the fraction
    of them the model then calls the target. The permuted mask has the same values (hence the same
    norm) in a random pixel order: the baseline that shows the eigenvectors, not the norm, do the work.
    """

    target: int
    target_name: str
    n_vectors: int
    norm: float
    mask: list[float]  # over the input (without the constant coordinate)
    clean_accuracy: float
    masked_accuracy: float
    permuted_accuracy: float
    clean_to_target: float
    masked_to_target: float
    permuted_to_target: float


@torch.no_grad()
def adversarial_mask(weights: BilinearWeights, logits_fn: Callable[[torch.Tensor], torch.Tensor],
                     images: torch.Tensor, labels: torch.Tensor, target: int, n_vectors: int = 3,
                     norm: float = 3.0, seed: int = 0, target_name: str = "") -> MaskResult:
    """A mask δ from the rows of the pseudo-inverse of the target's top positive eigenvectors.

    Stack the target class's top `n_vectors` positive eigenvectors (pixel part) as rows of A; the
    rows of pinv(A)ᵀ are the input patterns that each move exactly one of those components by 1 and
    leave the others unchanged (for orthonormal eigenvectors they are the eigenvectors themselves;
    for directions read through a non-orthogonal map they are not). Each row is signed to agree with
    how the target's own images already project on it, summed, and scaled to `norm`. The mask is
    added to every non-target test image; the same mask with its entries permuted is the baseline.
    """
    eig = eigendecompose(weights, torch.eye(weights.d_out, dtype=weights.P.dtype)[target][None])
    values, vectors = eig.eigenvalues[0], eig.eigenvectors[0]
    d_pix = images[0].numel()
    positive = vectors[values > 0][:n_vectors, :d_pix]  # drop the constant coordinate under bias
    if len(positive) == 0:
        raise InterpError(f"class {target} has no positive eigenvalue; no mask can push inputs towards it")
    flat = images.reshape(len(images), -1).to(positive.dtype)
    own = flat[labels == target]
    rows = torch.linalg.pinv(positive).T  # (n_vectors, d_pix)
    signs = torch.sign((own @ positive.T).mean(0)) if len(own) else torch.ones(len(positive))
    signs[signs == 0] = 1.0
    delta = (signs[:, None] * rows).sum(0)
    delta = norm * delta / delta.norm().clamp_min(1e-12)
    generator = torch.Generator().manual_seed(seed)
    permuted = delta[torch.randperm(d_pix, generator=generator)]

    others = labels != target
    x, y = flat[others], labels[others]

    def measure(batch: torch.Tensor) -> tuple[float, float]:
        pred = logits_fn(batch.reshape((-1, *images.shape[1:])).to(images.dtype)).argmax(-1)
        return (pred == y).float().mean().item(), (pred == target).float().mean().item()

    clean, clean_t = measure(x)
    masked, masked_t = measure(x + delta)
    perm, perm_t = measure(x + permuted)
    return MaskResult(target=target, target_name=target_name, n_vectors=len(positive), norm=norm, mask=delta.tolist(),
                      clean_accuracy=clean, masked_accuracy=masked, permuted_accuracy=perm, clean_to_target=clean_t,
                      masked_to_target=masked_t, permuted_to_target=perm_t)


@dataclass
class ClassSpectrum(Result):
    class_index: int
    name: str
    top_eigenvalues: list[float]
    effective_rank: float

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        return {"class": d.pop("class_index"), **d}


@dataclass
class EigenReport(Result):
    """What `interp eigen` prints: accuracy, truncation curve, per-class spectra (+ optional parts)."""

    full_accuracy: float
    truncation: dict[str, float]
    classes: list[ClassSpectrum]
    eigen_seconds: float
    d_input: int
    demeaned: bool = False
    direction: DirectionSpectrum | None = None
    hosvd: HOSVDResult | None = None
    mask: MaskResult | None = None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["classes"] = [c.to_dict() for c in self.classes]
        return {k: v for k, v in d.items() if v is not None}


@torch.no_grad()
def eigen_report(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                 ks=TRUNCATION_KS, n_values: int = 20, direction: str | None = None, with_hosvd: bool = False,
                 mask_target: str | None = None, mask_vectors: int = 3, mask_norm: float = 3.0,
                 dtype: torch.dtype = torch.float32, demean: bool = False) -> EigenReport:
    """Spectra of every class, the truncation curve on (images, labels), and optional extras."""
    weights = classifier_weights(model).to(dtype)
    n_out = weights.d_out
    # Parse user input first, so a bad direction fails before any work.
    u = parse_direction(direction, n_out, class_names) if direction is not None else None
    target = int(parse_direction(mask_target, n_out, class_names).argmax()) if mask_target is not None else None

    start = time.perf_counter()
    eig = class_eigen(weights, demean)
    seconds = time.perf_counter() - start
    full = (model(images).argmax(-1) == labels).float().mean().item()
    inputs = weights.augment(images.reshape(len(images), -1).to(dtype))
    truncation = truncation_accuracy(eig, inputs, labels, ks)
    ranks = effective_rank(eig.eigenvalues)
    classes = [ClassSpectrum(c, class_names[c] if c < len(class_names) else str(c),
                             eig.eigenvalues[c, :n_values].tolist(), float(ranks[c])) for c in range(n_out)]
    report = EigenReport(full_accuracy=full, truncation=truncation, classes=classes, eigen_seconds=round(seconds, 4),
                         d_input=weights.d_input, demeaned=demean)
    if u is not None:
        report.direction = direction_spectrum(weights, u.to(dtype), label=str(direction), n_values=n_values,
                                              n_vectors=min(n_values, 16))
    if with_hosvd:
        report.hosvd = hosvd(weights)
    if target is not None:
        report.mask = adversarial_mask(weights, model, images, labels, target, n_vectors=mask_vectors, norm=mask_norm,
                                       target_name=class_names[target] if target < len(class_names) else str(target))
    return report
