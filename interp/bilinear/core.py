"""The bilinear layer read from its weights: tensor, interaction matrices, eigendecompositions.

Everything here is generic over the weights `(W, V, P)` of one bilinear layer
`y = P ((W x) ⊙ (V x))`, optionally preceded by a linear map `embed` from the space we want to read
in (pixels, token embeddings, dictionary features) to the layer's input. The same functions serve
the image classifier (embed = the embedding layer, or none) and a bilinear MLP inside a transformer
(W = W_gate, V = W_in, P = W_out, embed = whatever basis the residual stream is read in).

Math (docs/architecture.md):
    B[o,i,j] = Σ_h P[o,h] · ½(W[h,i] V[h,j] + W[h,j] V[h,i])          (symmetric in i, j)
    Q_u      = Σ_o u_o B[o] = ½(Wᵀ diag(Pᵀu) V + Vᵀ diag(Pᵀu) W)
    uᵀy      = xᵀ Q_u x = Σ_k λ_k (v_kᵀ x)²                              exactly.
With an embedding E the layer reads E x, so in input space Q_u becomes Eᵀ Q_u E.

Bias by augmentation: a layer that reads x̃ = [x, 1] has a constant last coordinate. We read such
a layer in the augmented input space [x, 1] (dimension d_in + 1): the last row/column of Q holds the
linear terms (2·Q[i, -1]) and Q[-1, -1] the constant, so xᵀQx stays exact with x̃. Eigenvectors
then have d_in + 1 entries; `eigenvector_images` drops the constant one.

Speed: Q for many directions is one batched contraction over the hidden dimension (never the full
d³ tensor), and when the layer's input passes through a narrower embedding, the eigendecomposition
runs in an orthonormal basis of the embedding's row space (the only place Q can have rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from interp.errors import InterpError


@dataclass
class BilinearWeights:
    """One bilinear layer y = P((W x̃) ⊙ (V x̃)), read in an input space mapped to the layer by `embed`.

    W, V: (hidden, d_layer); P: (out, hidden); embed: (d_layer_without_bias, d_in) or None;
    bias: the layer's last input coordinate is a constant 1 (x̃ = [embed x, 1]).
    """

    W: torch.Tensor
    V: torch.Tensor
    P: torch.Tensor
    embed: torch.Tensor | None = None
    bias: bool = False

    def __post_init__(self) -> None:
        if self.W.shape != self.V.shape or self.W.ndim != 2:
            raise InterpError(f"W and V must be matrices of one shape, got {tuple(self.W.shape)} and {tuple(self.V.shape)}")
        if self.P.ndim != 2 or self.P.shape[1] != self.W.shape[0]:
            raise InterpError(f"P must be (out, {self.W.shape[0]}), got {tuple(self.P.shape)}")
        if self.embed is not None and self.embed.shape[0] != self.W.shape[1] - int(self.bias):
            raise InterpError(f"embed must map into the layer's {self.W.shape[1] - int(self.bias)} inputs, got {tuple(self.embed.shape)}")

    @property
    def d_out(self) -> int:
        return self.P.shape[0]

    @property
    def d_hidden(self) -> int:
        return self.W.shape[0]

    @property
    def d_input(self) -> int:
        """Dimension of the space Q is expressed in (including the constant coordinate with bias)."""
        d = self.embed.shape[1] if self.embed is not None else self.W.shape[1] - int(self.bias)
        return d + int(self.bias)

    def input_map(self) -> torch.Tensor | None:
        """The (d_layer, d_input) matrix from the read space to the layer's input, or None for identity."""
        if self.embed is None:
            return None
        if not self.bias:
            return self.embed
        # Block-diagonal [[E, 0], [0, 1]]: the constant coordinate passes through unchanged.
        d_layer, d_in = self.embed.shape
        M = self.embed.new_zeros(d_layer + 1, d_in + 1)
        M[:d_layer, :d_in] = self.embed
        M[-1, -1] = 1.0
        return M

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs (N, d_in) → the vectors Q is a quadratic form of (appends the constant 1 with bias)."""
        x = x.reshape(x.shape[0], -1)
        if self.bias:
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        return x

    def to(self, dtype: torch.dtype) -> "BilinearWeights":
        cast = lambda t: None if t is None else t.detach().to(dtype)
        return BilinearWeights(cast(self.W), cast(self.V), cast(self.P), cast(self.embed), self.bias)


def classifier_weights(model: nn.Module) -> BilinearWeights:
    """The (W, V, P, embed) of an `interp.models.bilinear.BilinearClassifier`, read in pixel space."""
    if getattr(model, "arch", None) != "bilinear":
        raise InterpError(f"this analysis needs a bilinear classifier, got a {getattr(model, 'arch', type(model).__name__)!r} model")
    embed = model.embed.weight.detach() if model.embed is not None else None
    return BilinearWeights(model.bilinear.W.detach(), model.bilinear.V.detach(), model.head.weight.detach(),
                           embed, bool(model.bilinear.bias))


def bilinear_tensor(weights: BilinearWeights, in_input_space: bool = True) -> torch.Tensor:
    """The symmetrised third-order tensor B[o, i, j] (in the read space when `in_input_space`).

    This is the full d_out × d × d object; analyses should prefer `interaction_matrices`, which
    never builds it.
    """
    W, V, P = weights.W, weights.V, weights.P
    B = 0.5 * (torch.einsum("oh,hi,hj->oij", P, W, V) + torch.einsum("oh,hj,hi->oij", P, W, V))
    M = weights.input_map()
    if in_input_space and M is not None:
        B = M.T @ B @ M
    return B


def interaction_matrices(weights: BilinearWeights, directions: torch.Tensor, in_input_space: bool = True) -> torch.Tensor:
    """Q_u for each row u of `directions` (k, d_out) → (k, d, d), symmetric, one contraction over hidden."""
    directions = torch.as_tensor(directions, dtype=weights.P.dtype, device=weights.P.device)
    if directions.ndim == 1:
        directions = directions[None]
    if directions.shape[-1] != weights.d_out:
        raise InterpError(f"a direction must have {weights.d_out} entries (one per output), got {directions.shape[-1]}")
    coeff = directions @ weights.P  # (k, hidden): Pᵀu for each u
    half = (weights.W.T[None] * coeff[:, None, :]) @ weights.V  # (k, d, d) = Wᵀ diag(c) V
    Q = 0.5 * (half + half.transpose(1, 2))
    M = weights.input_map()
    if in_input_space and M is not None:
        Q = M.T @ Q @ M
    return Q


@dataclass
class Eigen:
    """Eigendecompositions of Q_u for k directions, sorted by |λ| (largest first).

    eigenvalues: (k, r); eigenvectors: (k, r, d_input), unit rows, so Q_u = Σ λ v vᵀ and
    uᵀy = Σ λ (vᵀx̃)². r = d_input, or the rank bound of the embedding when there is one.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor

    def top(self, k: int) -> "Eigen":
        return Eigen(self.eigenvalues[:, :k], self.eigenvectors[:, :k])

    def quadratic_form(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Σ_{top k} λ (vᵀx̃)² for inputs x̃ (N, d_input) → (N, n_directions)."""
        vals = self.eigenvalues if k is None else self.eigenvalues[:, :k]
        vecs = self.eigenvectors if k is None else self.eigenvectors[:, :k]
        n_dir, r, d = vecs.shape
        proj = x.to(vecs.dtype) @ vecs.reshape(n_dir * r, d).T  # (N, n_dir * r)
        return (proj.reshape(-1, n_dir, r) ** 2 * vals[None]).sum(-1)


def _sort_by_magnitude(values: torch.Tensor, vectors: torch.Tensor) -> Eigen:
    """values (k, r), vectors (k, d, r) from eigh → sorted by |λ| descending, vectors as rows."""
    order = values.abs().argsort(dim=-1, descending=True)
    values = values.gather(-1, order)
    vectors = vectors.gather(-1, order[:, None, :].expand_as(vectors)).transpose(1, 2)
    return Eigen(values, vectors.contiguous())


def eigendecompose(weights: BilinearWeights, directions: torch.Tensor) -> Eigen:
    """Eigendecompose Q_u (in the read space) for each direction, batched.

    Without an embedding: one batched `torch.linalg.eigh` of the (k, d, d) matrices. With an
    embedding M (d_layer × d_input, d_layer < d_input): Q_in = Mᵀ Q M has its range inside the row
    space of M, so with M = R̃ Ũᵀ (QR of Mᵀ = Ũ R̃ᵀ ... ) we diagonalise the small R Q Rᵀ and map the
    eigenvectors back with Ũ — the same nonzero eigenpairs, exactly, at a fraction of the cost.
    """
    M = weights.input_map()
    if M is None or M.shape[0] >= M.shape[1]:
        Q = interaction_matrices(weights, directions)
        values, vectors = torch.linalg.eigh(Q)
        return _sort_by_magnitude(values, vectors)
    U, R = torch.linalg.qr(M.T)  # Mᵀ = U R: U (d_input, d_layer) orthonormal, R (d_layer, d_layer)
    Q_layer = interaction_matrices(weights, directions, in_input_space=False)
    small = R @ Q_layer @ R.T  # Q_in = M^T Q M = U (R Q Rᵀ) Uᵀ
    values, vectors = torch.linalg.eigh(0.5 * (small + small.transpose(1, 2)))
    return _sort_by_magnitude(values, U @ vectors)


def spectral_tail(weights: BilinearWeights, directions: torch.Tensor, keep: int) -> torch.Tensor:
    """Σ_u Σ_{k > keep} |λ_k(Q_u)|: the eigenvalue mass of each direction's interaction matrix (in the
    read space) outside its top `keep` by |λ|. Differentiable in the weights, so it can be a training
    penalty: driving it down makes the top-`keep` truncation of each Q_u exact.

    Same small-eigenproblem route as `eigendecompose` (Mᵀ = U R, spectrum of R Q Rᵀ), so the cost is
    a batch of (d_layer × d_layer) `eigvalsh` calls whatever the input width.
    """
    M = weights.input_map()
    if M is None or M.shape[0] >= M.shape[1]:
        Q = interaction_matrices(weights, directions)
    else:
        R = torch.linalg.qr(M.T)[1]
        Q = R @ interaction_matrices(weights, directions, in_input_space=False) @ R.T
    magnitudes = torch.linalg.eigvalsh(0.5 * (Q + Q.transpose(1, 2))).abs()
    return magnitudes.sort(dim=-1, descending=True).values[:, keep:].sum()


def effective_rank(eigenvalues: torch.Tensor) -> torch.Tensor:
    """(Σ|λ|)² / Σλ² along the last axis: how many eigen-components the form really uses."""
    l1 = eigenvalues.abs().sum(-1)
    l2 = (eigenvalues ** 2).sum(-1)
    return torch.where(l2 > 0, l1 ** 2 / l2.clamp_min(torch.finfo(eigenvalues.dtype).tiny), torch.zeros_like(l1))


def parse_direction(spec: str | int | torch.Tensor | list, n_out: int, class_names: list[str] | None = None) -> torch.Tensor:
    """An output direction from a class index or name, a difference "3-5" / "Coat-Shirt", or a vector.

    A string of comma-separated numbers with n_out entries is taken as the vector itself.
    """
    if isinstance(spec, torch.Tensor) or isinstance(spec, (list, tuple)):
        u = torch.as_tensor(spec, dtype=torch.float32).flatten()
        if u.numel() != n_out:
            raise InterpError(f"a direction vector needs {n_out} entries, got {u.numel()}")
        if not bool(torch.isfinite(u).all()):
            raise InterpError("a direction vector needs finite numbers; this one holds NaN or infinity")
        return u
    if isinstance(spec, int):
        return torch.eye(n_out)[_class_index(str(spec), n_out, class_names)]
    text = str(spec).strip()
    if "," in text:
        try:
            return parse_direction([float(t) for t in text.split(",")], n_out, class_names)
        except ValueError:
            raise InterpError(f"direction {text!r} is not a list of numbers") from None
    try:  # a single class (tried first: class names such as "T-shirt/top" contain '-')
        return torch.eye(n_out)[_class_index(text, n_out, class_names)]
    except InterpError:
        pass
    # A difference "a-b": split at the one '-' that leaves a class on each side (names may hold '-').
    for cut in [i for i, ch in enumerate(text) if ch == "-"]:
        left, right = text[:cut].strip(), text[cut + 1:].strip()
        try:
            a, b = _class_index(left, n_out, class_names), _class_index(right, n_out, class_names)
        except InterpError:
            continue
        u = torch.zeros(n_out)
        u[a] += 1.0
        u[b] -= 1.0
        return u
    return torch.eye(n_out)[_class_index(text, n_out, class_names)]


def _class_index(text: str, n_out: int, class_names: list[str] | None) -> int:
    names = class_names or []
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isdigit() and int(text) < n_out:
        return int(text)
    known = f"0..{n_out - 1}" + (f" or one of {', '.join(names)}" if names else "")
    raise InterpError(f"direction {text!r} names no class; use a class index {known}, a difference like 3-5, "
                      f"or {n_out} comma-separated numbers")
