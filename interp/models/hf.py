"""Hugging Face model folders (GPT-2, GPT-NeoX/Pythia, Llama, Qwen2, Gemma 2) as TransformerLens models, offline.

A Hugging Face folder holds `config.json` (with "model_type"/"architectures", no "kind"), safetensors
weights (`model.safetensors`, or shards named in `model.safetensors.index.json`) and the tokenizer files
(`tokenizer.json`, `tokenizer_config.json`). `load_hf_lm` reads it with transformers (local files only),
maps the config to a `HookedTransformerConfig` (the per-family field mapping of TransformerLens'
`convert_hf_model_config`, reproduced here because that function decides Llama and Gemma by the *name*
and would reach for the Hub), converts the weights with TransformerLens' own converters and loads them
*unprocessed*: no LayerNorm folding, no centring, no value-bias folding, so every normalisation keeps its
`hook_scale`/`hook_normalized` and published transcoders read the activations they were trained on.

The tokenizer is wrapped in `HFTokenizer`, which offers what the workbench uses of `WordTokenizer`; the
HookedTransformer gets a copy too (`model.to_tokens` agrees with `HFTokenizer.encode`).
BOS convention of `encode(text, prepend_bos=True)`: GPT-2 and GPT-NeoX prepend their BOS (= EOS,
`<|endoftext|>`), as TransformerLens' `default_prepend_bos` does for GPT-2; Llama, Qwen2 and Gemma 2 prepend
the tokenizer's BOS token when it has one (Qwen2 has none: no BOS).

Everything heavy (transformers, transformer_lens) is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from interp.errors import InterpError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from interp.models.lm import LoadedLM

# model_type -> the architecture TransformerLens knows it by
ARCHITECTURES = {
    "gpt2": "GPT2LMHeadModel",
    "gpt_neox": "GPTNeoXForCausalLM",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
}
SUPPORTED = tuple(ARCHITECTURES)
HF_CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# Hugging Face configs give the longest context the model was trained for (up to 128k tokens); TransformerLens
# builds an [n_ctx, n_ctx] causal mask per layer, so by default the context is capped (as TransformerLens does
# for Llama 3.1). Pass n_ctx to load_hf_lm for more.
DEFAULT_MAX_N_CTX = 2048


# ---------------------------------------------------------------- recognising a folder


def _read_config_json(folder: Path) -> dict[str, Any] | None:
    path = folder / HF_CONFIG
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
    return data if isinstance(data, dict) else None


def is_hf_folder(path: str | Path) -> bool:
    """True when `path` is a folder whose config.json is a Hugging Face model config (a "model_type" or
    "architectures" entry and no interp "kind")."""
    path = Path(path)
    if not path.is_dir():
        return False
    config = _read_config_json(path)
    return config is not None and "kind" not in config and ("model_type" in config or "architectures" in config)


def hf_model_type(config: dict[str, Any], config_path: Path) -> str:
    """The folder's supported model_type, or InterpError naming config.json and what it holds instead."""
    model_type = config.get("model_type")
    if model_type is None:  # an old config with architectures only
        by_arch = {arch: mt for mt, arch in ARCHITECTURES.items()}
        archs = config.get("architectures") or []
        model_type = next((by_arch[a] for a in archs if a in by_arch), archs[0] if archs else None)
    if model_type not in ARCHITECTURES:
        raise InterpError(f"{config_path}: model_type {model_type!r} is not one of {', '.join(SUPPORTED)}")
    return model_type


# ---------------------------------------------------------------- config mapping


def _rope(hf_config: Any, config_path: Path) -> dict[str, Any]:
    """rotary_base (and Llama 3 NTK-by-parts scaling) from a config; InterpError for other RoPE scalings."""
    params = dict(getattr(hf_config, "rope_parameters", None) or {})
    scaling = getattr(hf_config, "rope_scaling", None)
    if isinstance(scaling, dict):
        params = {**scaling, **params}
    theta = params.get("rope_theta", getattr(hf_config, "rope_theta", None))
    out: dict[str, Any] = {"rotary_base": float(theta) if theta is not None else 10000.0}
    rope_type = (params.get("rope_type") or params.get("type") or "default").lower()
    if rope_type == "llama3":
        out.update(use_NTK_by_parts_rope=True, NTK_by_parts_factor=params.get("factor", 1.0),
                   NTK_by_parts_low_freq_factor=params.get("low_freq_factor", 1.0),
                   NTK_by_parts_high_freq_factor=params.get("high_freq_factor", 4.0),
                   NTK_original_ctx_len=params.get("original_max_position_embeddings",
                                                   hf_config.max_position_embeddings))
    elif rope_type != "default":
        raise InterpError(f"{config_path}: RoPE scaling {rope_type!r} is not supported (only default and llama3)")
    return out


