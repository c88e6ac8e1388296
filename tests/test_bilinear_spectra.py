"""Readability measures of bilinear class spectra: DCT smoothness, effective rank, top-k truncation accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from interp.bilinear.analysis import dct_matrix, low_frequency_share, spectrum_summary
from interp.models.bilinear import BilinearClassifier


def test_dct_matrix_is_orthonormal_and_matches_scipy():
    C = dct_matrix(28)
    assert torch.allclose(C @ C.T, torch.eye(28, dtype=C.dtype), atol=1e-12)
    x = np.random.default_rng(0).normal(size=28)
    assert np.allclose(C.numpy() @ x, scipy.fft.dct(x, type=2, norm="ortho"))
    # By hand for n = 2: rows [1, 1]/√2 and [cos(π/4), cos(3π/4)] = [1, −1]/√2.
    s = 1 / math.sqrt(2)
    assert torch.allclose(dct_matrix(2), torch.tensor([[s, s], [s, -s]], dtype=torch.float64), atol=1e-15)


def test_low_frequency_share_by_hand():
    # Constant image: all energy in the (0, 0) coefficient.
    assert low_frequency_share(torch.full((28, 28), 3.0)).item() == pytest.approx(1.0, abs=1e-12)
    # Checkerboard (−1)^(i+j): every coefficient with a frequency below 7 is (almost) zero.
    i = torch.arange(28)
    checker = (-1.0) ** (i[:, None] + i[None, :])
    assert low_frequency_share(checker).item() < 1e-3
    # 2 × 2 with a single 1 in the corner: the four coefficients are all ±1/2, so cutoff 1 keeps 1/4.
    corner = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert low_frequency_share(corner, cutoff=1).item() == pytest.approx(0.25, abs=1e-12)
    # Batched, the same as one at a time; scale does not matter; zero gives 0.
    batch = torch.stack([torch.full((28, 28), 1.0), checker, 5 * checker, torch.zeros(28, 28)])
    assert low_frequency_share(batch).tolist() == pytest.approx([1.0, low_frequency_share(checker).item(),
                                                                 low_frequency_share(checker).item(), 0.0])


def test_white_noise_share_is_the_share_of_coefficients():
    noise = torch.randn(4000, 28, 28, generator=torch.Generator().manual_seed(0))
    assert low_frequency_share(noise).mean().item() == pytest.approx(49 / 784, abs=0.003)


def test_low_frequency_share_matches_scipy_dctn():
    x = np.random.default_rng(1).normal(size=(28, 28)).cumsum(0).cumsum(1)  # a smooth-ish image
    c = scipy.fft.dctn(x, type=2, norm="ortho")
    expected = (c[:5, :5] ** 2).sum() / (c ** 2).sum()
    assert low_frequency_share(torch.tensor(x), cutoff=5).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("bias", [False, True])
def test_spectrum_summary_against_numpy(bias):
    """Every number recomputed from W, V, P with numpy: Q_c, eigh, participation ratio, truncated logits, dctn."""
    torch.manual_seed(0)
    side, n_classes = 6, 4
    model = BilinearClassifier(side * side, n_classes, d_hidden=20, bias=bias).double().eval()
    images = torch.rand(300, side, side, dtype=torch.float64)
    with torch.no_grad():
        labels = (model(images) + 0.5 * torch.randn(300, n_classes, dtype=torch.float64)).argmax(-1)
    k, n_vectors, cutoff = 3, 2, 2
    summary = spectrum_summary(model, images, labels, k=k, n_vectors=n_vectors, cutoff=cutoff)

    W, V, P = (t.detach().numpy() for t in (model.bilinear.W, model.bilinear.V, model.head.weight))
    x = images.reshape(300, -1).numpy()
    if bias:
        x = np.concatenate([x, np.ones((300, 1))], axis=1)
    y = labels.numpy()
    with torch.no_grad():
        model_logits = model(images).numpy()
    ranks, smooth, truncated_logits = [], [], np.zeros((300, n_classes))
    for c in range(n_classes):
        Q = 0.5 * (W.T @ np.diag(P[c]) @ V + V.T @ np.diag(P[c]) @ W)
        values, vectors = np.linalg.eigh(Q)
        order = np.argsort(-np.abs(values))
        values, vectors = values[order], vectors[:, order]
        ranks.append(np.abs(values).sum() ** 2 / (values ** 2).sum())
        truncated_logits[:, c] = ((x @ vectors[:, :k]) ** 2 * values[:k]).sum(1)
        shares = []
        for v in vectors[:, :n_vectors].T:
            coeffs = scipy.fft.dctn(v[:side * side].reshape(side, side), norm="ortho")
            shares.append((coeffs[:cutoff, :cutoff] ** 2).sum() / (coeffs ** 2).sum())
        smooth.append(np.mean(shares))
        logits_c = ((x @ vectors) ** 2 * values).sum(1)  # all components: the model's own logit
        assert np.allclose(logits_c, model_logits[:, c])

    with torch.no_grad():
        full = (model(images).argmax(-1) == labels).double().mean().item()
    assert summary.full_accuracy == pytest.approx(full)
    assert summary.effective_rank == pytest.approx(ranks, rel=1e-8)
    assert summary.mean_effective_rank == pytest.approx(np.mean(ranks), rel=1e-8)
    assert summary.truncated_accuracy == pytest.approx((truncated_logits.argmax(1) == y).mean())
    assert summary.smoothness == pytest.approx(smooth, rel=1e-8)
    assert summary.mean_smoothness == pytest.approx(np.mean(smooth), rel=1e-8)
    # Keeping every component is the exact model.
    assert spectrum_summary(model, images, labels, k=side * side + 1).truncated_accuracy == pytest.approx(full)


def _sweep_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "sweep_bilinear_spectra.py"
    spec = importlib.util.spec_from_file_location("sweep_bilinear_spectra", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_with_an_empty_grid_says_so_in_one_line_and_exits_2(capsys):
    assert _sweep_module().main(["--only", "no-such-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "no runs selected" in captured.err


def test_sweep_commands_parse_back_to_the_same_options():
    """The command recorded for each run, read by the real `interp` parser, gives that run's options."""
    import shlex
    from dataclasses import replace

    from interp.cli import build_cli

    sweep = _sweep_module()
    parser = build_cli().parser
    for name, overrides in sweep.GRID.items():
        options = replace(sweep.BASE, **overrides)
        args = parser.parse_args(shlex.split(sweep.cli_command(options, f"runs/sweep/{name}"))[1:])
        parsed = dict(dataset=args.dataset, arch=args.arch, epochs=args.epochs, hidden=args.hidden,
                      embed=args.embed or None, bias=args.bias, noise=args.noise, wd=args.wd, lr=args.lr,
                      batch_size=args.batch_size, seed=args.seed, warmup_frac=args.warmup,
                      rank_penalty=args.rank_penalty, rank_keep=args.rank_keep, rank_every=args.rank_every,
                      shift=args.shift, shift_prob=args.shift_prob)
        assert replace(options, **parsed) == options, name
