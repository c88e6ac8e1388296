"""TransformerLens LM factory, checkpoint I/O, outside models, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data import corpus
from interp.errors import InterpError
from interp.models.lm import (LoadedLM, build_lm, load_hf_gpt2_folder, load_lm, load_pretrained_lm, make_lm_config,
                              save_lm)


def tiny(arch: str = "bilinear", seed: int = 0):
    tok = corpus.make_tokenizer()
    cfg = make_lm_config(arch, n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=24, d_vocab=len(tok), seed=seed)
    return build_lm(cfg), tok


def test_bilinear_mlp_is_an_exact_product_with_frozen_zero_bias():
    model, _ = tiny("bilinear")
    mlp = model.blocks[0].mlp
    assert model.cfg.gated_mlp and model.cfg.act_fn == "identity"
    assert not mlp.b_in.requires_grad and torch.all(mlp.b_in == 0)
    x = torch.randn(2, 3, 32)
    expected = ((x @ mlp.W_gate) * (x @ mlp.W_in)) @ mlp.W_out + mlp.b_out
    torch.testing.assert_close(mlp(x), expected)


def test_gelu_baseline_has_same_widths():
    bilinear, _ = tiny("bilinear")
    gelu, _ = tiny("gelu")
    assert gelu.cfg.act_fn == "gelu" and not gelu.cfg.gated_mlp
    assert (gelu.cfg.d_model, gelu.cfg.d_mlp, gelu.cfg.n_layers) == (bilinear.cfg.d_model, bilinear.cfg.d_mlp, 1)


def test_same_seed_same_weights_and_unknown_arch():
    a, _ = tiny(seed=5)
    b, _ = tiny(seed=5)
    torch.testing.assert_close(a.W_E, b.W_E)
    with pytest.raises(InterpError, match="unknown LM architecture"):
        make_lm_config("relu")


def test_save_load_roundtrip_same_logits(tmp_path):
    model, tok = tiny()
    save_lm(tmp_path / "m", model, tok, {"note": "test"})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["kind"] == "lm" and config["arch"] == "bilinear"
    assert config["hooked_transformer_config"]["act_fn"] == "identity"
    loaded = load_lm(tmp_path / "m")
    assert isinstance(loaded, LoadedLM) and loaded.metrics == {"note": "test"} and loaded.arch == "bilinear"
    tokens = loaded.to_tokens("the dog sees a cat .")
    model.eval()
    torch.testing.assert_close(loaded.model(tokens), model(tokens))


def test_bad_input_tokenizer_mismatch_prompt_too_long_wrong_kind(tmp_path):
    model, tok = tiny()
    save_lm(tmp_path / "m", model, tok)
    loaded = load_lm(tmp_path / "m")
    with pytest.raises(InterpError, match="context"):
        loaded.to_tokens(" ".join(["the dog sees a cat ."] * 5))
    with pytest.raises(InterpError, match="unknown word"):
        loaded.to_tokens("the unicorn sees a cat")
    vocab = json.loads((tmp_path / "m" / "tokenizer.json").read_text())
    vocab["vocab"] = vocab["vocab"][:-3]
    (tmp_path / "m" / "tokenizer.json").write_text(json.dumps(vocab))
    with pytest.raises(InterpError, match="tokenizer"):
        load_lm(tmp_path / "m")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text('{"kind": "classifier"}')
    with pytest.raises(InterpError, match="not a language model"):
        load_lm(tmp_path / "c")


def test_local_hf_gpt2_folder_loads_through_transformer_lens(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=16, vocab_size=50)).eval()
    hf.save_pretrained(tmp_path / "gpt2")
    model = load_hf_gpt2_folder(tmp_path / "gpt2")
    tokens = torch.tensor([[1, 5, 7, 9, 2]])
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(tokens).logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(InterpError, match="not a Hugging Face model folder"):
        load_hf_gpt2_folder(tmp_path)


def test_pretrained_name_offline_is_one_clear_error():
    with pytest.raises(InterpError, match="not a TransformerLens pretrained model name"):
        load_pretrained_lm("no-such-model-xyz")
    with pytest.raises(InterpError, match="local Hugging Face cache"):
        load_pretrained_lm("gpt2")
