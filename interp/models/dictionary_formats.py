"""Read the dictionary layouts people publish into the SAE-Lens objects the graph engine understands.

`load_dictionaries` (in `interp.models.dictionaries`) hands every folder to `load_any`, which recognises

- **ours** ("interp"): `config.json` with kind "dictionaries" and `layers`, one SAE-Lens folder `layer_L/` per layer;
- **an SAE-Lens folder** ("sae-lens"): `cfg.json` + `sae_weights.safetensors`;
- **a folder of SAE-Lens folders** ("sae-lens-folders"): subfolders holding `cfg.json`; the layer comes from
  `metadata.hook_name` ("blocks.L....") or the cfg's `hook_layer` / `hook_point_layer`;
- **a circuit-tracer transcoder set** ("circuit-tracer"): `config.yaml` (or `.yml`, or a JSON `config.json`) with
  `feature_input_hook` and `feature_output_hook`, naming one weights file per layer in `transcoders` (a list of paths,
  list index = layer; or, in circuit-tracer's first releases, a list of `{id, layer, filepath}`), or, without that
  list, the `layer_L.safetensors` files beside it (circuit-tracer's cache layout). The config file itself may be
  passed instead of its folder.

SAE-Lens configs are normalised *before* SAE-Lens sees them, so that configs of older SAE-Lens versions and of other
writers load: `hook_point`→`hook_name`, `hook_point_layer`→`hook_layer`, `activation_fn_str`→`activation_fn`,
`activation_fn_kwargs.k`→`k`, a boolean `normalize_activations`, a missing architecture (inferred from the config and
the weights), and transcoders never get `apply_b_dec_to_input` (SAE-Lens switches it on for any cfg without a
`sae_lens_version`, and its transcoders refuse it). Nothing on disk is modified: the SAE is built from the normalised
config and its weights are read with safetensors.

Anything unusable is an `InterpError` whose one line names the file and the problem.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens import SAE
from sae_lens.registry import SAE_CLASS_REGISTRY
from sae_lens.saes.transcoder import Transcoder
from safetensors import safe_open

from interp.errors import InterpError
from interp.models.dictionaries import TopKTranscoder  # noqa: F401 - registers "topk_transcoder"

SAE_LENS_CFG = "cfg.json"
SAE_LENS_WEIGHTS = "sae_weights.safetensors"
OUR_CONFIG = "config.json"
CIRCUIT_TRACER_CONFIGS = ("config.yaml", "config.yml", "config.json")

SAE_ARCHITECTURES = ("standard", "jumprelu", "topk")
TRANSCODER_ARCHITECTURES = ("transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder",
                            "topk_transcoder")
SUPPORTED_ARCHITECTURES = SAE_ARCHITECTURES + TRANSCODER_ARCHITECTURES
# Names other writers (and older SAE-Lens versions) use for the same architectures.
ARCHITECTURE_ALIASES = {
    "relu": "standard", "sae": "standard", "jump_relu": "jumprelu", "top_k": "topk",
    "relu_transcoder": "transcoder", "standard_transcoder": "transcoder", "plt": "transcoder",
    "skip": "skip_transcoder", "skiptranscoder": "skip_transcoder", "jump_relu_transcoder": "jumprelu_transcoder",
    "top_k_transcoder": "topk_transcoder", "topktranscoder": "topk_transcoder",
}
# SAE-Lens' own list of metadata keys (sae_lens.loading.pretrained_sae_loaders.LLM_METADATA_KEYS) plus our own.
METADATA_KEYS = (
    "model_name", "hook_name", "model_class_name", "hook_head_index", "model_from_pretrained_kwargs", "prepend_bos",
    "exclude_special_tokens", "neuronpedia_id", "context_size", "seqpos_slice", "dataset_path", "sae_lens_version",
    "sae_lens_training_version", "hook_name_out", "hook_head_index_out", "hf_hook_name", "hf_hook_name_out",
)
FLOAT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                "float64": torch.float64}


# --------------------------------------------------------------------------------------------- description


@dataclass(frozen=True)
class DictionaryInfo:
    """What one loaded dictionary is, for printing and checks."""

    layer: int
    kind: str            # "transcoder" or "sae"
    architecture: str    # the SAE-Lens architecture name
    reads: str           # input hook
    writes: str          # output hook
    d_in: int
    d_sae: int
    d_out: int
    skip: bool           # has a skip path x @ W_skip.T (SAE-Lens orientation: W_skip is [d_out, d_in])
    activation: str      # "relu", "jumprelu", "topk(k=…)", …

    def line(self) -> str:
        skip = " + skip" if self.skip else ""
        return (f"layer {self.layer}: {self.kind} {self.architecture} ({self.activation}{skip}) "
                f"{self.reads} [{self.d_in}] -> {self.d_sae} features -> {self.writes} [{self.d_out}]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(layer: int, sae: SAE) -> DictionaryInfo:
    cfg = sae.cfg
    arch = cfg.architecture()
    transcoder = isinstance(sae, Transcoder)
    reads = str(cfg.metadata.hook_name)
    writes = str(cfg.metadata.hook_name_out or reads) if transcoder else reads
    if "topk" in arch:
        relu = getattr(cfg, "topk_relu", True)
        activation = f"topk(k={cfg.k}{'' if relu else ', signed'})"
    elif "jumprelu" in arch:
        activation = "jumprelu"
    else:
        activation = "relu"
    return DictionaryInfo(layer=int(layer), kind="transcoder" if transcoder else "sae", architecture=arch,
                          reads=reads, writes=writes, d_in=int(cfg.d_in), d_sae=int(cfg.d_sae),
                          d_out=int(cfg.d_out if transcoder else cfg.d_in), skip=hasattr(sae, "W_skip"),
                          activation=activation)


def describe_dictionaries(dicts: dict[int, SAE]) -> list[DictionaryInfo]:
    return [describe(layer, dicts[layer]) for layer in sorted(dicts)]


# --------------------------------------------------------------------------------------------- layouts


def _circuit_tracer_config(folder: Path) -> Path | None:
    for name in CIRCUIT_TRACER_CONFIGS:
        path = folder / name
        if path.is_file():
            if name == OUR_CONFIG:
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if not (isinstance(data, dict) and "feature_input_hook" in data):
                    continue
            return path
    return None


def _is_our_layout(folder: Path) -> bool:
    path = folder / OUR_CONFIG
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True  # let the interp loader say what is wrong with it
    return isinstance(data, dict) and "kind" in data and "feature_input_hook" not in data


def detect_layout(path: str | Path) -> str:
    """"interp", "sae-lens", "sae-lens-folders" or "circuit-tracer"; InterpError when none fits."""
    path = Path(path)
    if path.is_file():
        if path.name == SAE_LENS_CFG:
            return "sae-lens"
        if path.suffix in (".yaml", ".yml", ".json"):
            return "circuit-tracer"
        raise InterpError(f"{path} is neither a dictionaries folder nor a circuit-tracer config file")
    if not path.is_dir():
        raise InterpError(f"dictionaries folder not found: {path}")
    if _is_our_layout(path):
        return "interp"
    if (path / SAE_LENS_CFG).is_file():
        return "sae-lens"
    if _circuit_tracer_config(path) is not None:
        return "circuit-tracer"
    if any((sub / SAE_LENS_CFG).is_file() for sub in path.iterdir() if sub.is_dir()):
        return "sae-lens-folders"
    if any(path.glob("layer_*.safetensors")):
        raise InterpError(f"{path} holds layer_*.safetensors but no config.yaml naming feature_input_hook and "
                          "feature_output_hook (circuit-tracer's transcoder set config); add one")
    raise InterpError(f"{path} holds no recognisable dictionaries: expected our config.json + layer_L/ folders, "
                      "SAE-Lens folders (cfg.json + sae_weights.safetensors) or a circuit-tracer config.yaml")


def load_any(path: str | Path, device: str = "cpu") -> dict[int, SAE]:
    """{layer: SAE-Lens SAE or Transcoder} from any layout `detect_layout` recognises."""
    path = Path(path)
    layout = detect_layout(path)
    if layout == "interp":
        out = _load_our_layout(path, device)
    elif layout == "sae-lens":
        layer, sae = load_sae_lens_folder(path.parent if path.is_file() else path, device)
        out = {layer: sae}
    elif layout == "sae-lens-folders":
        out = _load_sae_lens_folders(path, device)
    else:
        out = load_circuit_tracer_set(path if path.is_file() else _circuit_tracer_config(path), device)
    for sae in out.values():
        sae.eval()
    return out


def _load_our_layout(folder: Path, device: str) -> dict[int, SAE]:
    from interp.models.dictionaries import dictionaries_config

    config = dictionaries_config(folder)
    layers = config.get("layers", [])
    if not isinstance(layers, list) or not all(isinstance(x, int) for x in layers):
        raise InterpError(f"{folder / OUR_CONFIG}: 'layers' must be a list of layer numbers, not {layers!r}")
    if len(set(layers)) != len(layers):
        raise InterpError(f"{folder / OUR_CONFIG} lists layers {layers} with repeats; each layer once")
    out = {}
    for layer in layers:
        sub = folder / f"layer_{layer}"
        if not (sub / SAE_LENS_CFG).is_file():
            raise InterpError(f"{sub / SAE_LENS_CFG} not found: {folder / OUR_CONFIG} lists layer {layer}; retrain it")
        _, out[int(layer)] = load_sae_lens_folder(sub, device, layer=int(layer))
    if not out:
        raise InterpError(f"{folder} lists no layers; retrain the dictionaries")
    return out


def _load_sae_lens_folders(folder: Path, device: str) -> dict[int, SAE]:
    out: dict[int, SAE] = {}
    where: dict[int, Path] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and (p / SAE_LENS_CFG).is_file()):
        layer, sae = load_sae_lens_folder(sub, device)
        if layer in out:
            raise InterpError(f"{sub} is a second dictionary for layer {layer} (after {where[layer]}); "
                              "keep one per layer")
        out[layer], where[layer] = sae, sub
    return out


# --------------------------------------------------------------------------------------------- weights


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InterpError(f"weights file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                return {k: torch.from_numpy(np.array(data[k])) for k in data.files}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # noqa: BLE001 - any failure here means an unreadable weights file
        kind = "an .npz" if path.suffix == ".npz" else "a safetensors"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InterpError(f"{path} is not {kind} file we can read ({msg})") from None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _build(cfg_dict: dict[str, Any], state: dict[str, torch.Tensor], where: Path, device: str) -> SAE:
    """Instantiate the registered class of `cfg_dict["architecture"]` and load `state`, checking names and shapes."""
    arch = cfg_dict["architecture"]
    sae_cls, cfg_cls = SAE_CLASS_REGISTRY[arch]
    try:
        cfg = cfg_cls.from_dict({**cfg_dict, "device": "meta"})
        sae = sae_cls(cfg)
    except (TypeError, ValueError, KeyError) as e:
        raise InterpError(f"{where}: invalid {arch} config ({e})") from None
    sae.cfg.device = device
    want = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
    sae.process_state_dict_for_loading(state)
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        problem = "; ".join(x for x in (f"lacks {', '.join(missing)}" if missing else "",
                                        f"has unexpected {', '.join(extra)}" if extra else "") if x)
        raise InterpError(f"{where}: {problem} for a {arch} (it needs {', '.join(sorted(want))})")
    dims = f"d_in={cfg.d_in}, d_sae={cfg.d_sae}" + (f", d_out={cfg.d_out}" if hasattr(cfg, "d_out") else "")
    for k, shape in want.items():
        if tuple(state[k].shape) != shape:
            raise InterpError(f"{where}: {k} has shape {list(state[k].shape)} but the config ({dims}) needs "
                              f"{list(shape)}")
    dtype = FLOAT_DTYPES[cfg.dtype]
    state = {k: v.to(dtype=dtype).contiguous() for k, v in state.items()}
    sae.load_state_dict(state, assign=True)
    return sae.to(device=device, dtype=dtype)


# --------------------------------------------------------------------------------------------- SAE-Lens


def _layer_of(hook: str | None) -> int | None:
    parts = (hook or "").split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None


def _in_block(hook: str, layer: int | None) -> str:
    """A hook name relative to a block ("hook_resid_mid", "ln2.hook_normalized") made absolute."""
    if hook.startswith("blocks.") or layer is None or not hook.startswith(("hook_", "ln", "attn.", "mlp.")):
        return hook
    return f"blocks.{layer}.{hook}"


def normalise_sae_lens_config(raw: dict[str, Any], shapes: dict[str, tuple[int, ...]], where: Path
                              ) -> tuple[int, dict[str, Any]]:
    """(layer, a config dict that SAE-Lens 6's `<Config>.from_dict` takes as it is) from a cfg.json of any SAE-Lens
    version (or of another writer following its field names) and the shapes of the weights it comes with."""
    if not isinstance(raw, dict):
        raise InterpError(f"{where} is not a JSON object")
    meta_in = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}

    def get(*names: str) -> Any:
        for name in names:
            for source in (meta_in, raw):
                if source.get(name) is not None:
                    return source[name]
        return None

    hook_name = get("hook_name", "hook_point", "hook_name_in", "hook_point_in")
    hook_out = get("hook_name_out", "hook_point_out")
    layer = _layer_of(hook_name)
    if layer is None:
        layer_field = get("hook_layer", "hook_point_layer", "layer")
        if isinstance(layer_field, int) and not isinstance(layer_field, bool):
            layer = layer_field
    if layer is None:
        raise InterpError(f"{where}: no 'blocks.L....' hook_name and no hook_layer; cannot tell its layer")
    if not isinstance(hook_name, str) or not hook_name:
        raise InterpError(f"{where}: no hook_name (or hook_point): cannot tell where the dictionary reads")
    hook_name = _in_block(hook_name, layer)

    activation = str(get("activation_fn", "activation_fn_str") or "relu").lower()
    kwargs = get("activation_fn_kwargs") or {}
    k = get("k") if get("k") is not None else (kwargs.get("k") if isinstance(kwargs, dict) else None)
    has_threshold = "threshold" in shapes or "log_threshold" in shapes
    has_skip = "W_skip" in shapes

    arch_raw = raw.get("architecture")
    arch = ARCHITECTURE_ALIASES.get(str(arch_raw).lower(), str(arch_raw).lower()) if arch_raw is not None else None
    if arch is None:
        transcoder_like = (hook_out is not None and hook_out != hook_name) or get("d_out") is not None or has_skip
        arch = "transcoder" if transcoder_like else "standard"
    if arch in SAE_CLASS_REGISTRY and arch not in SUPPORTED_ARCHITECTURES:
        raise InterpError(f"{where}: SAE-Lens architecture {arch!r} is not supported by the graph engine "
                          f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise InterpError(f"{where}: unknown SAE architecture {arch_raw!r} "
                          f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    # The activation function and the weights decide the variant within a family (old configs say "standard" +
    # activation_fn "topk"; transcoder writers say "transcoder" and ship a threshold or W_skip).
    if arch in SAE_ARCHITECTURES:
        if has_skip:
            raise InterpError(f"{where}: W_skip in the weights of a {arch} SAE; only transcoders have a skip path")
        if activation == "topk" or arch == "topk":
            arch = "topk"
        elif has_threshold or activation == "jumprelu":
            arch = "jumprelu"
    else:
        if activation == "topk" or arch == "topk_transcoder":
            if has_skip or has_threshold:
                raise InterpError(f"{where}: a TopK transcoder with W_skip or a threshold is not supported")
            arch = "topk_transcoder"
        elif has_threshold or arch.startswith("jumprelu") or activation == "jumprelu":
            arch = "jumprelu_skip_transcoder" if has_skip or "skip" in arch else "jumprelu_transcoder"
        else:
            arch = "skip_transcoder" if has_skip or "skip" in arch else "transcoder"
    transcoder = arch in TRANSCODER_ARCHITECTURES
    if arch.startswith("topk") and k is None:
        raise InterpError(f"{where}: a {arch} config needs k (or activation_fn_kwargs.k)")

    d_in, d_sae, d_out = get("d_in"), get("d_sae"), get("d_out")
    enc = shapes.get("W_enc")
    dec = shapes.get("W_dec")
    if d_in is None and enc is not None and len(enc) == 2:
        d_in = enc[0]
    if d_sae is None and enc is not None and len(enc) == 2:
        d_sae = enc[1]
    if transcoder and d_out is None:
        d_out = dec[1] if dec is not None and len(dec) == 2 else d_in
    for name, value in (("d_in", d_in), ("d_sae", d_sae)) + ((("d_out", d_out),) if transcoder else ()):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InterpError(f"{where}: {name} is {value!r}; need a positive integer")

    normalize = get("normalize_activations")
    if isinstance(normalize, bool) or normalize is None:
        normalize = "expected_average_only_in" if normalize else "none"
    dtype = str(get("dtype") or "float32").removeprefix("torch.")
    if dtype not in FLOAT_DTYPES:
        raise InterpError(f"{where}: dtype {dtype!r} is not one of {', '.join(FLOAT_DTYPES)}")

    # Everything the cfg's own metadata holds stays (training details, our dictionary_type, …); top-level fields
    # of older versions that SAE-Lens keeps as metadata are moved in.
    metadata = {**{key: get(key) for key in METADATA_KEYS if get(key) is not None},
                **{key: value for key, value in meta_in.items() if value is not None}}
    metadata["hook_name"] = hook_name
    if transcoder:
        metadata["hook_name_out"] = _in_block(hook_out, layer) if isinstance(hook_out, str) and hook_out \
            else f"blocks.{layer}.hook_mlp_out"
    else:
        metadata.pop("hook_name_out", None)
    cfg: dict[str, Any] = {
        "architecture": arch, "d_in": d_in, "d_sae": d_sae, "dtype": dtype,
        "normalize_activations": normalize,
        "reshape_activations": get("reshape_activations") or ("hook_z" if hook_name.endswith("hook_z") else "none"),
        # SAE-Lens switches this on for configs without a version; its transcoders refuse it (b_dec is [d_out]).
        "apply_b_dec_to_input": False if transcoder else bool(get("apply_b_dec_to_input")
                                                               if get("apply_b_dec_to_input") is not None else True),
        "metadata": metadata,
    }
    if transcoder:
        cfg["d_out"] = d_out
    if arch.startswith("topk"):
        cfg["k"] = int(k)
        if arch == "topk":
            cfg["rescale_acts_by_decoder_norm"] = bool(get("rescale_acts_by_decoder_norm") or False)
        else:
            cfg["topk_relu"] = bool(get("topk_relu") if get("topk_relu") is not None else True)
    return layer, cfg


def load_sae_lens_folder(folder: str | Path, device: str = "cpu", layer: int | None = None) -> tuple[int, SAE]:
    """(layer, SAE) from one SAE-Lens folder, whatever SAE-Lens version (or other writer) made its cfg.json."""
    folder = Path(folder)
    cfg_path, weights_path = folder / SAE_LENS_CFG, folder / SAE_LENS_WEIGHTS
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InterpError(f"SAE-Lens config not found: {cfg_path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"{cfg_path} is not valid JSON ({getattr(e, 'msg', e)}); regenerate it") from None
    if not weights_path.is_file():
        raise InterpError(f"SAE-Lens weights not found: {weights_path} (beside {cfg_path.name})")
    state = _read_tensors(weights_path)
    found, cfg = normalise_sae_lens_config(raw, {k: tuple(v.shape) for k, v in state.items()}, cfg_path)
    _fold_legacy_weights(state, weights_path)
    return (found if layer is None else layer), _build(cfg, state, weights_path, device)


def _fold_legacy_weights(state: dict[str, torch.Tensor], where: Path) -> None:
    """Old SAE-Lens weights in today's form: `log_threshold` as `threshold`, and `scaling_factor` (acts × scaling_factor
    before W_dec) folded into W_dec, or dropped when all ones."""
    if "log_threshold" in state and "threshold" not in state:
        state["threshold"] = state.pop("log_threshold").exp()
    if "scaling_factor" in state:
        scale = state.pop("scaling_factor")
        if not torch.all(scale == 1):
            if "W_dec" not in state or scale.shape != state["W_dec"].shape[:1]:
                raise InterpError(f"{where}: scaling_factor of shape {list(scale.shape)} does not fit W_dec")
            state["W_dec"] = state["W_dec"] * scale[:, None].to(state["W_dec"].dtype)


# --------------------------------------------------------------------------------------------- circuit-tracer


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InterpError(f"circuit-tracer config not found: {path}") from None
    except UnicodeDecodeError:
        raise InterpError(f"{path} is not a text file") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - yaml/json parse errors of user input
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InterpError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({first})") from None
    if not isinstance(data, dict):
        raise InterpError(f"{path} does not hold a mapping of settings")
    return data


def _layer_files(config: dict[str, Any], path: Path) -> tuple[dict[int, Path], bool]:
    """({layer: weights file}, whether this is circuit-tracer's first config format (list of {layer, filepath}))."""
    base = path.parent
    entries = config.get("transcoders")
    files: dict[int, Path] = {}
    legacy = False

    def resolve(ref: Any, layer: int) -> Path:
        if not isinstance(ref, str) or not ref:
            raise InterpError(f"{path}: transcoder of layer {layer} has no file path ({ref!r})")
        if ref.startswith("hf://"):
            local = base / Path(ref.split("?", 1)[0]).name
            if local.is_file():
                return local
            raise InterpError(f"{path}: layer {layer} is {ref} on the Hugging Face hub, which we cannot reach; "
                              f"download it next to the config as {local.name}")
        p = Path(ref).expanduser()
        if not p.is_absolute() and (base / p).exists():
            return base / p
        return p if p.is_absolute() or p.exists() else base / p

    if entries is None:
        for f in sorted(base.glob("layer_*.safetensors")) + sorted(base.glob("layer_*.npz")):
            stem = f.stem.removeprefix("layer_")
            if stem.isdigit():
                if int(stem) in files:
                    raise InterpError(f"{base}: layer {stem} has two weights files ({files[int(stem)].name}, {f.name})")
                files[int(stem)] = f
        if not files:
            raise InterpError(f"{path} has no 'transcoders' list and there are no layer_L.safetensors files beside it")
        return files, legacy
    if not isinstance(entries, list) or not entries:
        raise InterpError(f"{path}: 'transcoders' must be a non-empty list")
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            legacy = True
            layer = entry.get("layer")
            if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
                raise InterpError(f"{path}: transcoders entry {i} has layer {layer!r}; need a layer number")
            ref = entry.get("filepath", entry.get("path"))
        else:
            layer, ref = i, entry
        if layer in files:
            raise InterpError(f"{path} lists layer {layer} twice; each layer once")
        files[layer] = resolve(ref, layer)
    return files, legacy


def _orient(t: torch.Tensor, name: str, rows: int, cols: int, square_is_transposed: bool, where: Path
            ) -> torch.Tensor:
    """`t` as [rows, cols]: as stored, or transposed; a square matrix follows the format's convention."""
    shape = tuple(t.shape)
    if rows == cols and shape == (rows, cols):
        return t.T if square_is_transposed else t
    if shape == (rows, cols):
        return t
    if shape == (cols, rows):
        return t.T
    raise InterpError(f"{where}: {name} has shape {list(shape)} but b_enc/b_dec need [{rows}, {cols}] (or its transpose)")


def _convert_circuit_tracer_layer(tensors: dict[str, torch.Tensor], layer: int, config: dict[str, Any], legacy: bool,
                                  reads: str, writes: str, where: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SAE-Lens config dict, state dict) of one circuit-tracer SingleLayerTranscoder file."""
    t = dict(tensors)
    for key in ("W_enc", "W_dec", "b_enc", "b_dec"):
        if key not in t:
            raise InterpError(f"{where} lacks {key} (a circuit-tracer transcoder has W_enc, W_dec, b_enc, b_dec)")
    threshold = None
    for key in ("activation_function.threshold", "threshold"):
        if key in t:
            threshold = t.pop(key)
            break
    for key in ("log_threshold", "log_thresholds", "activation_function.log_threshold"):
        if threshold is None and key in t:
            threshold = t.pop(key).exp()
    k_tensor = t.pop("k", None)
    b_enc, b_dec = t.pop("b_enc"), t.pop("b_dec")
    if b_enc.dim() != 1 or b_dec.dim() != 1:
        raise InterpError(f"{where}: b_enc and b_dec must be vectors, not {list(b_enc.shape)} and {list(b_dec.shape)}")
    d_sae, d_out = b_enc.shape[0], b_dec.shape[0]
    W_enc_raw, W_dec_raw = t.pop("W_enc"), t.pop("W_dec")
    if W_enc_raw.dim() != 2 or W_dec_raw.dim() != 2:
        raise InterpError(f"{where}: W_enc and W_dec must be matrices")
    npz = where.suffix == ".npz"
    # Stored orientations: circuit-tracer's safetensors W_enc is [d_sae, d_in] (F.linear); Gemma Scope's .npz is
    # [d_in, d_sae]. W_dec is [d_sae, d_out], except in circuit-tracer's first format ([d_out, d_sae]).
    if d_sae not in W_enc_raw.shape:
        raise InterpError(f"{where}: W_enc has shape {list(W_enc_raw.shape)}, which does not fit b_enc's d_sae={d_sae}")
    d_in = W_enc_raw.shape[1] if W_enc_raw.shape[0] == d_sae and not (npz and W_enc_raw.shape[1] == d_sae) \
        else W_enc_raw.shape[0]
    W_enc = _orient(W_enc_raw, "W_enc", d_in, d_sae, square_is_transposed=not npz, where=where)
    W_dec = _orient(W_dec_raw, "W_dec", d_sae, d_out, square_is_transposed=legacy and not npz, where=where)
    W_skip = t.pop("W_skip", None)
    if W_skip is not None and tuple(W_skip.shape) != (d_out, d_in):
        raise InterpError(f"{where}: W_skip has shape {list(W_skip.shape)} but needs [{d_out}, {d_in}] "
                          "(applied as x @ W_skip.T)")
    if threshold is not None and tuple(threshold.shape) not in ((d_sae,), ()):
        raise InterpError(f"{where}: threshold has shape {list(threshold.shape)} but d_sae is {d_sae}")
    if t:
        raise InterpError(f"{where}: unexpected tensors {', '.join(sorted(t))} in a circuit-tracer transcoder")

    activation = str(config.get("activation") or "").lower() or None
    k = config.get("k")
    if k_tensor is not None and k is None:
        k = int(k_tensor.reshape(-1)[0])
    if activation is None and k_tensor is not None:
        activation = "topk"
    if activation not in (None, "relu", "topk", "jumprelu"):
        raise InterpError(f"{where}: unknown activation {activation!r} (circuit-tracer knows relu, topk, jumprelu)")
    if activation == "topk":
        if k is None:
            raise InterpError(f"{where}: topk activation but no k in the config or the weights")
        if W_skip is not None:
            raise InterpError(f"{where}: a TopK transcoder with W_skip is not supported")
        arch = "topk_transcoder"
        threshold = None
    elif activation == "jumprelu" or (activation is None and threshold is not None):
        if threshold is None:
            raise InterpError(f"{where}: jumprelu activation but no threshold in the weights")
        arch = "jumprelu_skip_transcoder" if W_skip is not None else "jumprelu_transcoder"
    else:
        arch = "skip_transcoder" if W_skip is not None else "transcoder"
        threshold = None

    dtype = W_enc.dtype if W_enc.dtype in FLOAT_DTYPES.values() else torch.float32
    state = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}
    if W_skip is not None:
        state["W_skip"] = W_skip
    if threshold is not None:
        state["threshold"] = threshold.expand(d_sae).clone()
    metadata = {"hook_name": reads, "hook_name_out": writes}
    if config.get("model_name"):
        metadata["model_name"] = config["model_name"]
    cfg = {"architecture": arch, "d_in": d_in, "d_sae": d_sae, "d_out": d_out, "dtype": _dtype_name(dtype),
           "apply_b_dec_to_input": False, "normalize_activations": "none", "metadata": metadata}
    if arch == "topk_transcoder":
        cfg.update(k=int(k), topk_relu=False)  # circuit-tracer's TopK keeps the k values as they are
    return cfg, state


def load_circuit_tracer_set(config_path: str | Path, device: str = "cpu") -> dict[int, SAE]:
    """{layer: Transcoder} from a circuit-tracer transcoder-set config and the per-layer weights files it names."""
    path = Path(config_path)
    config = _read_config(path)
    kind = config.get("model_kind", "transcoder_set")
    if kind != "transcoder_set":
        raise InterpError(f"{path}: model_kind {kind!r} is not supported (only per-layer 'transcoder_set')")
    hooks = {}
    for key in ("feature_input_hook", "feature_output_hook"):
        value = config.get(key)
        if not isinstance(value, str) or not value:
            raise InterpError(f"{path} has no {key} (circuit-tracer names the hooks its transcoders read and write)")
        hooks[key] = value
    files, legacy = _layer_files(config, path)
    out: dict[int, SAE] = {}
    for layer in sorted(files):
        reads = _in_block(hooks["feature_input_hook"], layer)
        writes = _in_block(hooks["feature_output_hook"], layer)
        cfg, state = _convert_circuit_tracer_layer(_read_tensors(files[layer]), layer, config, legacy, reads, writes,
                                                   files[layer])
        out[layer] = _build(cfg, state, files[layer], device)
    return out

