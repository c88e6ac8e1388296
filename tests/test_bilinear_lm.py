"""The bilinear MLP of a (tiny, randomly initialised) TransformerLens model read from its weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interp.bilinear.core import eigendecompose
from interp.bilinear.lm import (feature_pair_matrix, head_ov_directions, head_pair_terms, mlp_weights,
                                normalized_directions, top_feature_pairs)
from interp.errors import InterpError
from interp.models.lm import build_lm, make_lm_config


@pytest.fixture(scope="module")
def tiny_lm():
    model = build_lm(make_lm_config("bilinear", n_layers=2, d_model=16, n_heads=2, d_mlp=32, n_ctx=8, d_vocab=20, seed=3))
    model = model.double().eval()
    with torch.no_grad():  # make the LayerNorm weights and bias non-trivial, so the test covers them
        for block in model.blocks:
            block.ln2.w.add_(0.3 * torch.randn_like(block.ln2.w))
            block.ln2.b.add_(0.2 * torch.randn_like(block.ln2.b))
    return model


def test_mlp_is_an_exact_form_in_normalized_space(tiny_lm):
    tokens = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(0))
    _, cache = tiny_lm.run_with_cache(tokens)
    for layer in range(2):
        weights = mlp_weights(tiny_lm, layer)
        x_hat = cache[f"blocks.{layer}.ln2.hook_normalized"].reshape(-1, 16)
        out = cache[f"blocks.{layer}.hook_mlp_out"].reshape(-1, 16) - tiny_lm.blocks[layer].mlp.b_out.detach()
        u = torch.randn(16, dtype=torch.float64)
        x_aug = torch.cat([x_hat, torch.ones_like(x_hat[:, :1])], dim=1)
        eig = eigendecompose(weights, u[None])
        torch.testing.assert_close(eig.quadratic_form(x_aug)[:, 0], out @ u, rtol=1e-5, atol=1e-6)


def test_feature_pairs_sum_to_the_output(tiny_lm):
    """x̂ built from input features: Σ_{a≤b} C[a,b] z_a z_b equals what the MLP writes along u."""
    weights = mlp_weights(tiny_lm, 1)
    g = torch.Generator().manual_seed(1)
    features = torch.randn(6, 16, generator=g, dtype=torch.float64)  # e.g. dictionary decoder rows
    z = torch.randn(6, generator=g, dtype=torch.float64)
    inputs = normalized_directions(features)
    x_hat = (z @ features) - (z @ features).mean()  # centred, σ taken as 1
    mlp = tiny_lm.blocks[1].mlp
    a = tiny_lm.blocks[1].ln2.w.detach() * x_hat + tiny_lm.blocks[1].ln2.b.detach()
    out = ((a @ mlp.W_gate) * (a @ mlp.W_in)) @ mlp.W_out
    u = torch.randn(16, generator=g, dtype=torch.float64)
    result = top_feature_pairs(weights, u, inputs, layer=1, top=1000)
    z_aug = torch.cat([z, torch.ones(1, dtype=torch.float64)])
    total = sum(c * z_aug[i] * z_aug[j] for i, j, c in result.pairs)
    assert total.item() == pytest.approx((out @ u).item(), rel=1e-9, abs=1e-12)
    assert len(result.pairs) == 7 * 8 // 2  # every pair a <= b (6 features + the constant)
    magnitudes = [abs(c) for _, _, c in result.pairs]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert 0.0 <= result.diagonal_share <= 1.0


def test_head_pair_terms_agree_with_feature_pairs(tiny_lm):
    u = torch.randn(16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    result = head_pair_terms(tiny_lm, 1, u, tokens=torch.arange(5), top=3)
    assert len(result.heads) == 2 * 2  # heads of layers 0 and 1
    norms = [h["norm"] for h in result.heads]
    assert norms == sorted(norms, reverse=True)
    # the top entry of a head is the pair coefficient between the direct and that head's OV direction
    head = result.heads[0]
    hl, h = int(head["head"][1]), int(head["head"][3])
    t, s, value = head["top"][0]
    W_E = tiny_lm.W_E.detach()
    direct = normalized_directions(W_E[[int(t)]])
    ov = normalized_directions(head_ov_directions(tiny_lm, hl, h, W_E[[int(s)]]))
    C = feature_pair_matrix(mlp_weights(tiny_lm, 1), u, torch.cat([direct, ov]))
    assert C[0, 1].item() == pytest.approx(value, rel=1e-9)
    # linear in the output direction
    twice = head_pair_terms(tiny_lm, 1, 2 * u, tokens=torch.arange(5), top=3)
    assert twice.heads[0]["norm"] == pytest.approx(2 * head["norm"], rel=1e-9)


def test_rejects_non_bilinear_models_and_bad_layers(tiny_lm):
    with pytest.raises(InterpError):
        mlp_weights(tiny_lm, 5)
    gelu = build_lm(make_lm_config("gelu", n_layers=1, d_model=16, n_heads=2, d_mlp=32, n_ctx=8, d_vocab=20))
    with pytest.raises(InterpError):
        mlp_weights(gelu, 0)


def test_bilinear_lm_command(tiny_lm, tmp_path, run_cli):
    from interp.data.tokenizer import WordTokenizer
    from interp.models.lm import save_lm

    model = build_lm(make_lm_config("bilinear", n_layers=2, d_model=16, n_heads=2, d_mlp=32, n_ctx=8, d_vocab=20, seed=3))
    save_lm(tmp_path / "lm", model, WordTokenizer([f"w{i}" for i in range(19)]))
    code, out, err = run_cli("bilinear-lm", tmp_path / "lm", "--layer", "0", "--output", "token:w4", "--top", "5",
                             "--heads", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["output"] == "logit 'w4'" and len(result["pairs"]) == 5
    known = set(WordTokenizer([f"w{i}" for i in range(19)]).vocab) | {"1 (LN bias)"}
    assert {p["a"] for p in result["pairs"]} | {p["b"] for p in result["pairs"]} <= known
    assert [h["head"] for h in result["heads"]] and len(result["heads"]) == 2
    for bad in (["--layer", "7", "--output", "token:w4"], ["--layer", "0", "--output", "token:nope"],
                ["--layer", "0", "--output", "feature:1:3"], ["--layer", "0", "--output", "1,2"]):
        code, out, err = run_cli("bilinear-lm", tmp_path / "lm", *bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (bad, err)


LM_BILINEAR = Path(__file__).resolve().parents[1] / "checkpoints" / "lm-bilinear"


@pytest.mark.skipif(not (LM_BILINEAR / "config.json").is_file(), reason="checkpoints/lm-bilinear not shipped")
@pytest.mark.parametrize("layer, output, inputs", [(1, "token:Mary", "tokens"), (1, "feature:1:3", "features:0")])
def test_read_bilinear_mlp_is_what_the_command_prints(run_cli, layer, output, inputs):
    """The one reading behind `interp bilinear-lm` and the app's Bilinear spectra page: same pairs, same heads."""
    from interp.bilinear.lm import read_bilinear_mlp
    from interp.models.dictionaries import load_dictionaries
    from interp.models.lm import load_lm

    code, out, err = run_cli("bilinear-lm", LM_BILINEAR, "--layer", layer, "--output", output, "--inputs", inputs,
                             "--transcoders", LM_BILINEAR / "transcoders", "--top", "7", "--heads", "--json")
    assert code == 0, err
    printed = json.loads(out)
    loaded = load_lm(LM_BILINEAR)
    reading = read_bilinear_mlp(loaded.model, layer, output, inputs, loaded.tokenizer,
                                load_dictionaries(LM_BILINEAR / "transcoders"), top=7, heads=True, spectrum_values=60)
    assert sorted(printed) == ["diagonal_share", "heads", "inputs", "layer", "output", "pairs"]
    assert (printed["layer"], printed["output"], printed["inputs"]) == (reading.layer, reading.output_label, inputs)
    assert printed["pairs"] == [{"a": a, "b": b, "coefficient": pytest.approx(c, rel=1e-6, abs=1e-9)}
                                for (a, b), (_, _, c) in zip(reading.pairs.pair_labels, reading.pairs.pairs)]
    assert len(printed["pairs"]) == 7
    assert printed["diagonal_share"] == pytest.approx(reading.pairs.diagonal_share, rel=1e-6)
    assert [h["head"] for h in printed["heads"]] == [h["head"] for h in reading.heads]
    assert [h["norm"] for h in printed["heads"]] == pytest.approx([h["norm"] for h in reading.heads], rel=1e-6)
    assert all(len(h["top"]) == 7 for h in reading.heads)
    # What the page adds: the spectrum of the same output direction.
    spectrum = reading.spectrum
    assert spectrum.label == reading.output_label and len(spectrum.top_eigenvalues) == 60
    magnitudes = [abs(v) for v in spectrum.top_eigenvalues]
    assert magnitudes == sorted(magnitudes, reverse=True)
    # Without spectrum_values and heads, only the pairs are read.
    bare = read_bilinear_mlp(loaded.model, layer, output, inputs, loaded.tokenizer,
                             load_dictionaries(LM_BILINEAR / "transcoders"), top=7)
    assert bare.spectrum is None and bare.heads is None and bare.pairs.pairs == reading.pairs.pairs
    assert set(reading.to_dict()) == {"layer", "output_label", "inputs", "pairs", "spectrum", "heads"}
