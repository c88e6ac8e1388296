"""Per-layer dictionaries (transcoders and attention SAEs) as SAE-Lens classes, and their folders.

A dictionaries folder (e.g. `checkpoints/lm-bilinear/transcoders/`) holds `config.json` (kind
"dictionaries": which type, which model, which layers) and one SAE-Lens folder per layer
(`layer_0/`, `layer_1/`, …) that `sae_lens.SAE.load_from_disk` reads, with the hook names in
its `metadata`:

- transcoders read `blocks.L.ln2.hook_normalized` (`metadata.hook_name`) and write
  `blocks.L.hook_mlp_out` (`metadata.hook_name_out`);
- attention SAEs read and write `blocks.L.hook_attn_out` (or `blocks.L.attn.hook_z`).

SAE-Lens has a ReLU `Transcoder` but no TopK one; `TopKTranscoder` below adds it under the
architecture name "topk_transcoder" (registered when this module is imported). ReLU transcoders
and all attention SAEs load with plain SAE-Lens.

`load_dictionaries` also reads the layouts others publish (a single SAE-Lens folder, a folder of
SAE-Lens folders of any SAE-Lens version, a circuit-tracer transcoder set): see
`interp.models.dictionary_formats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from sae_lens import SAE, register_sae_class
from sae_lens.registry import SAE_CLASS_REGISTRY
from sae_lens.saes.topk_sae import TopK
from sae_lens.saes.transcoder import Transcoder, TranscoderConfig
from transformer_lens import HookedTransformer

from interp.errors import InterpError
from interp.io import read_checkpoint_config

DICTIONARY_TYPES = ("transcoder", "attn_sae")
TYPE_FOLDERS = {"transcoder": "transcoders", "attn_sae": "attn-saes"}


@dataclass
class TopKTranscoderConfig(TranscoderConfig):
    k: int = 32
    # SAE-Lens' TopK ReLUs the k kept values; circuit-tracer's keeps them as they are (False). A plain class
    # attribute, not a dataclass field, so that SAE-Lens' training configs (which copy the fields) need not know it.
    topk_relu = True

    @classmethod
    def architecture(cls) -> str:
        return "topk_transcoder"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "k": self.k, **({} if self.topk_relu else {"topk_relu": False})}

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]) -> "TopKTranscoderConfig":
        from sae_lens.saes.sae import SAEMetadata
        from sae_lens.util import filter_valid_dataclass_fields

        res = cls(**filter_valid_dataclass_fields(config_dict, cls))
        if "metadata" in config_dict:
            res.metadata = SAEMetadata(**config_dict["metadata"])
        if config_dict.get("topk_relu") is False:
            res.topk_relu = False
        return res


class SignedTopK(torch.nn.Module):
    """Keep the k largest values of the last dimension as they are (no ReLU), zero the rest: circuit-tracer's TopK."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, indices = torch.topk(x, k=self.k, dim=-1, sorted=False)
        return torch.zeros_like(x).scatter_(-1, indices, values)


class TopKTranscoder(Transcoder):
    """A transcoder whose activation keeps the k largest pre-activations (ReLU'd, as SAE-Lens' TopKSAE, unless
    `cfg.topk_relu` is False)."""

    cfg: TopKTranscoderConfig  # type: ignore[assignment]

    def get_activation_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return TopK(self.cfg.k) if self.cfg.topk_relu else SignedTopK(self.cfg.k)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]) -> "TopKTranscoder":
        return cls(TopKTranscoderConfig.from_dict(config_dict))


if "topk_transcoder" not in SAE_CLASS_REGISTRY:
    register_sae_class("topk_transcoder", TopKTranscoder, TopKTranscoderConfig)


def input_hook(sae: SAE) -> str:
    return str(sae.cfg.metadata.hook_name)


def output_hook(sae: SAE) -> str:
    """Where the dictionary's reconstruction goes: `hook_name_out` for transcoders, else its input hook."""
    return str(sae.cfg.metadata.hook_name_out or sae.cfg.metadata.hook_name)


