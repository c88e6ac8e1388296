"""The one-line contract of the command line: bad flags and unforeseen errors give one line and exit 2."""

from __future__ import annotations

import pytest


def test_a_bad_flag_is_one_line(run_cli):
    code, out, err = run_cli("extract", "--batch-size", "0")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "interp extract: error: argument --batch-size: must be a positive integer, got 0 (see interp extract --help)"]


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
