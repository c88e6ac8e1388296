"""LM training on the corpus (tiny sizes), task evaluation, and the CLI's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interp.data import corpus
from interp.errors import InterpError
from interp.models.lm import load_lm
from interp.train.lm import LMTrainOptions, evaluate_lm_tasks, lm_loss, train_lm

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
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
    # The last point is the final model (no weight average): its task figures by a hand loop over the examples.
    hand = hand_task_metrics(lm, TINY["n_eval"])
    last = curve[-1]
    assert last["induction"] == round(hand["induction"], 4) and last["brackets"] == round(hand["brackets"]["accuracy"], 4)
    assert last["ioi"] == round(hand["ioi"]["accuracy"], 4)
    assert last["ioi_seen_names"] == round(hand["ioi_seen_names"]["accuracy"], 4)
    assert last["ioi_logit_diff"] == pytest.approx(hand["ioi"]["logit_diff"], abs=1e-4)
    assert curve[-1]["ioi"] == round(result.eval["tasks"]["ioi"]["accuracy"], 4)
    # the curve is saved with the checkpoint
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


def hand_task_metrics(lm, n, seed=corpus.EVAL_SEED):
    """The held-out task metrics by a plain loop over the examples: no padding (prompts of equal length share a
    forward pass), the prediction the argmax of the model's logits, the names' kinds from `corpus.NAMES`."""
    import random


    tok, model = lm.tokenizer, lm.model

    def logits_of(texts):
        """Each text's logits [pos, vocab], running the texts of each token length together."""
        ids = [tok.encode(text, prepend_bos=True) for text in texts]
        out = [None] * len(texts)
        for length in {len(i) for i in ids}:
            rows = [r for r, i in enumerate(ids) if len(i) == length]
            with torch.no_grad():
                logits = model(torch.tensor([ids[r] for r in rows]), return_type="logits")
            for r, row_logits in zip(rows, logits):
                out[r] = row_logits
        return out

    correct = total = 0
    sequences = corpus.induction_sequences(n, seed)
    for (text, positions), logits in zip(sequences, logits_of([text for text, _ in sequences])):
        ids = tok.encode(text, prepend_bos=True)
        predictions = logits.argmax(-1)
        for w in positions:  # word w is token w + 1, predicted at token w
            correct += int(predictions[w] == ids[w + 1])
            total += 1
    out = {"induction": correct / total}

    training_names = {tok.token_id(w) for w in corpus.NAMES[:corpus.N_TRAIN_NAMES]}
    all_names = {tok.token_id(w) for w in corpus.NAMES}
    for key, names in (("ioi", "eval"), ("ioi_seen_names", "train")):
        hits, diffs, kinds = 0, [], {"io": 0, "s": 0, "ioi_training_name": 0, "other_name": 0, "other": 0}
        examples = corpus.ioi_examples(n, seed, names=names)
        for e, logits in zip(examples, logits_of([e.prompt for e in examples])):
            last = logits[-1]
            io, s_, top = tok.token_id(e.target), tok.token_id(e.contrast), int(last.argmax())
            hits += top == io
            diffs.append(float(last[io] - last[s_]))
            if top == io:
                kinds["io"] += 1
            elif top == s_:
                kinds["s"] += 1
            elif top in training_names:
                kinds["ioi_training_name"] += 1
            elif top in all_names:
                kinds["other_name"] += 1
            else:
                kinds["other"] += 1
        out[key] = {"accuracy": hits / len(examples), "logit_diff": sum(diffs) / len(diffs),
                    "io_over_s_fraction": sum(d > 0 for d in diffs) / len(diffs),
                    "top1": {k: v / len(examples) for k, v in kinds.items()}}

    closers = [tok.token_id(c) for c in corpus.BRACKETS.values()]
    right = top1 = 0
    examples = corpus.bracket_examples(n, seed)
    for e, logits in zip(examples, logits_of([e.prompt for e in examples])):
        last = logits[-1]
        target = tok.token_id(e.target)
        right += closers[int(last[closers].argmax())] == target
        top1 += int(last.argmax()) == target
    out["brackets"] = {"accuracy": right / len(examples), "top1_accuracy": top1 / len(examples)}

    rng = random.Random(seed + 7)  # fresh corpus text: mean −log p(next token) over every position after BOS
    texts = [" ".join(corpus.training_document(rng, model.cfg.n_ctx - 1)) for _ in range(min(n, 256))]
    nll, count = 0.0, 0
    for text, logits in zip(texts, logits_of(texts)):
        ids = torch.tensor(tok.encode(text, prepend_bos=True))
        logp = logits[:-1].double().log_softmax(-1)
        nll -= float(logp[torch.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    out["heldout_loss"] = nll / count
    return out


def test_evaluate_task_metrics_equal_a_hand_loop_over_the_examples(tmp_path):
    lm, _ = train_lm(LMTrainOptions(steps=30, **TINY), out=tmp_path / "m", quiet=True)
    result = evaluate_lm_tasks(load_lm(tmp_path / "m"), n=12)  # more: bracket prompts outgrow n_ctx 32
    tasks = result.to_dict()["tasks"]
    hand = hand_task_metrics(lm, 12)
    # Accuracies and fractions are counts over 12 examples, the package's as float32 means (hence rel=1e-7);
    # logit differences and the loss come from float32 logits.
    assert tasks["induction"]["accuracy"] == pytest.approx(hand["induction"], abs=1e-12)
    for key in ("ioi", "ioi_seen_names"):
        assert tasks[key]["accuracy"] == pytest.approx(hand[key]["accuracy"], rel=1e-7, abs=0)
        assert tasks[key]["io_over_s_fraction"] == pytest.approx(hand[key]["io_over_s_fraction"], rel=1e-7, abs=0)
        assert tasks[key]["logit_diff"] == pytest.approx(hand[key]["logit_diff"], rel=1e-5, abs=1e-5)
        assert tasks[key]["top1"] == pytest.approx(hand[key]["top1"], rel=1e-7, abs=0)
    assert tasks["brackets"]["accuracy"] == pytest.approx(hand["brackets"]["accuracy"], rel=1e-7, abs=0)
    assert tasks["brackets"]["top1_accuracy"] == pytest.approx(hand["brackets"]["top1_accuracy"], rel=1e-7, abs=0)
    assert result.heldout_loss == pytest.approx(hand["heldout_loss"], rel=1e-5)
    # The hand values are not all trivial: the model predicts something of the tasks after 30 steps.
    assert abs(hand["ioi"]["logit_diff"]) > 1e-3 and 0 < hand["brackets"]["accuracy"]


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
    tasks = data["tasks"]
    hand = hand_task_metrics(load_lm(out), 200)  # the command's default: 200 examples per task
    assert tasks["induction"]["accuracy"] == pytest.approx(hand["induction"], abs=1e-12)
    assert tasks["ioi"]["accuracy"] == pytest.approx(hand["ioi"]["accuracy"], rel=1e-7, abs=0)
    assert tasks["ioi"]["logit_diff"] == pytest.approx(hand["ioi"]["logit_diff"], rel=1e-5, abs=1e-5)
    assert tasks["brackets"]["accuracy"] == pytest.approx(hand["brackets"]["accuracy"], rel=1e-7, abs=0)
    assert data["heldout_loss"] == pytest.approx(hand["heldout_loss"], rel=1e-5)


def test_cli_bad_input_is_one_line_exit_2(tmp_path, run_cli):
    code, _, stderr = run_cli("evaluate", tmp_path / "missing", "--json")
    assert code == 2 and stderr.count("\n") == 1


# ---------------------------------------------------------------- structural corpus and evaluation sets (issue #18)


def _hand_accuracies(lm, n: int) -> dict[str, float]:
    """The structural metrics recomputed one text at a time, with no batching or padding."""
    tok = lm.tokenizer
    out = {}
    with torch.no_grad():
        for kind in ("unmarked", "distractor", "long", "ordinary"):
            correct = total = 0
            for text, positions in corpus.repeat_sequences(kind, n):
                ids = tok.encode(text)
                predicted = lm.model(torch.tensor([ids]), return_type="logits")[0].argmax(-1).tolist()
                for w in positions:  # word w of the text is token w + 1, predicted at position w
                    correct += predicted[w] == ids[w + 1]
                    total += 1
            out[f"induction_{kind}"] = correct / total
        correct = 0
        examples = corpus.ioi_frame_examples(None, n)
        by_family = {f: [0, 0] for f in corpus.IOI_HELDOUT_FAMILIES}
        parts = {**corpus.IOI_INTROS, **corpus.IOI_GIVINGS}
        for ex in examples:
            logits = lm.model(torch.tensor([tok.encode(ex.prompt)]), return_type="logits")[0, -1]
            right = int(logits.argmax()) == tok.token_id(ex.target)
            correct += right
            for family in by_family:  # a family's fixed words, in order, with one word per slot
                fixed = [w if not w.startswith("{") else None for w in parts[family].split()]
                words = ex.prompt.split()
                if any(all(f is None or f == w for f, w in zip(fixed, words[i:i + len(fixed)]))
                       for i in range(len(words) - len(fixed) + 1)):
                    by_family[family][0] += right
                    by_family[family][1] += 1
        out["ioi_unseen_frames"] = correct / len(examples)
        out["by_family"] = {f: (c / t if t else None, t) for f, (c, t) in by_family.items()}
        for key, depth in (("brackets_trained_depth", 4), ("brackets_deeper", 5)):
            correct = 0
            examples = corpus.bracket_depth_examples(depth, n)
            for ex in examples:
                logits = lm.model(torch.tensor([tok.encode(ex.prompt)]), return_type="logits")[0, -1]
                best = max(corpus.BRACKETS.values(), key=lambda c: float(logits[tok.token_id(c)]))
                correct += best == ex.target
            out[key] = correct / len(examples)
    return out


def test_structural_metrics_match_a_hand_loop_on_the_shipped_model():
    lm = load_lm(CHECKPOINTS / "lm-bilinear")
    result = evaluate_lm_tasks(lm, n=40).tasks
    hand = _hand_accuracies(lm, 40)
    by_family = hand.pop("by_family")
    assert sum(t for _, t in by_family.values()) >= 40  # every prompt has at least one held-out family
    for family, (accuracy, count) in by_family.items():
        assert result["ioi_unseen_frames"]["by_family"][family] == {"accuracy": accuracy, "n": count}, family
    for key, value in hand.items():
        assert result[key]["accuracy"] == pytest.approx(value, abs=1e-6), key
    assert result["brackets_trained_depth"]["depth"] == 4 and result["brackets_deeper"]["depth"] == 5
    # the shipped model copies only in its trained "list :" format (issue #18)
    assert result["induction"]["accuracy"] > 0.9
    assert result["induction_unmarked"]["accuracy"] < 0.2


def test_structural_corpus_training_records_its_corpus(tmp_path):
    options = LMTrainOptions(steps=3, corpus="structural", bracket_depth=5, repeat_max=8, **TINY)
    _, result = train_lm(options, out=tmp_path / "s", quiet=True)
    tasks = result.eval["tasks"]
    assert tasks["brackets_trained_depth"]["depth"] == 5 and tasks["brackets_deeper"]["depth"] == 6
    assert "induction_long" not in tasks  # 52-token texts do not fit a 32-token context: left out, not cut
    assert result.eval["corpus"]["kind"] == "structural"
    saved = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert "--corpus structural --bracket-depth 5" in saved["command"]
    # evaluating the checkpoint later reads its corpus back from config.json
    again = evaluate_lm_tasks(load_lm(tmp_path / "s"), n=10)
    assert again.corpus == result.eval["corpus"] and again.tasks["brackets_deeper"]["depth"] == 6


@pytest.mark.parametrize("flags, message", [
    (["--corpus", "structural", "--ioi-heldout-families", ",".join(corpus.IOI_INTROS)], "every IOI intro"),
    (["--corpus", "structural", "--bracket-depth", "40"], "does not fit a context of 64"),
])
def test_cli_bad_corpus_is_one_line_exit_2(tmp_path, run_cli, flags, message):
    code, _, stderr = run_cli("train", "lm", "--out", tmp_path / "lm", "--steps", "1", "--threads", "1", "--quiet",
                              *flags)
    assert code == 2 and stderr.count("\n") == 1 and message in stderr
    assert not (tmp_path / "lm").exists()
