"""Per-input null spaces of a layer's dictionaries: directions of each dictionary input that no encoder reads.

Every dictionary (transcoder or SAE, SAE-Lens classes) computes its pre-activations as
(a − b_dec) W_enc + b_enc: linear in the activation a at its input hook. Dictionaries that read the
same activation stack their encoder rows, and the null space of the stack is the set of δ that,
added to that activation, no feature of them reads. Dictionaries that read different activations
(a transcoder on `ln2.hook_normalized`, an attention SAE on `hook_attn_out`) get separate spaces,
each checked by adding its δ at its own hook only. These are not residual-stream directions: a
residual δ reaches `ln2.hook_normalized` as w ⊙ centre(δ)/σ and `hook_attn_out` through attention
over other positions, so one δ cannot be added at both as if they shared coordinates. An attention
SAE on `attn.hook_z` reads z = Σ_s pattern_s · (ln1(x_s) W_V[h]) per head; with the patterns
frozen (as in the local replacement model) a direction δ of the ln1-normalised stream moves z by
δ W_V[h], so its rows become Σ_h W_enc[h-block]ᵀ W_V[h]ᵀ and its space lives in those coordinates.

With d_sae ≥ d_model the stacked rows usually have full rank: the exact space is then empty
and we say so, with the approximate space of the smallest singular values instead.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch

from interp.errors import InterpError
from interp.harmless.apply import harmless_direction
from interp.harmless.subspace import DTYPE, HarmlessSubspace, MatrixOperator, null_space
from interp.io import read_checkpoint_config
from interp.results import Result

TYPE_FOLDERS = ("transcoders", "attn-saes")


def encoder_rows(sae: Any, model: Any | None = None) -> torch.Tensor:
    """The encoder of one dictionary as rows (d_sae × d_model) in residual-stream coordinates."""
    hook = str(sae.cfg.metadata.hook_name or "")
    rows = sae.W_enc.detach().to(DTYPE).T  # (d_sae, d_in)
    if hook.endswith("attn.hook_z"):
        if model is None:
            raise InterpError(f"the dictionary on {hook} reads z: give the language model to map it to the residual stream")
        w_v = model.W_V[int(hook.split(".")[1])].detach().to(DTYPE)  # (n_heads, d_model, d_head)
        n_heads, _, d_head = w_v.shape
        return torch.einsum("fhd,hmd->fm", rows.reshape(len(rows), n_heads, d_head), w_v)
    return rows


@dataclasses.dataclass
class DictionaryReading(Result):
    name: str
    hook: str
    d_sae: int
    rank: int
    null_dimension: int  # directions this dictionary alone does not read


@dataclasses.dataclass
class InputSpace(Result):
    """The null space of the stacked encoders of the dictionaries that read one activation."""

    input: str                # the hook they read (for hook_z: in ln1-normalised coordinates through W_V)
    dictionaries: list[str]
    space: HarmlessSubspace

    def summary(self) -> dict[str, Any]:
        s = self.space
        return {"input": self.input, "dictionaries": self.dictionaries, "dimension": s.dimension, "exact": s.exact,
                "d_in": s.d_in, "rank": s.rank, "null_dimension": s.null_dimension, "tolerance": s.tolerance,
                "gain": s.gain, "note": s.note}


@dataclasses.dataclass
class DictionaryHarmless(Result):
    """The per-input null spaces of a layer's dictionaries, and δ from each checked on real activations."""

    layer: int
    inputs: list[InputSpace]
    dictionaries: list[DictionaryReading]
    magnitude: float | None = None  # ‖δ‖ / ‖a‖ per activation row
    max_abs_feature_change: float | None = None
    max_abs_feature: float | None = None
    n_activations: int = 0

    @property
    def exact(self) -> bool:
        return all(i.space.exact for i in self.inputs)

    def summary(self) -> dict[str, Any]:
        return {"kind": "per-input null spaces", "layer": self.layer, "exact": self.exact,
                "inputs": [i.summary() for i in self.inputs], "magnitude": self.magnitude,
                "max_abs_feature_change": self.max_abs_feature_change, "max_abs_feature": self.max_abs_feature,
                "n_activations": self.n_activations, "dictionaries": [d.to_dict() for d in self.dictionaries],
                "note": "each δ is added only at the input its dictionaries read; these are not residual-stream "
                        "directions"}


def dictionary_null_space(saes: dict[str, Any], layer: int, model: Any | None = None, rtol: float | None = None,
                          approx_dim: int = 32) -> DictionaryHarmless:
    """Per input activation, the null space of the stacked encoder rows of the dictionaries in `saes`
    ({name: SAE}, all of one layer) that read it."""
    readings: list[DictionaryReading] = []
    groups: dict[str, tuple[list[str], list[torch.Tensor]]] = {}
    for name, sae in saes.items():
        hook = str(sae.cfg.metadata.hook_name)
        rows = encoder_rows(sae, model)
        alone = null_space(MatrixOperator(rows), name, "dictionary", rtol=rtol)
        readings.append(DictionaryReading(name, hook, int(sae.cfg.d_sae), alone.rank, alone.null_dimension))
        key = f"{hook.removesuffix('attn.hook_z')}ln1.hook_normalized (through W_V)" if hook.endswith("attn.hook_z") \
            else hook
        names, blocks = groups.setdefault(key, ([], []))
        if blocks and rows.shape[1] != blocks[0].shape[1]:
            raise InterpError(f"dictionary {name} reads {key} with width {rows.shape[1]}, the others {blocks[0].shape[1]}")
        names.append(name)
        blocks.append(rows)
    if not groups:
        raise InterpError(f"no dictionary for layer {layer}")
    inputs = [InputSpace(key, names, null_space(MatrixOperator(torch.cat(blocks)), key, "dictionary", rtol=rtol,
                                                approx_dim=approx_dim))
              for key, (names, blocks) in groups.items()]
    return DictionaryHarmless(layer, inputs, readings)


