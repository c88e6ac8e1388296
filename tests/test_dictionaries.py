"""Transcoders and attention SAEs: SAE-Lens training step, save/load roundtrip, evaluation, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from sae_lens import SAE
from sae_lens.config import SAETrainerConfig
from sae_lens.training.sae_trainer import SAETrainer

from interp.errors import InterpError
from interp.models.dictionaries import TopKTranscoder, check_dictionaries_fit, load_dictionaries
from interp.train.dictionaries import (DictTrainOptions, ShuffledBatches, evaluate_dictionaries, make_training_sae,
                                       train_dictionaries)
from interp.train.lm import LMTrainOptions, train_lm

TINY_LM = dict(n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_ctx=32, batch_size=8, lr=3e-3, warmup_steps=2, n_eval=4,
               wd=0.05, ema=0.0)
TINY_DICT = dict(expansion=2, k=4, steps=40, batch_size=64, n_tokens=1500, lr=3e-3)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm") / "model"
    lm, _ = train_lm(LMTrainOptions(steps=20, **TINY_LM), out=folder, quiet=True)
    return lm


@pytest.mark.parametrize("variant", ["relu", "topk"])
def test_transcoder_step_reduces_loss_against_the_target_not_the_input(variant):
    torch.manual_seed(0)
    x = torch.randn(2048, 16)
    y = torch.tanh(x @ torch.randn(16, 16))  # a target unlike the input
    options = DictTrainOptions(kind="transcoder", variant=variant, expansion=2, k=6, l1=0.01, steps=200,
                               batch_size=128)
    sae = make_training_sae(options, 16, {"hook_name": "in", "hook_name_out": "out"})
    batches = ShuffledBatches(torch.cat([x, y], -1), 128, seed=0)

    def mse_to(target):
        with torch.no_grad():
            return (sae.decode(sae.encode(x)) - target).pow(2).sum(-1).mean().item()

    before = mse_to(y)
    trainer = SAETrainer(cfg=SAETrainerConfig(total_training_samples=200 * 128, train_batch_size_samples=128,
                                              lr=3e-3, lr_end=3e-4), sae=sae, data_provider=batches)
    trainer.fit()
    assert mse_to(y) < 0.5 * before
    assert mse_to(y) < mse_to(x)  # it learned the MLP's output, not to copy its input


def test_train_save_load_roundtrip_and_evaluate(tiny_lm, tmp_path):
    out = tmp_path / "transcoders"
    dicts, result = train_dictionaries(tiny_lm, DictTrainOptions(kind="transcoder", variant="topk", **TINY_DICT),
                                       out=out, model_ref=str(tiny_lm.path.resolve()), quiet=True)
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "dictionaries" and config["type"] == "transcoder" and config["layers"] == [0, 1]
    plain = SAE.load_from_disk(out / "layer_1")  # plain SAE-Lens reads each layer folder
    assert isinstance(plain, TopKTranscoder)
    assert plain.cfg.metadata.hook_name == "blocks.1.ln2.hook_normalized"
    assert plain.cfg.metadata.hook_name_out == "blocks.1.hook_mlp_out"
    loaded = load_dictionaries(out)
    x = torch.randn(5, 32)
    torch.testing.assert_close(loaded[0](x), dicts[0](x))
    layers = result.eval["layers"]
    assert [row["layer"] for row in layers] == [0, 1]
    for row in layers:
        assert set(row) >= {"fvu", "l0", "dead_fraction", "ce_loss_recovered"}
        assert row["l0"] <= 4 + 1e-6 and 0 <= row["dead_fraction"] <= 1
    assert result.eval["ce_loss_recovered_all"] is not None


def test_relu_attention_saes_load_as_plain_sae_lens(tiny_lm, tmp_path):
    out = tmp_path / "attn"
    train_dictionaries(tiny_lm, DictTrainOptions(kind="attn_sae", variant="relu", l1=0.5, **TINY_DICT), out=out,
                       model_ref=str(tiny_lm.path.resolve()), quiet=True)
    sae = SAE.load_from_disk(out / "layer_0")
    assert sae.cfg.architecture() == "standard" and sae.cfg.metadata.hook_name == "blocks.0.hook_attn_out"


def test_width_and_hook_mismatch_are_interp_errors(tiny_lm, tmp_path):
    options = DictTrainOptions(kind="transcoder", variant="relu", expansion=2)
    wide = make_training_sae(options, 48, {"hook_name": "blocks.0.ln2.hook_normalized",
                                           "hook_name_out": "blocks.0.hook_mlp_out"})
    with pytest.raises(InterpError, match="widths"):
        check_dictionaries_fit(tiny_lm.model, {0: wide})
    wrong_hook = make_training_sae(options, 32, {"hook_name": "blocks.0.hook_nothing", "hook_name_out": "x"})
    with pytest.raises(InterpError, match="hook"):
        check_dictionaries_fit(tiny_lm.model, {0: wrong_hook})
    with pytest.raises(InterpError, match="layers"):
        check_dictionaries_fit(tiny_lm.model, {5: wide})
    with pytest.raises(InterpError, match="widths"):
        evaluate_dictionaries(tiny_lm, {0: wide})


def test_cli_transcoders_then_evaluate_json(tiny_lm, tmp_path, run_cli):
    out = tmp_path / "tc"
    code, stdout, stderr = run_cli("train", "transcoders", "--model", tiny_lm.path, "--out", out, "--expansion", "2",
                                   "--k", "4", "--steps", "20", "--batch-size", "64", "--n-tokens", "1000", "--quiet",
                                   "--json")
    assert code == 0, stderr
    code, stdout, stderr = run_cli("evaluate", out, "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert [row["layer"] for row in data["layers"]] == [0, 1] and "ce_loss_recovered_all" in data
    code, _, stderr = run_cli("train", "transcoders", "--model", tmp_path / "nowhere", "--out", tmp_path / "x",
                              "--quiet")
    assert code == 2 and "not found" in stderr and not (tmp_path / "x").exists()
