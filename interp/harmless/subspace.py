"""Harmless subspaces: the input directions a layer's linear part cannot see.

A perturbation δ is harmless for f at x when f(x + δ) = f(x). If the first thing a model does
with x is a linear map A (a linear layer, a conv, the stacked W and V of a bilinear layer), every
δ with A δ = 0 is harmless at any magnitude: the null space of A. For a ReLU layer the space is
larger but depends on x: only the rows of A whose units are active at x must see nothing, and it
holds only while the inactive units stay inactive (see `relu_local_space`, `valid_magnitude`).

Everything here is computed in float64. The null space comes from the SVD of A with an explicit
tolerance: a singular value σ counts as zero when σ ≤ tol, with tol = max(m, n) · eps · σ_max by
default (numpy's `matrix_rank` rule) or `rtol · σ_max` when asked for. Where the exact space is
empty (d_in ≤ rank) we say so and return instead the right singular vectors of the smallest
singular values, marked `exact=False`, with `gain` = their largest σ / σ_max (how much of a
perturbation's size the layer still sees).

Conv layers (`ConvOperator`): the dense (C_out·H'·W') × (C_in·H·W) matrix is never formed. Rows of
the operator are built in blocks from the kernel and the input positions each output location
reads (an unfolded image of indices), and a streamed Householder QR keeps only the d_in × d_in
triangle R with RᵀR = AᵀA. The SVD of R gives exactly the singular values and right singular vectors of A (backward-stable,
no squaring of the condition number as a Gram matrix would). Memory is O(d_in² + block · d_in):
for a 28×28 input, 784² float64 = 4.9 MB plus one block of rows (at most BLOCK_BYTES), whatever
the number of channels or the stride.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.results import Result

DTYPE = torch.float64
# Rows of an operator held at once while streaming its QR (bytes of float64).
BLOCK_BYTES = 32 * 2**20

ALWAYS = "always"
WHILE_PATTERN_HOLDS = "only while the activation pattern at x holds"


# --- linear operators ------------------------------------------------------------------------------

class MatrixOperator:
    """A dense matrix A (d_out × d_in), kept in float64."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix.detach().to(DTYPE)
        self.d_out, self.d_in = self.matrix.shape

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """A x for a batch x of shape (n, d_in) → (n, d_out)."""
        return x.to(DTYPE) @ self.matrix.T

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.matrix[index]


