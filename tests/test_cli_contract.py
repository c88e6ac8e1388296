"""The one-line contract of the command line: bad flags and unforeseen errors give one line and exit 2."""

from __future__ import annotations

import pytest


def test_a_bad_flag_is_one_line(run_cli):
    code, out, err = run_cli("extract", "--batch-size", "0")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "interp extract: error: argument --batch-size: must be an integer ≥ 1, got 0 (see interp extract --help)"]


def test_an_unforeseen_error_is_one_line_and_debug_shows_the_traceback(run_cli, monkeypatch, tmp_path):
    import interp.graph.export as export

    def broken(path):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(export, "read_graph_json", broken)
    code, out, err = run_cli("graph-info", tmp_path / "g.json")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "interp: error: RuntimeError: disk on fire (run again with --debug for the traceback)"]
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_cli("graph-info", tmp_path / "g.json", "--debug")


@pytest.mark.parametrize("argv", [
    ["train", "lm", "--out", "x", "--n-layers", "0"],
    ["train", "lm", "--out", "x", "--lr", "nan"],
    ["train", "lm", "--out", "x", "--ema", "1"],
    ["train", "lm", "--out", "x", "--threads", "0"],
    ["train", "transcoders", "m", "--out", "x", "--k", "0"],
    ["train", "transcoders", "m", "--out", "x", "--steps", "0"],
    ["train", "classifier", "--out", "x", "--lr", "-1"],
    ["train", "classifier", "--out", "x", "--embed", "-3"],
    ["train", "clt", "m", "--threads", "0"],
    ["eigen", "m", "--top", "-1"],
    ["eigen", "m", "--mask-norm", "nan"],
    ["bilinear-lm", "m", "--layer", "0", "--output", "token:a", "--top", "0"],
    ["relevance-eval", "m", "--pixels-per-step", "0"],
    ["harmless", "m", "--magnitude", "inf"],
    ["extract", "--max-memory", "-5G"],
])
def test_bad_numbers_are_refused_by_the_parser_with_one_line(run_cli, tmp_path, argv):
    code, out, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and "error: argument --" in lines[0], err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, says", [
    (["evaluate", "checkpoints/fmnist-relu", "--data-dir", "/nonexistent"], "is not a folder"),
    (["relevance", "checkpoints/lm-bilinear", "--text", "  "], "empty prompt"),
    (["relevance-eval", "checkpoints/fmnist-relu", "--pixels-per-step", "100000", "--n-images", "2"], "more than the 784"),
])
def test_values_that_were_accepted_silently_are_refused(run_cli, argv, says):
    from conftest import ROOT

    argv = [str(ROOT / a) if a.startswith("checkpoints/") else a for a in argv]
    code, out, err = run_cli(*argv, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and says in lines[0], err


# --- One spelling per concept (issue #15): the vocabulary every command shares, checked on the parsers themselves.

# Commands that read one model: it is their first positional argument, `model` (metavar MODEL).
READS_ONE_MODEL = {"evaluate", "eigen", "bilinear-lm", "extract", "intervene", "relevance", "relevance-eval",
                   "harmless", "train transcoders", "train attn-saes", "train clt", "features"}
RETIRED_FLAGS = {"--model", "--dictionaries", "--mode", "--how", "--html", "--path"}
OUTPUT_FLAGS = {"--out", "--out-dir", "--out-html"}


def _leaf_parsers():
    """(command name, parser) for every command `interp` registers (groups such as `train` left out)."""
    import argparse

    from interp.cli import build_cli

    def walk(parser, prefix):
        for action in parser._actions:  # argparse keeps subcommands here; there is no public accessor
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    full = f"{prefix} {name}".strip()
                    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                        yield from walk(sub, full)
                    else:
                        yield full, sub

    return dict(walk(build_cli().parser, ""))


def test_every_command_is_walked():
    commands = _leaf_parsers()
    assert READS_ONE_MODEL <= set(commands)
    assert {"graph-info", "train classifier", "train cnn", "train lm"} <= set(commands)


def test_the_model_is_the_first_positional_argument_of_every_command_that_reads_one():
    for name, parser in _leaf_parsers().items():
        positionals = [a for a in parser._actions if not a.option_strings]
        if name in READS_ONE_MODEL:
            assert positionals and positionals[0].dest == "model" and positionals[0].metavar == "MODEL", name
            # the help says which folders it takes
            assert "folder" in positionals[0].help, name
            # only extract may leave it out (a --recipe names its model)
            assert (positionals[0].nargs == "?") == (name == "extract"), name
        # any other positional argument is graph-info's graph JSON: a model never goes by another name
        assert all(a.dest == "model" for a in positionals) or name == "graph-info", name
        if any(a.dest == "model" for a in positionals):
            assert positionals[0].dest == "model", name


def test_no_retired_spelling_is_left():
    for name, parser in _leaf_parsers().items():
        flags = {s for a in parser._actions for s in a.option_strings}
        assert not flags & RETIRED_FLAGS, (name, flags & RETIRED_FLAGS)
        # every output flag is one of three: a file, a folder, an HTML page (bilinear-lm's --output names an
        # output direction of the MLP, not a file)
        assert {f for f in flags if f == "--out" or f.startswith("--out-")} <= OUTPUT_FLAGS, name
        # a contrast is spelt --contrast A,B, on every command that takes one
        assert {f for f in flags if "contrast" in f or "diff" in f} <= {"--contrast"}, name


def test_shared_flags_mean_the_same_everywhere():
    from interp.argtypes import contrast_pair
    from interp.graph.replacement import MODES

    seen = set()
    for name, parser in _leaf_parsers().items():
        for action in parser._actions:
            flag = action.option_strings[0] if action.option_strings else None
            if flag in ("--transcoders", "--attn-saes"):
                assert action.metavar == "DIR", (name, flag)
            elif flag == "--contrast":
                assert action.type is contrast_pair and action.metavar == "A,B", name
            elif flag == "--graph-mode":
                assert list(action.choices) == list(MODES) and action.default == "full", name
            elif flag == "--direction":
                assert "--contrast" in action.help, name   # the help points to the one spelling of a difference
            if flag:
                seen.add(flag)
    assert {"--transcoders", "--attn-saes", "--contrast", "--graph-mode", "--ablation-mode"} <= seen


@pytest.mark.parametrize("argv, says", [
    (["extract", "--model", "m", "--prompt", "a"], "unrecognized arguments: --model"),
    (["extract", "m", "--mode", "full", "--prompt", "a"], "unrecognized arguments: --mode"),
    (["bilinear-lm", "m", "--layer", "0", "--output", "token:a", "--dictionaries", "d"], "--dictionaries"),
    (["extract", "m", "--graph-mode", "bogus"], "invalid choice: 'bogus'"),
    (["extract", "m", "--contrast", "a"], "two names separated by a comma"),
    (["eigen", "m", "--contrast", "a,"], "two names separated by a comma"),
    (["extract", "m", "--contrast", "a,a"], "two different names"),
    # a prefix of a flag is not a second spelling of it
    (["relevance-eval", "m", "--out", "curves.html"], "unrecognized arguments: --out"),
    (["extract", "m", "--graph", "full"], "unrecognized arguments: --graph"),
])
def test_retired_and_malformed_spellings_are_refused_with_one_line(run_cli, argv, says):
    code, out, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and says in lines[0], err
