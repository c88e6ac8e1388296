"""`interp relevance` / `interp relevance-eval` end to end, on the shipped CNN and on tiny models."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from interp.data.images import load_digits
from interp.models.bilinear import BilinearClassifier, ReluMLP
from interp.models.checkpoints import save_classifier
from tests.conftest import CHECKPOINTS

CNN = CHECKPOINTS / "fmnist-cnn"


def _train_briefly(model, data, steps=40, seed=0):
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = data.train.flat, data.train.labels
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def digit_checkpoints(tmp_path_factory):
    """A small bilinear and a small ReLU classifier (with biases) on sklearn's digits."""
    data = load_digits()
    folder = tmp_path_factory.mktemp("relevance-ckpt")
    torch.manual_seed(0)
    bilinear = _train_briefly(BilinearClassifier(64, 10, d_hidden=32), data)
    relu = _train_briefly(ReluMLP(64, 10, d_hidden=32), data)
    extra = {"class_names": data.class_names, "image_shape": [8, 8]}
    save_classifier(folder / "bilinear", bilinear, "digits", {}, extra)
    save_classifier(folder / "relu", relu, "digits", {}, extra)
    return folder


def test_relevance_on_shipped_cnn_conserves_and_writes_png(run_cli, tmp_path):
    out = tmp_path / "map.png"
    code, stdout, stderr = run_cli("relevance", CNN, "--index", "3", "--json", "--out", out, "--top", "5")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["model"] == "cnn" and result["rule_map"] == "dtd"
    assert result["target"] == result["prediction"]
    assert abs(result["relevance_sum"] - result["output"]) <= 1e-5 * abs(result["output"])  # bias-free CNN
    assert len(result["top_pixels"]) == 5
    values = [p["relevance"] for p in result["top_pixels"]]
    assert values == sorted(values, reverse=True)
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.size[0] > picture.size[1]


def _hand_cnn_relevance(model, image, target, rule_map, eps=1e-2):
    """The CNN's relevance map by each rule's textbook formula, layer by layer, in float64.

    conv/linear: R_i = Σ_j c_ij / z_j · R_j with c_ij = x_i w_ij (LRP-0, ε: z_j + ε sign z_j), x_i w⁺_ij (z⁺),
    w²_ij (w², the input layer of the w2 map); 2×2 average pooling gets z⁺: R_i = x_i / 4 · R_j / pool(x)_j.
    The transposed products are `conv_transpose2d` and `.T`, no relevance code of the package. Denominators
    other than ε's carry the engine's documented guard z + 10⁻¹² sign z (sign 0 = +1), LRP-0's only at z = 0.
    """
    from torch.nn import functional as F

    conv1, pool1, conv2, pool2, head = (model.layers[i] for i in (1, 3, 4, 6, 8))
    c1, c2 = (c.weight.detach().double() for c in (conv1, conv2))
    W = head.weight.detach().double()
    pad = conv1.padding
    x = image.double().reshape(1, 1, 28, 28)
    a1 = F.conv2d(x, c1, padding=pad).clamp(min=0)
    p1 = F.avg_pool2d(a1, 2)
    a2 = F.conv2d(p1, c2, padding=pad).clamp(min=0)
    p2 = F.avg_pool2d(a2, 2)
    logits = p2.flatten(1) @ W.T
    R = torch.zeros_like(logits)
    R[0, target] = logits[0, target]

    def guard(z, e=1e-12):
        return z + e * torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))

    def linear(a, R):
        if rule_map == "zplus":
            w, z = W.clamp(min=0), guard(a.flatten(1) @ W.clamp(min=0).T)
        elif rule_map == "epsilon":
            w, z = W, guard(a.flatten(1) @ W.T, eps)
        else:  # LRP-0
            w, z = W, a.flatten(1) @ W.T
            z = torch.where(z == 0, 1e-12, z)
        return (a.flatten(1) * ((R / z) @ w)).reshape(a.shape)

    def conv(a, R, weight, first):
        if rule_map == "w2" and first:
            w2 = weight * weight
            return F.conv_transpose2d(R / guard(F.conv2d(torch.ones_like(a), w2, padding=pad)), w2, padding=pad)
        if rule_map == "epsilon":
            w, z = weight, guard(F.conv2d(a, weight, padding=pad), eps)
        else:  # z⁺ on the hidden layers of w2, on every layer of zplus
            w = weight.clamp(min=0)
            z = guard(F.conv2d(a, w, padding=pad))
        return a * F.conv_transpose2d(R / z, w, padding=pad)

    def pool(a, R):  # z⁺ with positive weights ¼
        s = R / guard(F.avg_pool2d(a, 2))
        return a * s.repeat_interleave(2, -1).repeat_interleave(2, -2) / 4

    R = linear(p2, R)
    R = conv(p1, pool(a2, R), c2, first=False)
    R = conv(x, pool(a1, R), c1, first=True)
    return R.reshape(28, 28), logits[0]


