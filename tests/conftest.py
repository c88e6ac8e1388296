"""Shared fixtures. Tests use small sizes so the whole suite stays well under 15 minutes on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "checkpoints"

# Deterministic, and polite to the 2 cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def run_cli(capsys):
    """Run `interp ARGS...` in-process; return (exit status, stdout, stderr)."""
    from interp.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse errors
            code = e.code if isinstance(e.code, int) else 2
        out, err = capsys.readouterr()
        return code, out, err

    return run
