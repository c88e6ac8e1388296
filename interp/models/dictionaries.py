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
from interp.io import read_checkpoint_config, read_json

DICTIONARY_TYPES = ("transcoder", "attn_sae")
TYPE_FOLDERS = {"transcoder": "transcoders", "attn_sae": "attn-saes"}


@dataclass
class TopKTranscoderConfig(TranscoderConfig):
    k: int = 32

    @classmethod
    def architecture(cls) -> str:
        return "topk_transcoder"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "k": self.k}

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]) -> "TopKTranscoderConfig":
        from sae_lens.saes.sae import SAEMetadata
        from sae_lens.util import filter_valid_dataclass_fields

        res = cls(**filter_valid_dataclass_fields(config_dict, cls))
        if "metadata" in config_dict:
            res.metadata = SAEMetadata(**config_dict["metadata"])
        return res


class TopKTranscoder(Transcoder):
    """A transcoder whose activation keeps the k largest pre-activations (ReLU'd), as SAE-Lens' TopKSAE."""

    cfg: TopKTranscoderConfig  # type: ignore[assignment]

    def get_activation_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return TopK(self.cfg.k)

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
    """{layer: SAE-Lens SAE or Transcoder} for every `layer_L/` listed in the folder's config.json."""
    folder = Path(folder)
    config = dictionaries_config(folder)
    out: dict[int, SAE] = {}
    for layer in config.get("layers", []):
        sub = folder / f"layer_{layer}"
        cfg = read_json(sub / "cfg.json", what=f"SAE-Lens config of layer {layer}")
        if cfg.get("architecture") not in SAE_CLASS_REGISTRY:
            raise InterpError(f"{sub} has unknown SAE architecture {cfg.get('architecture')!r}")
        try:
            sae = SAE.load_from_disk(sub, device=device)
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise InterpError(f"cannot load the dictionary in {sub} ({type(e).__name__}: {e}); retrain it") from None
        sae.eval()
        out[int(layer)] = sae
    if not out:
        raise InterpError(f"{folder} lists no layers; retrain the dictionaries")
    return out


def dictionaries_model_path(folder: str | Path) -> Path:
    """The LM the dictionaries were trained on (config.json "model", relative to the folder)."""
    folder = Path(folder)
    config = dictionaries_config(folder)
    return (folder / config.get("model", "..")).resolve()


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