@pytest.mark.parametrize("rule_map", ["zplus", "epsilon", "w2"])
def test_relevance_with_named_target_and_other_rule_maps_match_the_hand_formulas(run_cli, tmp_path, rule_map):
    from interp.data.images import load_image_dataset
    from interp.models.checkpoints import load_classifier

    code, stdout, stderr = run_cli("relevance", CNN, "--index", "0", "--target", "Sneaker", "--rule-map", rule_map,
                                   "--dtype", "float64", "--top", "784", "--json",
                                   "--out-html", tmp_path / f"map-{rule_map}.html")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["target_name"] == "Sneaker" and result["rule_map"] == rule_map
    assert (tmp_path / f"map-{rule_map}.html").read_text().count("plotly") > 0

    model, _, _ = load_classifier(CNN)
    image = load_image_dataset("fashion-mnist").test.images[0]
    expected, logits = _hand_cnn_relevance(model, image, 7, rule_map)
    got = torch.zeros(784, dtype=torch.float64)
    for pixel in result["top_pixels"]:
        got[pixel["pixel"]] = pixel["relevance"]
    assert result["target"] == 7 and result["output"] == pytest.approx(float(logits[7]), rel=1e-12)
    scale = float(expected.abs().max())
    assert torch.allclose(got, expected.flatten(), rtol=1e-9, atol=1e-12 * scale)
    assert result["relevance_sum"] == pytest.approx(float(expected.sum()), rel=1e-9, abs=1e-12 * scale)
    if rule_map != "epsilon":  # z⁺, w² and LRP-0 conserve on this bias-free CNN: Σ R is the logit itself
        assert result["relevance_sum"] == pytest.approx(float(logits[7]), rel=1e-9)


