"""Cross-layer transcoders (CLT): a feature read at layer L writes into the MLP output of L and of every later layer.

Layer L encodes its input x_L (the residual stream before the MLP, `blocks.L.hook_resid_mid`, or the
normalised MLP input `blocks.L.ln2.hook_normalized`) as a_L = act(x_L @ W_enc[L] + b_enc[L]); the MLP
output of layer L' is reconstructed as b_dec[L'] + Σ_{L ≤ L'} a_L @ W_dec[L][:, L' − L] (+ x_L' @ W_skip[L']
with a skip path). In the graph each feature is one node with edges through every decoder it writes.

On disk: circuit-tracer's layout, one pair of files per layer,
- `W_enc_{L}.safetensors`: `W_enc_{L}` [d_sae, d_model], `b_enc_{L}` [d_sae], `b_dec_{L}` [d_model] and,
  for JumpReLU, `threshold_{L}` [d_sae];
- `W_dec_{L}.safetensors`: `W_dec_{L}` [d_sae, n_layers − L, d_model];
plus, in our folders, `config.json` (kind "clt": the hooks, the activation, k for TopK, the model it
was trained on, W_skip in `W_skip.safetensors` when there is one). A folder of circuit-tracer files
without our config.json loads with circuit-tracer's defaults (read `hook_resid_mid`, write `hook_mlp_out`,
ReLU, or JumpReLU when thresholds are present).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interp.errors import InterpError

ACTIVATIONS = ("relu", "jump_relu", "topk")
INPUT_HOOKS = ("hook_resid_mid", "ln2.hook_normalized")


class CrossLayerTranscoder(nn.Module):
    """Encoders per layer and decoders from each layer to itself and every later layer."""

    def __init__(self, n_layers: int, d_model: int, d_sae: int, activation: str = "relu", k: int | None = None,
                 input_hook: str = "hook_resid_mid", output_hook: str = "hook_mlp_out", skip: bool = False,
                 dtype: torch.dtype = torch.float32, model_name: str = ""):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise InterpError(f"unknown CLT activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if activation == "topk" and not (k and k > 0):
            raise InterpError("a TopK CLT needs k ≥ 1")
        if input_hook not in INPUT_HOOKS:
            raise InterpError(f"CLT input hook {input_hook!r} is not one of {', '.join(INPUT_HOOKS)}")
        self.n_layers, self.d_model, self.d_sae = n_layers, d_model, d_sae
        self.activation, self.k = activation, k
        self.input_hook, self.output_hook, self.model_name = input_hook, output_hook, model_name
        self.W_enc = nn.Parameter(torch.zeros(n_layers, d_model, d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(n_layers, d_sae, dtype=dtype))
        self.W_dec = nn.ParameterList([nn.Parameter(torch.zeros(d_sae, n_layers - i, d_model, dtype=dtype))
                                       for i in range(n_layers)])
        self.b_dec = nn.Parameter(torch.zeros(n_layers, d_model, dtype=dtype))
        self.threshold = nn.Parameter(torch.zeros(n_layers, d_sae, dtype=dtype)) if activation == "jump_relu" else None
        self.W_skip = nn.Parameter(torch.zeros(n_layers, d_model, d_model, dtype=dtype)) if skip else None

    def read_hook(self, layer: int) -> str:
        return f"blocks.{layer}.{self.input_hook}"

    def write_hook(self, layer: int) -> str:
        return f"blocks.{layer}.{self.output_hook}"

    def pre_activation(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        return x @ self.W_enc[layer] + self.b_enc[layer]

    def encode(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Feature activations of layer `layer` for inputs x [..., d_model]."""
        pre = self.pre_activation(x, layer)
        if self.activation == "relu":
            return torch.relu(pre)
        if self.activation == "jump_relu":
            return pre * (pre > self.threshold[layer])
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def decode(self, acts: list[torch.Tensor], inputs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """MLP-output reconstructions of every layer from the activations of every layer ([..., d_sae] each)."""
        out = []
        for target in range(self.n_layers):
            recon = self.b_dec[target].expand(*acts[0].shape[:-1], self.d_model)
            for source in range(target + 1):
                recon = recon + acts[source] @ self.W_dec[source][:, target - source]
            if self.W_skip is not None and inputs is not None:
                recon = recon + inputs[target] @ self.W_skip[target]
            out.append(recon)
        return out

    def layers(self) -> dict[int, "CLTLayer"]:
        """One view per layer, shaped like a per-layer transcoder for the graph engine."""
        return {layer: CLTLayer(self, layer) for layer in range(self.n_layers)}


@dataclass
class _Metadata:
    hook_name: str
    hook_name_out: str
    model_name: str = ""

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass
class _Config:
    d_sae: int
    metadata: _Metadata
    normalize_activations: str = "none"
    rescale_acts_by_decoder_norm: bool = False
    architecture: str = "clt"
    extra: dict[str, Any] = field(default_factory=dict)


class CLTLayer(nn.Module):
    """Layer `layer` of a CLT seen as a transcoder: it reads at `layer`, its own decoder writes the MLP output of
    `layer`, and `extra_writes` lists (later layer, decoder [d_sae, d_model]) for the outputs it also writes."""

    def __init__(self, clt: CrossLayerTranscoder, layer: int):
        super().__init__()
        self.clt, self.layer = clt, layer
        self.cfg = _Config(clt.d_sae, _Metadata(clt.read_hook(layer), clt.write_hook(layer), clt.model_name))

    @property
    def W_enc(self) -> torch.Tensor:
        return self.clt.W_enc[self.layer]

    @property
    def W_dec(self) -> torch.Tensor:
        return self.clt.W_dec[self.layer][:, 0]

    @property
    def b_dec(self) -> torch.Tensor:
        return self.clt.b_dec[self.layer]

    @property
    def W_skip(self) -> torch.Tensor | None:
        # Stored [d_out, d_in] like SAE-Lens' skip transcoders, which is how the graph engine reads it.
        return None if self.clt.W_skip is None else self.clt.W_skip[self.layer].T

    @property
    def extra_writes(self) -> list[tuple[int, torch.Tensor]]:
        return [(self.layer + o, self.clt.W_dec[self.layer][:, o]) for o in range(1, self.clt.n_layers - self.layer)]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.clt.encode(x.to(self.clt.W_enc.dtype), self.layer)


# ------------------------------------------------------------------ files

CONFIG = "config.json"
_ENC = re.compile(r"^W_enc_(\d+)\.safetensors$")


def is_clt_folder(folder: str | Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and (folder / "W_enc_0.safetensors").is_file()


def save_clt(clt: CrossLayerTranscoder, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `clt` in circuit-tracer's layout plus our config.json (each file atomically)."""
    from interp.io import save_tensors, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for layer in range(clt.n_layers):
        enc = {f"W_enc_{layer}": clt.W_enc[layer].detach().T.contiguous(), f"b_enc_{layer}": clt.b_enc[layer].detach(),
               f"b_dec_{layer}": clt.b_dec[layer].detach()}
        if clt.threshold is not None:
            enc[f"threshold_{layer}"] = clt.threshold[layer].detach()
        save_tensors(folder / f"W_enc_{layer}.safetensors", enc)
        save_tensors(folder / f"W_dec_{layer}.safetensors", {f"W_dec_{layer}": clt.W_dec[layer].detach().contiguous()})
    if clt.W_skip is not None:
        save_tensors(folder / "W_skip.safetensors", {"W_skip": clt.W_skip.detach().contiguous()})
    write_json(folder / CONFIG, {"kind": "clt", "n_layers": clt.n_layers, "d_model": clt.d_model, "d_sae": clt.d_sae,
                                 "activation": clt.activation, "k": clt.k, "feature_input_hook": clt.input_hook,
                                 "feature_output_hook": clt.output_hook, "model_name": clt.model_name,
                                 **(extra or {})})
    return folder


def _read(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InterpError(f"cannot read {path} ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def load_clt(folder: str | Path, device: str | torch.device = "cpu") -> CrossLayerTranscoder:
    """A CLT from circuit-tracer's per-layer files (with our config.json when present)."""
    from interp.io import read_json

    folder = Path(folder)
    layers = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _ENC.match(p.name)))
    if not layers or layers != list(range(len(layers))):
        raise InterpError(f"{folder} holds W_enc files for layers {layers}; a CLT needs W_enc_0 … W_enc_(n-1)")
    config = read_json(folder / CONFIG, what="CLT config") if (folder / CONFIG).is_file() else {}
    n_layers = len(layers)
    encs, decs = [], []
    for layer in layers:
        enc = _read(folder / f"W_enc_{layer}.safetensors")
        dec_path = folder / f"W_dec_{layer}.safetensors"
        if not dec_path.is_file():
            raise InterpError(f"{dec_path} is missing: every CLT layer needs its decoder file")
        dec = _read(dec_path)
        for key in (f"W_enc_{layer}", f"b_enc_{layer}", f"b_dec_{layer}"):
            if key not in enc:
                raise InterpError(f"{folder / f'W_enc_{layer}.safetensors'} has no tensor {key!r}")
        if f"W_dec_{layer}" not in dec:
            raise InterpError(f"{dec_path} has no tensor 'W_dec_{layer}'")
        encs.append(enc)
        decs.append(dec[f"W_dec_{layer}"])
    d_sae, d_model = encs[0]["W_enc_0"].shape
    for layer, (enc, dec) in enumerate(zip(encs, decs)):
        shapes = {f"W_enc_{layer}": (d_sae, d_model), f"b_enc_{layer}": (d_sae,), f"b_dec_{layer}": (d_model,)}
        for key, shape in shapes.items():
            if tuple(enc[key].shape) != shape:
                raise InterpError(f"{folder / f'W_enc_{layer}.safetensors'}: {key} has shape {tuple(enc[key].shape)}, "
                                  f"expected {shape}")
        if tuple(dec.shape) != (d_sae, n_layers - layer, d_model):
            raise InterpError(f"{folder / f'W_dec_{layer}.safetensors'}: W_dec_{layer} has shape {tuple(dec.shape)}, "
                              f"expected {(d_sae, n_layers - layer, d_model)} for a {n_layers}-layer CLT")
    has_threshold = all(f"threshold_{i}" in e for i, e in enumerate(encs))
    activation = config.get("activation", "jump_relu" if has_threshold else "relu")
    skip_path = folder / "W_skip.safetensors"
    dtype = encs[0]["W_enc_0"].dtype
    clt = CrossLayerTranscoder(n_layers, d_model, d_sae, activation=activation, k=config.get("k"),
                               input_hook=config.get("feature_input_hook", "hook_resid_mid"),
                               output_hook=config.get("feature_output_hook", "hook_mlp_out"),
                               skip=skip_path.is_file(), dtype=dtype, model_name=config.get("model_name", ""))
    with torch.no_grad():
        for layer, (enc, dec) in enumerate(zip(encs, decs)):
            clt.W_enc[layer] = enc[f"W_enc_{layer}"].T
            clt.b_enc[layer] = enc[f"b_enc_{layer}"]
            clt.b_dec[layer] = enc[f"b_dec_{layer}"]
            clt.W_dec[layer].copy_(dec)
            if clt.threshold is not None:
                clt.threshold[layer] = enc[f"threshold_{layer}"].reshape(-1)
        if clt.W_skip is not None:
            w = _read(skip_path).get("W_skip")
            if w is None or tuple(w.shape) != (n_layers, d_model, d_model):
                raise InterpError(f"{skip_path} must hold W_skip of shape {(n_layers, d_model, d_model)}")
            clt.W_skip.copy_(w)
    clt.requires_grad_(False)
    return clt.to(device).eval()