def hooked_config_dict(hf_config: Any, model_type: str, config_path: Path, n_ctx: int | None = None) -> dict[str, Any]:
    """The `HookedTransformerConfig` fields of a transformers config (TransformerLens' per-family mapping),
    unfolded: LN/RMS normalisation with their weights, as the model computes."""
    c = hf_config
    arch = ARCHITECTURES[model_type]

    def unsupported(what: str) -> InterpError:
        return InterpError(f"{config_path}: {what} is not supported for {model_type} models")

    if model_type == "gpt2":
        d: dict[str, Any] = dict(
            d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head, d_mlp=c.n_inner or 4 * c.n_embd,
            n_layers=c.n_layer, n_ctx=c.n_positions, eps=c.layer_norm_epsilon, act_fn=c.activation_function,
            use_attn_scale=getattr(c, "scale_attn_weights", True), use_local_attn=False,
            scale_attn_by_inverse_layer_idx=getattr(c, "scale_attn_by_inverse_layer_idx", False),
            normalization_type="LN", positional_embedding_type="standard")
        if getattr(c, "add_cross_attention", False):
            raise unsupported("cross-attention")
    elif model_type == "gpt_neox":
        from transformer_lens.utilities.hf_utils import get_rotary_pct_from_config

        d_head = c.hidden_size // c.num_attention_heads
        d = dict(
            d_model=c.hidden_size, n_heads=c.num_attention_heads, d_head=d_head, d_mlp=c.intermediate_size,
            n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.layer_norm_eps, act_fn=c.hidden_act,
            use_attn_scale=True, use_local_attn=False, scale_attn_by_inverse_layer_idx=False,
            parallel_attn_mlp=getattr(c, "use_parallel_residual", True), positional_embedding_type="rotary",
            rotary_adjacent_pairs=False, rotary_dim=round(get_rotary_pct_from_config(c) * d_head),
            normalization_type="LN", **_rope(c, config_path))
        if not getattr(c, "attention_bias", True):
            raise unsupported("attention_bias=false")
    elif model_type in ("llama", "qwen2"):
        d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        n_kv = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        d = dict(
            d_model=c.hidden_size, n_heads=c.num_attention_heads, d_head=d_head, d_mlp=c.intermediate_size,
            n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps, act_fn=c.hidden_act,
            n_key_value_heads=n_kv if n_kv != c.num_attention_heads else None, use_attn_scale=True,
            normalization_type="RMS", positional_embedding_type="rotary", rotary_adjacent_pairs=False,
            rotary_dim=d_head, final_rms=True, gated_mlp=True, **_rope(c, config_path))
        if model_type == "llama" and (getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False)):
            raise unsupported("attention_bias/mlp_bias")
        if model_type == "qwen2" and getattr(c, "use_sliding_window", False):
            raise unsupported("use_sliding_window=true")
        if getattr(c, "pretraining_tp", 1) not in (1, None):
            raise unsupported(f"pretraining_tp={c.pretraining_tp}")
    else:  # gemma2
        d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        layer_types = getattr(c, "layer_types", None) or [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(c.num_hidden_layers)]
        attn_types = ["local" if t == "sliding_attention" else "global" for t in layer_types]
        d = dict(
            d_model=c.hidden_size, n_heads=c.num_attention_heads, d_head=d_head, d_mlp=c.intermediate_size,
            n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps,
            act_fn=getattr(c, "hidden_activation", None) or c.hidden_act, n_key_value_heads=c.num_key_value_heads,
            use_attn_scale=True, attn_scale=math.sqrt(c.query_pre_attn_scalar), normalization_type="RMS",
            positional_embedding_type="rotary", rotary_adjacent_pairs=False, rotary_dim=d_head, final_rms=True,
            gated_mlp=True, use_normalization_before_and_after=True, **_rope(c, config_path))
        if "local" in attn_types and c.sliding_window:
            d.update(use_local_attn=True, window_size=int(c.sliding_window), attn_types=attn_types)
        if getattr(c, "attn_logit_softcapping", None):
            d["attn_scores_soft_cap"] = float(c.attn_logit_softcapping)
        if getattr(c, "final_logit_softcapping", None):
            d["output_logits_soft_cap"] = float(c.final_logit_softcapping)
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    if d["act_fn"] not in SUPPORTED_ACTIVATIONS:
        raise unsupported(f"activation {d['act_fn']!r}")
    d["n_ctx"] = int(n_ctx) if n_ctx is not None else min(int(d["n_ctx"]), DEFAULT_MAX_N_CTX)
    d.update(d_vocab=c.vocab_size, original_architecture=arch, model_name=config_path.parent.name,
             init_weights=False)
    return d


