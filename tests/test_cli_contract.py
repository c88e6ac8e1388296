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
    ["train", "transcoders", "--model", "m", "--out", "x", "--k", "0"],
    ["train", "transcoders", "--model", "m", "--out", "x", "--steps", "0"],
    ["train", "classifier", "--out", "x", "--lr", "-1"],
    ["train", "classifier", "--out", "x", "--embed", "-3"],
    ["train", "clt", "--model", "m", "--threads", "0"],
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
