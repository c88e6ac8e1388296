"""Training our own cross-layer transcoder: `interp train clt`, its folder, `interp evaluate` on it, bad input."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from graph_helpers import save_tiny_lm
from interp.data import corpus
from interp.models.clt import load_clt
from interp.models.lm import load_lm
from interp.train.clt import cached_layers
from interp.train.dictionaries import corpus_batches

K = 4
TRAIN = ("--steps", "400", "--k", str(K), "--n-tokens", "3000", "--batch-size", "64", "--lr", "0.01", "--threads", "1",
         "--quiet", "--json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from interp.cli import main

    root = tmp_path_factory.mktemp("clt")
    lm = save_tiny_lm(root / "lm")
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["train", "clt", str(lm), *TRAIN])  # --out defaults to MODEL/clt
    assert code == 0
    return lm, lm / "clt", json.loads(stdout.getvalue())


def raw_weights(folder):
    """The CLT's tensors straight from its safetensors files, in float64: W_enc [d_sae, d_model] per layer etc."""
    n = len(list(folder.glob("W_enc_*.safetensors")))
    enc = [load_file(folder / f"W_enc_{L}.safetensors") for L in range(n)]
    dec = [load_file(folder / f"W_dec_{L}.safetensors")[f"W_dec_{L}"].double() for L in range(n)]
    return ([e[f"W_enc_{L}"].double() for L, e in enumerate(enc)], [e[f"b_enc_{L}"].double() for L, e in enumerate(enc)],
            [e[f"b_dec_{L}"].double() for L, e in enumerate(enc)], dec)


def hand_acts(x, w_enc, b_enc, k):
    """TopK by hand: keep the k largest pre-activations of each row, clipped at 0, zero the rest."""
    pre = x @ w_enc.T + b_enc
    keep = pre >= pre.sort(-1, descending=True).values[..., k - 1:k]
    return torch.where(keep, pre.clamp(min=0), torch.zeros_like(pre))


def hand_recon(acts, b_dec, w_dec, target):
    return b_dec[target] + sum(acts[s] @ w_dec[s][:, target - s] for s in range(target + 1))


def test_loss_decreases_and_the_folder_records_how_it_was_made(trained):
    lm, out, summary = trained
    assert sorted(p.name for p in out.iterdir()) == ["W_dec_0.safetensors", "W_dec_1.safetensors",
                                                     "W_enc_0.safetensors", "W_enc_1.safetensors", "config.json",
                                                     "metrics.json"]
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    # d_sae defaults to the width of the LM's shipped transcoders (24 in the tiny LM), k is ours.
    assert (config["kind"], config["model"], config["activation"], config["k"], config["d_sae"]) == \
        ("clt", "..", "topk", K, 24)
    assert config["feature_input_hook"] == "ln2.hook_normalized" and config["feature_output_hook"] == "hook_mlp_out"
    curve = [row["loss"] for row in metrics["loss_curve"]]
    assert len(curve) == 50 and metrics["loss_curve"][-1]["step"] == 400
    assert sum(curve[-5:]) / 5 < 0.5 * sum(curve[:5]) / 5
    assert metrics["options"]["steps"] == 400 and metrics["options"]["k"] == K and metrics["options"]["d_sae"] == 24
    assert metrics["command"] == (f"interp train clt {lm} --out {lm / 'clt'} --steps 400 --k {K} --d-sae 24 "
                                  "--batch-size 64 --lr 0.01 --n-tokens 3000 --seed 0 --aux-coef 0.03125 --threads 1")
    assert summary["eval"] == metrics["eval"] and summary["final_loss"] == curve[-1]


