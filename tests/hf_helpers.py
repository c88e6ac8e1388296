"""Tiny Hugging Face model folders of each supported family, made on the spot (nothing downloaded).

`make_hf_folder(family, folder)` writes what a Hub repository holds: `config.json`, `model.safetensors`
(random weights, made with transformers and saved with `save_pretrained(safe_serialization=True)`) and
the tokenizer files of a byte-level or sentencepiece-style BPE tokenizer trained with the `tokenizers`
library on text of the synthetic corpus, with the family's special tokens. Sizes: 2 layers, hidden 32-48,
2-4 heads, a few hundred tokens, so a folder takes well under a second to make and to load.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import torch

FAMILIES = ("gpt2", "gpt_neox", "llama", "qwen2", "gemma2")
# Initialiser std of the random weights: large enough for sharp attention patterns, logits of order 10 and
# Gemma 2's soft caps to bind, so a wrong scale, mask or cap shows in the logits.
INIT_STD = 0.5
TOKENIZER_VOCAB = 1024  # BPE target size: most corpus words become single tokens (byte-level spends 256 on bytes)


def corpus_texts(n: int = 300, seed: int = 0, n_words: int = 60) -> list[str]:
    """`n` documents of the synthetic corpus (sentences, IOI, induction spans, bracket lines)."""
    from interp.data import corpus

    rng = random.Random(seed)
    return [" ".join(corpus.training_document(rng, n_words)) for _ in range(n)]


# family -> (pre-tokenizer style, special tokens in id order, bos, eos, unk, pad)
_TOKENIZER_SPECS: dict[str, dict[str, Any]] = {
    "gpt2": {"style": "bytelevel", "specials": ["<|endoftext|>"], "bos": "<|endoftext|>", "eos": "<|endoftext|>",
             "unk": "<|endoftext|>", "pad": None},
    "gpt_neox": {"style": "bytelevel", "specials": ["<|endoftext|>", "<|padding|>"], "bos": "<|endoftext|>",
                 "eos": "<|endoftext|>", "unk": "<|endoftext|>", "pad": "<|padding|>"},
    "llama": {"style": "metaspace", "specials": ["<unk>", "<s>", "</s>"], "bos": "<s>", "eos": "</s>", "unk": "<unk>",
              "pad": None},
    "qwen2": {"style": "bytelevel", "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "bos": None,
              "eos": "<|im_end|>", "unk": None, "pad": "<|endoftext|>"},
    "gemma2": {"style": "metaspace", "specials": ["<pad>", "<eos>", "<bos>", "<unk>"], "bos": "<bos>", "eos": "<eos>",
               "unk": "<unk>", "pad": "<pad>"},
}


@lru_cache(maxsize=None)
def _trained_tokenizer_json(style: str, specials: tuple[str, ...]) -> str:
    """A BPE tokenizer trained on corpus text, as tokenizer.json text (cached: training takes ~0.1 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if style == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:  # sentencepiece-like: spaces become "▁", a word start carries it
        tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=TOKENIZER_VOCAB, special_tokens=list(specials), initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(corpus_texts(), trainer=trainer)
    return tok.to_str()


def make_tokenizer(family: str):
    """A `PreTrainedTokenizerFast` for `family`, trained on corpus text, with the family's special tokens."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    spec = _TOKENIZER_SPECS[family]
    tok = Tokenizer.from_str(_trained_tokenizer_json(spec["style"], tuple(spec["specials"])))
    if spec["bos"] is not None and spec["style"] == "metaspace":
        # Llama and Gemma tokenizers add BOS themselves when asked for special tokens
        bos = spec["bos"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    kwargs = {k + "_token": spec[k] for k in ("bos", "eos", "unk", "pad") if spec[k] is not None}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def make_hf_config(family: str, vocab_size: int, n_ctx: int = 64):
    """A tiny transformers config of `family` (2 layers; grouped-query attention for Llama, Qwen2, Gemma 2)."""
    from transformers import Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config

    if family == "gpt2":
        return GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=n_ctx, vocab_size=vocab_size,
                          bos_token_id=0, eos_token_id=0)
    if family == "gpt_neox":  # Pythia: parallel residual, a quarter of each head rotary
        return GPTNeoXConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=128,
                             max_position_embeddings=n_ctx, vocab_size=vocab_size, rotary_pct=0.25,
                             use_parallel_residual=True, bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    if family == "llama":
        return LlamaConfig(num_hidden_layers=2, hidden_size=48, num_attention_heads=4, num_key_value_heads=2,
                           intermediate_size=96, max_position_embeddings=n_ctx, vocab_size=vocab_size,
                           rope_theta=500000.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                           tie_word_embeddings=False)
    if family == "qwen2":  # q/k/v biases; tied embeddings like the small Qwen2 models
        return Qwen2Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                           intermediate_size=64, max_position_embeddings=n_ctx, vocab_size=vocab_size,
                           rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                           use_sliding_window=False, bos_token_id=None, eos_token_id=2)
    if family == "gemma2":
        # A sliding window shorter than the test prompts and small soft caps, so both are exercised; the query
        # scale differs from head_dim (as in Gemma 2 27B).
        return Gemma2Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                            head_dim=16, intermediate_size=64, max_position_embeddings=n_ctx, vocab_size=vocab_size,
                            sliding_window=4, query_pre_attn_scalar=24, attn_logit_softcapping=5.0,
                            final_logit_softcapping=3.0, rms_norm_eps=1e-6, pad_token_id=0, eos_token_id=1,
                            bos_token_id=2, hidden_activation="gelu_pytorch_tanh")
    raise ValueError(f"unknown family {family!r}")


def make_hf_model(family: str, vocab_size: int, seed: int = 0, n_ctx: int = 64):
    """A random transformers causal LM of `family` in float32, eval mode, eager attention."""
    from transformers import AutoModelForCausalLM

    config = make_hf_config(family, vocab_size, n_ctx)
    config.initializer_range = INIT_STD
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():  # default inits leave norm weights at 1 (0 for Gemma) and biases at 0: perturb them
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def make_hf_folder(family: str, folder: str | Path, seed: int = 0, extra_vocab: int = 0):
    """Write a tiny `family` model folder: config.json, model.safetensors and tokenizer files.

    `extra_vocab` pads the embedding beyond the tokenizer (as released Qwen models do). Returns the
    transformers model (eval mode) and its tokenizer."""
    folder = Path(folder)
    tokenizer = make_tokenizer(family)
    model = make_hf_model(family, len(tokenizer) + extra_vocab, seed)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread than on two on a busy machine (restored afterwards). Autouse in every
    module that imports it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
