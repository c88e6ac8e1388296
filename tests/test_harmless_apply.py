"""Applications: hide an image in another, tell two models apart, and the `interp harmless` command."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data.images import load_digits
from interp.harmless.apply import hide_image, identify_model
from interp.harmless.layers import harmless_space
from interp.models.checkpoints import save_classifier
from interp.train.classifier import TrainOptions, train_classifier
from interp.viz.harmless import (basis_images_figure, hidden_image_figure, hidden_logits_figure,
                                 singular_values_figure)

# Two bilinear models with the same recipe and different seeds; hidden 16 → [W; V] is 32 × 64, so each
# has a 32-dimensional exact null space; and a ReLU baseline sized like a hidden-40 bilinear model
# (73 units > 64 inputs: no exact null space).


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def models(digits):
    out = {}
    for name, arch, hidden, seed in (("a", "bilinear", 16, 0), ("b", "bilinear", 16, 1), ("relu", "relu", 40, 0)):
        options = TrainOptions(dataset="digits", arch=arch, epochs=4, hidden=hidden, batch_size=64, lr=1e-2, seed=seed)
        model, result = train_classifier(digits, options, quiet=True)
        assert result.test_accuracy > 0.8
        out[name] = model
    return out


@pytest.fixture(scope="module")
def folders(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("harmless")
    return {name: save_classifier(root / name, model, "digits") for name, model in models.items()}


def test_hide_image_keeps_logits_and_recovers_secret(models, digits):
    model = models["a"]
    space = harmless_space(model, image_shape=(8, 8))
    assert space.exact and space.dimension == 32
    carrier, secret = digits.test.images[0], digits.test.images[1]
    hidden = hide_image(model, space, carrier, secret)
    assert [s.scale for s in hidden.scales] == [10.0, 100.0]
    for s in hidden.scales:
        assert s.relative_logit_change <= 1e-4 and s.prediction_unchanged
        # P(result) = secret part + P(carrier), and ‖P(carrier)‖ ≤ ‖carrier‖.
        assert s.recovered_cosine >= 1 - 1 / s.scale**2
        assert s.recovered_error_known_carrier <= 1e-10
        result = torch.tensor(s.result_image, dtype=torch.float64)
        assert abs(float((result - carrier.double()).norm() / carrier.double().norm()) - s.scale) < 1e-6
    assert 0 < hidden.secret_kept <= 1
    # The same secret added without projecting it does change the prediction's logits.
    raw = carrier.double() + 10 * carrier.norm() * secret.double() / secret.norm()
    with torch.no_grad():
        moved = (model.double()(raw[None]) - model.double()(carrier.double()[None])).abs().max()
    model.float()
    assert float(moved) > 1e-2 * hidden.max_abs_logit
    for fig in (hidden_image_figure(hidden), hidden_logits_figure(hidden, digits.class_names),
                singular_values_figure(space), basis_images_figure(space)):
        assert fig.to_dict()["data"]


def test_hidden_image_figures_equal_a_hand_null_space_construction(models, digits):
    """README's hiding figures (relative Δlogit at 100×, prediction unchanged, recovered cosine): the null space of
    the stacked bilinear weights [W; V] from an SVD, the result image, its logits by the model's forward pass and
    the cosine of its projection with the projected secret, all by hand in float64."""
    model = models["a"]
    hidden = hide_image(model, harmless_space(model, image_shape=(8, 8)), digits.test.images[0], digits.test.images[1])
    carrier, secret = digits.test.images[0].double().flatten(), digits.test.images[1].double().flatten()
    M = torch.cat([model.bilinear.W.detach(), model.bilinear.V.detach()]).double()[:, :64]  # pixel columns
    _, S, Vh = torch.linalg.svd(M)
    rank = int((S > 1e-10 * S[0]).sum())
    assert rank == 32
    N = Vh[rank:]  # rows: an orthonormal basis of the null space

    def project(v):
        return N.T @ (N @ v)

    unit = project(secret) / project(secret).norm()
    run = model.double()
    with torch.no_grad():
        before = run(carrier.reshape(1, 8, 8))[0]
        for row in hidden.scales:
            result = carrier + row.scale * carrier.norm() * unit
            reported = torch.tensor(row.result_image, dtype=torch.float64).flatten()
            assert torch.allclose(reported, result, rtol=0, atol=1e-12 * float(result.norm()))
            after = run(result.reshape(1, 8, 8))[0]
            relative = float((after - before).abs().max() / before.abs().max())
            assert relative <= 1e-12 and row.relative_logit_change <= 1e-12
            assert int(after.argmax()) == int(before.argmax()) and row.prediction_unchanged
            cosine = float(project(result) @ unit / project(result).norm())
            assert row.recovered_cosine == pytest.approx(cosine, rel=1e-12)
            assert cosine < 1.0 - 1e-9  # the carrier's own component is not zero: a real, not a trivial, cosine
    model.float()


def test_model_identification_between_seeds(models, digits):
    images = digits.test.images[:50]
    space_a = harmless_space(models["a"], image_shape=(8, 8))
    result = identify_model(models["a"], models["b"], space_a, images, magnitude=10.0)
    assert result.max_relative_change_a <= 1e-4 and result.predictions_changed_a == 0
    assert result.mean_relative_change_b > 1e-2 and result.predictions_changed_b > 0
    assert result.identifies
    # And the other way round.
    space_b = harmless_space(models["b"], image_shape=(8, 8))
    back = identify_model(models["b"], models["a"], space_b, images, magnitude=10.0)
    assert back.identifies


def test_model_identification_figures_equal_a_hand_computation(models, digits):
    """README's identification figures (predictions changed on A / on B): δ = the seeded normal vector projected onto
    A's null space (from an SVD of [W; V]), scaled to 10·‖x‖; both models' logits by their own forward passes."""
    images = digits.test.images[:50]
    result = identify_model(models["a"], models["b"], harmless_space(models["a"], image_shape=(8, 8)), images,
                            magnitude=10.0)
    a, b = models["a"], models["b"]
    M = torch.cat([a.bilinear.W.detach(), a.bilinear.V.detach()]).double()[:, :64]
    _, S, Vh = torch.linalg.svd(M)
    N = Vh[int((S > 1e-10 * S[0]).sum()):]
    r = torch.randn(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d = N.T @ (N @ r)
    d = d / d.norm()
    x = images.double().reshape(50, 64)
    perturbed = x + 10.0 * x.norm(dim=1, keepdim=True) * d
    changed, relative = [], []
    with torch.no_grad():
        for model in (a, b):
            run = model.double()
            before, after = run(x.reshape(50, 8, 8)), run(perturbed.reshape(50, 8, 8))
            changed.append(int((before.argmax(1) != after.argmax(1)).sum()))
            relative.append((after - before).abs().amax(1) / before.abs().amax(1))
            model.float()
    assert (result.predictions_changed_a, result.predictions_changed_b) == tuple(changed)
    assert changed[0] == 0 and changed[1] > 0
    assert float(relative[0].max()) <= 1e-12 and result.max_relative_change_a <= 1e-12
    assert result.mean_relative_change_b == pytest.approx(float(relative[1].mean()), rel=1e-9)


def test_cli_exact_space_json(run_cli, folders, models):
    code, out, err = run_cli("harmless", folders["a"], "--index", "3", "--magnitude", "100", "--json")
    assert code == 0, err
    result = json.loads(out)
    for key in ("dimension", "exact", "magnitude", "max_abs_logit_change", "max_abs_logit"):
        assert key in result
    stacked = torch.cat([models["a"].bilinear.W, models["a"].bilinear.V]).detach().double()
    assert result["exact"] is True and result["dimension"] == 64 - int(torch.linalg.matrix_rank(stacked))
    assert result["magnitude"] == 100.0 and result["dtype"] == "float64"
    assert result["max_abs_logit_change"] <= 1e-9 * result["max_abs_logit"]
    assert result["prediction_before"] == result["prediction_after"]


def test_cli_secret_and_other_model(run_cli, folders, tmp_path):
    page = tmp_path / "harmless.html"
    code, out, err = run_cli("harmless", folders["a"], "--secret", "5", "--other", folders["b"], "--n-images", "20",
                             "--magnitude", "10", "--out-html", page, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["html"] == str(page) and page.read_text().count("plotly-graph-div") >= 5
    assert [s["scale"] for s in result["secret"]["scales"]] == [10.0, 100.0]
    assert all(s["relative_logit_change"] <= 1e-4 for s in result["secret"]["scales"])
    assert result["other"]["identifies"] is True and result["other"]["n_inputs"] == 20


def test_cli_relu_model_exact_empty_and_local_space(run_cli, folders, models):
    code, out, err = run_cli("harmless", folders["relu"], "--json", "--approx-dim", "4")
    assert code == 0, err
    result = json.loads(out)
    assert result["layers"] == ["fc1", "fc1.relu"]
    assert result["exact"] is False and result["null_dimension"] == 0 and result["dimension"] == 4
    assert "not above the rank" in result["note"]
    assert result["max_abs_logit_change"] > 1e-4 * result["max_abs_logit"]  # measured, and not harmless
    code, out, err = run_cli("harmless", folders["relu"], "--layer", "fc1.relu", "--magnitude", "1e-6", "--json")
    local = json.loads(out)
    assert code == 0 and local["kind"] == "relu-local" and local["exact"] is True
    assert local["valid_magnitude"] > 1e-6 and local["pattern_holds"] is True
    assert local["max_abs_logit_change"] <= 1e-10 * local["max_abs_logit"]
    bound = local["valid_magnitude"]
    code, out, err = run_cli("harmless", folders["relu"], "--layer", "fc1.relu", "--magnitude", str(3 * bound), "--json")
    beyond = json.loads(out)
    assert beyond["pattern_holds"] is False and beyond["max_abs_logit_change"] > 1e-8 * beyond["max_abs_logit"]


@pytest.mark.parametrize("args, words", [
    (["--layer", "nope"], "no layer 'nope'"),
    (["--index", "100000"], "out of range"),
    (["--index", "-1"], "must be an integer ≥ 0"),
    (["--secret", "100000"], "out of range"),
])
def test_cli_bad_input_one_line_exit_2(run_cli, folders, args, words):
    code, out, err = run_cli("harmless", folders["a"], *args, "--json")
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value, wanted", [
    ("--magnitude", "nan", "must be a finite number > 0"),
    ("--magnitude", "inf", "must be a finite number > 0"),
    ("--magnitude", "-1", "must be a finite number > 0"),
    ("--magnitude", "0", "must be a finite number > 0"),
    ("--magnitude", "big", "must be a finite number > 0"),
    ("--rtol", "nan", "must be a finite number > 0 and < 1"),
    ("--rtol", "-0.1", "must be a finite number > 0 and < 1"),
    ("--rtol", "0", "must be a finite number > 0 and < 1"),
    ("--rtol", "1", "must be a finite number > 0 and < 1"),
    ("--rtol", "inf", "must be a finite number > 0 and < 1"),
])
def test_cli_refuses_nan_and_out_of_range_magnitude_and_rtol(run_cli, folders, tmp_path, flag, value, wanted):
    """NaN or ∞ gave a δ of NaNs reported as `exact: true`; rtol ≥ 1 counted every direction as null."""
    out, html = tmp_path / "basis.safetensors", tmp_path / "page.html"
    code, stdout, err = run_cli("harmless", folders["a"], flag, value, "--json", "--out", out, "--out-html", html)
    assert code == 2 and stdout == "" and "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line]
    # Exactly one error line naming the flag.
    assert len(lines) == 1 and lines[0].startswith(f"interp harmless: error: argument {flag}: {wanted}"), err
    assert not out.exists() and not html.exists()


def test_cli_small_positive_magnitude_and_rtol_are_accepted(run_cli, folders):
    code, stdout, err = run_cli("harmless", folders["a"], "--magnitude", "0.5", "--rtol", "1e-6", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["magnitude"] == 0.5 and result["exact"] is True
    assert result["prediction_after"] == result["prediction_before"]
    assert result["max_abs_logit_change"] <= 1e-10 * result["max_abs_logit"]


def test_cli_not_a_checkpoint(run_cli, tmp_path):
    code, out, err = run_cli("harmless", tmp_path / "missing", "--json")
    assert code == 2 and len(err.strip().splitlines()) == 1


SHIPPED = __import__("pathlib").Path(__file__).resolve().parents[1] / "checkpoints"


def test_cli_shipped_embedding_models_hide_and_identify(run_cli):
    """The shipped pair fmnist-bilinear-embed64-s0/-s1 (same recipe, seeds 0 and 1) on Fashion-MNIST."""
    a, b = SHIPPED / "fmnist-bilinear-embed64-s0", SHIPPED / "fmnist-bilinear-embed64-s1"
    code, out, err = run_cli("harmless", a, "--index", "0", "--secret", "1", "--other", b, "--n-images", "50",
                             "--magnitude", "100", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["layer"] == "embed" and result["exact"] is True and result["dimension"] == 784 - 64
    assert result["max_abs_logit_change"] <= 1e-9 * result["max_abs_logit"]
    assert all(s["relative_logit_change"] <= 1e-4 and s["prediction_unchanged"] for s in result["secret"]["scales"])
    assert result["other"]["identifies"] is True and result["other"]["predictions_changed_b"] > 0
    code, out, err = run_cli("harmless", a, "--other", SHIPPED / "fmnist-cnn", "--json")
    assert code == 0, err  # same dataset, another architecture: also told apart
    assert json.loads(out)["other"]["identifies"] is True


def test_cli_saves_the_basis(run_cli, folders, tmp_path):
    from safetensors.torch import load_file

    code, out, err = run_cli("harmless", folders["a"], "--out", tmp_path / "space.safetensors", "--json")
    assert code == 0, err
    saved = load_file(str(tmp_path / "space.safetensors"))
    basis = saved["basis"]
    assert basis.shape == (64, json.loads(out)["dimension"])
    assert torch.allclose(basis.T @ basis, torch.eye(basis.shape[1], dtype=basis.dtype), atol=1e-10)


def test_cli_other_model_of_another_dataset(run_cli, folders):
    code, out, err = run_cli("harmless", folders["a"], "--other", SHIPPED / "fmnist-cnn", "--json")
    assert code == 2 and out == "" and "same dataset" in err and len(err.strip().splitlines()) == 1
