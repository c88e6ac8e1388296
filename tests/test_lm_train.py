"""LM training on the corpus (tiny sizes), task evaluation, and the CLI's JSON."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data import corpus
from interp.errors import InterpError
from interp.models.lm import load_lm
from interp.train.lm import LMTrainOptions, evaluate_lm_tasks, lm_loss, train_lm

TINY = dict(n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=32, batch_size=8, lr=3e-3, warmup_steps=2, n_eval=10,
            wd=0.05, ema=0.0)  # no weight average: tiny runs are too short for one


def test_training_reduces_loss_and_is_deterministic(tmp_path):
    tok = corpus.make_tokenizer()
    heldout = torch.tensor(corpus.training_tokens(tok, 16, 32, seed=99))
    lm_a, result = train_lm(LMTrainOptions(steps=30, **TINY), out=tmp_path / "a", quiet=True)
    lm_b, _ = train_lm(LMTrainOptions(steps=30, **TINY), out=tmp_path / "b", quiet=True)
    assert (tmp_path / "a" / "tokenizer.json").is_file() and (tmp_path / "a" / "metrics.json").is_file()
    torch.testing.assert_close(lm_a.model.W_E, lm_b.model.W_E)  # same options and seed → same checkpoint
    fresh, _ = train_lm(LMTrainOptions(steps=1, **{**TINY, "lr": 1e-9, "warmup_steps": 1}), quiet=True)
    with torch.no_grad():
        assert lm_loss(lm_a.model, heldout) < lm_loss(fresh.model, heldout) - 0.5
    assert torch.all(lm_a.model.blocks[0].mlp.b_in == 0)  # b_in stayed frozen at zero
    assert result.tokens_per_second > 0


def test_tied_embeddings_train_tied_and_save_an_ordinary_model(tmp_path):
    """With tie_embeddings the unembedding is W_Eᵀ throughout training (so W_E learns from the output side
    too); the saved checkpoint is a plain HookedTransformer whose W_U equals the final W_Eᵀ."""
    lm, _ = train_lm(LMTrainOptions(steps=20, tie_embeddings=True, **TINY), out=tmp_path / "t", quiet=True)
    untied, _ = train_lm(LMTrainOptions(steps=20, **TINY), quiet=True)
    torch.testing.assert_close(lm.model.unembed.W_U, lm.model.embed.W_E.T)
    assert not torch.allclose(untied.model.unembed.W_U, untied.model.embed.W_E.T)
    loaded = load_lm(tmp_path / "t")
    torch.testing.assert_close(loaded.model.unembed.W_U, loaded.model.embed.W_E.T)
    assert "--tie-embeddings" in json.loads((tmp_path / "t" / "metrics.json").read_text())["command"]


def test_learning_curve_records_held_out_tasks_through_training(tmp_path):
    lm, result = train_lm(LMTrainOptions(steps=20, eval_every=10, **TINY), out=tmp_path / "c", quiet=True)
    curve = result.learning_curve
    assert [p["step"] for p in curve] == [10, 20]
    for point in curve:
        assert {"induction", "ioi", "brackets", "ioi_seen_names", "ioi_logit_diff", "loss"} <= set(point)
        assert 0.0 <= point["ioi"] <= 1.0
    # the last point is the final evaluation, and the curve is saved with the checkpoint
    assert curve[-1]["ioi"] == round(result.eval["tasks"]["ioi"]["accuracy"], 4)
    saved = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert saved["learning_curve"] == curve and "--eval-every 10" in saved["command"]
    assert "--ema 0.0" in saved["command"]  # spelled out: the CLI's default is not 0


def test_ema_saves_the_moving_average_of_the_weights():
    plain, _ = train_lm(LMTrainOptions(steps=15, **TINY), quiet=True)
    # A decay near 0 averages nothing away: the saved weights are the last step's.
    latest, _ = train_lm(LMTrainOptions(steps=15, **{**TINY, "ema": 1e-9}), quiet=True)
    torch.testing.assert_close(latest.model.W_E, plain.model.W_E)
    # A slow average lags behind training, towards the early weights.
    slow, _ = train_lm(LMTrainOptions(steps=15, **{**TINY, "ema": 0.9}), quiet=True)
    start, _ = train_lm(LMTrainOptions(steps=1, **{**TINY, "lr": 1e-9, "warmup_steps": 1}), quiet=True)
    moved = (plain.model.W_E - start.model.W_E).norm()
    assert (slow.model.W_E - start.model.W_E).norm() < 0.9 * moved
    with pytest.raises(InterpError, match="ema"):
        train_lm(LMTrainOptions(steps=1, **{**TINY, "ema": 1.0}), quiet=True)


def test_evaluate_task_metrics_shape(tmp_path):
    lm, _ = train_lm(LMTrainOptions(steps=2, **TINY), out=tmp_path / "m", quiet=True)
    result = evaluate_lm_tasks(load_lm(tmp_path / "m"), n=12)
    tasks = result.to_dict()["tasks"]
    assert set(tasks) >= {"induction", "ioi", "brackets"}
    for task in tasks.values():
        assert 0.0 <= task["accuracy"] <= 1.0
    assert isinstance(tasks["ioi"]["logit_diff"], float)
    top1 = tasks["ioi"]["top1"]  # where each top-1 prediction went: the kinds partition the examples
    assert set(top1) == {"io", "s", "ioi_training_name", "other_name", "other"}
    assert sum(top1.values()) == pytest.approx(1.0) and top1["io"] == pytest.approx(tasks["ioi"]["accuracy"])


def test_cli_train_and_evaluate_json(tmp_path, run_cli):
    out = tmp_path / "lm"
    threads = torch.get_num_threads()
    code, stdout, _ = run_cli("train", "lm", "--arch", "gelu", "--out", out, "--n-layers", "1", "--d-model", "32",
                              "--n-heads", "2", "--d-mlp", "64", "--n-ctx", "64", "--steps", "3", "--batch-size", "4",
                              "--wd", "0.1", "--threads", "1", "--quiet", "--json")
    assert code == 0, stdout
    assert json.loads(stdout)["arch"] == "gelu"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["options"]["wd"] == 0.1 and "--wd 0.1" in metrics["command"] and metrics["torch_threads"] == 1
    assert torch.get_num_threads() == threads  # --threads applies to the command only
    code, stdout, _ = run_cli("evaluate", out, "--json")
    assert code == 0
    data = json.loads(stdout)
    assert set(data["tasks"]["ioi"]) >= {"accuracy", "logit_diff"}
    assert "accuracy" in data["tasks"]["induction"] and "accuracy" in data["tasks"]["brackets"]


def test_cli_bad_input_is_one_line_exit_2(tmp_path, run_cli):
    code, _, stderr = run_cli("evaluate", tmp_path / "missing", "--json")
    assert code == 2 and stderr.count("\n") == 1
