"""TransformerLens language models: the bilinear-MLP model, its GELU baseline, and checkpoint I/O.

Bilinear model: a `HookedTransformer` with `gated_mlp=True` and an identity activation, so each
MLP computes `W_out ((W_gate x) ⊙ (W_in x))`. TransformerLens has no identity activation, so we
register one in `SUPPORTED_ACTIVATIONS` before any config is built. TransformerLens adds `b_in`
after the product; we keep it at zero and frozen, or the layer would no longer be an exact
third-order tensor (docs/architecture.md).

A checkpoint folder holds `model.safetensors`, `config.json` (kind "lm", the architecture and the
full `HookedTransformerConfig`), `tokenizer.json` and `metrics.json`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.utilities import activation_functions

from interp.data.tokenizer import TOKENIZER_FILE, WordTokenizer
from interp.device import DTYPES
from interp.errors import InterpError
from interp.io import WEIGHTS, load_checkpoint, read_checkpoint_config, save_checkpoint

ARCHS = ("bilinear", "gelu")
IDENTITY = "identity"


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def register_identity_activation() -> None:
    """Make `act_fn="identity"` a valid TransformerLens activation (idempotent)."""
    activation_functions.SUPPORTED_ACTIVATIONS.setdefault(IDENTITY, _identity)


register_identity_activation()


def make_lm_config(arch: str, n_layers: int = 2, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512,
                   n_ctx: int = 64, d_vocab: int = 256, seed: int = 0) -> HookedTransformerConfig:
    """The config of a bilinear-MLP model or of its GELU baseline (same widths, same parameter count
    up to the gate matrix)."""
    if arch not in ARCHS:
        raise InterpError(f"unknown LM architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if d_model % n_heads:
        raise InterpError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    register_identity_activation()
    common = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads, d_mlp=d_mlp,
                  n_ctx=n_ctx, d_vocab=d_vocab, normalization_type="LN", positional_embedding_type="standard",
                  seed=seed, default_prepend_bos=True, original_architecture=f"interp-{arch}")
    if arch == "bilinear":
        return HookedTransformerConfig(act_fn=IDENTITY, gated_mlp=True, **common)
    return HookedTransformerConfig(act_fn="gelu", gated_mlp=False, **common)


def lm_arch(cfg: HookedTransformerConfig) -> str:
    """'bilinear' for a gated MLP with the identity activation, otherwise the activation's name."""
    if cfg.gated_mlp and cfg.act_fn == IDENTITY:
        return "bilinear"
    return str(cfg.act_fn)


def freeze_bilinear_bias(model: HookedTransformer) -> None:
    """Zero and freeze every `b_in` of a bilinear model (it adds after the product)."""
    if lm_arch(model.cfg) != "bilinear":
        return
    for block in model.blocks:
        with torch.no_grad():
            block.mlp.b_in.zero_()
        block.mlp.b_in.requires_grad_(False)


def build_lm(cfg: HookedTransformerConfig) -> HookedTransformer:
    """A freshly initialised model of `cfg` (seeded by `cfg.seed`), `b_in` frozen for bilinear."""
    model = HookedTransformer(cfg)
    freeze_bilinear_bias(model)
    return model


def config_to_json(cfg: HookedTransformerConfig) -> dict[str, Any]:
    out = {}
    for key, value in cfg.to_dict().items():
        if isinstance(value, torch.dtype):
            value = str(value).removeprefix("torch.")
        out[key] = value
    return out


# The widths a config must give as positive integers (a string or a negative number fails deep inside torch).
POSITIVE_FIELDS = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "n_ctx", "d_vocab")


def config_from_json(data: dict[str, Any]) -> HookedTransformerConfig:
    register_identity_activation()
    if not isinstance(data, dict):
        raise InterpError("the model config is not a JSON object")
    data = dict(data)
    for key in POSITIVE_FIELDS:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InterpError(f"the model config's {key} must be a positive integer, got {value!r}")
    if isinstance(data.get("dtype"), str):
        if data["dtype"] not in DTYPES:
            raise InterpError(f"unknown dtype {data['dtype']!r} in the model config")
        data["dtype"] = DTYPES[data["dtype"]]
    try:
        return HookedTransformerConfig(**data)
    except (TypeError, AssertionError, ValueError) as e:
        raise InterpError(f"the model config is not a valid HookedTransformerConfig ({e})") from None


