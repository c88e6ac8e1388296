"""`interp.catalog`: the folders the app may read, the path guard, and the listings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from interp import catalog
from interp.errors import InterpError
from interp.models.bilinear import BilinearClassifier
from interp.models.checkpoints import save_classifier


def make_roots(tmp_path: Path) -> catalog.Roots:
    (tmp_path / "ck").mkdir()
    (tmp_path / "circ").mkdir()
    return catalog.Roots((tmp_path / "ck",), (tmp_path / "circ",))


def test_roots_default_to_project_folders():
    roots = catalog.roots_from([], environ={})
    assert roots.checkpoints == (catalog.PROJECT_ROOT / "checkpoints",)
    assert roots.circuits == (catalog.PROJECT_ROOT / "circuits",)


def test_roots_from_command_line_beat_environment(tmp_path):
    env = {catalog.ENV_CHECKPOINTS: f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}", catalog.ENV_CIRCUITS: str(tmp_path / "c")}
    from_env = catalog.roots_from(["-q", "tests"], environ=env)
    assert from_env.checkpoints == (tmp_path / "a", tmp_path / "b")
    assert from_env.circuits == (tmp_path / "c",)
    from_argv = catalog.roots_from(["--checkpoints", str(tmp_path / "x"), "--other", "1"], environ=env)
    assert from_argv.checkpoints == (tmp_path / "x",)
    assert from_argv.circuits == (tmp_path / "c",)


def test_guard_accepts_inside_and_refuses_outside(tmp_path):
    roots = make_roots(tmp_path)
    inside = tmp_path / "ck" / "model"
    inside.mkdir()
    assert catalog.guard(inside, roots) == inside.resolve()
    assert catalog.guard(tmp_path / "circ" / "g.json", roots) == (tmp_path / "circ" / "g.json").resolve()
    for bad in ("/etc/passwd", str(tmp_path), str(tmp_path / "ck" / ".." / "secret"), "", "~"):
        with pytest.raises(InterpError, match="refused|empty path"):
            catalog.guard(bad, roots)
    # A symlink inside a root that points outside is judged by where it points.
    (tmp_path / "outside").mkdir()
    (tmp_path / "ck" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(InterpError, match="refused"):
        catalog.guard(tmp_path / "ck" / "link", roots)
    # `within` narrows the roots: a circuits path is not a checkpoint path.
    with pytest.raises(InterpError, match="refused"):
        catalog.guard(tmp_path / "circ" / "g.json", roots, within=roots.checkpoints)


def test_guard_reads_relative_paths_against_the_project():
    roots = catalog.roots_from([], environ={})
    assert catalog.guard("checkpoints", roots) == (catalog.PROJECT_ROOT / "checkpoints").resolve()
    with pytest.raises(InterpError, match="refused"):
        catalog.guard("interp", roots)


def test_list_checkpoints_reads_config_and_metrics(tmp_path):
    roots = make_roots(tmp_path)
    model = BilinearClassifier(d_in=64, n_classes=10, d_hidden=8)
    save_classifier(tmp_path / "ck" / "tiny", model, "digits", metrics={"test_accuracy": 0.5})
    nested = tmp_path / "ck" / "lm" / "transcoders"
    nested.mkdir(parents=True)
    (nested / "config.json").write_text(json.dumps({"kind": "dictionaries", "layers": [0, 1]}))
    (tmp_path / "ck" / "junk").mkdir()
    (tmp_path / "ck" / "junk" / "config.json").write_text("{not json")
    (tmp_path / "ck" / "nokind").mkdir()
    (tmp_path / "ck" / "nokind" / "config.json").write_text("{}")
    found = catalog.list_checkpoints(roots)
    assert [c.name for c in found] == ["lm/transcoders", "tiny"]
    tiny = found[1]
    assert (tiny.kind, tiny.arch, tiny.metrics["test_accuracy"]) == ("classifier", "bilinear", 0.5)
    assert tiny.size_bytes > 64 * 8 * 2 * 4
    assert [c.name for c in catalog.list_checkpoints(roots, kind="dictionaries")] == ["lm/transcoders"]
    assert catalog.image_classifiers(roots) == [tiny]


def test_list_graphs_skips_feature_files(tmp_path):
    roots = make_roots(tmp_path)
    graph = {"metadata": {"prompt": "a b a", "scan": "lm-bilinear"}, "qParams": {},
             "nodes": [{"node_id": "E_1_0"}, {"node_id": "27_0_2"}], "links": [{"source": "E_1_0", "target": "27_0_2", "weight": 1.0}]}
    (tmp_path / "circ" / "induction").mkdir()
    (tmp_path / "circ" / "induction" / "p0.json").write_text(json.dumps(graph))
    (tmp_path / "circ" / "induction" / "features").mkdir()
    (tmp_path / "circ" / "induction" / "features" / "0_3.json").write_text(json.dumps({"index": 3}))
    (tmp_path / "circ" / "recipe.toml").write_text("name = 'x'")
    (tmp_path / "circ" / "broken.json").write_text("[")
    graphs = catalog.list_graphs(roots)
    assert [(g.name, g.prompt, g.n_nodes, g.n_links, g.model) for g in graphs] == [
        ("induction/p0.json", "a b a", 2, 1, "lm-bilinear")]


def test_flatten_makes_one_level():
    flat = catalog.flatten({"a": 1, "tasks": {"ioi": {"accuracy": 0.9}}, "ks": [1, 2]})
    assert flat == {"a": 1, "tasks.ioi.accuracy": 0.9, "ks": "[1, 2]"}


def test_task_metrics_found_at_top_or_under_eval():
    tasks = {"ioi": {"accuracy": 0.9, "logit_diff": 2.0}, "n": 3}
    assert catalog.task_metrics({"tasks": tasks}) == {"ioi": {"accuracy": 0.9, "logit_diff": 2.0}}
    assert catalog.task_metrics({"eval": {"tasks": tasks}}) == {"ioi": {"accuracy": 0.9, "logit_diff": 2.0}}
    assert catalog.task_metrics({"test_accuracy": 0.9}) == {}


def test_node_links_and_feature_nodes():
    nodes = [{"node_id": "E_3_0", "feature_type": "embedding", "influence": None},
             {"node_id": "0_5_1", "feature_type": "cross layer transcoder", "influence": 0.2},
             {"node_id": "A1_7_1", "feature_type": "attention sae feature", "influence": 0.7},
             {"node_id": "mlp_err_0_1", "feature_type": "mlp reconstruction error", "influence": 0.9},
             {"node_id": "3_11_1", "feature_type": "logit", "influence": 0.95}]
    links = [{"source": "E_3_0", "target": "0_5_1", "weight": 4.0},
             {"source": "0_5_1", "target": "3_11_1", "weight": -3.0},
             {"source": "A1_7_1", "target": "3_11_1", "weight": 2.0},
             {"source": "mlp_err_0_1", "target": "3_11_1", "weight": 1.0}]
    data = {"metadata": {}, "nodes": nodes, "links": links}
    incoming, outgoing = catalog.node_links(data, "3_11_1")
    assert [e["source"] for e in incoming] == ["0_5_1", "A1_7_1", "mlp_err_0_1"] and outgoing == []
    # Feature nodes parse; a logit id that looks like one does not.
    assert catalog.feature_node(nodes[1]) == catalog.FeatureNode("mlp", 0, 1, 5)
    assert catalog.feature_node(nodes[2]) == catalog.FeatureNode("attn", 1, 1, 7)
    assert catalog.feature_node(nodes[4]) is None and catalog.feature_node(nodes[0]) is None


def _list_with_timeout(function, fifos, seconds=20.0):
    """function() in a thread; if it is still running after `seconds` (stuck opening a pipe), the pipes
    are opened for writing to release it and the test fails."""
    import threading

    result: dict = {}

    def target():
        try:
            result["value"] = function()
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread below
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(5)
        pytest.fail(f"the listing did not finish within {seconds:g} s (it opened a pipe)")
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX pipes")
def test_list_graphs_reads_only_regular_files_inside_the_root(tmp_path):
    import shutil

    source = catalog.PROJECT_ROOT / "circuits" / "ioi" / "ioi-00.json"
    roots = make_roots(tmp_path)
    circ = tmp_path / "circ"
    (circ / "ioi").mkdir()
    shutil.copy(source, circ / "ioi" / "good.json")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(source, outside / "secret.json")
    (circ / "ioi" / "outside.json").symlink_to(outside / "secret.json")
    (circ / "passwd.json").symlink_to("/etc/passwd")
    (circ / "dangling.json").symlink_to(tmp_path / "nothing.json")
    os.mkfifo(circ / "pipe.json")

    graphs = _list_with_timeout(lambda: catalog.list_graphs(roots), [circ / "pipe.json"])
    expected = json.loads(source.read_text(encoding="utf-8"))
    assert [(g.name, g.path, g.n_nodes, g.n_links) for g in graphs] == [
        ("ioi/good.json", (circ / "ioi" / "good.json").resolve(), len(expected["nodes"]), len(expected["links"]))]
    # The guard refuses what the listing skipped: links that lead out of the root, and the pipe.
    for name in ("ioi/outside.json", "passwd.json", "pipe.json"):
        with pytest.raises(InterpError, match="refused"):
            catalog.guard(circ / name, roots)
    assert catalog.guard(circ / "ioi" / "good.json", roots) == (circ / "ioi" / "good.json").resolve()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX pipes")
def test_list_checkpoints_skips_links_out_of_the_root_and_pipes(tmp_path):
    roots = make_roots(tmp_path)
    ck = tmp_path / "ck"
    (ck / "good").mkdir()
    (ck / "good" / "config.json").write_text(json.dumps({"kind": "lm"}))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"kind": "lm"}))
    (outside / "big.bin").write_bytes(b"x" * 10_000)
    (ck / "linked").mkdir()
    (ck / "linked" / "config.json").symlink_to(outside / "config.json")
    (ck / "good" / "big.bin").symlink_to(outside / "big.bin")  # not counted: it lies outside
    (ck / "piped").mkdir()
    os.mkfifo(ck / "piped" / "config.json")
    os.mkfifo(ck / "good" / "metrics.json")

    found = _list_with_timeout(lambda: catalog.list_checkpoints(roots),
                               [ck / "piped" / "config.json", ck / "good" / "metrics.json"])
    assert [(c.name, c.metrics, c.size_bytes) for c in found] == [
        ("good", {}, (ck / "good" / "config.json").stat().st_size)]