# ---------------------------------------------------------------- the tokenizer


class HFTokenizer:
    """A Hugging Face tokenizer with the interface the workbench uses of `WordTokenizer`.

    `len(tok)` and `tok.vocab` cover the model's whole vocabulary (`d_vocab`): ids the tokenizer lacks (a
    padded embedding) read as "<unused N>"; `tokenizer_size` is the tokenizer's own count."""

    def __init__(self, tokenizer: Any, model_type: str, d_vocab: int, path: Path | None = None):
        self.hf = tokenizer
        self.model_type = model_type
        self.d_vocab = int(d_vocab)
        self.path = path
        self.tokenizer_size = tokenizer_size(tokenizer)
        bos = tokenizer.bos_token_id
        if bos is None and model_type in ("gpt2", "gpt_neox"):
            bos = tokenizer.eos_token_id  # <|endoftext|> serves as BOS for these families
        self.bos_id: int | None = bos
        self.pad_id: int = next((i for i in (tokenizer.pad_token_id, bos, tokenizer.eos_token_id) if i is not None), 0)
        self._vocab: list[str] | None = None

    def __len__(self) -> int:
        return self.d_vocab

    @property
    def prepends_bos(self) -> bool:
        return self.bos_id is not None

    @property
    def vocab(self) -> list[str]:
        """Readable token strings by id (each id decoded on its own), `d_vocab` of them."""
        if self._vocab is None:
            n = min(self.tokenizer_size, self.d_vocab)
            strings = self.hf.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                           clean_up_tokenization_spaces=False)
            raw = self.hf.convert_ids_to_tokens(list(range(n)))
            # sentencepiece-style decoders drop the word-start marker of a lone token; keep it as a space, as
            # byte-level tokens keep theirs (' Mary' in every family)
            strings = [" " + s if isinstance(r, str) and r.startswith("▁") and not s.startswith(" ") else s
                       for s, r in zip(strings, raw)]
            self._vocab = strings + [f"<unused {i}>" for i in range(n, self.d_vocab)]
        return self._vocab

    def encode(self, text: str, prepend_bos: bool = True) -> list[int]:
        ids = list(self.hf.encode(text, add_special_tokens=False))
        return ([self.bos_id] if prepend_bos and self.bos_id is not None else []) + ids

    def tokens(self, text: str, prepend_bos: bool = True) -> list[str]:
        """The tokens of `text` as readable strings (for display), BOS first when the convention has one."""
        vocab = self.vocab
        return [vocab[i] for i in self.encode(text, prepend_bos)]

    def _where(self) -> str:
        return f" of the tokenizer in {self.path}" if self.path is not None else ""

    def token_id(self, word: str) -> int:
        """The id of the token `word` stands for. A word without leading space means the next word of a
        text, so ' word' is tried first (byte-level BPE marks word starts with a space), then 'word';
        a raw token string (e.g. 'Ġthe', '<|endoftext|>') also works. InterpError when it is several tokens."""
        if not isinstance(word, str) or not word.strip():
            raise InterpError("empty token: give a word")
        candidates = [word] if word[0].isspace() else [" " + word, word]
        for candidate in candidates:
            ids = self.hf.encode(candidate, add_special_tokens=False)
            if len(ids) == 1:
                return int(ids[0])
        raw = self.hf.get_vocab().get(word)
        if raw is not None:
            return int(raw)
        pieces = self.tokens(candidates[-1], prepend_bos=False)
        raise InterpError(f"{word!r} is not a single token{self._where()}: it splits into {pieces}; "
                          "choose a word that is one token")

    def decode(self, ids: Any, skip_bos: bool = True) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.d_vocab]
        if bad:
            raise InterpError(f"token id(s) {bad[:5]} outside the vocabulary of {self.d_vocab} tokens")
        if skip_bos and self.bos_id is not None:
            ids = [i for i in ids if i != self.bos_id]
        return self.hf.decode([i for i in ids if i < self.tokenizer_size], skip_special_tokens=False,
                              clean_up_tokenization_spaces=False)


