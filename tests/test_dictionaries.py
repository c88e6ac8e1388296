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


def hand_dictionary_metrics(lm, folder, n_sequences=256, splices=True):
    """FVU, L0, dead fraction and CE loss (clean / one layer spliced / zero-ablated / all) of the dictionaries in
    `folder`, by hand from `layer_L/sae_weights.safetensors` and `cfg.json` in float64: pre-activations
    (x − b_dec if the config applies b_dec to the input) W_enc + b_enc; activations the k largest of them clipped at
    0 (TopK) or their ReLU; reconstruction a W_dec + b_dec. Splices are TransformerLens hooks replacing the output
    hook (hook_mlp_out for transcoders, the input hook itself for attention SAEs) after BOS. The text is the
    evaluation text (`corpus_batches` at the evaluation seed)."""
    import torch.nn.functional as F
    from safetensors.torch import load_file

    from interp.data import corpus
    from interp.train.dictionaries import corpus_batches

    model, n_layers = lm.model, lm.model.cfg.n_layers
    raw = [{k_: v.double() for k_, v in load_file(folder / f"layer_{L}" / "sae_weights.safetensors").items()}
           for L in range(n_layers)]
    cfg = [json.loads((folder / f"layer_{L}" / "cfg.json").read_text()) for L in range(n_layers)]
    in_hook = [c["metadata"]["hook_name"] for c in cfg]
    out_hook = [c["metadata"].get("hook_name_out") or c["metadata"]["hook_name"] for c in cfg]

    def acts(x, L):
        x = x.double() - (raw[L]["b_dec"] if cfg[L]["apply_b_dec_to_input"] else 0.0)
        pre = x @ raw[L]["W_enc"] + raw[L]["b_enc"]
        if "k" not in cfg[L]:
            return pre.clamp(min=0)
        keep = pre >= pre.sort(-1, descending=True).values[..., cfg[L]["k"] - 1:cfg[L]["k"]]
        return torch.where(keep, pre.clamp(min=0), torch.zeros_like(pre))

    def recon(x, L):
        return acts(x, L) @ raw[L]["W_dec"] + raw[L]["b_dec"]

    batches = list(corpus_batches(lm, n_sequences, corpus.EVAL_SEED))
    xs, ys = {L: [] for L in range(n_layers)}, {L: [] for L in range(n_layers)}
    with torch.no_grad():
        for tokens in batches:
            _, cache = model.run_with_cache(tokens)
            for L in range(n_layers):
                xs[L].append(cache[in_hook[L]][:, 1:].flatten(0, 1))
                ys[L].append(cache[out_hook[L]][:, 1:].flatten(0, 1).double())
    out = {"n_tokens": sum(t[:, 1:].numel() for t in batches), "fvu": [], "l0": [], "dead": []}
    for L in range(n_layers):
        x, y = torch.cat(xs[L]), torch.cat(ys[L])
        a = acts(x, L)
        out["fvu"].append(float((recon(x, L) - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum()))
        out["l0"].append(float((a > 0).sum()) / len(a))
        out["dead"].append(1 - float((a > 0).any(0).sum()) / a.shape[1])

    def ce(replace):
        """Mean next-token CE with the output hook of each layer in `replace` ({L: "splice" | "zero"}) replaced."""
        inputs = {}

        def read(x, hook):
            inputs[int(hook.name.split(".")[1])] = x

        def write(y, hook):
            L = int(hook.name.split(".")[1])
            new = torch.zeros_like(y) if replace[L] == "zero" else recon(inputs[L], L).to(y.dtype)
            return torch.cat([y[:, :1], new[:, 1:]], 1)

        hooks = [(in_hook[L], read) for L in replace]  # on the same hook as `write` for an SAE: runs first
        hooks += [(out_hook[L], write) for L in replace]
        total, n = 0.0, 0
        with torch.no_grad():
            for tokens in batches:
                logits = model.run_with_hooks(tokens, fwd_hooks=hooks).double()
                total += F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="sum").item()
                n += tokens[:, 1:].numel()
        return total / n

    clean = ce({})
    out["ce_clean"] = clean
    if not splices:
        return out
    for L in range(n_layers):
        spliced, ablated = ce({L: "splice"}), ce({L: "zero"})
        out.update({f"ce_clean_{L}": clean, f"ce_spliced_{L}": spliced, f"ce_ablated_{L}": ablated,
                    f"recovered_{L}": (ablated - spliced) / (ablated - clean)})
        assert ablated - clean > 1e-3  # the layer matters, so the ratio is well defined
    spliced = ce({L: "splice" for L in range(n_layers)})
    ablated = ce({L: "zero" for L in range(n_layers)})
    out.update(ce_spliced_all=spliced, ce_ablated_all=ablated, recovered_all=(ablated - spliced) / (ablated - clean))
    return out


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
    # Every reported metric, recomputed by hand from the raw weight files on the same evaluation text.
    hand = hand_dictionary_metrics(tiny_lm, out)
    assert result.eval["n_tokens"] == hand["n_tokens"]
    for L, row in enumerate(layers):
        assert row["l0"] == hand["l0"][L]  # counts: exact
        assert row["dead_fraction"] == hand["dead"][L]
        # FVU and CE: the evaluation runs in float32, the hand computation in float64 (decoder, sums)
        assert row["fvu"] == pytest.approx(hand["fvu"][L], rel=1e-5)
        for key in ("clean", "spliced", "ablated"):
            assert row[f"ce_{key}"] == pytest.approx(hand[f"ce_{key}_{L}"], rel=1e-6)
        assert row["ce_loss_recovered"] == pytest.approx(hand[f"recovered_{L}"], rel=1e-4)
    assert result.eval["ce_spliced_all"] == pytest.approx(hand["ce_spliced_all"], rel=1e-6)
    assert result.eval["ce_ablated_all"] == pytest.approx(hand["ce_ablated_all"], rel=1e-6)
    assert result.eval["ce_loss_recovered_all"] == pytest.approx(hand["recovered_all"], rel=1e-4)