def test_bilinear_pairs_equal_the_hand_quadratic_form(run_cli, digit_checkpoints):
    from interp.models.checkpoints import load_classifier

    code, stdout, stderr = run_cli("relevance", digit_checkpoints / "bilinear", "--index", "7", "--pairs",
                                   "--dtype", "float64", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    # By hand: logit_t = Σ_h P_th (w_h·x)(v_h·x) = xᵀ Q x, Q = ½ Σ_h P_th (w_h v_hᵀ + v_h w_hᵀ); R_ij = x_i Q_ij x_j.
    model, _, _ = load_classifier(digit_checkpoints / "bilinear")
    x = load_digits().test.images[7].double().flatten()
    W, V, P = (t.detach().double() for t in (model.bilinear.W, model.bilinear.V, model.head.weight))
    logits = P @ ((W @ x) * (V @ x))
    t = int(logits.argmax())
    Q = 0.5 * (torch.einsum("h,hi,hj->ij", P[t], W, V) + torch.einsum("h,hi,hj->ij", P[t], V, W))
    R = x[:, None] * Q * x[None, :]
    assert result["target"] == t and result["output"] == pytest.approx(float(logits[t]), rel=1e-12)
    assert result["pair_sum"] == pytest.approx(float(logits[t]), rel=1e-10)
    assert result["relevance_sum"] == pytest.approx(float(logits[t]), rel=1e-10)  # no constant input: conserved
    both = (R + R.T).triu(diagonal=1)
    strongest = both.abs().flatten().topk(10).values
    assert len(result["top_pairs"]) == 10 and all(p["i"] < p["j"] for p in result["top_pairs"])
    for pair, size in zip(result["top_pairs"], strongest):
        assert pair["relevance"] == pytest.approx(float(both[pair["i"], pair["j"]]), rel=1e-10, abs=1e-14)
        assert abs(pair["relevance"]) == pytest.approx(float(size), rel=1e-10, abs=1e-14)


def test_relu_with_biases_absorbs_exactly_the_head_bias(run_cli, digit_checkpoints):
    """dtd on Linear(b1) → ReLU → Linear(b2): zᴮ (l = 0, h = 1) conserves and LRP-0 on the head passes down
    Σ_j a_j w_tj, so the part not explained by pixels is the head's bias b2_t; all from the weights by hand."""
    from interp.models.checkpoints import load_classifier

    code, stdout, stderr = run_cli("relevance", digit_checkpoints / "relu", "--index", "0", "--dtype", "float64",
                                   "--top", "64", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    model, _, _ = load_classifier(digit_checkpoints / "relu")
    x = load_digits().test.images[0].double().flatten()
    W1, b1 = model.fc1.weight.detach().double(), model.fc1.bias.detach().double()
    W2, b2 = model.fc2.weight.detach().double(), model.fc2.bias.detach().double()
    hidden = torch.relu(W1 @ x + b1)
    logits = W2 @ hidden + b2
    t = int(logits.argmax())
    R_hidden = hidden * W2[t]
    z = x[:, None] * W1.T - 1.0 * W1.clamp(max=0).T  # zᴮ terms with l = 0, h = 1: (64 pixels, hidden)
    expected = (z / z.sum(0, keepdim=True) * R_hidden[None]).sum(1)
    got = torch.zeros(64, dtype=torch.float64)
    for pixel in result["top_pixels"]:
        got[pixel["pixel"]] = pixel["relevance"]
    assert result["target"] == t and result["output"] == pytest.approx(float(logits[t]), rel=1e-12)
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12 * float(expected.abs().max()))
    assert result["relevance_sum"] == pytest.approx(float(R_hidden.sum()), rel=1e-9)
    assert abs(float(b2[t])) > 1e-3
    assert result["absorbed"] == pytest.approx(float(b2[t]), rel=1e-9)
    assert result["absorbed_by_layer"]["fc2"] == pytest.approx(float(b2[t]), rel=1e-9)


@pytest.mark.parametrize("args, message", [
    (["--index", "10000"], "index 10000 is out of range"),
    (["--index", "-1"], "argument --index: must be an integer ≥ 0"),
    (["--index", "0", "--target", "12"], "class 12 does not exist"),
    (["--index", "0", "--target", "Hat"], "class 'Hat' does not exist"),
    (["--index", "0", "--rule-map", "magic"], "unknown rule map"),
    (["--index", "0", "--out", "map.jpg"], "the heatmap image is a .png file (an HTML page is --out-html)"),
    (["--index", "0", "--out", "map.html"], "the heatmap image is a .png file (an HTML page is --out-html)"),
    (["--index", "0", "--out-html", "map.png"], "--out-html must name an .html file"),
    (["--index", "0", "--pairs"], "--pairs needs a bilinear classifier"),
    ([], "need --index"),
])
def test_bad_input_is_one_line_exit_2(run_cli, args, message):
    code, stdout, stderr = run_cli("relevance", CNN, *args, "--json")
    assert code == 2 and stdout == ""
    assert message in stderr and len(stderr.strip().splitlines()) == 1


def test_missing_checkpoint_is_exit_2(run_cli, tmp_path):
    code, _, stderr = run_cli("relevance", tmp_path / "nothing", "--index", "0")
    assert code == 2 and "not found" in stderr


def test_relevance_eval_dtd_beats_random_and_gradient_on_cnn(run_cli, tmp_path):
    out = tmp_path / "curves.html"
    code, stdout, stderr = run_cli("relevance-eval", CNN, "--n-images", "100", "--steps", "10",
                                   "--pixels-per-step", "16", "--json", "--quiet", "--out-html", out)
    assert code == 0, stderr
    result = json.loads(stdout)
    assert set(result["aopc"]) == {"dtd", "gradient_x_input", "gradient", "random"}
    assert result["n_images"] == 100 and all(len(c) == 11 for c in result["curves"].values())
    assert result["aopc"]["dtd"] > result["aopc"]["random"]
    assert result["aopc"]["dtd"] >= result["aopc"]["gradient"]
    assert out.is_file()


def test_relevance_eval_bad_input(run_cli):
    code, _, stderr = run_cli("relevance-eval", CNN, "--steps", "0", "--json")
    assert code == 2 and "--steps" in stderr


def test_per_pixel_bounds_from_data_conserve(run_cli):
    code, stdout, stderr = run_cli("relevance", CNN, "--index", "5", "--bounds", "data", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["rules"]["layers.1"] == "zb[per-pixel bounds]"
    assert abs(result["relevance_sum"] - result["output"]) <= 1e-5 * abs(result["output"])


def test_figures_build_from_results():
    from interp.relevance.engine import bilinear_pair_relevance
    from interp.viz.relevance import (flipping_curves_figure, pair_relevance_figure, pixel_relevance_figure,
                                      relevance_png, token_relevance_figure)

    torch.manual_seed(0)
    model = BilinearClassifier(16, 3, d_hidden=5).eval()
    image = torch.rand(4, 4)
    pairs = bilinear_pair_relevance(model, image)
    assert len(pixel_relevance_figure(image, pairs.relevance.reshape(4, 4)).data) == 2
    row = pair_relevance_figure(pairs.pairs, (4, 4), pixel=5).data[0].z
    assert torch.allclose(torch.tensor(row, dtype=torch.float32).flatten(), pairs.pairs[5])
    assert pair_relevance_figure(pairs.pairs).data[0].z.shape == (16, 16)
    assert list(token_relevance_figure(["a", "b"], [0.5, -0.2]).data[0].y) == [0.5, -0.2]
    curves = flipping_curves_figure({"dtd": [3.0, 2.0], "random": [3.0, 2.9]}, 8, {"dtd": 0.5, "random": 0.05})
    assert [trace.name for trace in curves.data] == ["dtd (AOPC 0.500)", "random (AOPC 0.050)"]
    assert list(curves.data[0].x) == [0, 8]
    assert relevance_png(image, pairs.relevance.reshape(4, 4)).startswith(b"\x89PNG")


def test_train_cnn_on_digits_is_deterministic_and_explainable(run_cli, tmp_path):
    from safetensors.torch import load_file

    for name in ("a", "b"):
        code, stdout, stderr = run_cli("train", "cnn", "--dataset", "digits", "--out", tmp_path / name, "--epochs", "4", "--lr", "0.01",
                                       "--batch-size", "64", "--channels", "4", "8", "--kernel", "3", "--pool", "sum",
                                       "--threads", "1", "--quiet", "--json")
        assert code == 0, stderr
    assert json.loads(stdout)["test_accuracy"] > 0.5
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    code, stdout, stderr = run_cli("relevance", tmp_path / "a", "--index", "0", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert abs(result["relevance_sum"] - result["output"]) <= 1e-5 * abs(result["output"])
    code, _, stderr = run_cli("train", "cnn", "--dataset", "digits", "--out", tmp_path / "a", "--quiet")
    assert code == 2 and "exists and is not empty" in stderr


MLP = CHECKPOINTS / "fmnist-relu"


def test_data_bounds_on_shipped_mlp_match_the_zb_formula(run_cli):
    """--bounds data gives 28×28 bounds; the MLP's first layer reads 784 features (issue 14)."""
    from interp.data.images import load_image_dataset
    from interp.models.checkpoints import load_classifier

    index = 3
    code, stdout, stderr = run_cli("relevance", MLP, "--index", str(index), "--bounds", "data", "--top", "784",
                                   "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["rules"]["fc1"] == "zb[per-pixel bounds]" and result["rules"]["fc2"] == "lrp0"

    # Independent computation, in float64, straight from the matrices.
    model, _, _ = load_classifier(MLP)
    data = load_image_dataset("fashion-mnist")
    x = data.test.images[index].double().flatten()
    train = data.train.images.double().flatten(1)
    low, high = torch.minimum(train.amin(0), x), torch.maximum(train.amax(0), x)
    W1, b1 = model.fc1.weight.detach().double(), model.fc1.bias.detach().double()
    W2, b2 = model.fc2.weight.detach().double(), model.fc2.bias.detach().double()
    hidden = torch.relu(W1 @ x + b1)
    logits = W2 @ hidden + b2
    target = int(logits.argmax())
    assert result["target"] == target
    R_hidden = hidden * W2[target]  # LRP-0 on the output layer: a_j w_tj / z_t · z_t
    z = x[:, None] * W1.T - low[:, None] * W1.clamp(min=0).T - high[:, None] * W1.clamp(max=0).T  # (784, hidden)
    expected = (z / z.sum(0, keepdim=True) * R_hidden[None]).sum(1)

    got = torch.zeros(784, dtype=torch.float64)
    for pixel in result["top_pixels"]:
        got[pixel["pixel"]] = pixel["relevance"]
    assert len(result["top_pixels"]) == 784
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    # zᴮ conserves: the pixels carry all the hidden relevance, Σ_j a_j w_tj = logit − bias.
    assert result["relevance_sum"] == pytest.approx(float(logits[target] - b2[target]), rel=1e-5)
    assert abs(result["absorbed_by_layer"]["fc1"]) <= 1e-5 * abs(result["output"])


def test_zb_bounds_with_the_wrong_element_count_are_one_line_errors():
    from interp.errors import InterpError
    from interp.relevance.rules import ZB

    torch.manual_seed(0)
    layer = torch.nn.Linear(12, 3)
    x = torch.rand(2, 12)
    R = torch.rand(2, 3)
    # 3×4 bounds for a 12-feature input are reshaped: the same as flat bounds.
    low, high = -torch.rand(3, 4), 1 + torch.rand(3, 4)
    assert torch.equal(ZB(low, high).relevance(layer, x, R), ZB(low.flatten(), high.flatten()).relevance(layer, x, R))
    with pytest.raises(InterpError) as error:
        ZB(torch.zeros(5, 5), torch.ones(5, 5)).relevance(layer, x, R)
    assert "25 values" in str(error.value) and "12 values" in str(error.value) and "\n" not in str(error.value)
