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
    # Every rule of these maps conserves on a bias-free ReLU net: Σ_i R_i is the target logit, read here
    # from the network's own forward pass (not from the engine's output or absorbed terms).
    net = bias_free_relu_net()
    x = torch.rand(16, 12, dtype=torch.float64)
    with torch.no_grad():
        logits = net(x)
    target = logits.argmax(1)
    maps = relevance(net, x, rules=name)
    assert torch.equal(maps.target, target)
    logit = logits[torch.arange(16), target]
    assert torch.allclose(maps.relevance.sum(1), logit, rtol=1e-10, atol=0)


def _hand_rule(rule, W, b, a, R, eps=0.01):
    """One layer of LRP by its textbook formula on the dense matrix W (out × in): R_i = Σ_j c_ij / z_j · R_j."""
    if rule == "lrp0":
        c = a[:, None, :] * W[None]  # (n, out, in)
        z = a @ W.T + b
    elif rule == "epsilon":
        c = a[:, None, :] * W[None]
        z = a @ W.T + b
        z = z + eps * torch.where(z >= 0, 1.0, -1.0)
    elif rule == "zplus":
        c = a[:, None, :] * W.clamp(min=0)[None]
        z = c.sum(2)
    elif rule == "w2":
        c = (W * W)[None].expand(len(a), -1, -1)
        z = c.sum(2)
    else:
        raise AssertionError(rule)
    return (c / z[:, :, None] * R[:, :, None]).sum(1)


@pytest.mark.parametrize("name, first, hidden, last", [
    ("zplus", "zplus", "zplus", "zplus"), ("w2", "w2", "zplus", "lrp0"), ("lrp0", "lrp0", "lrp0", "lrp0"),
    ("epsilon", "epsilon", "epsilon", "epsilon")])
def test_rule_maps_on_a_network_with_biases_equal_the_chained_textbook_formulas(name, first, hidden, last):
    # x → W1,b1 → ReLU → W2,b2 → ReLU → W3,b3, each layer's rule written out on its matrix.
    torch.manual_seed(11)
    net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)).double()
    (W1, b1), (W2, b2), (W3, b3) = ((net[i].weight.detach(), net[i].bias.detach()) for i in (0, 2, 4))
    x = torch.rand(6, 12, dtype=torch.float64)
    a1 = (x @ W1.T + b1).clamp(min=0)
    a2 = (a1 @ W2.T + b2).clamp(min=0)
    logits = a2 @ W3.T + b3
    c = logits.argmax(1)
    R3 = torch.zeros_like(logits)
    R3[torch.arange(6), c] = logits[torch.arange(6), c]
    R2 = _hand_rule(last, W3, b3, a2, R3)
    R1 = _hand_rule(hidden, W2, b2, a1, R2)
    R0 = _hand_rule(first, W1, b1, x, R1)
    maps = relevance(net, x, rules=name)
    assert torch.equal(maps.target, c)
    assert torch.allclose(maps.output, logits[torch.arange(6), c], rtol=1e-12, atol=0)
    assert torch.allclose(maps.relevance, R0, rtol=1e-9, atol=1e-12)
    # What each layer does not pass down, from the hand-computed relevances (to 1e-10: the engine's z⁺
    # denominators carry a 1e-12 guard against division by zero).
    for layer, above, below in (("0", R1, R0), ("2", R2, R1), ("4", R3, R2)):
        assert torch.allclose(maps.absorbed_by_layer[layer], above.sum(1) - below.sum(1), rtol=0, atol=1e-10)


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


def test_biases_absorbed_part_equals_the_bias_shares_computed_by_hand():
    # LRP-0 on Linear(b1) → ReLU → Linear(b2): R_j = a_j w_tj (the head's bias b2_t is not passed down),
    # R_i = Σ_j x_i W1_ji / z_j · R_j with z_j = W1_j·x + b1_j (the share b1_j / z_j · R_j stays behind).
    torch.manual_seed(5)
    mlp = ReluMLP(12, 5, d_hidden=16).double()
    W1, b1 = mlp.fc1.weight.detach(), mlp.fc1.bias.detach()
    W2, b2 = mlp.fc2.weight.detach(), mlp.fc2.bias.detach()
    x = torch.rand(10, 12, dtype=torch.float64)
    z1 = x @ W1.T + b1
    a1 = z1.clamp(min=0)
    logits = a1 @ W2.T + b2
    t = logits.argmax(1)
    R_hidden = a1 * W2[t]
    R_in = x * ((R_hidden / z1) @ W1)
    maps = relevance(mlp, x, rules="lrp0")
    assert torch.equal(maps.target, t)
    assert torch.allclose(maps.relevance, R_in, rtol=1e-10, atol=1e-13)
    assert torch.allclose(maps.absorbed_by_layer["fc2"], b2[t], rtol=1e-10, atol=1e-13)
    bias_share = (b1 / z1 * R_hidden).sum(1)
    assert torch.allclose(maps.absorbed_by_layer["fc1"], bias_share, rtol=1e-9, atol=1e-12)
    assert torch.allclose(maps.absorbed, b2[t] + bias_share, rtol=1e-9, atol=1e-12)


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


