"""The `interp` command line: parse, call one analysis function, print.

Each area of the package owns its commands in `interp/<area>/cli.py`, which exposes
`register(cli: CLI)`. A handler takes the parsed args and returns one JSON-able dict: with
`--json` that dict is printed as exactly one JSON object on stdout, otherwise as readable lines.
Bad input raises `InterpError`: one line on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from interp.errors import InterpError

# Modules that register commands; order is the order of `interp --help`.
AREAS = [
    "interp.train.cli",
    "interp.bilinear.cli",
    "interp.graph.cli",
    "interp.graph.features_cli",
    "interp.relevance.cli",
    "interp.harmless.cli",
]

Handler = Callable[[argparse.Namespace], dict[str, Any]]
Evaluator = Callable[[Path, argparse.Namespace], dict[str, Any]]


class _Parser(argparse.ArgumentParser):
    """Bad flags exit 2 with one line naming the problem (argparse would print its usage first).

    Flags are taken only as spelt in full: argparse would also accept any unambiguous prefix (`--out` for
    `--out-html`, `--graph` for `--graph-mode`), a second spelling of every flag that would change meaning
    as soon as a command gains a flag with the same prefix."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common(parser: argparse.ArgumentParser, compute: bool = True) -> argparse.ArgumentParser:
    """Flags every command shares: --json, --quiet and, for commands that compute, --device/--dtype."""
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    if compute:
        parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
        parser.add_argument("--dtype", default="float32", help="float32 (default) or float64")
    return parser


class CLI:
    """What an area's `register` gets: the top-level and `train` subcommand groups, and evaluators."""

    def __init__(self) -> None:
        self.parser = _Parser(prog="interp", description="A mechanistic interpretability workbench.")
        self.commands = self.parser.add_subparsers(dest="command", metavar="COMMAND")
        train = self.commands.add_parser("train", help="train a model or dictionaries")
        self.train = train.add_subparsers(dest="train_command", metavar="WHAT")
        train.set_defaults(handler=lambda args: train.error("say what to train"))
        self.evaluators: dict[str, Evaluator] = {}
        evaluate = add_common(self.commands.add_parser(
            "evaluate", help="recompute the metrics of a checkpoint folder (classifier, LM or dictionaries), or "
                             "measure an LM's loss on a text (--text; Hugging Face model folders too)"))
        evaluate.add_argument("model", metavar="MODEL", type=Path,
                              help="checkpoint folder (classifier, LM, dictionaries or CLT) or Hugging Face model folder")
        evaluate.add_argument("--data-dir", type=Path, default=None, help="where the dataset lies (image models)")
        evaluate.add_argument("--text", type=Path, default=None,
                              help="a UTF-8 text file: report the LM's mean next-token cross-entropy on it")
        evaluate.set_defaults(handler=self._evaluate)

    def add_command(self, name: str, handler: Handler, help: str, compute: bool = True) -> argparse.ArgumentParser:
        p = add_common(self.commands.add_parser(name, help=help, description=help), compute=compute)
        p.set_defaults(handler=handler)
        return p

    def add_train(self, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = add_common(self.train.add_parser(name, help=help, description=help))
        p.set_defaults(handler=handler)
        return p

    def add_evaluator(self, kind: str, evaluator: Evaluator) -> None:
        self.evaluators[kind] = evaluator

    def _evaluate(self, args: argparse.Namespace) -> dict[str, Any]:
        from interp.io import read_checkpoint_config
        from interp.models.hf import is_hf_folder

        kind = "hf" if is_hf_folder(args.model) else read_checkpoint_config(args.model)["kind"]
        if kind not in self.evaluators:
            raise InterpError(f"{args.model} is a {kind!r} checkpoint, which `interp evaluate` cannot evaluate")
        return self.evaluators[kind](args.model, args)


def build_cli() -> CLI:
    cli = CLI()
    for name in AREAS:
        importlib.import_module(name).register(cli)
    return cli


def _print_human(result: dict[str, Any], indent: str = "") -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_human(value, indent + "  ")
        elif isinstance(value, list) and len(value) > 8:
            print(f"{indent}{key}: [{len(value)} items]")
        elif isinstance(value, float):
            print(f"{indent}{key}: {value:.6g}")
        else:
            print(f"{indent}{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug anywhere on the line: show the traceback of an unexpected error instead of one line.
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    cli = build_cli()
    args = cli.parser.parse_args(argv)
    if not getattr(args, "handler", None):
        cli.parser.print_help()
        return 2
    try:
        result = args.handler(args)
    except InterpError as e:
        print(f"interp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interp: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one-line contract holds for what we did not foresee too
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"interp: error: {type(e).__name__}: {first} (run again with --debug for the traceback)",
              file=sys.stderr)
        return 2
    if result is not None:
        try:
            if getattr(args, "json", False):
                from interp.results import to_jsonable

                print(json.dumps(to_jsonable(result)))
            else:
                _print_human(result)
            sys.stdout.flush()
        except BrokenPipeError:
            # the reader (e.g. `| head`) stopped early: not an error of ours, and no traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
