"""Commands import only what they use: `interp --help` and `graph-info` never import torch or TransformerLens."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

GRAPH = ROOT / "circuits" / "ioi" / "ioi-00.json"


def _modules_after(argv: list[str]) -> set[str]:
    code = ("import sys, json\nfrom interp.cli import main\n"
            f"code = main({argv!r})\n"
            "print('MODULES', json.dumps(sorted(sys.modules)))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    line = next(line for line in run.stdout.splitlines() if line.startswith("MODULES "))
    import json

    return set(json.loads(line.removeprefix("MODULES ")))


def test_graph_info_runs_without_torch():
    modules = _modules_after(["graph-info", str(GRAPH), "--json"])
    assert "torch" not in modules and "transformer_lens" not in modules and "sae_lens" not in modules


def test_building_the_command_line_imports_no_heavy_library():
    modules = _modules_after([])
    assert not {"torch", "transformer_lens", "sae_lens", "transformers", "ray"} & modules
