"""A base for typed analysis results that turn themselves into JSON and back.

Every analysis returns a dataclass deriving from `Result`. Tensors and numpy arrays become
nested lists on the way out; `from_dict` hands lists back as they are (a subclass that wants
tensors back overrides `from_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any, TypeVar

T = TypeVar("T", bound="Result")


def to_jsonable(value: Any) -> Any:
    """Recursively convert tensors, arrays, dataclasses and numpy scalars to plain JSON values."""
    # A value can only be a tensor or an array if torch or numpy is loaded: don't import them for a result
    # that holds neither (graph-info runs without torch).
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch is not None and isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if np is not None and isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if np is not None and isinstance(value, (np.floating, np.integer, np.bool_)):
        return to_jsonable(value.item())
    if isinstance(value, float):
        # JSON has no NaN/inf; null is the honest stand-in.
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


@dataclasses.dataclass
class Result:
    """Base class: `to_dict`, `to_json`, `from_dict`, `from_json`."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))
