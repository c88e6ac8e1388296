"""Safe file I/O: atomic writes and safetensors checkpoints (never pickle).

A checkpoint is a folder with `model.safetensors`, `config.json` (which always holds a `"kind"`
naming what the folder is, e.g. "classifier", "lm", "dictionaries") and `metrics.json`.
Every write goes to a temporary file in the same folder and is then renamed over the target,
so a crash or a bad input never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from interp.errors import InterpError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise InterpError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"{what} {path} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); regenerate it") from None


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Save tensors with safetensors, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise InterpError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InterpError(f"weights file {path} is corrupt or not safetensors ({e}); retrain or restore it") from None


def save_checkpoint(folder: str | Path, state: dict[str, torch.Tensor], config: dict[str, Any], metrics: dict[str, Any] | None = None) -> Path:
    """Write weights, config and metrics into `folder` (each file atomically)."""
    if "kind" not in config:
        raise ValueError("checkpoint config needs a 'kind'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / WEIGHTS, state)
    write_json(folder / CONFIG, config)
    if metrics is not None:
        write_json(folder / METRICS, metrics)
    return folder


def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InterpError(f"checkpoint folder not found: {folder}")
    config = read_json(folder / CONFIG, what="checkpoint config")
    if not isinstance(config, dict) or "kind" not in config:
        raise InterpError(f"{folder / CONFIG} has no 'kind': not an interp checkpoint")
    return config


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Return (state_dict, config, metrics) of a checkpoint folder; metrics may be empty."""
    folder = Path(folder)
    config = read_checkpoint_config(folder)
    state = load_tensors(folder / WEIGHTS)
    metrics_path = folder / METRICS
    metrics = read_json(metrics_path, what="metrics file") if metrics_path.exists() else {}
    return state, config, metrics


def machine_load() -> dict[str, Any]:
    """Torch threads and the load average, recorded beside training times (a busy machine inflates them)."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"load_average_1_5_15": load, "torch_threads": torch.get_num_threads()}


def git_commit() -> str | None:
    """The current git commit of the project, for provenance in metrics.json (None outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@contextlib.contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `out` to write a whole checkpoint folder into.

    When the block ends without error the staged folder replaces `out` by renames (the old folder, if
    any, is moved aside first and deleted after), so readers never see a half-written checkpoint;
    on error the staged folder is removed and `out` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield staging
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old / "previous")
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def enclosing_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint folder (one whose config.json has a "kind") that `path` is or lies inside, if any."""
    path = Path(path).resolve()
    for folder in [path, *path.parents]:
        config = folder / CONFIG
        if config.is_file():
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(data, dict) and "kind" in data:
                return folder
    return None


def check_output_file(path: str | Path | None, force: bool = False, what: str = "output") -> Path | None:
    """Refuse, with one line, an output file that would replace an existing file without `force`, that names a
    folder, that lies under a plain file, or that lies inside a checkpoint folder (only the training command
    that owns a checkpoint writes there). Call it before any work, so that nothing is written on refusal."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise InterpError(f"{what} {path} is a folder; give a file name")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InterpError(f"{what} {path}: {parent} is a file, not a folder")
    checkpoint = enclosing_checkpoint(path.parent)
    if checkpoint is not None:
        raise InterpError(f"{what} {path} lies inside the checkpoint folder {checkpoint}; write it elsewhere")
    if path.exists() and not force:
        raise InterpError(f"{what} {path} exists; choose another name or pass --force to replace it")
    if not path.exists():
        existing = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
        if existing is not None and not os.access(existing, os.W_OK):
            raise InterpError(f"{what} {path}: cannot write in {existing}")
    return path


def check_output_folder(path: str | Path | None, force: bool = False, what: str = "output folder",
                        kind: str | None = None, owner: str | Path | None = None) -> Path | None:
    """Refuse, with one line, an output folder that exists and is not empty without `force`, or that would
    replace or lie inside a checkpoint folder not written by this command: a checkpoint of `kind` may be
    replaced with `force`, and `owner` (the LM folder whose dictionaries a training command writes) may hold it."""
    if path is None:
        return None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InterpError(f"{what} {path} is a file, not a folder")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InterpError(f"{what} {path}: {parent} is a file, not a folder")
    if path.exists():
        config = path / CONFIG
        existing_kind = None
        if config.is_file():
            try:
                existing_kind = json.loads(config.read_text(encoding="utf-8")).get("kind")
            except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                existing_kind = None
        if existing_kind is not None and existing_kind != kind:
            raise InterpError(f"{what} {path} holds a {existing_kind!r} checkpoint; this command writes "
                              f"{'a ' + repr(kind) + ' one' if kind else 'no checkpoints'}: choose another folder")
        if any(path.iterdir()) and not force:
            raise InterpError(f"{what} {path} exists and is not empty; choose another or pass --force to replace it")
    checkpoint = enclosing_checkpoint(path.parent)
    if checkpoint is not None and (owner is None or checkpoint != Path(owner).resolve()):
        raise InterpError(f"{what} {path} lies inside the checkpoint folder {checkpoint}; write it elsewhere")
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK):
        raise InterpError(f"{what} {path}: cannot write in {existing}")
    return path
