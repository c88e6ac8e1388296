"""LM training on the corpus (tiny sizes), task evaluation, and the CLI's JSON."""

from __future__ import annotations

import json

import torch

from interp.data import corpus
from interp.models.lm import load_lm
from interp.train.lm import LMTrainOptions, evaluate_lm_tasks, lm_loss, train_lm

TINY = dict(n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=32, batch_size=8, lr=3e-3, warmup_steps=2, n_eval=10)


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


def test_evaluate_task_metrics_shape(tmp_path):
    lm, _ = train_lm(LMTrainOptions(steps=2, **TINY), out=tmp_path / "m", quiet=True)
    result = evaluate_lm_tasks(load_lm(tmp_path / "m"), n=12)
    tasks = result.to_dict()["tasks"]
    assert set(tasks) >= {"induction", "ioi", "brackets"}
    for task in tasks.values():
        assert 0.0 <= task["accuracy"] <= 1.0
    assert isinstance(tasks["ioi"]["logit_diff"], float)


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
