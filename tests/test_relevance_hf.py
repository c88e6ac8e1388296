"""Token relevance on Hugging Face model folders (GPT-2, GPT-NeoX, Llama, Qwen2, Gemma 2), in float64.

Each family's tiny random folder (tests/hf_helpers.py) is loaded unfolded; the shares are checked against
the model's own logit and, token by token, against TransformerLens' own forward pass run on one source
alone with the same things frozen by hooks (attention patterns, norm scales, MLP activations as f(h)/h).
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from hf_helpers import FAMILIES, make_hf_folder, one_thread  # noqa: F401 (an autouse fixture)
from interp.errors import InterpError
from interp.models.lm import load_lm
from interp.relevance.tokens import token_relevance

PROMPT = "when Mary and John went to the park , John gave a book to"
REL = 1e-9  # float64: the decomposition is exact up to rounding (measured ~1e-15)



@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-relevance")
    out = {}
    for family in FAMILIES:
        make_hf_folder(family, root / family, seed=2)
        out[family] = (root / family, load_lm(root / family, dtype=torch.float64))
    return out


def _ratio(act_fn, pre):
    return torch.where(pre != 0, act_fn(pre) / torch.where(pre != 0, pre, torch.ones_like(pre)), torch.zeros_like(pre))


@torch.no_grad()
def frozen_source_logits(model, tokens, target):
    """Per source (each token, then the constant: positional embeddings and every bias), the target logit of
    TransformerLens' own forward pass fed that source alone, with patterns, norm scales and MLP activations
    frozen at their values on the whole prompt, and the output soft cap as the ratio of capped to uncapped logit."""
    logits, cache = model.run_with_cache(tokens)
    with_biases = copy.deepcopy(model)
    with_biases.cfg.output_logits_soft_cap = -1.0
    cap_ratio = logits[0, -1, target] / with_biases(tokens)[0, -1, target]
    no_biases = copy.deepcopy(with_biases)
    for name, p in no_biases.named_parameters():
        if name.split(".")[-1] in ("b", "b_in", "b_out", "b_O", "b_V", "_b_V", "b_U"):
            p.zero_()
    out = []
    for source in list(range(tokens.shape[1])) + [None]:
        m = with_biases if source is None else no_biases
        stored = {}

        def embed(x, hook):
            keep = torch.zeros_like(x)
            if source is not None:
                keep[:, source] = x[:, source]
            return keep

        def frozen(x, hook):
            return cache[hook.name]

        def store(x, hook):
            stored[hook.name] = x
            return x

        def post(x, hook, m=m, stored=stored):
            layer = hook.name.split(".")[1]
            mlp = m.blocks[int(layer)].mlp
            pre_full = cache[f"blocks.{layer}.mlp.hook_pre"]
            rho = torch.ones_like(pre_full) if m.cfg.act_fn == "identity" else _ratio(mlp.act_fn, pre_full)
            pre = stored[f"blocks.{layer}.mlp.hook_pre"]
            if not m.cfg.gated_mlp:
                return rho * pre
            lin = stored[f"blocks.{layer}.mlp.hook_pre_linear"]
            lin_full = cache[f"blocks.{layer}.mlp.hook_pre_linear"]
            return 0.5 * (rho * pre * lin_full + rho * pre_full * lin) + mlp.b_in

        hooks = [("hook_embed", embed),
                 (lambda n: n.endswith("hook_scale") or n.endswith("attn.hook_pattern"), frozen),
                 (lambda n: n.endswith("mlp.hook_pre") or n.endswith("mlp.hook_pre_linear"), store),
                 (lambda n: n.endswith("mlp.hook_post"), post)]
        if source is not None and m.cfg.positional_embedding_type == "standard":
            hooks.append(("hook_pos_embed", lambda x, hook: torch.zeros_like(x)))
        out.append(float(m.run_with_hooks(tokens, fwd_hooks=hooks)[0, -1, target] * cap_ratio))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_shares_sum_to_the_logit_and_each_is_its_token_alone(family, loaded):
    _, lm = loaded[family]
    tokens = lm.to_tokens(PROMPT)
    with torch.no_grad():
        logits = lm.model(tokens)[0, -1]
    for target in (None, int(logits.argmin())):
        result = token_relevance(lm.model, tokens, target)
        logit = float(logits[result.target_id])
        assert result.target_id == (int(logits.argmax()) if target is None else target)
        assert len(result.relevance) == tokens.shape[1]
        assert abs(sum(result.relevance) + result.constant - logit) <= REL * abs(logit)
    # each share, token by token (for the last target), is the model's own forward pass on that source alone
    scale = max(abs(logit), max(abs(r) for r in result.relevance))
    expected = frozen_source_logits(lm.model, tokens, result.target_id)
    for got, want in zip(result.relevance + [result.constant], expected, strict=True):
        assert abs(got - want) <= REL * scale, (family, got, want)
    assert sum(abs(r) > 1e-3 * scale for r in result.relevance) >= 3  # several tokens matter
    assert result.mlp_rule == "frozen activation"
    assert ("output soft cap 3 as c·tanh(u/c)/u" in result.frozen) == (family == "gemma2")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_single_linear_path_gives_the_direct_term(family, loaded):
    # With every attention and MLP output weight zeroed, only the last token's own embedding reaches the last
    # position: its share is that embedding through the final norm (scale frozen) and the unembedding,
    # computed here by hand; every other token's share is 0.
    _, lm = loaded[family]
    model = copy.deepcopy(lm.model)
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.W_out.zero_()
            block.attn.W_O.zero_()
    tokens = lm.to_tokens(PROMPT)
    _, cache = model.run_with_cache(tokens)
    target = 5
    result = token_relevance(model, tokens, target)
    e = model.W_E[tokens[0, -1]]
    if model.cfg.normalization_type == "LN":
        e = e - e.mean()
    direct = float(e / cache["ln_final.hook_scale"][0, -1] * model.ln_final.w @ model.W_U[:, target])
    cap = model.cfg.output_logits_soft_cap
    if cap is not None and cap > 0:  # Gemma 2: the capped logit over the uncapped one, by hand
        resid = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][0, -1]
        u = float(resid / cache["ln_final.hook_scale"][0, -1] * model.ln_final.w @ model.W_U[:, target]
                  + model.b_U[target])
        direct *= cap * math.tanh(u / cap) / u
    assert result.relevance[-1] == pytest.approx(direct, rel=REL)
    assert all(r == 0.0 for r in result.relevance[:-1])


def test_a_token_with_zero_embedding_gets_exactly_zero(loaded):
    _, lm = loaded["llama"]
    model = copy.deepcopy(lm.model)
    tokens = lm.to_tokens(PROMPT)
    with torch.no_grad():
        model.W_E[tokens[0, 3]] = 0
    result = token_relevance(model, tokens)
    zero = [i for i, t in enumerate(tokens[0].tolist()) if t == int(tokens[0, 3])]
    assert all(result.relevance[i] == 0.0 for i in zero)
    assert sum(abs(r) > 1e-3 for r in result.relevance) >= 3


@pytest.mark.parametrize("family", ("gpt2", "gemma2"))
def test_cli_on_a_hugging_face_folder(family, loaded, run_cli):
    folder, lm = loaded[family]
    code, stdout, stderr = run_cli("relevance", folder, "--text", PROMPT, "--target", "Mary", "--json",
                                   "--dtype", "float64", "--top", "3")
    assert code == 0, stderr
    out = json.loads(stdout)
    ids = lm.tokenizer.encode(PROMPT)
    assert out["model"] == family and out["token_ids"] == ids
    assert out["tokens"] == [lm.tokenizer.vocab[i] for i in ids] and "".join(out["tokens"][1:]).strip() == PROMPT
    assert out["target_id"] == lm.tokenizer.token_id("Mary") and out["target"].strip() == "Mary"
    with torch.no_grad():
        logit = float(lm.model(torch.tensor([ids]))[0, -1, out["target_id"]])
    assert abs(out["relevance_sum"] - logit) <= REL * abs(logit)
    assert [t["position"] for t in out["top_tokens"]] == sorted(range(len(ids)), key=lambda i: -out["relevance"][i])[:3]
    code, stdout, stderr = run_cli("relevance", folder, "--text", PROMPT, "--target", "Marylebone", "--json")
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1 and "not a single token" in stderr


def test_refused_architectures_say_which_and_why(tmp_path, run_cli):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from interp.data.tokenizer import WordTokenizer
    from interp.models.lm import save_lm

    words = "the cat sat on a mat".split()
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=len(words) + 1,
                                  n_ctx=8, act_fn="solu_ln", model_name="solu-test")
    model = HookedTransformer(cfg).eval()
    with pytest.raises(InterpError, match=r"does not support solu-test: its MLP activation 'solu_ln' normalises"):
        token_relevance(model, torch.tensor([[0, 1, 2]]))
    save_lm(tmp_path / "solu", model, WordTokenizer(words), {})
    code, stdout, stderr = run_cli("relevance", tmp_path / "solu", "--text", "the cat sat", "--json")
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert "does not support solu-test" in stderr and "normalises across neurons" in stderr
    shortformer = HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=7, n_ctx=8,
                                          act_fn="gelu", positional_embedding_type="shortformer", model_name="sf")
    with pytest.raises(InterpError, match="does not support sf: 'shortformer' positional embeddings"):
        token_relevance(HookedTransformer(shortformer).eval(), torch.tensor([[0, 1, 2]]))