def test_bilinear_pair_decomposition_equals_the_hand_quadratic_form():
    # logit_c = Σ_h P_ch (w_h·x̃)(v_h·x̃) = x̃ᵀ Q x̃ with Q = ½ Σ_h P_ch (w_h v_hᵀ + v_h w_hᵀ), x̃ = [E x, 1] or E x;
    # over the pixels: Q_x = E'ᵀ Q E' with E' mapping x to x̃ (the constant is its own input).
    torch.manual_seed(9)
    for kwargs in ({}, {"bias": True}, {"d_embed": 6}, {"d_embed": 6, "bias": True}):
        model = BilinearClassifier(10, 3, d_hidden=8, **kwargs).double()
        x = torch.randn(10, dtype=torch.float64)
        with torch.no_grad():
            logit = model(x[None])[0, 1]
        W, V, P = model.bilinear.W.detach(), model.bilinear.V.detach(), model.head.weight.detach()[1]
        E = model.embed.weight.detach() if model.embed is not None else torch.eye(10, dtype=torch.float64)
        if model.bias_flag:  # x̃ = E' [x, 1]
            E = torch.block_diag(E, torch.ones(1, 1, dtype=torch.float64))
        xs = torch.cat([x, torch.ones(1, dtype=torch.float64)]) if model.bias_flag else x
        Q = 0.5 * (torch.einsum("h,hi,hj->ij", P, W, V) + torch.einsum("h,hi,hj->ij", P, V, W))
        Qx = E.T @ Q @ E
        expected_pairs = xs[:, None] * Qx * xs[None, :]
        pairs = bilinear_pair_relevance(model, x, target=1)
        assert pairs.output == pytest.approx(float(logit), rel=1e-12)
        assert torch.allclose(pairs.pairs, expected_pairs, rtol=1e-10, atol=1e-13)
        assert pairs.pairs.sum().item() == pytest.approx(float(logit), rel=1e-10)
        rows = expected_pairs.sum(1)
        assert torch.allclose(pairs.relevance, rows[:10], rtol=1e-10, atol=1e-13)
        # The constant's share: 0 without a bias, else x̃_c (Q x̃)_c, the pairs of the constant input.
        assert pairs.absorbed == pytest.approx(float(rows[10:].sum()), rel=1e-10, abs=0)
        if model.bias_flag:
            assert abs(pairs.absorbed) > 1e-3 * abs(float(logit))
        # The engine's bilinear rule gives the same per-pixel relevance R_i = Σ_j R_ij.
        maps = relevance(model, x[None], target=1, rules="dtd")
        # (to 1e-10: the rule's denominators g_h carry the engine's 1e-12 guard against division by zero)
        assert torch.allclose(maps.relevance[0], rows[:10], rtol=0, atol=1e-10)


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


def test_pixel_flipping_aopc_equals_a_hand_flipping_loop():
    """README's AOPC figures: per image, rank the pixels by each method's score (DTD by the chained textbook
    formulas, gradient and gradient×input from the weight matrices), zero them 4 at a time, read the target logit
    from a plain matrix forward pass; AOPC = mean over images of mean_k (f(x⁰) − f(xᵏ))."""
    from interp.relevance.evaluate import pixel_flipping

    net = bias_free_relu_net(seed=12)
    W1, W2, W3 = (net[i].weight.detach() for i in (0, 2, 4))
    images = 0.05 + 0.95 * torch.rand(7, 12, dtype=torch.float64)  # no zero pixels: no ties in the rankings
    steps, per_step = 3, 4

    def forward(x):
        return ((x @ W1.T).clamp(min=0) @ W2.T).clamp(min=0) @ W3.T

    generator = torch.Generator().manual_seed(0)
    torch.rand(images.shape, generator=generator)  # pixel_flipping draws its uniform replacement values first
    random_scores = torch.rand(images.shape, generator=generator)
    aopc = {"dtd": [], "gradient_x_input": [], "gradient": [], "random": []}
    for n, x in enumerate(images):
        a1 = (W1 @ x).clamp(min=0)
        a2 = (W2 @ a1).clamp(min=0)
        t = int((W3 @ a2).argmax())
        R2 = a2 * W3[t]
        W2p = W2.clamp(min=0)
        R1 = a1 * (W2p.T @ (R2 / (W2p @ a1)))
        W1n = W1.clamp(max=0)
        z = W1 @ x - W1n.sum(1)
        dtd = x * (W1.T @ (R1 / z)) - W1n.T @ (R1 / z)
        grad = W1.T @ ((W1 @ x > 0) * (W2.T @ ((W2 @ a1 > 0) * W3[t])))
        scores = {"dtd": dtd, "gradient_x_input": grad * x, "gradient": grad.abs(), "random": random_scores[n]}
        for method, score in scores.items():
            order = score.argsort(descending=True, stable=True)
            f0, drops = forward(x)[t], []
            for k in range(steps + 1):
                flipped = x.clone()
                flipped[order[:k * per_step]] = 0.0
                drops.append(float(f0 - forward(flipped)[t]))
            aopc[method].append(sum(drops) / len(drops))
    result = pixel_flipping(net, images, rules="dtd", steps=steps, pixels_per_step=per_step, quiet=True)
    for method, values in aopc.items():
        assert result.aopc[method] == pytest.approx(sum(values) / len(values), rel=1e-10, abs=1e-13), method
    assert len({round(v, 6) for v in result.aopc.values()}) == 4  # the methods rank the pixels differently
