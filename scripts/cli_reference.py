"""Regenerate the command-line reference in README.md from the parsers themselves.

    .venv/bin/python scripts/cli_reference.py          # rewrite the block between the markers
    .venv/bin/python scripts/cli_reference.py --check  # exit 1 if README is out of date (the test runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:  # argparse keeps subcommands here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((f"{prefix} {name}", sub))
                out += _commands(sub, f"{prefix} {name}")
    return out


def reference() -> str:
    sys.path.insert(0, str(ROOT))
    from interp.cli import build_cli

    lines = [START, "", "Generated from the parsers by `scripts/cli_reference.py`; `interp COMMAND --help` says more.", ""]
    for name, parser in _commands(build_cli().parser, "interp"):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue   # a group (interp train): its commands are listed
        usage = " ".join(parser.format_usage().split())
        usage = usage.removeprefix("usage: ")
        lines += [f"- `{name}` — {parser.description or ''}".rstrip(" —"), f"  `{usage}`"]
    return "\n".join(lines + ["", END])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no {START} … {END} block", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + reference() + tail
    if args.check:
        if new != text:
            print("README.md's command-line reference is out of date: run scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