def tokenizer_size(tokenizer: Any) -> int:
    """How many ids the tokenizer can produce (its length, or one past its largest id if that is larger)."""
    vocab = tokenizer.get_vocab()
    return max(len(tokenizer), max(vocab.values()) + 1 if vocab else 0)


def load_hf_tokenizer(folder: str | Path, model_type: str, d_vocab: int) -> HFTokenizer:
    """The folder's own tokenizer, checked to fit a vocabulary of `d_vocab` ids."""
    folder = Path(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise InterpError(f"{folder / 'tokenizer.json'} not found: {folder} has no tokenizer files "
                          f"({', '.join(TOKENIZER_FILES)})")
    with _quiet_transformers():
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except Exception as e:  # noqa: BLE001 - transformers raises many kinds for a missing or bad tokenizer
            raise InterpError(f"cannot load the tokenizer in {folder} (tokenizer.json/tokenizer_config.json): "
                              f"{_one_line(e)}") from None
    if not hasattr(tok, "get_vocab"):
        raise InterpError(f"no tokenizer in {folder} (tokenizer.json/tokenizer_config.json)")
    n = tokenizer_size(tok)
    if n > d_vocab:
        name = "tokenizer.json" if (folder / "tokenizer.json").is_file() else "tokenizer files"
        raise InterpError(f"{folder / name} has {n} tokens but the model's vocabulary ({folder / HF_CONFIG} "
                          f"vocab_size) is {d_vocab}: the tokenizer does not belong to this model")
    return HFTokenizer(tok, model_type, d_vocab, folder)


# ---------------------------------------------------------------- weights


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or info chatter from transformers while loading (stdout belongs to --json)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a folder (one file, or the shards its index names); InterpError otherwise."""
    single, index = folder / SAFETENSORS, folder / SAFETENSORS_INDEX
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            shards = sorted(set(data["weight_map"].values()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise InterpError(f"{index} is not a valid safetensors index (no weight_map)") from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise InterpError(f"{folder / missing[0]} not found: {index} names {len(missing)} missing shard(s)")
        return [folder / s for s in shards]
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise InterpError(f"{single} not found: {folder} has only pickle weights (*.bin), which interp does not "
                          "load; convert them to safetensors")
    raise InterpError(f"{single} not found: {folder} has no safetensors weights")


def check_safetensors(path: Path) -> None:
    """InterpError unless `path` is a complete safetensors file (header readable, every tensor inside it)."""
    import struct

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise ValueError(f"header of {n} bytes runs past the end of the file")
            header = json.loads(f.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as e:
        raise InterpError(f"weights file {path} is not a valid safetensors file ({e})") from None
    if 8 + n + end > size:
        raise InterpError(f"weights file {path} is truncated ({size} bytes, its header needs {8 + n + end}); "
                          "download or copy it again")


def load_hf_model(folder: Path, dtype: "torch.dtype") -> Any:
    """The transformers causal LM of a folder, every weight read from its safetensors files."""
    from transformers import AutoModelForCausalLM

    for path in weight_files(folder):
        check_safetensors(path)
    with _quiet_transformers():
        try:
            model, info = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False, dtype=dtype, use_safetensors=True,
                attn_implementation="eager", output_loading_info=True, ignore_mismatched_sizes=True)
        except Exception as e:  # noqa: BLE001 - transformers raises many kinds for bad weights
            raise InterpError(f"cannot load the weights in {folder / SAFETENSORS} ({_one_line(e)})") from None
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        shapes = [f"{m[0]} {tuple(m[1])} instead of {tuple(m[2])}" if isinstance(m, (tuple, list)) and len(m) == 3
                  else str(m) for m in mismatched]
        what = f"missing {sorted(missing)[:3]}" if missing else f"wrong shapes: {'; '.join(shapes[:2])}"
        raise InterpError(f"weights in {folder / SAFETENSORS} do not match {folder / HF_CONFIG} ({what})")
    model.eval()
    return model


def _convert_weights(hf_model: Any, cfg: Any, model_type: str) -> dict[str, Any]:
    from transformer_lens.pretrained.weight_conversions import (convert_gemma_weights, convert_gpt2_weights,
                                                                convert_llama_weights, convert_neox_weights,
                                                                convert_qwen2_weights)

    converters = {"gpt2": convert_gpt2_weights, "gpt_neox": convert_neox_weights, "llama": convert_llama_weights,
                  "qwen2": convert_qwen2_weights, "gemma2": convert_gemma_weights}
    return converters[model_type](hf_model, cfg)


# ---------------------------------------------------------------- the whole folder


def load_hf_lm(folder: str | Path, device: "str | torch.device" = "cpu", dtype: "torch.dtype | None" = None,
               n_ctx: int | None = None) -> "LoadedLM":
    """A Hugging Face model folder as a `LoadedLM`: an unfolded `HookedTransformer` (eval mode) and the folder's
    own tokenizer (`HFTokenizer`). `n_ctx` overrides the context length (default: the config's, at most
    2048). InterpError, naming the file, for anything that does not fit."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from interp.models.lm import LoadedLM, config_to_json

    folder = Path(folder)
    if not folder.is_dir():
        raise InterpError(f"model folder not found: {folder}")
    config_path = folder / HF_CONFIG
    raw = _read_config_json(folder)
    if raw is None:
        raise InterpError(f"{config_path} is missing or not valid JSON: not a Hugging Face model folder")
    model_type = hf_model_type(raw, config_path)
    weight_files(folder)  # a missing weights file is the most common mistake: say so before anything slow
    dtype = dtype or torch.float32
    with _quiet_transformers():
        from transformers import AutoConfig

        try:
            hf_config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise InterpError(f"cannot read the Hugging Face config {config_path} ({_one_line(e)})") from None
    try:
        cfg_dict = hooked_config_dict(hf_config, model_type, config_path, n_ctx)
    except AttributeError as e:
        raise InterpError(f"{config_path} lacks a field a {model_type} config needs ({e})") from None
    tokenizer = load_hf_tokenizer(folder, model_type, cfg_dict["d_vocab"])
    cfg_dict.update(default_prepend_bos=tokenizer.prepends_bos, device=str(device), dtype=dtype)
    try:
        cfg = HookedTransformerConfig(**cfg_dict)
    except (TypeError, AssertionError, ValueError) as e:
        raise InterpError(f"{config_path} does not map to a valid HookedTransformerConfig ({e})") from None

    hf_model = load_hf_model(folder, dtype)
    with torch.no_grad():
        state = _convert_weights(hf_model, cfg, model_type)
    del hf_model
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        model = HookedTransformer(cfg)
    if "unembed.b_U" not in state:  # GPT-2 has no unembedding bias
        state["unembed.b_U"] = torch.zeros(cfg.d_vocab, dtype=dtype)
    expected = {k for k in model.state_dict() if not k.endswith((".mask", ".IGNORE", "rotary_sin", "rotary_cos"))}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - set(model.state_dict()))
    if missing or unexpected:
        raise InterpError(f"the weights in {folder / SAFETENSORS} do not convert to a {cfg.original_architecture} "
                          f"HookedTransformer (missing {missing[:3]}, unexpected {unexpected[:3]})")
    try:
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    except RuntimeError as e:
        raise InterpError(f"the weights in {folder / SAFETENSORS} do not fit {config_path} ({_one_line(e)})") from None
    del state
    with contextlib.redirect_stdout(sys.stderr):
        model = model.to(device, print_details=False)
    model.eval()
    # TransformerLens' own to_tokens/to_string then follow the same BOS convention as HFTokenizer.encode;
    # a copy, because set_tokenizer fills in missing special tokens of the tokenizer it is given.
    try:
        with _quiet_transformers():
            model.set_tokenizer(copy.deepcopy(tokenizer.hf))
    except Exception as e:  # noqa: BLE001 - a convenience: the workbench itself uses `tokenizer`
        warnings.warn(f"TransformerLens could not take the tokenizer of {folder} ({_one_line(e)}); "
                      "model.to_tokens is unavailable, LoadedLM.tokenizer works", stacklevel=2)
    config = {"kind": "hf", "model_type": model_type, "architecture": cfg.original_architecture,
              "tokenizer": {"size": tokenizer.tokenizer_size, "bos_id": tokenizer.bos_id},
              "hf_config": raw, "hooked_transformer_config": config_to_json(cfg)}
    return LoadedLM(model=model, tokenizer=tokenizer, config=config, metrics={}, path=folder)
