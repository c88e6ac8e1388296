"""Deep Taylor rules against direct matrix formulas, conservation, signs, and LRP-0 = gradient×input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp.errors import InterpError
from interp.models.bilinear import BilinearClassifier, ReluMLP
from interp.models.cnn import SmallCNN
from interp.relevance.engine import bilinear_pair_relevance, gradient_maps, relevance
from interp.relevance.composites import RuleMap, rule_map
from interp.relevance.rules import LRP0, WSquare, ZB, BilinearExact, Epsilon, ZPlus



@pytest.fixture(autouse=True)
def _float64():
    # The matrix formulas are compared to 1e-10; restore the default for other test files.
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def tiny_linear(d_in=6, d_out=4, bias=True, seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(d_in, d_out, bias=bias).double()
    return layer


def test_lrp0_and_epsilon_match_matrix_formula():
    layer = tiny_linear()
    x = torch.rand(3, 6, dtype=torch.float64)
    R = torch.randn(3, 4, dtype=torch.float64)
    W, b = layer.weight.detach(), layer.bias.detach()
    z = x @ W.T + b
    expected = torch.einsum("ni,ji,nj->ni", x, W, R / z)
    assert torch.allclose(LRP0().relevance(layer, x, R), expected, atol=1e-10)
    eps = 0.3
    expected_eps = torch.einsum("ni,ji,nj->ni", x, W, R / (z + eps * torch.where(z >= 0, 1.0, -1.0)))
    assert torch.allclose(Epsilon(eps).relevance(layer, x, R), expected_eps, atol=1e-10)


def test_zplus_matches_matrix_formula():
    layer = tiny_linear()
    x = torch.rand(3, 6, dtype=torch.float64)
    R = torch.rand(3, 4, dtype=torch.float64)
    Wp = layer.weight.detach().clamp(min=0)
    expected = torch.einsum("ni,ji,nj->ni", x, Wp, R / (x @ Wp.T))
    assert torch.allclose(ZPlus().relevance(layer, x, R), expected, atol=1e-10)


def test_zb_with_per_pixel_bounds_matches_matrix_formula():
    layer = tiny_linear()
    low = -torch.rand(6, dtype=torch.float64)
    high = 1 + torch.rand(6, dtype=torch.float64)
    x = low + (high - low) * torch.rand(3, 6, dtype=torch.float64)
    R = torch.randn(3, 4, dtype=torch.float64)
    W = layer.weight.detach()
    Wp, Wn = W.clamp(min=0), W.clamp(max=0)
    # z_ij for each input i and output j, then normalised over i.
    z = x[:, :, None] * W.T[None] - low[None, :, None] * Wp.T[None] - high[None, :, None] * Wn.T[None]
    expected = (z / z.sum(1, keepdim=True) * R[:, None, :]).sum(2)
    got = ZB(low, high).relevance(layer, x, R)
    assert torch.allclose(got, expected, atol=1e-10)
    assert torch.allclose(got.sum(1), R.sum(1), atol=1e-10)  # zᴮ conserves (no bias in its denominator)
    # The common pixel case l = 0 takes a shortcut; it must give the same formula.
    x0 = torch.rand(3, 6, dtype=torch.float64)
    z0 = x0[:, :, None] * W.T[None] - 1.0 * Wn.T[None]
    expected0 = (z0 / z0.sum(1, keepdim=True) * R[:, None, :]).sum(2)
    assert torch.allclose(ZB(0.0, 1.0).relevance(layer, x0, R), expected0, atol=1e-10)


def test_w2_matches_matrix_formula_and_ignores_input():
    layer = tiny_linear()
    R = torch.randn(2, 4, dtype=torch.float64)
    W2 = layer.weight.detach() ** 2
    expected = (W2.T / W2.sum(1)) @ R.T
    for x in (torch.randn(2, 6, dtype=torch.float64), 5 * torch.randn(2, 6, dtype=torch.float64)):
        assert torch.allclose(WSquare().relevance(layer, x, R), expected.T, atol=1e-10)


def test_rules_on_conv_match_the_same_rules_on_its_dense_matrix():
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False).double()
    x = torch.rand(2, 2, 5, 5, dtype=torch.float64)
    # The conv's dense matrix: column k is conv(e_k).
    basis = torch.eye(2 * 25, dtype=torch.float64).reshape(-1, 2, 5, 5)
    dense = nn.Linear(50, 75, bias=False).double()
    with torch.no_grad():
        dense.weight.copy_(conv(basis).reshape(50, 75).T)
    R = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    for rule in (LRP0(), ZPlus(), ZB(0.0, 1.0), WSquare(), Epsilon(0.1)):
        got = rule.relevance(conv, x, R)
        expected = rule.relevance(dense, x.reshape(2, -1), R.reshape(2, -1)).reshape(x.shape)
        assert torch.allclose(got, expected, atol=1e-10), rule


def test_bilinear_rule_matches_quadratic_form():
    torch.manual_seed(2)
    model = BilinearClassifier(5, 3, d_hidden=4).double()
    x = torch.randn(2, 5, dtype=torch.float64)
    layer = model.bilinear
    g = layer(x)
    R = torch.randn(2, 4, dtype=torch.float64)
    W, V = layer.W.detach(), layer.V.detach()
    Q = 0.5 * (W[:, :, None] * V[:, None, :] + V[:, :, None] * W[:, None, :])  # (h, i, j)
    pairs = torch.einsum("ni,hij,nj->nhi", x, Q, x)  # x_i (Q_h x)_i, sums over i to g_h
    assert torch.allclose(pairs.sum(2), g, atol=1e-10)
    expected = (pairs * (R / g)[:, :, None]).sum(1)
    assert torch.allclose(BilinearExact().relevance(layer, x, R), expected, atol=1e-10)


def bias_free_relu_net(seed=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16, bias=False), nn.ReLU(), nn.Linear(16, 8, bias=False), nn.ReLU(),
                         nn.Linear(8, 5, bias=False)).double()


@pytest.mark.parametrize("name", ["dtd", "zplus", "lrp0", "w2"])
def test_conservation_bias_free(name):
    net = bias_free_relu_net()
    x = torch.rand(16, 12, dtype=torch.float64)
    maps = relevance(net, x, rules=name)
    relative = (maps.relevance.sum(1) - maps.output).abs() / maps.output.abs()
    assert relative.max() < 1e-5
    assert maps.absorbed.abs().max() < 1e-5 * maps.output.abs().max()


def test_conservation_cnn_and_bilinear_in_float32():
    torch.set_default_dtype(torch.float32)
    try:
        torch.manual_seed(4)
        cnn = SmallCNN(n_classes=4, image_size=8, channels=(3, 4), kernel=3, pool="sum").eval()
        bil = BilinearClassifier(64, 4, d_hidden=10, d_embed=7).eval()
        x = torch.rand(8, 8, 8)
        for model, name in ((cnn, "dtd"), (cnn, "zplus"), (bil, "dtd")):
            maps = relevance(model, x, rules=name)
            relative = (maps.relevance.flatten(1).sum(1) - maps.output).abs() / maps.output.abs()
            assert relative.max() < 1e-5, (type(model).__name__, name)
    finally:
        torch.set_default_dtype(torch.float64)


def test_biases_absorbed_part_is_reported_exactly():
    torch.manual_seed(5)
    mlp = ReluMLP(12, 5, d_hidden=16).double()
    x = torch.rand(10, 12, dtype=torch.float64)
    maps = relevance(mlp, x, rules="lrp0")
    # Σ R + absorbed = output, and the top layer absorbs exactly its bias under LRP-0.
    assert torch.allclose(maps.relevance.sum(1) + maps.absorbed, maps.output, atol=1e-10)
    assert torch.allclose(maps.absorbed_by_layer["fc2"], mlp.fc2.bias.detach()[maps.target], atol=1e-10)
    total = sum(maps.absorbed_by_layer.values())
    assert torch.allclose(total, maps.absorbed, atol=1e-10)


def test_zplus_relevance_non_negative_for_non_negative_inputs():
    net = bias_free_relu_net(seed=6)
    x = torch.rand(32, 12, dtype=torch.float64)
    maps = relevance(net, x, rules="zplus")
    positive = maps.output > 0  # a positive logit is positive relevance to hand down
    assert positive.sum() > 0
    assert (maps.relevance[positive] >= 0).all()
    assert (maps.relevance[~positive] <= 0).all()


def test_lrp0_equals_gradient_times_input_on_relu_nets():
    torch.manual_seed(7)
    for model in (ReluMLP(12, 5, d_hidden=16).double(), bias_free_relu_net(8)):
        x = torch.rand(9, 12, dtype=torch.float64)
        maps = relevance(model, x, rules="lrp0")
        grad, output, _ = gradient_maps(model, x, maps.target)
        assert torch.allclose(maps.relevance, grad * x, atol=1e-10)
        assert torch.allclose(maps.output, output)


def test_bilinear_pair_decomposition_sums_to_logit():
    torch.manual_seed(9)
    for kwargs in ({}, {"bias": True}, {"d_embed": 6}):
        model = BilinearClassifier(10, 3, d_hidden=8, **kwargs).double()
        x = torch.randn(10, dtype=torch.float64)
        pairs = bilinear_pair_relevance(model, x, target=1)
        assert pairs.pairs.sum().item() == pytest.approx(pairs.output, rel=1e-12)
        assert pairs.relevance.sum().item() + pairs.absorbed == pytest.approx(pairs.output, rel=1e-12)
        assert torch.allclose(pairs.pairs, pairs.pairs.T)
        # The engine's bilinear rule gives the same per-pixel relevance R_i = Σ_j R_ij.
        maps = relevance(model, x[None], target=1, rules="dtd")
        assert torch.allclose(maps.relevance[0], pairs.relevance, atol=1e-10)
        if not kwargs:
            assert pairs.absorbed == 0


def test_layer_without_rule_and_bad_class_are_input_errors():
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    with pytest.raises(InterpError, match="Tanh has no rule"):
        relevance(net, torch.rand(1, 4, dtype=torch.float64))
    with pytest.raises(InterpError, match="class 7 does not exist"):
        relevance(bias_free_relu_net(), torch.rand(1, 12, dtype=torch.float64), target=7)
    with pytest.raises(InterpError, match="unknown rule map"):
        rule_map("nope")
    custom = RuleMap("custom", [(nn.Linear, LRP0())])
    with pytest.raises(InterpError, match="ReLU has no rule"):
        relevance(bias_free_relu_net(), torch.rand(1, 12, dtype=torch.float64), rules=custom)


def test_dtd_on_a_tiny_network_equals_the_chained_matrix_formulas():
    # x → W1 → ReLU → W2 → ReLU → W3 (logits), with the dtd map: zᴮ, z⁺, LRP-0, written out by hand.
    net = bias_free_relu_net(seed=10)
    W1, W2, W3 = (net[i].weight.detach() for i in (0, 2, 4))
    x = torch.rand(4, 12, dtype=torch.float64)
    a1 = (x @ W1.T).clamp(min=0)
    a2 = (a1 @ W2.T).clamp(min=0)
    logits = a2 @ W3.T
    c = logits.argmax(1)
    R2 = a2 * W3[c]  # LRP-0 on the output layer: R_j = a_j w_jc, sums to the logit
    W2p = W2.clamp(min=0)
    R1 = a1 * ((R2 / (a1 @ W2p.T)) @ W2p)  # z⁺
    W1n = W1.clamp(max=0)
    z = x @ W1.T - 1.0 * W1n.sum(1)  # zᴮ with l = 0, h = 1
    R0 = x * ((R1 / z) @ W1) - 1.0 * ((R1 / z) @ W1n)
    maps = relevance(net, x, rules="dtd")
    assert torch.equal(maps.target, c)
    assert torch.allclose(maps.relevance, R0, atol=1e-10)
