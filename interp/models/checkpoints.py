"""Loading and saving image-classifier checkpoints (safetensors + config.json + metrics.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from interp.errors import InterpError
from interp.io import load_checkpoint, save_checkpoint
from interp.models.registry import build_classifier


def save_classifier(folder: str | Path, model: nn.Module, dataset: str, metrics: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    config = {"kind": "classifier", "dataset": dataset, "model": model.config(), **(extra or {})}
    return save_checkpoint(folder, model.state_dict(), config, metrics)


def load_classifier(folder: str | Path, expect_arch: str | None = None) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Return (model in eval mode, config, metrics); clear errors for the wrong kind or shapes."""
    state, config, metrics = load_checkpoint(folder)
    if config["kind"] != "classifier":
        raise InterpError(f"{folder} holds a {config['kind']!r} checkpoint, not an image classifier")
    model = build_classifier(config.get("model", {}))
    if expect_arch is not None and model.arch != expect_arch:
        raise InterpError(f"{folder} holds a {model.arch!r} classifier; this command needs a {expect_arch!r} one")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise InterpError(f"weights in {folder} do not match its config ({detail})") from None
    model.eval()
    return model, config, metrics
