"""Null spaces of linear, bilinear and conv layers and the ReLU input-dependent space, on real computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from interp.harmless.apply import check_perturbation, harmless_direction
from interp.harmless.layers import harmless_layers, harmless_space, layer_operator
from interp.harmless.subspace import (DTYPE, ConvOperator, HarmlessSubspace, MatrixOperator, dense_matrix,
                                      null_space, r_factor, valid_magnitude)
from interp.models.bilinear import BilinearClassifier, ReluMLP


def _rank(matrix: torch.Tensor) -> int:
    return int(torch.linalg.matrix_rank(matrix.to(DTYPE)))


def test_linear_null_space_dimension_and_harmless_at_100x():
    torch.manual_seed(0)
    weight = torch.randn(20, 64, dtype=DTYPE)
    weight[5] = weight[3] + 2 * weight[7]  # rank 19, so the null space has 45 dimensions
    space = null_space(MatrixOperator(weight), "w", "linear")
    assert space.exact and space.rank == _rank(weight) == 19
    assert space.dimension == space.null_dimension == 64 - 19
    assert torch.allclose(space.basis.T @ space.basis, torch.eye(45, dtype=DTYPE), atol=1e-12)
    assert float((weight @ space.basis).abs().max()) <= 1e-12 * float(weight.abs().max())
    # The projector is idempotent and symmetric.
    p = space.projector
    assert torch.allclose(p @ p, p, atol=1e-12) and torch.allclose(p, p.T)


def test_tolerance_is_explicit_and_changes_the_rank():
    torch.manual_seed(1)
    u, _, vh = torch.linalg.svd(torch.randn(30, 30, dtype=DTYPE))
    s = torch.logspace(0, -9, 30, dtype=DTYPE)
    matrix = (u * s) @ vh
    exact = null_space(MatrixOperator(matrix), "m", "linear")
    assert not exact.exact and exact.rank == 30  # all σ above max(m,n)·eps·σ_max
    loose = null_space(MatrixOperator(matrix), "m", "linear", rtol=1e-6)
    assert loose.exact and loose.rank == int((s > 1e-6).sum())
    assert math.isclose(loose.tolerance, 1e-6 * float(s[0]), rel_tol=1e-9)


def test_bilinear_common_null_space_keeps_logits_at_100x_norm():
    torch.manual_seed(2)
    model = BilinearClassifier(64, 10, d_hidden=16).double()
    x = torch.rand(8, 8, dtype=DTYPE)
    space = harmless_space(model, image_shape=(8, 8))
    stacked = torch.cat([model.bilinear.W, model.bilinear.V]).detach()
    assert space.exact and space.kind == "bilinear" and space.dimension == 64 - _rank(stacked) == 32
    check = check_perturbation(model, x, space, magnitude=100.0)
    assert check.perturbation_norm == 100.0 * float(x.norm())
    assert check.max_abs_logit_change <= 1e-9 * check.max_abs_logit
    # A random δ of the same size does move the logits: the test can fail.
    delta = torch.randn(8, 8, dtype=DTYPE)
    delta = delta / delta.norm() * 100 * x.norm()
    with torch.no_grad():
        moved = (model((x + delta)[None]) - model(x[None])).abs().max()
    assert float(moved) > 1.0 * check.max_abs_logit


def test_bilinear_with_bias_leaves_the_constant_out():
    torch.manual_seed(3)
    model = BilinearClassifier(64, 10, d_hidden=16, bias=True).double()
    space = harmless_space(model, image_shape=(8, 8))
    assert space.d_in == 64 and space.dimension == 64 - 32
    x = torch.rand(8, 8, dtype=DTYPE)
    check = check_perturbation(model, x, space, magnitude=100.0)
    assert check.max_abs_logit_change <= 1e-9 * check.max_abs_logit


def test_embedding_is_the_first_layer_and_bilinear_space_contains_it():
    torch.manual_seed(4)
    model = BilinearClassifier(64, 10, d_hidden=30, d_embed=20).double()
    assert list(harmless_layers(model)) == ["embed", "bilinear"]
    embed = harmless_space(model, "embed", image_shape=(8, 8))
    assert embed.exact and embed.kind == "linear" and embed.dimension == 64 - 20
    through = harmless_space(model, "bilinear", image_shape=(8, 8))
    assert through.dimension == 64 - 20  # W E and V E (60 × 64) have rank 20: null(E) exactly
    x = torch.rand(8, 8, dtype=DTYPE)
    for space in (embed, through):
        check = check_perturbation(model, x, space, magnitude=100.0)
        assert check.max_abs_logit_change <= 1e-9 * check.max_abs_logit
    # Every direction of null(E) lies in the bilinear space.
    assert torch.allclose(through.project(embed.basis.T), embed.basis.T, atol=1e-10)


def test_empty_null_space_is_said_and_approximate_space_measured():
    torch.manual_seed(5)
    model = ReluMLP(64, 10, d_hidden=100).double()
    space = harmless_space(model, "fc1", approx_dim=8, image_shape=(8, 8))
    assert not space.exact and space.null_dimension == 0 and space.dimension == 8 and space.rank == 64
    assert "not above the rank" in space.note
    s = torch.linalg.svdvals(model.fc1.weight.detach())
    assert math.isclose(space.gain, float(s[-8] / s[0]), rel_tol=1e-9)
    # The approximate space moves the first layer by at most gain·σ_max·‖δ‖, less than a generic direction.
    d = harmless_direction(space, seed=0)
    assert float((model.fc1.weight.detach() @ d).norm()) <= space.gain * float(s[0]) * (1 + 1e-9)


def test_conv_operator_null_space_matches_dense_matrix():
    torch.manual_seed(6)
    conv = nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)).double()
    op = ConvOperator(conv, (2, 9, 7))
    dense = dense_matrix(op)
    assert torch.equal(op.rows(torch.arange(op.d_out)), dense)
    # Small blocks force the streamed QR through several steps.
    space = null_space(op, "conv", "conv", block_rows=7)
    dense_s = torch.linalg.svdvals(dense)
    assert space.rank == _rank(dense) and space.dimension == op.d_in - space.rank
    assert torch.allclose(torch.tensor(space.singular_values, dtype=DTYPE), dense_s, rtol=1e-10, atol=1e-12)
    # Same subspace as the dense SVD's: equal projectors.
    vh = torch.linalg.svd(dense, full_matrices=True)[2]
    dense_null = vh[space.rank:].T
    assert torch.allclose(space.projector, dense_null @ dense_null.T, atol=1e-10)
    assert float((dense @ space.basis).abs().max()) <= 1e-12 * float(dense.abs().max())


def test_conv_grouped_rows_match_dense():
    torch.manual_seed(7)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2).double()
    op = ConvOperator(conv, (4, 5, 5))
    assert torch.equal(op.rows(torch.arange(op.d_out)), dense_matrix(op))


def test_conv_28x28_stride2_exact_null_space_in_a_cnn():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Unflatten(1, (1, 28)), nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 13 * 13, 10)).double()
    layers = harmless_layers(model)
    assert list(layers) == ["1", "1.relu"]
    space = harmless_space(model, "1", image_shape=(28, 28))
    assert space.exact and space.dimension == 784 - 2 * 13 * 13  # 338 rows, full row rank
    x = torch.rand(28, 28, dtype=DTYPE)
    check = check_perturbation(model, x, space, magnitude=100.0)
    assert check.max_abs_logit_change <= 1e-9 * check.max_abs_logit
    # The input-dependent space (conv with a bias per channel): larger, and holds inside its bound.
    local = harmless_space(model, "1.relu", x, image_shape=(28, 28))
    with torch.no_grad():
        pre = model[1](x.reshape(1, 1, 28, 28)).flatten()
    assert local.exact and local.pre_activation == pytest.approx(pre.tolist(), abs=1e-12)
    assert local.dimension == 784 - int((pre >= 0).sum()) > space.dimension
    inside = check_perturbation(model, x, local, magnitude=0.5 * check_perturbation(model, x, local, 1.0).valid_magnitude)
    assert inside.pattern_holds and inside.max_abs_logit_change <= 1e-10 * inside.max_abs_logit


def test_relu_local_space_holds_inside_its_bound_and_breaks_beyond():
    torch.manual_seed(9)
    model = ReluMLP(64, 10, d_hidden=100).double()
    x = torch.rand(8, 8, dtype=DTYPE)
    space = harmless_space(model, "fc1.relu", x, image_shape=(8, 8))
    pre = model.fc1(x.reshape(1, -1))[0].detach()
    active = int((pre >= 0).sum())
    assert space.exact and space.kind == "relu-local" and "pattern" in space.valid
    assert space.dimension == 64 - _rank(model.fc1.weight.detach()[pre >= 0]) == 64 - active
    op, _, _ = layer_operator(model, "fc1.relu", (8, 8))
    d = harmless_direction(space, seed=0)
    bound = valid_magnitude(op, space, d) / float(x.norm())
    assert 0 < bound < math.inf
    inside = check_perturbation(model, x, space, magnitude=0.99 * bound)
    assert inside.pattern_holds and math.isclose(inside.valid_magnitude, bound)
    assert inside.max_abs_logit_change <= 1e-10 * inside.max_abs_logit
    beyond = check_perturbation(model, x, space, magnitude=2.0 * bound)
    assert beyond.pattern_holds is False
    assert beyond.max_abs_logit_change > 1e-6 * beyond.max_abs_logit


def test_subspace_round_trips_through_json():
    torch.manual_seed(10)
    space = null_space(MatrixOperator(torch.randn(5, 12, dtype=DTYPE)), "w", "linear")
    back = HarmlessSubspace.from_json(space.to_json())
    assert back.dimension == 7 and torch.allclose(back.basis, space.basis)
    assert back.note == space.note and back.exact


def test_streamed_qr_over_many_blocks_matches_dense_svd():
    torch.manual_seed(11)
    conv = nn.Conv2d(1, 6, 3, padding=1).double()  # 6·36 = 216 rows on 36 inputs: QR steps after the first block
    op = ConvOperator(conv, (1, 6, 6))
    r = r_factor(op, block_rows=40)
    dense = dense_matrix(op)
    assert r.shape == (36, 36) and torch.allclose(r.T @ r, dense.T @ dense, atol=1e-12)
    space = null_space(op, "conv", "conv", block_rows=40)
    assert torch.allclose(torch.tensor(space.singular_values, dtype=DTYPE), torch.linalg.svdvals(dense), atol=1e-12)