class ConvOperator:
    """The linear part (no bias) of a Conv2d on inputs of shape `input_shape` = (C_in, H, W).

    Inputs and outputs are flattened in PyTorch's (C, H, W) order.
    """

    def __init__(self, conv: nn.Conv2d, input_shape: tuple[int, int, int]) -> None:
        if conv.padding_mode != "zeros":
            raise InterpError(f"conv padding mode {conv.padding_mode!r} is not supported; only zero padding")
        self.weight = conv.weight.detach().to(DTYPE)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.input_shape = tuple(input_shape)
        if self.input_shape[0] != conv.in_channels:
            raise InterpError(f"conv reads {conv.in_channels} channels, input shape {input_shape} has {input_shape[0]}")
        self.output_shape = tuple(self._conv(torch.zeros(1, *self.input_shape, dtype=DTYPE)).shape[1:])
        self.d_in = math.prod(self.input_shape)
        self.d_out = math.prod(self.output_shape)
        self.n_locations = self.output_shape[1] * self.output_shape[2]
        self.tap_index = self._tap_index()

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv(x.to(DTYPE).reshape(-1, *self.input_shape))
        return y.reshape(len(y), -1)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows of the operator for flat output units `index`: each is its kernel laid on the input.

        Unfolding an image of input indices (1-based, 0 = padding) gives, for every output
        location, which input each kernel tap reads; a scatter-add then writes the taps' weights
        there. No one-hot outputs and no dense matrix: only the rows asked for.
        """
        c_out, location = index // self.n_locations, index % self.n_locations
        group = c_out // (self.weight.shape[0] // self.groups)
        taps = self.tap_index[group, :, location]  # (n, taps): input index + 1, 0 = padding
        rows = torch.zeros(len(index), self.d_in + 1, dtype=DTYPE)
        rows.scatter_add_(1, taps, self.weight.reshape(self.weight.shape[0], -1)[c_out])
        return rows[:, 1:]

    def _tap_index(self) -> torch.Tensor:
        c_in, h, w = self.input_shape
        numbers = torch.arange(1, self.d_in + 1, dtype=DTYPE).reshape(1, c_in, h, w)
        kernel = self.weight.shape[-2:]
        taps = F.unfold(numbers, kernel, self.dilation, self.padding, self.stride)[0]  # (c_in·kh·kw, L)
        taps = taps.round().long().reshape(self.groups, -1, taps.shape[-1])  # (groups, taps per group, L)
        return taps


Operator = MatrixOperator | ConvOperator


def dense_matrix(op: Operator) -> torch.Tensor:
    """The full matrix of an operator, by applying it to the identity (for checks on small inputs)."""
    return op.apply(torch.eye(op.d_in, dtype=DTYPE)).T


def _row_blocks(op: Operator, index: torch.Tensor, block_rows: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(index), block_rows):
        yield op.rows(index[start:start + block_rows])


def r_factor(op: Operator, index: torch.Tensor | None = None, block_rows: int | None = None,
             quiet: bool = True) -> torch.Tensor:
    """R with RᵀR = A_Iᵀ A_I for the rows I = `index` of A (all rows by default), by streamed QR."""
    index = torch.arange(op.d_out) if index is None else index
    if block_rows is None:
        block_rows = max(op.d_in, BLOCK_BYTES // (8 * op.d_in))
    r = torch.zeros(0, op.d_in, dtype=DTYPE)
    blocks = tqdm(_row_blocks(op, index, block_rows), total=math.ceil(len(index) / block_rows), disable=quiet,
                  desc="streamed QR", unit="block")
    for block in blocks:
        # QR of [R; block] keeps the same Gram matrix as all rows so far, in at most d_in rows;
        # while there are no more than d_in rows, the rows themselves serve (the SVD follows anyway).
        stacked = torch.cat([r, block])
        r = stacked if len(stacked) <= op.d_in else torch.linalg.qr(stacked, mode="r")[1]
    return r


# --- the result ------------------------------------------------------------------------------------

@dataclasses.dataclass
class HarmlessSubspace(Result):
    """An orthonormal basis (d_in × dimension) of input directions a layer does not see.

    `exact`: the basis spans the null space (singular values ≤ tolerance). When the null space is
    empty, `exact` is False and the basis holds the `dimension` smallest right singular vectors
    instead; `gain` is their largest singular value over σ_max. `valid` says whether the space is
    harmless at any magnitude or only while an activation pattern holds.
    """

    layer: str
    kind: str  # "linear", "bilinear", "conv", "relu-local", "dictionary"
    exact: bool
    valid: str
    d_in: int
    rank: int
    null_dimension: int  # d_in − rank: the exact null space's dimension (0 when empty)
    dimension: int  # columns of `basis`: null_dimension when exact, else the approximate space's size
    tolerance: float
    gain: float  # largest singular value in the space / σ_max (≤ tolerance / σ_max when exact)
    singular_values: list[float]
    basis: torch.Tensor = dataclasses.field(repr=False)
    note: str = ""
    input_shape: list[int] | None = None  # shape of one input (e.g. [28, 28]) the flat basis reshapes to
    # For relu-local spaces: which first-layer units were active at x (the pattern that must hold).
    active: list[int] | None = None
    pre_activation: list[float] | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HarmlessSubspace":
        result = super().from_dict(data)
        result.basis = torch.tensor(result.basis, dtype=DTYPE).reshape(result.d_in, result.dimension)
        return result

    @property
    def validity(self) -> str:
        """What the space promises, from the analysis itself (not from the layer's type): "harmless at any
        magnitude" only for an exact null space valid always."""
        if not self.exact:
            return (f"not harmless: no exact null space exists, and this approximate space of the {self.dimension} "
                    f"least-seen directions (largest σ/σ_max = {self.gain:.3g}) still moves the output")
        if self.valid == ALWAYS:
            return "harmless at any magnitude (exact null space)"
        return f"harmless {self.valid} (exact null space of the active units)"

    @property
    def projector(self) -> torch.Tensor:
        """P = B Bᵀ (d_in × d_in): the orthogonal projector onto the space."""
        return self.basis @ self.basis.T

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """Project vectors (…, d_in) or images (…, *input_shape) onto the space; same shape back."""
        flat = v.detach().to(DTYPE).reshape(-1, self.d_in)
        return ((flat @ self.basis) @ self.basis.T).reshape(v.shape)


def default_tolerance(shape: tuple[int, int], sigma_max: float) -> float:
    """numpy's `matrix_rank` rule: max(m, n) · eps(float64) · σ_max."""
    return max(shape) * torch.finfo(DTYPE).eps * sigma_max


def null_space(op: Operator, layer: str, kind: str, rows: torch.Tensor | None = None, rtol: float | None = None,
               approx_dim: int = 32, block_rows: int | None = None, valid: str = ALWAYS,
               input_shape: list[int] | None = None, quiet: bool = True) -> HarmlessSubspace:
    """The null space of A (or of its rows `rows`) by SVD with an explicit tolerance.

    `rtol`: a singular value counts as zero when σ ≤ rtol · σ_max; None → max(m, n) · eps · σ_max.
    Where the null space is empty, the `approx_dim` smallest right singular vectors instead.
    """
    n_rows = op.d_out if rows is None else len(rows)
    if n_rows == 0:  # nothing reads x (e.g. no unit active): every direction is harmless
        return HarmlessSubspace(layer, kind, True, valid, op.d_in, 0, op.d_in, op.d_in, 0.0, 0.0, [],
                                torch.eye(op.d_in, dtype=DTYPE), "no row of the operator reads the input",
                                input_shape)
    r = r_factor(op, rows, block_rows, quiet)
    _, s, vh = torch.linalg.svd(r, full_matrices=True)
    sigma_max = float(s[0]) if len(s) else 0.0
    tol = rtol * sigma_max if rtol is not None else default_tolerance((n_rows, op.d_in), sigma_max)
    rank = int((s > tol).sum())
    null_dim = op.d_in - rank
    # Singular values of all d_in right singular vectors (zeros past min(m, n)).
    all_s = torch.cat([s, torch.zeros(op.d_in - len(s), dtype=DTYPE)])
    if null_dim > 0:
        basis = vh[rank:].T.contiguous()
        gain = float(all_s[rank]) / sigma_max if sigma_max > 0 else 0.0
        note = f"exact null space: {null_dim} of {op.d_in} input directions are invisible to this layer"
        return HarmlessSubspace(layer, kind, True, valid, op.d_in, rank, null_dim, null_dim, tol, gain,
                                s.tolist(), basis, note, input_shape)
    k = max(1, min(approx_dim, op.d_in))
    basis = vh[op.d_in - k:].T.contiguous()
    gain = float(all_s[op.d_in - k]) / sigma_max if sigma_max > 0 else 0.0
    note = (f"no exact null space: input dimension {op.d_in} is not above the rank {rank}; "
            f"approximate space of the {k} smallest singular values (largest kept σ/σ_max = {gain:.3g})")
    return HarmlessSubspace(layer, kind, False, valid, op.d_in, rank, 0, k, tol, gain, s.tolist(), basis, note,
                            input_shape)


# --- ReLU: the input-dependent space --------------------------------------------------------------

def relu_local_space(op: Operator, bias: torch.Tensor | None, x: torch.Tensor, layer: str,
                     rtol: float | None = None, approx_dim: int = 32,
                     input_shape: list[int] | None = None, quiet: bool = True) -> HarmlessSubspace:
    """At input x, the directions the units *active* at x do not see: null(A_active).

    The inactive units output 0 whatever δ does to them, as long as they stay inactive, so this
    space contains null(A) and is usually much larger. It is harmless only while the activation
    pattern holds; `valid_magnitude` gives how far along a direction that is. A unit with
    pre-activation exactly 0 counts as active (its row must see nothing): any δ it could see would
    switch it on in one of the two directions ±δ. (In a bias-free CNN every unit whose receptive
    field is blank background sits at exactly 0, which is why such a model's space is small.)
    """
    pre = op.apply(x.reshape(1, -1))[0]
    if bias is not None:
        pre = pre + bias.detach().to(DTYPE).reshape(-1)
    active = torch.nonzero(pre >= 0).flatten()
    space = null_space(op, layer, "relu-local", rows=active, rtol=rtol, approx_dim=approx_dim,
                       valid=WHILE_PATTERN_HOLDS, input_shape=input_shape, quiet=quiet)
    space.active = active.tolist()
    space.pre_activation = pre.tolist()
    space.note += f"; {len(active)} of {op.d_out} units active at x"
    return space


def valid_magnitude(op: Operator, space: HarmlessSubspace, direction: torch.Tensor) -> float:
    """The largest t ≥ 0 such that x + t·d/‖d‖ keeps the activation pattern of x (inf if it always does).

    In an exact space the active units see nothing along d, so only inactive units can switch
    on: unit i does so once z_i + t (A d)_i > 0, i.e. at t = −z_i / (A d)_i for (A d)_i > 0. In an
    approximate space active units move too and switch off at t = z_i / −(A d)_i for (A d)_i < 0.
    """
    if space.pre_activation is None:
        return math.inf
    d = direction.detach().to(DTYPE).reshape(-1)
    d = d / d.norm()
    pre = torch.tensor(space.pre_activation, dtype=DTYPE)
    slope = op.apply(d.reshape(1, -1))[0]
    switches_on = (pre < 0) & (slope > 0)
    # A unit at exactly 0 that goes down still outputs 0: only strictly positive units can switch off.
    switches_off = (pre > 0) & (slope < 0) & torch.tensor(not space.exact)
    crossing = switches_on | switches_off
    if not bool(crossing.any()):
        return math.inf
    return float((-pre[crossing] / slope[crossing]).min())