def test_saved_clt_reconstructs_like_a_hand_computation_from_the_raw_files(trained):
    lm_dir, out, _ = trained
    lm = load_lm(lm_dir)
    inputs, targets = cached_layers(lm, 600, seed=7)
    x = inputs.double()
    clt = load_clt(out).double()
    w_enc, b_enc, b_dec, w_dec = raw_weights(out)
    acts = [hand_acts(x[:, L], w_enc[L], b_enc[L], K) for L in range(2)]
    loaded_acts = [clt.encode(x[:, L], L) for L in range(2)]
    loaded = clt.decode(loaded_acts)
    for L in range(2):
        assert torch.equal(acts[L] > 0, loaded_acts[L] > 0)
        assert ((acts[L] > 0).sum(-1) <= K).all() and (acts[L] > 0).sum(-1).float().mean() > K - 1
        torch.testing.assert_close(loaded_acts[L], acts[L], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(loaded[L], hand_recon(acts, b_dec, w_dec, L), rtol=1e-12, atol=1e-12)
    # And it learned something: on fresh text it explains most of layer 1's MLP output (which reads two layers).
    y1 = targets[:, 1].double()
    fvu = (loaded[1] - y1).pow(2).sum() / (y1 - y1.mean(0)).pow(2).sum()
    assert fvu < 0.5


def test_evaluate_reports_the_ce_recovered_of_a_splice_done_by_hand(trained, run_cli):
    lm_dir, out, _ = trained
    code, stdout, err = run_cli("evaluate", out, "--json", "--dtype", "float64")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["kind"] == "clt" and [row["layer"] for row in report["layers"]] == [0, 1]

    model = load_lm(lm_dir, dtype=torch.float64).model
    w_enc, b_enc, b_dec, w_dec = raw_weights(out)
    batches = list(corpus_batches(load_lm(lm_dir), 256, corpus.EVAL_SEED))

    def ce(replace: dict[int, str]) -> float:
        """Mean next-token CE with the MLP outputs of `replace` ({layer: "clt" | "zero"}) replaced after BOS;
        the CLT reads each layer's input in this run."""
        acts: dict[int, torch.Tensor] = {}

        def read(x, hook):
            L = int(hook.name.split(".")[1])
            acts[L] = hand_acts(x, w_enc[L], b_enc[L], K)

        def write(y, hook):
            L = int(hook.name.split(".")[1])
            new = torch.zeros_like(y) if replace[L] == "zero" else hand_recon(acts, b_dec, w_dec, L)
            return torch.cat([y[:, :1], new[:, 1:]], 1)

        hooks = [(f"blocks.{L}.ln2.hook_normalized", read) for L in range(2)]
        hooks += [(f"blocks.{L}.hook_mlp_out", write) for L in replace]
        total, n = 0.0, 0
        with torch.no_grad():
            for tokens in batches:
                logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
                total += F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="sum").item()
                n += tokens[:, 1:].numel()
        return total / n

    clean = ce({})
    assert report["ce_clean"] == pytest.approx(clean, rel=1e-12)
    all_spliced, all_ablated = ce({0: "clt", 1: "clt"}), ce({0: "zero", 1: "zero"})
    assert all_ablated - clean > 1e-3  # the MLPs matter, so the ratio is well defined
    assert report["ce_spliced_all"] == pytest.approx(all_spliced, rel=1e-12)
    assert report["ce_loss_recovered_all"] == pytest.approx((all_ablated - all_spliced) / (all_ablated - clean),
                                                            rel=1e-9)
    for L in range(2):
        spliced, ablated = ce({L: "clt"}), ce({L: "zero"})
        assert report["layers"][L]["ce_loss_recovered"] == pytest.approx((ablated - spliced) / (ablated - clean),
                                                                         rel=1e-9)

    # FVU, L0 and dead fraction (README's CLT table) on the same text, from the raw files by hand.
    xs, ys = {L: [] for L in range(2)}, {L: [] for L in range(2)}
    with torch.no_grad():
        for tokens in batches:
            _, cache = model.run_with_cache(tokens)
            for L in range(2):
                xs[L].append(cache[f"blocks.{L}.ln2.hook_normalized"][:, 1:].flatten(0, 1))
                ys[L].append(cache[f"blocks.{L}.hook_mlp_out"][:, 1:].flatten(0, 1))
    acts = {L: hand_acts(torch.cat(xs[L]), w_enc[L], b_enc[L], K) for L in range(2)}
    assert report["n_tokens"] == len(acts[0])
    for L in range(2):
        y = torch.cat(ys[L])
        fvu = float((hand_recon(acts, b_dec, w_dec, L) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
        row = report["layers"][L]
        assert row["fvu"] == pytest.approx(fvu, rel=1e-9)
        assert row["l0"] == pytest.approx(float((acts[L] > 0).sum()) / len(acts[L]), rel=1e-12)
        assert row["dead_fraction"] == pytest.approx(1 - float((acts[L] > 0).any(0).double().mean()), abs=1e-7)


def _snapshot(folder):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_an_existing_folder_is_refused_without_force(trained, run_cli):
    lm_dir, out, _ = trained
    before = _snapshot(out)
    code, stdout, err = run_cli("train", "clt", lm_dir, *TRAIN)
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and "--force" in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in lm_dir.iterdir() if p.name.startswith(".")) == []


def test_force_replaces_the_folder(tmp_path, run_cli):
    lm = save_tiny_lm(tmp_path / "lm")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "old.txt").write_text("old")
    args = ["train", "clt", lm, "--out", tmp_path / "other", "--steps", "2", "--k", "3", "--d-sae", "8",
            "--n-tokens", "200", "--batch-size", "32", "--threads", "1", "--quiet", "--json", "--force"]
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert not (tmp_path / "other" / "old.txt").exists()
    assert load_clt(tmp_path / "other").d_sae == 8
    assert json.loads((tmp_path / "other" / "metrics.json").read_text())["options"]["steps"] == 2


@pytest.mark.parametrize("flags, says", [(("--k", "0"), "argument --k: must be an integer ≥ 1"),
                                         (("--steps", "0"), "argument --steps: must be an integer ≥ 1"),
                                         (("--d-sae", "-3"), "argument --d-sae: must be an integer ≥ 1"),
                                         (("--batch-size", "0"), "batch-size"),
                                         (("--k", "30"), "k = 30 is more than the 24 features")])
def test_bad_flags_exit_2_with_one_line(tmp_path, run_cli, flags, says):
    lm = save_tiny_lm(tmp_path / "lm")
    code, stdout, err = run_cli("train", "clt", lm, "--out", tmp_path / "clt", "--threads", "1", "--quiet",
                                *flags)
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "clt").exists()


def test_evaluate_refuses_a_clt_of_another_model(trained, tmp_path, run_cli):
    import shutil

    _, out, _ = trained
    other = save_tiny_lm(tmp_path / "wide", d_model=24)
    shutil.copytree(out, other / "clt")
    code, stdout, err = run_cli("evaluate", other / "clt", "--json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another model" in err, err
