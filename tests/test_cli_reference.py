"""README's command-line reference is generated from the parsers and must match them."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_readme_cli_reference_matches_the_parsers():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
