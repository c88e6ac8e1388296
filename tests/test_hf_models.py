"""Hugging Face model folders (GPT-2, GPT-NeoX, Llama, Qwen2, Gemma 2) loaded offline as HookedTransformers.

Each family's folder is a tiny random model made here with transformers and a BPE tokenizer trained here
on corpus text (tests/hf_helpers.py); nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch

from hf_helpers import FAMILIES, corpus_texts, make_hf_folder
from interp.errors import InterpError
from interp.models.hf import HFTokenizer, is_hf_folder, load_hf_lm
from interp.models.lm import LoadedLM, load_lm

# Qwen2's embedding is padded beyond its tokenizer, as in the released Qwen models.
EXTRA_VOCAB = {"qwen2": 8}
PROMPT = "when Mary and John went to the park , John gave a book to Mary . list : red cat lake"
# float32 logits of HookedTransformer vs transformers differ by rounding only: measured (3 seeds, 1 and 2
# threads) at most 7e-6 of the largest logit (Llama), 1.6e-6 for the other families; 2e-5 leaves room for
# other BLAS kernels and is still far below what any wrong setting gives (a missing window, soft cap or
# query scale moves Gemma 2's logits by ~5, of a scale of 3).
REL_TOL = 2e-5


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{family: (folder, transformers model, transformers tokenizer)}."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for family in FAMILIES:
        model, tokenizer = make_hf_folder(family, root / family, seed=1, extra_vocab=EXTRA_VOCAB.get(family, 0))
        out[family] = (root / family, model, tokenizer)
    return out


@pytest.fixture(scope="module")
def loaded(folders):
    return {family: load_lm(folder) for family, (folder, _, _) in folders.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_transformers(family, folders, loaded):
    _, hf, _ = folders[family]
    lm = loaded[family]
    assert isinstance(lm, LoadedLM) and isinstance(lm.tokenizer, HFTokenizer)
    assert lm.config["model_type"] == family and lm.model.cfg.original_architecture == hf.config.architectures[0]
    ids = lm.tokenizer.encode(PROMPT)
    other = lm.tokenizer.encode(corpus_texts(1, seed=7, n_words=14)[0])
    n = min(len(ids), len(other))
    tokens = torch.tensor([ids[:n], other[:n]])
    assert n > 8  # longer than Gemma 2's sliding window of 4
    with torch.no_grad():
        expected = hf(tokens).logits
        got = lm.model(tokens)
    scale = expected.abs().max().item()
    assert scale > 2.0  # sharp enough that a wrong scale, mask or cap would show
    diff = (got - expected).abs().max().item()
    assert diff <= REL_TOL * scale, f"{family}: max |diff| {diff:.3g} at logit scale {scale:.3g}"


def test_gqa_and_family_settings_reach_the_config(loaded):
    assert loaded["llama"].model.cfg.n_key_value_heads == 2 and loaded["llama"].model.cfg.n_heads == 4
    assert loaded["llama"].model.cfg.rotary_base == 500000.0
    assert loaded["qwen2"].model.cfg.n_key_value_heads == 2
    assert loaded["gpt_neox"].model.cfg.parallel_attn_mlp and loaded["gpt_neox"].model.cfg.rotary_dim == 2
    gemma = loaded["gemma2"].model.cfg
    assert gemma.attn_types == ["local", "global"] and gemma.window_size == 4
    assert (gemma.attn_scores_soft_cap, gemma.output_logits_soft_cap) == (5.0, 3.0)
    assert gemma.attn_scale == pytest.approx(24 ** 0.5) and gemma.use_normalization_before_and_after
    for lm in loaded.values():  # unfolded: the model's own norms, uncentred weights
        assert lm.model.cfg.normalization_type in ("LN", "RMS")


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_adapter_roundtrip_and_bos(family, folders, loaded):
    _, hf, hf_tok = folders[family]
    tok = loaded[family].tokenizer
    text = corpus_texts(1, seed=3)[0]
    ids = tok.encode(text)
    body = tok.encode(text, prepend_bos=False)
    assert body == hf_tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text and tok.decode(body) == text
    if family in ("gpt2", "gpt_neox"):  # <|endoftext|> as BOS, as TransformerLens prepends it
        assert ids == [hf_tok.convert_tokens_to_ids("<|endoftext|>")] + body
    elif family == "qwen2":  # no BOS token: nothing prepended
        assert hf_tok.bos_token_id is None and ids == body and tok.bos_id is None
    else:  # Llama <s>, Gemma <bos>: what the tokenizer itself adds
        assert ids[0] == hf_tok.bos_token_id and ids == hf_tok.encode(text)
        assert tok.vocab[ids[0]] == {"llama": "<s>", "gemma2": "<bos>"}[family]
    # the vocabulary covers the model's d_vocab; padded ids read as unused
    assert len(tok) == len(tok.vocab) == hf.config.vocab_size == loaded[family].model.cfg.d_vocab
    assert tok.tokenizer_size == len(hf_tok)
    if family in EXTRA_VOCAB:
        assert tok.vocab[-1].startswith("<unused")
    # one word -> one token id; the readable string carries its word-start space in every family
    mary = tok.token_id("Mary")
    assert tok.vocab[mary] == " Mary" and tok.token_id(" Mary") == mary
    assert tok.tokens("John gave", prepend_bos=False)[-1] == " gave"
    with pytest.raises(InterpError, match="not a single token") as e:
        tok.token_id("unicornish")
    assert "\n" not in str(e.value)
    with pytest.raises(InterpError, match="empty"):
        tok.token_id("  ")
    # LoadedLM.to_tokens goes through the adapter; TransformerLens' own to_tokens agrees with it
    assert loaded[family].to_tokens(PROMPT)[0].tolist() == tok.encode(PROMPT)
    assert loaded[family].model.to_tokens(PROMPT)[0].tolist() == tok.encode(PROMPT)
    assert tok.hf.bos_token_id == hf_tok.bos_token_id  # the adapter's tokenizer was not altered


@pytest.mark.parametrize("family", FAMILIES)
def test_graph_engine_hooks_exist_and_scale_is_the_models_own(family, loaded):
    lm = loaded[family]
    model = lm.model
    tokens = lm.to_tokens(PROMPT)
    ln2_input = "blocks.0.hook_resid_pre" if model.cfg.parallel_attn_mlp else "blocks.0.hook_resid_mid"
    names = ["blocks.0.ln1.hook_scale", "blocks.0.ln2.hook_scale", "blocks.0.ln2.hook_normalized",
             "blocks.0.hook_mlp_out", "blocks.0.attn.hook_pattern", "blocks.1.hook_mlp_out", "ln_final.hook_scale",
             ln2_input]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    assert set(names) <= set(cache.keys())
    n = tokens.shape[1]
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, model.cfg.n_heads, n, n)
    assert cache["blocks.0.ln2.hook_scale"].shape == (1, n, 1)
    assert cache["blocks.0.hook_mlp_out"].shape == (1, n, model.cfg.d_model)
    # The normalisation is the model's own, unfolded: its output is its input divided by hook_scale, so a
    # replacement model that freezes hook_scale reproduces it exactly.
    x = cache[ln2_input]
    if model.cfg.normalization_type == "LN":
        x = x - x.mean(-1, keepdim=True)
    torch.testing.assert_close(cache["blocks.0.ln2.hook_normalized"], x / cache["blocks.0.ln2.hook_scale"],
                               rtol=0, atol=0)


def test_ln_weights_are_not_folded(folders, loaded):
    """The HookedTransformer keeps each norm's weight (Gemma's 1 + w convention) and an uncentred W_U."""
    _, hf, _ = folders["llama"]
    model = loaded["llama"].model
    torch.testing.assert_close(model.blocks[0].ln2.w, hf.model.layers[0].post_attention_layernorm.weight)
    torch.testing.assert_close(model.W_U, hf.lm_head.weight.T)
    _, hf, _ = folders["gemma2"]
    model = loaded["gemma2"].model
    torch.testing.assert_close(model.blocks[0].ln2.w, 1 + hf.model.layers[0].pre_feedforward_layernorm.weight)
    _, hf, _ = folders["gpt2"]
    model = loaded["gpt2"].model
    torch.testing.assert_close(model.blocks[1].ln1.b, hf.transformer.h[1].ln_1.bias)


def test_is_hf_folder_and_own_checkpoints_still_load(folders, tmp_path):
    from interp.data import corpus
    from interp.models.lm import build_lm, make_lm_config, save_lm

    assert is_hf_folder(folders["gpt2"][0]) and not is_hf_folder(tmp_path)
    tok = corpus.make_tokenizer()
    save_lm(tmp_path / "own", build_lm(make_lm_config("gelu", n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                                                      n_ctx=16, d_vocab=len(tok))), tok)
    assert not is_hf_folder(tmp_path / "own")
    own = load_lm(tmp_path / "own")
    assert own.config["kind"] == "lm" and own.tokenizer == tok


# ---------------------------------------------------------------- bad input


def _copy(folders, tmp_path, family="gpt2"):
    dest = tmp_path / family
    shutil.copytree(folders[family][0], dest)
    return dest


def _one_line_error(folder, match):
    with pytest.raises(InterpError, match=match) as e:
        load_lm(folder)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_missing_weights_file(folders, tmp_path):
    folder = _copy(folders, tmp_path)
    (folder / "model.safetensors").unlink()
    assert str(folder / "model.safetensors") in _one_line_error(folder, "not found")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    _one_line_error(folder, "pickle")


def test_unsupported_model_type(folders, tmp_path):
    folder = _copy(folders, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="mistral", architectures=["MistralForCausalLM"])
    (folder / "config.json").write_text(json.dumps(config))
    message = _one_line_error(folder, "model_type 'mistral' is not one of gpt2, gpt_neox, llama, qwen2, gemma2")
    assert str(folder / "config.json") in message


def test_tokenizer_bigger_than_the_vocabulary(folders, tmp_path):
    from transformers import AutoTokenizer

    folder = _copy(folders, tmp_path, "llama")
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tok.add_tokens(["zzqa", "zzqb", "zzqc"])
    tok.save_pretrained(folder)
    message = _one_line_error(folder, "tokenizer does not belong to this model")
    assert str(folder / "tokenizer.json") in message and f"is {len(tok) - 3}" in message


def test_truncated_and_mismatched_weights(folders, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _copy(folders, tmp_path, "qwen2")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 2])
    assert str(weights) in _one_line_error(folder, "truncated")
    weights.write_bytes(data[:5])
    _one_line_error(folder, "not a valid safetensors file")
    weights.write_bytes(data)
    state = load_file(weights)
    state.pop("model.layers.1.mlp.up_proj.weight")
    save_file(state, weights, metadata={"format": "pt"})
    _one_line_error(folder, r"do not match .*config.json \(missing \['model.layers.1.mlp.up_proj.weight'\]\)")


def test_missing_tokenizer_and_unsupported_rope(folders, tmp_path):
    folder = _copy(folders, tmp_path, "llama")
    original = (folder / "config.json").read_text()
    config = json.loads(original)
    config["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}
    (folder / "config.json").write_text(json.dumps(config))
    _one_line_error(folder, "RoPE scaling 'yarn' is not supported")
    (folder / "config.json").write_text(original)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    _one_line_error(folder, "has no tokenizer files")


def test_load_hf_lm_options(folders):
    """dtype and n_ctx; in float64 the two implementations agree to rounding (GPT-2: no rotary, which
    transformers computes in float32 whatever the dtype)."""
    lm = load_hf_lm(folders["gpt2"][0], dtype=torch.float64, n_ctx=32)
    assert lm.model.cfg.n_ctx == 32 and lm.model.W_E.dtype == torch.float64
    hf64 = copy.deepcopy(folders["gpt2"][1]).double()
    tokens = lm.to_tokens(PROMPT)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(tokens), hf64(tokens).logits, rtol=0, atol=1e-10)


# ---------------------------------------------------------------- interp evaluate --text


def test_cli_evaluate_text_loss(folders, loaded, tmp_path, run_cli):
    folder, hf, _ = folders["gemma2"]
    text = "\n".join(corpus_texts(3, seed=11, n_words=40))  # several windows of the 64-token context
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    code, out, err = run_cli("evaluate", folder, "--text", tmp_path / "t.txt", "--json")
    assert code == 0, err
    result = json.loads(out)
    # the same windows through transformers
    tok = loaded["gemma2"].tokenizer
    ids, step = tok.encode(text, prepend_bos=False), 64 - 1
    total = count = 0
    with torch.no_grad():
        for i in range(0, len(ids), step):
            window = torch.tensor([[tok.bos_id] + ids[i:i + step]])
            logits = hf(window).logits[0, :-1]
            total += torch.nn.functional.cross_entropy(logits, window[0, 1:], reduction="sum").item()
            count += window.shape[1] - 1
    assert result["model_type"] == "gemma2" and result["n_tokens"] == count and result["n_windows"] > 1
    assert result["loss"] == pytest.approx(total / count, rel=1e-5)
    assert result["bos"] is True


def test_cli_evaluate_bad_input(folders, tmp_path, run_cli):
    folder = folders["qwen2"][0]
    (tmp_path / "b.bin").write_bytes(b"\xff\xfe\x00\x81binary")
    code, out, err = run_cli("evaluate", folder, "--text", tmp_path / "b.bin")
    assert code == 2 and "not a UTF-8 text file" in err and len(err.strip().splitlines()) == 1 and out == ""
    code, _, err = run_cli("evaluate", folder)
    assert code == 2 and "--text" in err and len(err.strip().splitlines()) == 1
    bad = _copy(folders, tmp_path, "qwen2")
    (bad / "model.safetensors").unlink()
    (tmp_path / "ok.txt").write_text("the dog sees a cat .")
    code, _, err = run_cli("evaluate", bad, "--text", tmp_path / "ok.txt")
    assert code == 2 and "model.safetensors not found" in err and len(err.strip().splitlines()) == 1


def test_cli_evaluate_text_on_our_own_checkpoint(tmp_path, run_cli):
    from interp.data import corpus
    from interp.models.lm import build_lm, make_lm_config, save_lm

    tok = corpus.make_tokenizer()
    save_lm(tmp_path / "own", build_lm(make_lm_config("bilinear", n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                                                      n_ctx=16, d_vocab=len(tok))), tok)
    (tmp_path / "t.txt").write_text("the dog sees a cat . the old man likes a red ball .")
    code, out, err = run_cli("evaluate", tmp_path / "own", "--text", tmp_path / "t.txt", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["arch"] == "bilinear" and result["n_tokens"] == 14 and result["loss"] > 0
