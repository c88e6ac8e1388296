"""Training image classifiers on sklearn digits, the `train classifier`/`evaluate`/`eigen` commands, bad input."""

from __future__ import annotations

import json

import pytest
import torch

import interp.data.images as images_module
from interp.bilinear.analysis import class_eigen, truncation_accuracy
from interp.bilinear.core import classifier_weights
from interp.cli import main
from interp.data.images import load_digits
from interp.io import save_tensors
from interp.models.bilinear import count_parameters
from interp.models.checkpoints import load_classifier

TRAIN = ["train", "classifier", "--dataset", "digits", "--epochs", "15", "--hidden", "48", "--lr", "0.005",
         "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A bilinear and a ReLU digits classifier, trained through the CLI once for this module."""
    root = tmp_path_factory.mktemp("classifiers")
    for arch in ("bilinear", "relu"):
        assert main(TRAIN + ["--arch", arch, "--out", str(root / arch), "--json"]) == 0
    return root


def test_training_writes_a_complete_checkpoint(trained):
    folder = trained / "bilinear"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.85  # a 48-unit bilinear layer learns digits well
    assert metrics["command"].startswith("interp train classifier --dataset digits --arch bilinear")
    assert metrics["n_params"] > 0 and metrics["train_seconds"] > 0
    assert "git_commit" in metrics
    # no temporary folders left beside it
    assert not [p for p in trained.iterdir() if p.name.startswith(".")]


def test_relu_baseline_has_the_same_parameter_count(trained):
    bilinear, _, _ = load_classifier(trained / "bilinear")
    relu, _, relu_metrics = load_classifier(trained / "relu")
    assert relu.arch == "relu"
    n_b, n_r = count_parameters(bilinear), count_parameters(relu)
    assert abs(n_b - n_r) <= 64 + 10 + 1  # one hidden unit's worth
    assert relu_metrics["test_accuracy"] >= 0.8


def test_evaluate_recomputes_accuracy(trained, run_cli):
    code, out, err = run_cli("evaluate", trained / "bilinear", "--json")
    assert code == 0, err
    result = json.loads(out)
    recorded = json.loads((trained / "bilinear" / "metrics.json").read_text())["test_accuracy"]
    assert result["test_accuracy"] == pytest.approx(recorded, abs=1e-9)
    # Independently of the code's accuracy function: the weights from the safetensors file, the forward pass
    # written out by hand, argmax against the labels.
    import torch
    from safetensors.torch import load_file

    from interp.data.images import load_image_dataset

    config = json.loads((trained / "bilinear" / "config.json").read_text())
    w = load_file(str(trained / "bilinear" / "model.safetensors"))
    test = load_image_dataset(config["dataset"]).test
    x = test.images.reshape(len(test.images), -1).double()
    keys = sorted(w)
    W, V, P = (w[k].double() for k in (next(k for k in keys if k.endswith(name)) for name in ("W", "V", "head.weight")))
    if x.shape[1] != W.shape[1]:    # the layer reads [x, 1]
        x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    logits = ((x @ W.T) * (x @ V.T)) @ P.T
    if any(k.endswith("head.bias") for k in keys):
        logits = logits + w[next(k for k in keys if k.endswith("head.bias"))].double()
    by_hand = float((logits.argmax(1) == test.labels).double().mean())
    assert result["test_accuracy"] == pytest.approx(by_hand, abs=1e-9)


def test_same_seed_gives_the_same_checkpoint(tmp_path):
    args = ["train", "classifier", "--dataset", "digits", "--epochs", "2", "--hidden", "16", "--quiet", "--seed", "7"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert main(args[:-1] + ["8", "--out", str(tmp_path / "c")]) == 0
    a, b, c = ((tmp_path / x / "model.safetensors").read_bytes() for x in "abc")
    assert a == b and a != c


def test_eigen_command(trained, run_cli, tmp_path):
    html = tmp_path / "fig.html"
    code, out, err = run_cli("eigen", trained / "bilinear", "--json", "--contrast", "3,5", "--mask", "3",
                             "--hosvd", "--out-html", html)
    assert code == 0, err
    report = json.loads(out)
    assert set(report["truncation"]) == {"1", "2", "5", "10", "20", "50"}
    assert len(report["classes"]) == 10
    for c in report["classes"]:
        assert len(c["top_eigenvalues"]) == 20
        assert 1.0 <= c["effective_rank"] <= 64
        magnitudes = [abs(v) for v in c["top_eigenvalues"]]
        assert magnitudes == sorted(magnitudes, reverse=True)
    # k = 50 of 64 dimensions: the small tail barely matters; the full model is the reference
    assert report["truncation"]["50"] == pytest.approx(report["full_accuracy"], abs=0.01)
    assert report["direction"]["label"] == "3-5"
    mask = report["mask"]
    # the eigenvector mask costs far more accuracy than the same values in a random order
    assert mask["masked_accuracy"] < mask["permuted_accuracy"] - 0.1
    assert mask["masked_to_target"] > mask["permuted_to_target"]
    assert html.is_file() and "plotly" in html.read_text()[:100000]


def test_truncation_at_full_rank_reproduces_the_model(trained):
    model, _, _ = load_classifier(trained / "bilinear")
    data = load_digits()
    weights = classifier_weights(model)
    eig = class_eigen(weights)
    x = weights.augment(data.test.flat)
    acc = truncation_accuracy(eig, x, data.test.labels, ks=(64,))["64"]
    full = (model(data.test.images).argmax(-1) == data.test.labels).float().mean().item()
    assert acc == pytest.approx(full, abs=1e-6)
    # demeaned logits (e_c - 1/n) give the same predictions, hence the same accuracy at full rank
    demeaned = truncation_accuracy(class_eigen(weights, demean=True), x, data.test.labels, ks=(64,))["64"]
    assert demeaned == pytest.approx(full, abs=1e-6)


def test_rank_penalty_concentrates_each_class_spectrum(tmp_path):
    """Training with --rank-penalty leaves less eigenvalue mass outside each class's top k than the same
    run without it, and its top-k truncation stays closer to the full model."""
    data = load_digits()
    tails, gaps = {}, {}
    for penalty in ("0", "0.05"):
        out = tmp_path / f"p{penalty}"
        assert main(TRAIN + ["--out", str(out), "--rank-penalty", penalty, "--rank-keep", "3", "--rank-every", "2"]) == 0
        model, _, metrics = load_classifier(out)
        if penalty != "0":
            assert "--rank-penalty 0.05 --rank-keep 3 --rank-every 2" in metrics["command"]
        eig = class_eigen(classifier_weights(model))
        values = eig.eigenvalues.abs()
        tails[penalty] = (values[:, 3:].sum() / values.sum()).item()
        acc = truncation_accuracy(eig, classifier_weights(model).augment(data.test.flat), data.test.labels, ks=(3, 64))
        gaps[penalty] = acc["64"] - acc["3"]
    assert tails["0.05"] < 0.5 * tails["0"]
    assert gaps["0.05"] <= gaps["0"]


def test_rank_penalty_needs_a_bilinear_model(run_cli, tmp_path):
    code, out, err = run_cli(*TRAIN, "--arch", "relu", "--out", str(tmp_path / "r"), "--rank-penalty", "0.1")
    _one_line_error(code, out, err)
    assert not (tmp_path / "r").exists()


# ---- bad input: one line on stderr, exit 2, nothing written ----

def _one_line_error(code, out, err):
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("interp: error:"), err
    assert "Traceback" not in err


def test_missing_dataset(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv("INTERP_DATA_DIR", raising=False)
    (tmp_path / "nothing-here").mkdir()           # a folder without the files
    code, out, err = run_cli("train", "classifier", "--dataset", "fashion-mnist", "--out", tmp_path / "m",
                             "--data-dir", tmp_path / "nothing-here")
    _one_line_error(code, out, err)
    assert "nothing-here" in err and "no-debian" in err and "apt-get install dataset-fashion-mnist" in err
    assert not (tmp_path / "m").exists()
    # A --data-dir that does not exist is refused as such, not replaced by another copy of the data.
    code, out, err = run_cli("train", "classifier", "--dataset", "fashion-mnist", "--out", tmp_path / "m",
                             "--data-dir", tmp_path / "typo")
    _one_line_error(code, out, err)
    assert "typo is not a folder" in err


def test_refuses_to_overwrite(trained, run_cli):
    before = (trained / "relu" / "model.safetensors").read_bytes()
    code, out, err = run_cli(*TRAIN, "--arch", "relu", "--out", trained / "relu", "--epochs", "1")
    _one_line_error(code, out, err)
    assert "--force" in err
    assert (trained / "relu" / "model.safetensors").read_bytes() == before


def test_force_replaces_atomically(tmp_path, run_cli):
    out_dir = tmp_path / "m"
    args = ["train", "classifier", "--dataset", "digits", "--epochs", "1", "--hidden", "8", "--quiet", "--out", out_dir]
    assert run_cli(*args)[0] == 0
    assert run_cli(*args, "--seed", "3", "--force")[0] == 0
    assert json.loads((out_dir / "metrics.json").read_text())["options"]["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_eigen_on_a_relu_checkpoint(trained, run_cli):
    _one_line_error(*run_cli("eigen", trained / "relu", "--json"))


def test_bad_direction(trained, run_cli):
    code, out, err = run_cli("eigen", trained / "bilinear", "--direction", "Hat")
    _one_line_error(code, out, err)
    assert "Hat" in err and out == ""


@pytest.mark.parametrize("argv, says", [
    (["--direction", "3-5"], "use --contrast A,B"),          # a difference is spelt --contrast, as everywhere
    (["--contrast", "3"], "two names separated by a comma"),
    (["--contrast", "3,Hat"], "Hat"),
    (["--contrast", "3-5,2"], "one class on each side"),
    (["--contrast", "3,3"], "two different names"),
    (["--contrast", "3,03"], "name the same one"),            # two spellings of one class: a zero direction
    (["--direction", "3", "--contrast", "3,5"], "not both"),
])
def test_contrasts_are_spelt_with_contrast(trained, run_cli, argv, says):
    code, out, err = run_cli("eigen", trained / "bilinear", *argv)
    lines = err.strip().splitlines()
    # one line, from the parser ("interp eigen: error: argument --contrast: ...") or from the command
    assert code == 2 and out == "" and len(lines) == 1 and " error: " in lines[0] and says in lines[0], err


def test_missing_checkpoint(run_cli, tmp_path):
    _one_line_error(*run_cli("evaluate", tmp_path / "absent", "--json"))
    _one_line_error(*run_cli("eigen", tmp_path / "absent", "--json"))


def test_corrupt_checkpoint(trained, run_cli, tmp_path):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for name in ("config.json", "metrics.json"):
        (bad / name).write_bytes((trained / "bilinear" / name).read_bytes())
    (bad / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    _one_line_error(*run_cli("evaluate", bad, "--json"))
    _one_line_error(*run_cli("eigen", bad, "--json"))


def test_mismatched_checkpoint(trained, run_cli, tmp_path):
    bad = tmp_path / "mismatch"
    bad.mkdir()
    config = json.loads((trained / "bilinear" / "config.json").read_text())
    config["model"]["d_hidden"] = 99
    (bad / "config.json").write_text(json.dumps(config))
    (bad / "model.safetensors").write_bytes((trained / "bilinear" / "model.safetensors").read_bytes())
    code, out, err = run_cli("eigen", bad, "--json")
    _one_line_error(code, out, err)
    assert "do not match" in err
    # weights of the right names but wrong shapes
    other = tmp_path / "shapes"
    other.mkdir()
    (other / "config.json").write_text((trained / "bilinear" / "config.json").read_text())
    save_tensors(other / "model.safetensors", {"bilinear.W": torch.zeros(3, 3), "bilinear.V": torch.zeros(3, 3),
                                              "head.weight": torch.zeros(10, 3)})
    _one_line_error(*run_cli("evaluate", other, "--json"))


@pytest.mark.parametrize("demean", [False, True])
def test_truncation_accuracy_at_small_k_equals_a_hand_eigendecomposition(trained, demean):
    """README's truncation figures: accuracy of the model whose class-c logit keeps only the top-k eigencomponents
    (by |λ|) of Q_c = ½ Σ_h P_ch (w_h v_hᵀ + v_h w_hᵀ), here built from the weights and split with `eigh`."""
    model, _, _ = load_classifier(trained / "bilinear")
    model = model.double()
    data = load_digits()
    x = data.test.flat.double()
    W, V, P = model.bilinear.W.detach(), model.bilinear.V.detach(), model.head.weight.detach()
    if model.embed is not None:  # fold the embedding into the bilinear layer: W' = [W_x E, w_1]
        E = model.embed.weight.detach()
        n = E.shape[0]
        W = torch.cat([W[:, :n] @ E, W[:, n:]], 1)
        V = torch.cat([V[:, :n] @ E, V[:, n:]], 1)
    if W.shape[1] == x.shape[1] + 1:  # the layer reads [x, 1]
        x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    n_classes = P.shape[0]
    U = torch.eye(n_classes, dtype=torch.float64) - (1.0 / n_classes if demean else 0.0)
    Q = 0.5 * (torch.einsum("uc,ch,hi,hj->uij", U, P, W, V) + torch.einsum("uc,ch,hi,hj->uij", U, P, V, W))
    values, vectors = torch.linalg.eigh(Q)
    order = values.abs().argsort(dim=1, descending=True)
    values = values.gather(1, order)
    vectors = vectors.gather(2, order[:, None, :].expand_as(vectors))
    projections = torch.einsum("nd,cdr->ncr", x, vectors) ** 2 * values[None]
    ks = (1, 2, 5, 10)
    by_hand = {str(k): float((projections[:, :, :k].sum(-1).argmax(1) == data.test.labels).double().mean()) for k in ks}
    weights = classifier_weights(model)
    got = truncation_accuracy(class_eigen(weights, demean=demean), weights.augment(data.test.flat.double()),
                              data.test.labels, ks=ks)
    assert got == pytest.approx(by_hand, abs=1e-12)
    full = float((model(data.test.images.double()).argmax(-1) == data.test.labels).double().mean())
    assert by_hand["1"] < full  # the figures are not all the full accuracy: truncation costs something at k = 1


def test_evaluate_recomputes_the_relu_baseline_accuracy_by_hand(trained, run_cli):
    """README's equal-parameter ReLU accuracy: `interp evaluate` against Linear → ReLU → Linear written out from
    the safetensors file, argmax against the labels."""
    from safetensors.torch import load_file

    code, out, err = run_cli("evaluate", trained / "relu", "--json")
    assert code == 0, err
    w = {k.split(".", 1)[-1] if k.startswith("model.") else k: v.double()
         for k, v in load_file(str(trained / "relu" / "model.safetensors")).items()}
    test = load_digits().test
    x = test.images.reshape(len(test.images), -1).double()
    logits = torch.relu(x @ w["fc1.weight"].T + w["fc1.bias"]) @ w["fc2.weight"].T + w["fc2.bias"]
    by_hand = float((logits.argmax(1) == test.labels).double().mean())
    assert json.loads(out)["test_accuracy"] == pytest.approx(by_hand, abs=1e-9)


def test_eigenvector_mask_accuracies_equal_a_hand_construction(trained):
    """README's eigenvector-mask figures (accuracy clean / mask / permuted mask): the target's 3 largest positive
    eigenvectors of Q_t from `eigh` on the weights, the rows of pinv, signed by the target images' mean projection,
    summed and scaled to norm 3, added to every other test image; accuracies from the model's own forward pass."""
    from interp.bilinear.analysis import adversarial_mask

    model, _, _ = load_classifier(trained / "bilinear")
    model = model.double()
    data = load_digits()
    images, labels = data.test.images.double(), data.test.labels
    target = 3
    W, V, P = model.bilinear.W.detach(), model.bilinear.V.detach(), model.head.weight.detach()
    assert model.embed is None
    Q = 0.5 * (torch.einsum("h,hi,hj->ij", P[target], W, V) + torch.einsum("h,hi,hj->ij", P[target], V, W))
    values, vectors = torch.linalg.eigh(Q)  # ascending: the largest positive values are last
    top = vectors[:, values.argsort(descending=True)[:3]].T[:, :64]  # pixel part (a bias coordinate dropped)
    flat = images.reshape(len(images), -1)
    rows = torch.linalg.pinv(top).T
    signs = torch.sign((flat[labels == target] @ top.T).mean(0))
    delta = (signs[:, None] * rows).sum(0)
    delta = 3.0 * delta / delta.norm()
    permuted = delta[torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    x, y = flat[labels != target], labels[labels != target]
    with torch.no_grad():
        def accuracy(batch):
            return float((model(batch.reshape(-1, 8, 8)).argmax(-1) == y).double().mean())

        expected = (accuracy(x), accuracy(x + delta), accuracy(x + permuted))
    result = adversarial_mask(classifier_weights(model), model, images, labels, target, n_vectors=3, norm=3.0)
    assert torch.allclose(torch.tensor(result.mask, dtype=torch.float64), delta, rtol=1e-9, atol=1e-12)
    got = (result.clean_accuracy, result.masked_accuracy, result.permuted_accuracy)
    assert got == pytest.approx(expected, rel=1e-7)  # the package's means are float32
    assert expected[1] < expected[0]  # the mask does cost accuracy


def test_shipped_cnn_accuracy_equals_a_hand_convolution_forward():
    """README's CNN accuracy is `interp evaluate`'s `accuracy`; here on the first 2,000 Fashion-MNIST test images
    against conv → ReLU → 2×2 mean → conv → ReLU → 2×2 mean → linear written out from `model.safetensors`."""
    import torch.nn.functional as F
    from safetensors.torch import load_file

    from interp.data.images import ImageSplit, load_image_dataset
    from interp.train.classifier import accuracy
    from tests.conftest import CHECKPOINTS

    folder = CHECKPOINTS / "fmnist-cnn"
    test = load_image_dataset("fashion-mnist").test
    split = ImageSplit(test.images[:2000], test.labels[:2000])
    w = {k: v.double() for k, v in load_file(str(folder / "model.safetensors")).items()}
    x = split.images.double()[:, None]
    h = F.avg_pool2d(F.conv2d(x, w["layers.1.weight"], padding=2).clamp(min=0), 2)
    h = F.avg_pool2d(F.conv2d(h, w["layers.4.weight"], padding=2).clamp(min=0), 2)
    logits = h.flatten(1) @ w["layers.8.weight"].T
    by_hand = float((logits.argmax(1) == split.labels).double().mean())
    model, _, _ = load_classifier(folder)
    with torch.no_grad():
        assert accuracy(model, split) == pytest.approx(by_hand, abs=1e-12)
    assert by_hand > 0.8


# ---- random-translation augmentation (--shift) ----

def test_shift_images_equals_a_hand_shift():
    """Each image moves by its own (dy, dx), zero-filled and not wrapped, as written out by hand."""
    from interp.train.classifier import shift_images

    a = torch.arange(1.0, 17.0).reshape(4, 4)  # 1..16, row by row
    b = -a
    # a: down 1, left 2; b: up 2, right 1
    out = shift_images(torch.stack([a.flatten(), b.flatten()]), 4, torch.tensor([1, -2]), torch.tensor([-2, 1]))
    hand_a = torch.tensor([[0., 0., 0., 0.],
                           [3., 4., 0., 0.],
                           [7., 8., 0., 0.],
                           [11., 12., 0., 0.]])
    hand_b = -torch.tensor([[0., 9., 10., 11.],
                            [0., 13., 14., 15.],
                            [0., 0., 0., 0.],
                            [0., 0., 0., 0.]])
    assert torch.equal(out[0].reshape(4, 4), hand_a)
    assert torch.equal(out[1].reshape(4, 4), hand_b)
    # a real digit, shifted right by 3 with the definition out[i, j] = x[i, j - 3] (0 outside)
    digit = load_digits().train.images[0].reshape(8, 8)
    hand = torch.zeros(8, 8)
    for i in range(8):
        for j in range(3, 8):
            hand[i, j] = digit[i, j - 3]
    assert torch.equal(shift_images(digit.reshape(1, 64), 8, torch.tensor([0]), torch.tensor([3]))[0], hand.flatten())
    # no offset: unchanged
    assert torch.equal(shift_images(digit.reshape(1, 64), 8, torch.tensor([0]), torch.tensor([0]))[0], digit.flatten())


def test_random_shift_draws_offsets_in_range_from_the_generator():
    from interp.train.classifier import random_shift, shift_images

    x = torch.rand(500, 784)
    out = random_shift(x, 2, torch.Generator().manual_seed(3))
    offsets = torch.randint(-2, 3, (500, 2), generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, shift_images(x, 28, offsets[:, 0], offsets[:, 1]))  # side 28 from the input size
    assert set(offsets.flatten().tolist()) == {-2, -1, 0, 1, 2}
    assert torch.equal(out, random_shift(x, 2, torch.Generator().manual_seed(3)))  # reproducible


def test_random_shift_with_a_probability_moves_that_share_and_leaves_the_rest():
    from interp.train.classifier import random_shift, shift_images

    x = torch.rand(2000, 64)
    out = random_shift(x, 1, torch.Generator().manual_seed(5), probability=0.3)
    g = torch.Generator().manual_seed(5)  # the same draws by hand: offsets, then one uniform per image
    offsets = torch.randint(-1, 2, (2000, 2), generator=g)
    moved = torch.rand(2000, 1, generator=g) < 0.3
    kept = offsets * moved
    assert torch.equal(out, shift_images(x, 8, kept[:, 0], kept[:, 1]))
    assert torch.equal(out[~moved[:, 0]], x[~moved[:, 0]])  # images not drawn stay where they were
    assert abs(moved.float().mean().item() - 0.3) < 0.035  # 3.5 binomial standard errors at n = 2000


def test_shift_is_recorded_and_reproducible(tmp_path):
    args = ["train", "classifier", "--dataset", "digits", "--epochs", "2", "--hidden", "16", "--quiet", "--seed", "7"]
    for name, extra in (("a", ["--shift", "1"]), ("b", ["--shift", "1"]), ("c", [])):
        assert main(args + extra + ["--out", str(tmp_path / name)]) == 0
    a, b, c = ((tmp_path / x / "model.safetensors").read_bytes() for x in "abc")
    assert a == b and a != c
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["options"]["shift"] == 1 and metrics["command"].endswith("--shift 1")
    assert "--shift" not in json.loads((tmp_path / "c" / "metrics.json").read_text())["command"]
    assert main(args + ["--shift", "1", "--shift-prob", "0.5", "--out", str(tmp_path / "d")]) == 0
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert metrics["options"]["shift_prob"] == 0.5 and metrics["command"].endswith("--shift 1 --shift-prob 0.5")
    assert (tmp_path / "d" / "model.safetensors").read_bytes() not in (a, c)


def test_negative_shift_is_refused_in_one_line(run_cli, tmp_path):
    code, out, err = run_cli(*TRAIN, "--out", tmp_path / "s", "--shift", "-1")
    lines = [l for l in err.strip().splitlines() if l]
    assert code == 2 and out == "" and len(lines) == 1, err
    assert "argument --shift: must be an integer ≥ 0, got -1" in lines[0]
    assert not (tmp_path / "s").exists()
    for bad in ("0", "1.5"):
        code, out, err = run_cli(*TRAIN, "--out", tmp_path / "s", "--shift", "1", "--shift-prob", bad)
        lines = [l for l in err.strip().splitlines() if l]
        assert code == 2 and out == "" and len(lines) == 1, err
        assert f"argument --shift-prob: must be a finite number > 0 and ≤ 1, got {bad}" in lines[0]
        assert not (tmp_path / "s").exists()
