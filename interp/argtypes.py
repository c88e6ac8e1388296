"""Argument types shared by every command: each parses one flag value or refuses it with one line.

argparse calls them and turns their `ArgumentTypeError` into `interp CMD: error: argument --flag: ...`
(exit 2, nothing written), so a bad number never reaches an analysis.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable


def _number(text: str, kind: type, what: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def bounded(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False) -> Callable[[str], float | int]:
    """A parser for `kind` (int or float, finite) within [low, high] (open ends where asked)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high:g}")
    what = ("an integer" if kind is int else "a finite number") + (" " + " and ".join(parts) if parts else "")

    def parse(text: str) -> float | int:
        value = _number(text, kind, what)
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__}_value"
    return parse


integer = bounded(int)
positive_int = bounded(int, 1)
non_negative_int = bounded(int, 0)
finite_float = bounded(float)
positive_float = bounded(float, 0, low_open=True)
non_negative_float = bounded(float, 0)
fraction = bounded(float, 0, 1)                       # thresholds in [0, 1]
probability = bounded(float, 0, 1, low_open=True)   # a share in (0, 1]
open_fraction = bounded(float, 0, 1, low_open=True, high_open=True)   # e.g. an rtol in (0, 1)


def contrast_pair(text: str) -> tuple[str, str]:
    """--contrast A,B (every command spells a contrast so): the two non-empty sides, stripped."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"want two names separated by a comma (A,B), got {text!r}")
    if parts[0] == parts[1]:
        raise argparse.ArgumentTypeError(f"want two different names, got {parts[0]!r} twice")
    return parts[0], parts[1]


_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}


def memory_size(text: str) -> int:
    """Bytes from '16G', '512M', '2.5g' or a plain number of bytes."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1] if t and t[-1] in _UNITS else ""
    try:
        value = float(t[:len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a size such as 16G or 512M, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"want a positive size such as 16G, got {text!r}")
    return int(value)