@dataclass
class LoadedLM:
    """A language model ready for analysis: model (eval mode), tokenizer, config.json, metrics."""

    model: HookedTransformer
    tokenizer: WordTokenizer
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def arch(self) -> str:
        return lm_arch(self.model.cfg)

    def to_tokens(self, text: str, prepend_bos: bool = True) -> torch.Tensor:
        """`text` as a [1, pos] tensor of token ids; clear errors for unknown words or a too-long prompt."""
        ids = self.tokenizer.encode(text, prepend_bos=prepend_bos)
        if len(ids) > self.model.cfg.n_ctx:
            raise InterpError(f"prompt has {len(ids)} tokens but the model's context is {self.model.cfg.n_ctx}; "
                              "shorten it")
        return torch.tensor([ids], dtype=torch.long, device=self.model.cfg.device)


def save_lm(folder: str | Path, model: HookedTransformer, tokenizer: WordTokenizer,
            metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write weights, config (kind "lm"), tokenizer and metrics into `folder`, each file atomically."""
    if len(tokenizer) != model.cfg.d_vocab:
        raise InterpError(f"tokenizer has {len(tokenizer)} words but the model's d_vocab is {model.cfg.d_vocab}")
    folder = Path(folder)
    config = {"kind": "lm", "arch": lm_arch(model.cfg), "tokenizer": TOKENIZER_FILE,
              "hooked_transformer_config": config_to_json(model.cfg), **(extra or {})}
    state = {k: v for k, v in model.state_dict().items()}
    # TransformerLens keeps derived buffers (attention masks, IGNORE) in the state dict; they are rebuilt on load.
    state = {k: v for k, v in state.items() if not k.endswith((".mask", ".IGNORE"))}
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(folder / TOKENIZER_FILE)
    save_checkpoint(folder, state, config, metrics or {})
    return folder


def load_lm(folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> LoadedLM:
    """Load an LM checkpoint folder written by `save_lm`, or a Hugging Face model folder (GPT-2, GPT-NeoX,
    Llama, Qwen2, Gemma 2: see `interp.models.hf`); InterpError on anything that does not fit."""
    from interp.models.hf import is_hf_folder

    folder = Path(folder)
    if is_hf_folder(folder):
        from interp.models.hf import load_hf_lm

        return load_hf_lm(folder, device=device, dtype=dtype)
    kind = read_checkpoint_config(folder)["kind"]
    if kind != "lm":
        raise InterpError(f"{folder} holds a {kind!r} checkpoint, not a language model")
    state, config, metrics = load_checkpoint(folder)
    if "hooked_transformer_config" not in config:
        raise InterpError(f"{folder / 'config.json'} has no 'hooked_transformer_config'; re-save the model")
    try:
        cfg = config_from_json(config["hooked_transformer_config"])
    except InterpError as e:
        raise InterpError(f"{folder / 'config.json'}: {e}") from None
    tokenizer = WordTokenizer.load(folder / config.get("tokenizer", TOKENIZER_FILE))
    if len(tokenizer) != cfg.d_vocab:
        raise InterpError(f"tokenizer in {folder} has {len(tokenizer)} words but the model's d_vocab is "
                          f"{cfg.d_vocab}: the tokenizer does not belong to this model")
    model = HookedTransformer(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith((".mask", ".IGNORE"))]
    if missing or unexpected:
        raise InterpError(f"weights in {folder / WEIGHTS} do not match its config "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    freeze_bilinear_bias(model)
    if dtype is not None:
        model = model.to(dtype, print_details=False)
    model = model.to(device, print_details=False)
    model.eval()
    return LoadedLM(model=model, tokenizer=tokenizer, config=config, metrics=metrics, path=folder)


def read_text_file(path: str | Path) -> str:
    """The text of a UTF-8 text file; InterpError for a missing, binary, non-UTF-8 or empty file."""
    path = Path(path)
    if not path.is_file():
        raise InterpError(f"text file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InterpError(f"{path} is not a UTF-8 text file (byte {e.start} is not UTF-8)") from None
    if "\x00" in text:
        raise InterpError(f"{path} is not a text file (it holds NUL bytes)")
    if not text.strip():
        raise InterpError(f"{path} holds no text")
    return text


@torch.no_grad()
def text_loss(lm: LoadedLM, text: str, batch_size: int = 8) -> dict[str, Any]:
    """Mean next-token cross-entropy (nats) of the model on `text`.

    The text is tokenized once (no BOS) and cut into consecutive windows that fill the context, each
    starting with the tokenizer's BOS when its convention has one; every token after a window's first
    position is predicted once. Tokenizers without BOS (Qwen2) leave each window's first token unpredicted."""
    ids = lm.tokenizer.encode(text, prepend_bos=False)
    bos = lm.tokenizer.encode("", prepend_bos=True)  # [] or [BOS]
    n_ctx = lm.model.cfg.n_ctx
    step = n_ctx - len(bos)
    windows = [bos + ids[i:i + step] for i in range(0, len(ids), step)]
    windows = [w for w in windows if len(w) > 1]
    if not windows:
        raise InterpError(f"the text has {len(ids)} token(s): too short to predict any token")
    device = lm.model.cfg.device
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        length = max(len(w) for w in batch)
        tokens = torch.zeros((len(batch), length), dtype=torch.long)
        mask = torch.zeros((len(batch), length - 1), dtype=torch.bool)
        for row, w in enumerate(batch):
            tokens[row, :len(w)] = torch.tensor(w)
            mask[row, :len(w) - 1] = True
        logits = lm.model(tokens.to(device), return_type="logits").float().cpu()
        logprobs = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
        total += -logprobs[mask].sum().item()
        count += int(mask.sum())
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "n_tokens": count, "n_windows": len(windows),
            "n_ctx": n_ctx, "bos": bool(bos)}


