"""Token relevance on a tiny bilinear LM: exact sum, meaning of each share, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from interp.data.tokenizer import WordTokenizer
from interp.errors import InterpError
from interp.models.lm import build_lm, make_lm_config, save_lm
from interp.relevance.tokens import token_relevance

WORDS = "the cat dog sat ran on a mat hat red big".split()


def tiny_lm(arch="bilinear", seed=0):
    cfg = make_lm_config(arch, n_layers=2, d_model=32, n_heads=4, d_mlp=64, n_ctx=16, d_vocab=len(WORDS) + 1, seed=seed)
    model = build_lm(cfg).eval()
    torch.manual_seed(seed)
    with torch.no_grad():  # non-zero biases and LayerNorm parameters, so the constant share is exercised
        for name, p in model.named_parameters():
            if name.split(".")[-1] in ("b", "w", "b_O", "b_V", "b_out", "b_U", "b_Q", "b_K"):
                p.add_(0.2 * torch.randn_like(p))
    return model


def test_token_relevance_sums_exactly_to_the_logit():
    model = tiny_lm()
    tokens = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]])
    for target in (None, 3, 9):
        result = token_relevance(model, tokens, target)
        logit = model(tokens)[0, -1, result.target_id].item()
        assert result.output == pytest.approx(logit, rel=1e-6)
        assert sum(result.relevance) + result.constant == pytest.approx(logit, rel=1e-4, abs=1e-5)
        assert len(result.relevance) == tokens.shape[1]


def test_a_token_with_zero_embedding_gets_zero_relevance():
    model = tiny_lm(seed=1)
    with torch.no_grad():
        model.W_E[5] = 0
    tokens = torch.tensor([[0, 5, 2, 5, 3]])
    result = token_relevance(model, tokens, target=4)
    assert result.relevance[1] == 0 and result.relevance[3] == 0
    assert any(abs(r) > 1e-4 for r in result.relevance)


def test_shares_are_exact_for_a_single_linear_path():
    # With every MLP and attention output switched off, the logit is linear in the embeddings
    # (LN scales frozen): each token's share is its own embedding's term, computed here directly.
    model = tiny_lm(seed=2)
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.W_out.zero_()
            block.attn.W_O.zero_()
    tokens = torch.tensor([[0, 3, 1, 4]])
    _, cache = model.run_with_cache(tokens)
    result = token_relevance(model, tokens, target=2)
    e = model.W_E[tokens[0, -1]]
    direct = ((e - e.mean()) / cache["ln_final.hook_scale"][0, -1]) * model.ln_final.w @ model.W_U[:, 2]
    assert result.relevance[-1] == pytest.approx(direct.item(), rel=1e-5)
    assert all(abs(r) < 1e-7 for r in result.relevance[:-1])


def test_gelu_lm_freezes_its_activation_and_still_sums_exactly():
    # GELU frozen as f(h)/h on the prompt: the shares still add up to the logit (float64: to rounding).
    model = tiny_lm("gelu").to(torch.float64)
    tokens = torch.tensor([[0, 1, 2, 3, 4]])
    result = token_relevance(model, tokens, target=6)
    logit = model(tokens)[0, -1, 6].item()
    assert result.mlp_rule == "frozen activation" and "MLP activation gelu as f(h)/h" in result.frozen
    assert abs(sum(result.relevance) + result.constant - logit) <= 1e-9 * abs(logit)
    assert token_relevance(tiny_lm().to(torch.float64), tokens).mlp_rule == "bilinear"


def test_layer_norm_activation_has_no_rule():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=12, n_ctx=8,
                                  act_fn="solu_ln", model_name="solu")
    with pytest.raises(InterpError, match="does not support solu: its MLP activation 'solu_ln'"):
        token_relevance(HookedTransformer(cfg).eval(), torch.tensor([[0, 1, 2]]))


def test_cli_token_relevance(run_cli, tmp_path):
    tokenizer = WordTokenizer(WORDS)
    save_lm(tmp_path / "lm", tiny_lm(), tokenizer, {})
    save_lm(tmp_path / "gelu", tiny_lm("gelu"), tokenizer, {})
    code, stdout, stderr = run_cli("relevance", tmp_path / "lm", "--text", "the cat sat on the", "--target", "mat",
                                   "--json", "--top", "3", "--out-html", tmp_path / "tokens.html")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["tokens"] == ["<bos>", "the", "cat", "sat", "on", "the"] and result["target"] == "mat"
    assert result["relevance_sum"] == pytest.approx(result["output"], rel=1e-4, abs=1e-5)
    assert len(result["top_tokens"]) == 3 and (tmp_path / "tokens.html").is_file()
    for args, message in ((["--text", "the unicorn"], "unknown word"), (["--text", "the", "--target", "zebra"], "unknown word"),
                          (["--index", "0"], "need --text"),
                          (["--text", "the cat", "--out", tmp_path / "tokens.png"], "with --out-html")):
        code, stdout, stderr = run_cli("relevance", tmp_path / "lm", *args, "--json")
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    code, stdout, stderr = run_cli("relevance", tmp_path / "gelu", "--text", "the cat", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["model"] == "gelu-lm" and result["mlp_rule"] == "frozen activation"
    assert result["relevance_sum"] == pytest.approx(result["output"], rel=1e-4, abs=1e-5)
