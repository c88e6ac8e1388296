"""A model with its dictionaries, loaded and checked to belong together: the input of every graph.

    from interp.graph.setup import load_setup
    setup = load_setup("checkpoints/lm-bilinear")                  # model + transcoders + attention SAEs
    setup = load_setup("path/to/hf-model", transcoders="path/to/transcoders", mode="transcoder-only")

The model is our LM checkpoint or a Hugging Face folder (`interp.models.lm.load_lm`); dictionaries
come in any layout `interp.models.dictionaries` reads, or as a cross-layer transcoder
(`interp.models.clt`). Widths and hooks must fit the model; the model the dictionaries record must
be this one unless `allow_mismatch`.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.data.corpus import CorpusConfig, corpus_config_from_options
from interp.errors import InterpError
from interp.graph.replacement import ReplacementModel


@dataclass
class Setup:
    """A language model with its tokenizer and the replacement model built on its dictionaries."""

    replacement: ReplacementModel
    vocab: list[str]
    name: str
    tokenizer: Any = None
    corpus_config: CorpusConfig | None = None  # the corpus the model was trained on (None: the planted one)

    def encode(self, prompt: str) -> torch.Tensor:
        if not prompt or not prompt.strip():
            raise InterpError("empty prompt: give at least one word")
        return self.replacement.check_tokens(torch.tensor(self.tokenizer.encode(prompt), dtype=torch.long))

    def token_id(self, word: str) -> int:
        return self.tokenizer.token_id(word)


def load_dictionary_folder(folder: str | Path, what: str) -> dict[int, Any]:
    """{layer: dictionary} from a cross-layer transcoder folder (one view per layer) or any layout
    `interp.models.dictionaries.load_dictionaries` reads (ours, SAE-Lens folders, circuit-tracer sets)."""
    from interp.models.clt import is_clt_folder, load_clt
    from interp.models.dictionaries import load_dictionaries

    folder = Path(folder)
    if not folder.exists():
        raise InterpError(f"{what} folder not found: {folder}")
    if is_clt_folder(folder):
        # Each layer's view writes its own MLP output and every later one.
        return load_clt(folder).layers()
    return load_dictionaries(folder)


def recorded_model(folder: str | Path) -> Path | None:
    """The model folder a dictionaries folder says it was made for, when it names one that exists here: our
    config.json's "model" (relative to the folder), else a path in the layers' SAE-Lens metadata `model_name`."""
    folder = Path(folder)
    config = folder / "config.json"
    if config.is_file():
        try:
            recorded = json.loads(config.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if isinstance(recorded, str) and recorded and (folder / recorded).exists():
            return (folder / recorded).resolve()
    for cfg in sorted(folder.glob("*/cfg.json")) + sorted(folder.glob("cfg.json")):
        try:
            name = (json.loads(cfg.read_text(encoding="utf-8")).get("metadata") or {}).get("model_name")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(name, str) and name and Path(name).exists():
            return Path(name).resolve()
    return None


def check_made_for(folder: str | Path, model_dir: str | Path, what: str) -> None:
    """InterpError (one line) when `folder`'s dictionaries record another model than `model_dir`."""
    recorded = recorded_model(folder)
    if recorded is not None and recorded != Path(model_dir).resolve():
        raise InterpError(f"the {what} in {folder} were made for {recorded}, not {model_dir}; "
                          "pass --allow-mismatch to use them anyway")


def load_setup(model_dir: str | Path, transcoders: str | Path | None = None, attn_saes: str | Path | None = None,
               mode: str = "full", device: str = "cpu", dtype: torch.dtype | None = None,
               allow_mismatch: bool = False, basis: str = "hidden", attention: str = "heads") -> Setup:
    """The model and its dictionaries (default: MODEL/transcoders and MODEL/attn-saes), checked to belong together:
    widths and hooks always; the model the dictionaries record, unless `allow_mismatch`.

    Mode "bilinear-exact" (`interp.graph.exact`) reads each bilinear MLP exactly in `basis` ("hidden", "eigen", or
    "dictionary": the transcoders' decoder rows as a read-out basis; only then are transcoders loaded) and
    attention as `attention` ("heads", exact; or "saes": the attention SAEs, with their error nodes)."""
    from interp.models.lm import load_lm

    model_dir = Path(model_dir)
    use_tcs = mode != "bilinear-exact" or basis == "dictionary"
    use_saes = mode == "full" or (mode == "bilinear-exact" and attention == "saes")
    if not allow_mismatch:
        if use_tcs:
            check_made_for(transcoders or model_dir / "transcoders", model_dir, "transcoders")
        if use_saes:
            check_made_for(attn_saes or model_dir / "attn-saes", model_dir, "attention SAEs")
    # TransformerLens prints "Moving model to device" on stdout; keep stdout for the one JSON object
    # and stderr for the one error line.
    with contextlib.redirect_stdout(io.StringIO()):
        lm = load_lm(model_dir, device=device, dtype=dtype)
    tcs = load_dictionary_folder(transcoders or model_dir / "transcoders", "transcoders") if use_tcs else None
    saes = load_dictionary_folder(attn_saes or model_dir / "attn-saes", "attention SAEs") if use_saes else None
    for sae in list((tcs or {}).values()) + list((saes or {}).values()):
        sae.to(device=lm.model.W_E.device, dtype=lm.model.W_E.dtype)
    try:
        rep = ReplacementModel.build(lm.model, tcs, saes, mode=mode, basis=basis, attention=attention)
    except InterpError as e:
        # Name the files: a mismatch is between these dictionaries and this model.
        folders = [str(transcoders or model_dir / "transcoders")] if use_tcs else []
        if use_saes:
            folders.append(str(attn_saes or model_dir / "attn-saes"))
        if not folders:
            raise InterpError(f"model {model_dir}: {e}") from None
        raise InterpError(f"{' and '.join(folders)} vs model {model_dir}: {e}") from None
    return Setup(replacement=rep, vocab=list(lm.tokenizer.vocab), name=model_dir.name, tokenizer=lm.tokenizer,
                 corpus_config=corpus_config_from_options((lm.config or {}).get("train_options")))
