"""The relevance engine's open structure: rules built from modifiers, composites, canonizers, the registry."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from interp.errors import InterpError
from interp.models.bilinear import BilinearClassifier, ReluMLP
from interp.models.cnn import SmallCNN
from interp.relevance import canonizers, composites
from interp.relevance.canonizers import (ExpandModules, MergeEmbeddingIntoBilinear, canonical_layers,
                                         register_canonizer)
from interp.relevance.composites import Composite, composite, register_composite
from interp.relevance.engine import relevance
from interp.relevance.layers import BilinearForm, Reshape
from interp.relevance.rules import (LRP0, NEGATIVE, POSITIVE, AlphaBeta, BasicRule, Epsilon, Gamma, Pass, Stabilizer,
                                    ZB, ZPlus, negative_part, positive_part)


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def relu_net(seed=0, bias=True):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 9, bias=bias), nn.ReLU(), nn.Linear(9, 6, bias=bias), nn.ReLU(),
                         nn.Linear(6, 4, bias=bias))


def test_lrp0_is_epsilon_zero_and_equals_the_explicit_formula():
    net = relu_net(seed=1)
    x = torch.rand(5, 7)
    assert repr(LRP0()) == "lrp0" and isinstance(LRP0(), Epsilon) and LRP0().epsilon == 0
    maps = relevance(net, x, rules=Composite("all-lrp0", [(nn.Linear, LRP0()), (nn.ReLU, Pass())]))
    # R_i = Σ_j x_i w_ij R_j / z_j, layer by layer from the logit down.
    activations = [x]
    for layer in net:
        activations.append(layer(activations[-1]))
    R = torch.zeros_like(activations[-1])
    rows = torch.arange(len(x))
    R[rows, maps.target] = activations[-1][rows, maps.target]
    for i in (4, 2, 0):
        a, z, W = activations[i], activations[i + 1], net[i].weight.detach()
        R = torch.einsum("ni,ji,nj->ni", a, W, R / z)
    assert torch.allclose(maps.relevance, R, rtol=1e-12, atol=1e-12)
    # The stabiliser only moves exact zeros.
    z = torch.tensor([0.0, 1e-300, -2.0])
    assert torch.equal(Stabilizer(0.0)(z), torch.tensor([1e-12, 1e-300, -2.0]))


def test_gamma_defined_by_modifiers_matches_its_formula():
    torch.manual_seed(2)
    layer = nn.Linear(7, 5)
    x, R = torch.rand(4, 7), torch.randn(4, 5)
    gamma = 0.3
    W, b = layer.weight.detach(), layer.bias.detach()
    Wg, bg = W + gamma * W.clamp(min=0), b + gamma * b.clamp(min=0)
    expected = torch.einsum("ni,ji,nj->ni", x, Wg, R / (x @ Wg.T + bg))
    assert torch.allclose(Gamma(gamma).relevance(layer, x, R), expected, atol=1e-12)


def test_alpha_beta_defined_by_modifiers_matches_its_formula():
    torch.manual_seed(3)
    layer = nn.Linear(6, 4)
    x, R = torch.randn(3, 6), torch.rand(3, 4)  # inputs of both signs
    W = layer.weight.detach()
    contributions = x[:, :, None] * W.T[None]  # (n, i, j)
    plus, minus = contributions.clamp(min=0), contributions.clamp(max=0)
    expected = (2 * plus / plus.sum(1, keepdim=True) - 1 * minus / minus.sum(1, keepdim=True)) * R[:, None, :]
    got = AlphaBeta(2.0, 1.0).relevance(layer, x, R)
    assert torch.allclose(got, expected.sum(2), atol=1e-12)
    # Built from the generic rule alone: the α half is one BasicRule with two terms.
    alpha = BasicRule(inputs=(positive_part, negative_part), params=(POSITIVE, NEGATIVE), outputs=(1.0, 1.0))
    assert torch.allclose(alpha.relevance(layer, x, R), (plus / plus.sum(1, keepdim=True) * R[:, None, :]).sum(2),
                          atol=1e-12)


def test_composite_gives_each_layer_its_rule(monkeypatch):
    monkeypatch.setattr(composites, "_COMPOSITES", dict(composites._COMPOSITES))  # the test's composite stays here
    net = relu_net(seed=4)
    dtd = composite("dtd", low=-1.0, high=2.0)
    rules = dtd.assign(canonical_layers(net))
    assert [repr(r) for r in rules] == ["zb[-1, 2]", "pass", "zplus", "pass", "lrp0"]
    assert [repr(r) for r in composite("epsilon", epsilon=0.5).assign(canonical_layers(net))] == \
        ["epsilon(0.5)", "pass", "epsilon(0.5)", "pass", "epsilon(0.5)"]
    cnn = SmallCNN(n_classes=3, image_size=8, channels=(2,), kernel=3)
    layers = canonical_layers(cnn)
    assert [name for name, _ in layers] == [f"layers.{i}" for i in range(6)] and isinstance(layers[0][1], Reshape)
    assert [repr(r) for r in composite("w2").assign(layers)] == ["pass", "w2", "pass", "zplus", "pass", "lrp0"]

    @register_composite("test-gamma")
    def _gamma(low, high, epsilon):
        return Composite("test-gamma", [(nn.Linear, Gamma(0.5)), (nn.ReLU, Pass())], first=ZB(low, high))

    maps = relevance(net, torch.rand(2, 7), rules="test-gamma")
    assert maps.rule_map == "test-gamma" and maps.rules == {"0": "zb[0, 1]", "1": "pass", "2": "gamma(0.5)",
                                                            "3": "pass", "4": "gamma(0.5)"}


@pytest.mark.parametrize("bias", [False, True])
def test_merged_embedding_bilinear_gives_the_same_relevance_as_the_two_layer_path(bias):
    torch.manual_seed(5)
    model = BilinearClassifier(12, 4, d_hidden=8, d_embed=5, bias=bias)
    x = torch.rand(6, 12)
    names = [name for name, _ in canonical_layers(model)]
    assert names == ["flatten", "embed+bilinear", "head"]
    unmerged = canonical_layers(model, canonizers=(ExpandModules(),))
    assert [name for name, _ in unmerged] == ["flatten", "embed", "bilinear", "head"]
    merged = MergeEmbeddingIntoBilinear().apply(unmerged)[1][1]
    assert isinstance(merged, BilinearForm) and merged.embed is model.embed.weight
    assert torch.allclose(merged(x), model.bilinear(model.embed(x)), atol=1e-12)
    maps = relevance(model, x, rules="dtd")
    # Before: the bilinear rule over e = E x, then LRP-0 through the embedding.
    two_layer = Composite("two-layer", [(nn.Linear, LRP0()), (BilinearForm, composite("dtd").layer_map[2][1]),
                                        (nn.Flatten, Pass())])
    before = relevance(model, x, maps.target, two_layer, canonizers=(ExpandModules(),))
    assert before.rules["embed"] == "lrp0" and maps.rules["embed+bilinear"] == "bilinear"
    assert torch.allclose(maps.relevance, before.relevance, rtol=1e-10, atol=1e-12)
    # By hand: logit_t = Σ_h P_th g_h, g_h = (w_h·x̃)(v_h·x̃), x̃ = [E x, 1]. The rule hands unit h's
    # R_h = P_th g_h down as R_h / g_h · ½ x·∇g_h = R_h / g_h · (g_h − c_h), where c_h = ½(w_hc v_h·x̃ + v_hc w_h·x̃)
    # is the constant input's share (0 without a bias); g_h carries the engine's 1e-12 guard, so it is used here too.
    W, V, E = model.bilinear.W.detach(), model.bilinear.V.detach(), model.embed.weight.detach()
    xt = x @ E.T
    if bias:
        xt = torch.cat([xt, torch.ones(len(x), 1)], 1)
    left, right = xt @ W.T, xt @ V.T
    g = left * right
    P = model.head.weight.detach()[maps.target]
    logit = (P * g).sum(1)
    c = 0.5 * (W[:, -1] * right + V[:, -1] * left) if bias else torch.zeros_like(g)
    guarded = g + 1e-12 * torch.where(g >= 0, 1.0, -1.0)
    assert torch.allclose(maps.output, logit, rtol=1e-12, atol=0)
    assert torch.allclose(maps.relevance.sum(1), (P * g / guarded * (g - c)).sum(1), rtol=0, atol=1e-13)
    if bias:
        constant = (P * c).sum(1)
        assert constant.abs().min() > 1e-3 * logit.abs().max()


def test_a_new_model_type_plugs_in_with_a_canonizer(monkeypatch):
    monkeypatch.setattr(canonizers, "_EXPANDERS", dict(canonizers._EXPANDERS))
    class TwoStage(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.readout = nn.Linear(7, 6, bias=False), nn.Linear(6, 3, bias=False)

        def forward(self, x):
            return self.readout(torch.relu(self.encoder(x)))

    torch.manual_seed(6)
    model, x = TwoStage(), torch.rand(4, 7)
    with pytest.raises(InterpError, match="register_canonizer"):
        relevance(model, x)
    register_canonizer(TwoStage, lambda m: [("encoder", m.encoder), ("relu", nn.ReLU()), ("readout", m.readout)])
    maps = relevance(model, x, rules="zplus")
    same = relevance(nn.Sequential(model.encoder, nn.ReLU(), model.readout), x, rules="zplus")
    assert torch.equal(maps.relevance, same.relevance) and list(maps.rules) == ["encoder", "relu", "readout"]


def test_classifier_kinds_come_from_the_registry_and_the_engine_imports_no_model():
    from interp.models.registry import build_classifier, classifier_kinds

    assert classifier_kinds()[:3] == ["bilinear", "relu", "cnn"]
    for model in (BilinearClassifier(16, 3, d_hidden=4, d_embed=5), ReluMLP(16, 3, d_hidden=4),
                  SmallCNN(n_classes=3, image_size=4, channels=(2,), kernel=3)):
        rebuilt = build_classifier(model.config())
        assert type(rebuilt) is type(model) and rebuilt.config() == model.config()
    code = ("import sys, interp.relevance.engine, interp.relevance.evaluate, interp.models.bilinear; "
            "assert 'interp.models.cnn' not in sys.modules, 'bilinear imports cnn'; "
            "import interp.models.cnn; "
            "import importlib; [sys.modules.pop(m) for m in list(sys.modules) if m.startswith('interp')]; "
            "import interp.relevance.engine, interp.relevance.evaluate, interp.relevance.commands; "
            "bad = [m for m in sys.modules if m.startswith('interp.models')]; assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_zplus_on_pooling_and_rules_refusing_the_wrong_layer():
    pool = nn.AvgPool2d(2)
    x, R = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 2, 2)
    # Pooling weights are positive constants: z⁺ = LRP-0 there, and it conserves.
    assert torch.allclose(ZPlus().relevance(pool, x, R), LRP0().relevance(pool, x, R), atol=1e-12)
    assert torch.allclose(ZPlus().relevance(pool, x, R).sum(), R.sum())
    with pytest.raises(InterpError, match="does not apply"):
        composite("dtd").layer_map[2][1].relevance(nn.Linear(3, 2), torch.rand(1, 3), torch.rand(1, 2))