def is_transcoder(sae: SAE) -> bool:
    return isinstance(sae, Transcoder)


def dictionaries_config(folder: str | Path) -> dict[str, Any]:
    config = read_checkpoint_config(folder)
    if config["kind"] != "dictionaries":
        raise InterpError(f"{folder} holds a {config['kind']!r} checkpoint, not dictionaries")
    return config


def load_dictionaries(folder: str | Path, device: str = "cpu") -> dict[int, SAE]:
    """{layer: SAE-Lens SAE or Transcoder} from a dictionaries folder in any layout we read: ours (config.json +
    `layer_L/`), one SAE-Lens folder, a folder of SAE-Lens folders, or a circuit-tracer transcoder set (its folder or
    its config file). See `interp.models.dictionary_formats`; `describe_dictionaries` says what was loaded."""
    from interp.models.dictionary_formats import load_any

    return load_any(folder, device=device)


def describe_dictionaries(dicts: dict[int, SAE]) -> list:
    """One `DictionaryInfo` per layer (layer, kind, architecture, hooks, widths, skip path); `.line()` prints it."""
    from interp.models.dictionary_formats import describe_dictionaries as describe

    return describe(dicts)


def dictionaries_model_path(folder: str | Path) -> Path:
    """The LM the dictionaries were trained on: config.json "model" (default ".."), our LM folder or a Hugging
    Face model folder, as an absolute path or relative to the dictionaries folder (or, failing that, to the
    working directory, as a path typed on the command line is). InterpError when it names no folder."""
    folder = Path(folder)
    config = dictionaries_config(folder)
    recorded = config.get("model", "..")
    if not isinstance(recorded, str) or not recorded:
        raise InterpError(f"{folder / 'config.json'}: \"model\" must be the path of the model folder, got {recorded!r}")
    candidates = [folder / recorded] + ([Path(recorded)] if not Path(recorded).is_absolute() else [])
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise InterpError(f"{folder / 'config.json'} names the model {recorded!r}, which is not a folder (relative to "
                      f"{folder} or here)")


def _hook_width(model: HookedTransformer, hook: str) -> int:
    return model.cfg.n_heads * model.cfg.d_head if hook.endswith("attn.hook_z") else model.cfg.d_model


def check_dictionaries_fit(model: HookedTransformer, dicts: dict[int, SAE]) -> None:
    """InterpError unless every dictionary reads and writes hooks of `model` with matching widths."""
    for layer, sae in dicts.items():
        if not 0 <= layer < model.cfg.n_layers:
            raise InterpError(f"dictionary for layer {layer} but the model has {model.cfg.n_layers} layers")
        for role, hook in (("reads", input_hook(sae)), ("writes", output_hook(sae))):
            if hook not in model.hook_dict:
                raise InterpError(f"layer {layer} dictionary {role} hook {hook!r}, which this model does not have")
            if f"blocks.{layer}." not in hook:
                raise InterpError(f"layer {layer} dictionary {role} hook {hook!r} of another layer")
        d_out = sae.cfg.d_out if is_transcoder(sae) else sae.cfg.d_in
        need_in, need_out = _hook_width(model, input_hook(sae)), _hook_width(model, output_hook(sae))
        if sae.cfg.d_in != need_in or d_out != need_out:
            raise InterpError(f"layer {layer} dictionary has widths {sae.cfg.d_in}→{d_out} but the model's hooks "
                              f"need {need_in}→{need_out}: it belongs to another model")
        shapes = {"W_enc": (sae.cfg.d_in, sae.cfg.d_sae), "W_dec": (sae.cfg.d_sae, d_out)}
        if hasattr(sae, "W_skip"):
            shapes["W_skip"] = (d_out, sae.cfg.d_in)  # SAE-Lens: skip path x @ W_skip.T
        for name, shape in shapes.items():
            if tuple(getattr(sae, name).shape) != shape:
                raise InterpError(f"layer {layer} dictionary's {name} has shape {list(getattr(sae, name).shape)} but "
                                  f"its widths {sae.cfg.d_in}→{d_out} need {list(shape)}")