def test_relu_attention_saes_load_as_plain_sae_lens(tiny_lm, tmp_path):
    out = tmp_path / "attn"
    _, result = train_dictionaries(tiny_lm, DictTrainOptions(kind="attn_sae", variant="relu", l1=0.5, **TINY_DICT),
                                   out=out, model_ref=str(tiny_lm.path.resolve()), quiet=True)
    sae = SAE.load_from_disk(out / "layer_0")
    assert sae.cfg.architecture() == "standard" and sae.cfg.metadata.hook_name == "blocks.0.hook_attn_out"
    # README's attention-SAE rows: the reported metrics against the hand computation (see the transcoder test).
    hand = hand_dictionary_metrics(tiny_lm, out)
    for L, row in enumerate(result.eval["layers"]):
        assert row["l0"] == hand["l0"][L] and row["dead_fraction"] == hand["dead"][L]
        assert row["fvu"] == pytest.approx(hand["fvu"][L], rel=1e-5)
        assert row["ce_spliced"] == pytest.approx(hand[f"ce_spliced_{L}"], rel=1e-6)
        assert row["ce_loss_recovered"] == pytest.approx(hand[f"recovered_{L}"], rel=1e-4)
    assert result.eval["ce_loss_recovered_all"] == pytest.approx(hand["recovered_all"], rel=1e-4)


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
    code, stdout, stderr = run_cli("train", "transcoders", tiny_lm.path, "--out", out, "--expansion", "2",
                                   "--k", "4", "--steps", "20", "--batch-size", "64", "--n-tokens", "1000", "--quiet",
                                   "--json")
    assert code == 0, stderr
    code, stdout, stderr = run_cli("evaluate", out, "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert [row["layer"] for row in data["layers"]] == [0, 1]
    hand = hand_dictionary_metrics(tiny_lm, out, splices=False)  # the CE splices: see the roundtrip test
    assert data["n_tokens"] == hand["n_tokens"] and data["ce_clean"] == pytest.approx(hand["ce_clean"], rel=1e-6)
    for L, row in enumerate(data["layers"]):
        assert row["l0"] == hand["l0"][L] and row["dead_fraction"] == hand["dead"][L]
        assert row["fvu"] == pytest.approx(hand["fvu"][L], rel=1e-5)
    code, _, stderr = run_cli("train", "transcoders", tmp_path / "nowhere", "--out", tmp_path / "x",
                              "--quiet")
    assert code == 2 and "not found" in stderr and not (tmp_path / "x").exists()
