"""The image-classifier kinds: architecture name -> model class, for rebuilding saved classifiers.

The built-in kinds are imported on first use, so this module imports no model module itself and the
model modules need not import each other. Another kind plugs in with `register(ModelClass)` (a class
with an `arch` name and a `config()` dict that its constructor accepts back).
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from interp.errors import InterpError

# arch -> (module, class name), imported when a checkpoint of that kind is first rebuilt.
_BUILTIN: dict[str, tuple[str, str]] = {
    "bilinear": ("interp.models.bilinear", "BilinearClassifier"),
    "relu": ("interp.models.bilinear", "ReluMLP"),
    "cnn": ("interp.models.cnn", "SmallCNN"),
}
_REGISTERED: dict[str, type[nn.Module]] = {}


def register(model_class: type[nn.Module]) -> type[nn.Module]:
    """Add an image-classifier class (with `arch` and `config()`) to the kinds `build_classifier` knows."""
    _REGISTERED[model_class.arch] = model_class
    return model_class


def classifier_kinds() -> list[str]:
    return list(_BUILTIN) + [arch for arch in _REGISTERED if arch not in _BUILTIN]


def classifier_class(arch: Any) -> type[nn.Module]:
    if arch in _REGISTERED:
        return _REGISTERED[arch]
    if arch not in _BUILTIN:
        raise InterpError(f"unknown classifier architecture {arch!r}; known: {', '.join(classifier_kinds())}")
    module, name = _BUILTIN[arch]
    return getattr(importlib.import_module(module), name)


def build_classifier(config: dict[str, Any]) -> nn.Module:
    """Rebuild a classifier from the `config()` dict it was saved with."""
    arch = config.get("arch")
    model_class = classifier_class(arch)
    kwargs = {k: v for k, v in config.items() if k != "arch"}
    try:
        return model_class(**kwargs)
    except TypeError as e:
        raise InterpError(f"classifier config does not fit architecture {arch!r}: {e}") from None