def load_pretrained_lm(name: str, device: str | torch.device = "cpu") -> HookedTransformer:
    """A TransformerLens pretrained model by name, from the local Hugging Face cache only."""
    from huggingface_hub import constants as hub_constants
    from huggingface_hub import try_to_load_from_cache
    from transformer_lens import loading_from_pretrained

    try:
        loading_from_pretrained.get_official_model_name(name)
    except ValueError:
        raise InterpError(f"{name!r} is not a TransformerLens pretrained model name") from None
    official = loading_from_pretrained.get_official_model_name(name)
    # Ask the local cache first: without a network, from_pretrained would retry for minutes.
    if not isinstance(try_to_load_from_cache(official, "config.json"), str):
        raise InterpError(f"pretrained model {name!r} is not in the local Hugging Face cache and this machine "
                          "is offline; download it where there is a network, or load a local folder")
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return HookedTransformer.from_pretrained(official, device=str(device))
    except (OSError, ValueError) as e:
        raise InterpError(f"cannot load pretrained model {name!r} from the local cache ({type(e).__name__}: {e})") from None
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def load_hf_gpt2_folder(path: str | Path, device: str | torch.device = "cpu") -> HookedTransformer:
    """A local Hugging Face GPT-2 folder (config.json + weights) loaded through TransformerLens."""
    from transformers import AutoConfig, GPT2LMHeadModel

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InterpError(f"{path} is not a Hugging Face model folder (no config.json)")
    try:
        hf_config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InterpError(f"cannot read the Hugging Face config in {path} ({e})") from None
    if hf_config.model_type != "gpt2":
        raise InterpError(f"{path} holds a {hf_config.model_type!r} model; only GPT-2 folders are supported")
    try:
        hf_model = GPT2LMHeadModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InterpError(f"cannot load the GPT-2 weights in {path} ({e})") from None
    return _gpt2_to_hooked(hf_model, device)


def _gpt2_to_hooked(hf_model: Any, device: str | torch.device) -> HookedTransformer:
    """Convert an in-memory HF GPT-2 into a HookedTransformer with TransformerLens' own weight converter."""
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    c = hf_model.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd, n_ctx=c.n_positions, d_vocab=c.vocab_size, act_fn=c.activation_function,
        eps=c.layer_norm_epsilon, normalization_type="LN", positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel", default_prepend_bos=True, device=str(device))
    model = HookedTransformer(cfg)
    model.load_state_dict(convert_gpt2_weights(hf_model, cfg), strict=False)
    model.eval()
    return model