@torch.no_grad()
def check_dictionary_perturbation(result: DictionaryHarmless, saes: dict[str, Any], activations: dict[str, torch.Tensor],
                                  magnitude: float = 100.0, seed: int = 0, model: Any | None = None) -> DictionaryHarmless:
    """Add δ (‖δ‖ = magnitude · ‖a‖ per row) from the space of each dictionary's input to that dictionary's
    real input activations a only (for a hook_z SAE: δ W_V to z) and compare the features SAE-Lens encodes,
    in float64."""
    direction = {name: harmless_direction(group.space, seed=seed) for group in result.inputs for name in group.dictionaries}
    change, biggest, n = 0.0, 0.0, 0
    for name, sae in saes.items():
        d = direction[name]
        hook = str(sae.cfg.metadata.hook_name)
        a = activations[name].to(DTYPE).reshape(-1, activations[name].shape[-1])
        size = magnitude * a.norm(dim=1, keepdim=True)
        if hook.endswith("attn.hook_z"):
            w_v = model.W_V[int(hook.split(".")[1])].detach().to(DTYPE)
            shift = torch.einsum("m,hmd->hd", d, w_v).reshape(1, -1) * size
        else:
            shift = d.reshape(1, -1) * size
        sae64 = copy.deepcopy(sae).to(DTYPE)
        before, after = sae64.encode(a), sae64.encode(a + shift)
        change = max(change, float((after - before).abs().max()))
        biggest = max(biggest, float(before.abs().max()))
        n += len(a)
    return dataclasses.replace(result, magnitude=magnitude, max_abs_feature_change=change, max_abs_feature=biggest,
                               n_activations=n)


def _dictionary_folders(model_dir: Path, transcoders: Path | None, attn_saes: Path | None,
                        allow_mismatch: bool) -> dict[str, Path]:
    """{"transcoders" / "attn-saes": folder} for an LM folder (ours or a Hugging Face model folder): the folders
    given, or when none is given MODEL/transcoders and MODEL/attn-saes where they exist; each checked to be made
    for this model unless `allow_mismatch`."""
    from interp.graph.setup import check_made_for
    from interp.models.hf import is_hf_folder

    kind = "hf" if is_hf_folder(model_dir) else read_checkpoint_config(model_dir)["kind"]
    if kind == "dictionaries":
        raise InterpError(f"{model_dir} is a dictionaries folder: give its LM as MODEL and this folder with "
                          "--transcoders (or --attn-saes)")
    if kind not in ("lm", "hf"):
        raise InterpError(f"{model_dir} holds a {kind!r} checkpoint, not a language model")
    given = {name: folder for name, folder in (("transcoders", transcoders), ("attn-saes", attn_saes))
             if folder is not None}
    for name, folder in given.items():
        if not folder.is_dir():
            raise InterpError(f"--{name} folder not found: {folder}")
    # Given folders are the whole choice (the space of those dictionaries alone); by default every kind the LM has.
    folders = given or {name: model_dir / name for name in TYPE_FOLDERS if (model_dir / name).is_dir()}
    if not folders:
        raise InterpError(f"{model_dir} has no dictionaries ({' or '.join(TYPE_FOLDERS)}/); train them first, "
                          "or give --transcoders / --attn-saes")
    if not allow_mismatch:
        for name, folder in folders.items():
            check_made_for(folder, model_dir, name)
    return folders


def dictionaries_null_space_from_folder(model_dir: str | Path, layer: str | None = None, rtol: float | None = None,
                                        magnitude: float = 100.0, seed: int = 0, approx_dim: int = 32,
                                        n_sequences: int = 4, transcoders: str | Path | None = None,
                                        attn_saes: str | Path | None = None,
                                        allow_mismatch: bool = False) -> DictionaryHarmless:
    """The space of one layer's dictionaries of an LM (its transcoders and attention SAEs: the folders given, else
    MODEL/transcoders and MODEL/attn-saes), checked on the activations of `n_sequences` corpus documents."""
    from interp.models.dictionaries import load_dictionaries
    from interp.models.lm import load_lm
    from interp.train.dictionaries import corpus_batches

    path = Path(model_dir)
    folders = _dictionary_folders(path, None if transcoders is None else Path(transcoders),
                                  None if attn_saes is None else Path(attn_saes), allow_mismatch)
    per_folder = {name: load_dictionaries(folder) for name, folder in folders.items()}
    layers = sorted({lay for dicts in per_folder.values() for lay in dicts})
    if layer is None:
        chosen = layers[0]
    else:
        try:
            chosen = int(layer)
        except ValueError:
            raise InterpError(f"--layer for dictionaries is a layer number, one of {layers}; got {layer!r}") from None
        if chosen not in layers:
            raise InterpError(f"no dictionary for layer {chosen} in {path}; layers: {layers}")
    saes = {name: dicts[chosen] for name, dicts in per_folder.items() if chosen in dicts}
    lm = load_lm(path)
    result = dictionary_null_space(saes, chosen, lm.model, rtol=rtol, approx_dim=approx_dim)
    tokens = next(iter(corpus_batches(lm, n_sequences, seed)))
    hooks = {name: str(sae.cfg.metadata.hook_name) for name, sae in saes.items()}
    _, cache = lm.model.run_with_cache(tokens, names_filter=list(hooks.values()))
    activations = {name: cache[hook] for name, hook in hooks.items()}
    return check_dictionary_perturbation(result, saes, activations, magnitude, seed, lm.model)
