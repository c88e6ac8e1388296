"""Recipes and feature cards on Ray: the same bytes as one process, resumable, a killed worker survived, bad input.

One local Ray session (2 CPUs) is shared by the module; the commands given `--ray` join it."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from graph_helpers import save_tiny_lm

from interp.data.corpus import task_examples


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("ray-jobs") / "lm", n_layers=1, d_sae=16)   # 2 × 16 features


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")     # the `ray` extra; `make test` installs it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _one_error_line(code, out, err, *words):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("interp"), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], err


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _timeless(data: bytes) -> bytes:
    """A graph JSON without the one line that differs between any two runs: its creation time."""
    return re.sub(rb'"create_time_ms": [0-9.]+', b'"create_time_ms": 0', data)


def _recipe(lm: Path, folder: Path) -> Path:
    lines = ['name = "tiny"', f'model = "{lm}"', 'graph_mode = "full"', "batch_size = 16", "seed = 5",
             "[corpus]", "n_sequences = 8", "seed = 3"]
    for ex in task_examples("ioi", n=2):
        lines += ["[[prompts]]", f'prompt = "{ex.prompt}"', f'target = "{ex.target}"', f'contrast = "{ex.contrast}"']
    path = folder / "tiny.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unreachable_ray_address_is_one_line_and_writes_nothing(run_cli, lm, tmp_path):
    pytest.importorskip("ray")
    # Before the module's session starts: a command given an address must not fall back to a local Ray.
    out = tmp_path / "cards"
    _one_error_line(*run_cli("features", lm, "--tokens", "64", "--out-dir", out, "--ray", "127.0.0.1:9", "--quiet"),
                    "127.0.0.1:9", "no Ray cluster")
    _one_error_line(*run_cli("extract", "--recipe", _recipe(lm, tmp_path), "--out-dir", tmp_path / "g",
                             "--ray", "not-an-address", "--quiet"), "HOST:PORT")
    assert not out.exists() and not (tmp_path / "g").exists()


def test_recipe_on_ray_is_byte_identical_and_resumes(run_cli, lm, tmp_path, ray_session):
    recipe = _recipe(lm, tmp_path)
    code, stdout, err = run_cli("extract", "--recipe", recipe, "--out-dir", tmp_path / "one", "--json", "--quiet")
    assert code == 0, err
    code, stdout, err = run_cli("extract", "--recipe", recipe, "--out-dir", tmp_path / "ray", "--json", "--ray",
                                "--workers", "2")
    assert code == 0, err
    assert "recipe tiny" in err                       # the progress bar
    one, on_ray = _files(tmp_path / "one"), _files(tmp_path / "ray")
    assert set(one) == set(on_ray) and {"tiny-00.json", "tiny-01.json", "summary.json"} <= set(one)
    assert any(name.startswith("features/") for name in one)
    for name in one:
        if name == "summary.json":    # names its own out_dir
            a, b = json.loads(one[name]), json.loads(on_ray[name])
            assert a.pop("out_dir") != b.pop("out_dir") and a == b
        else:   # byte-equal, but for each graph's creation time
            assert _timeless(one[name]) == _timeless(on_ray[name]), name

    # Resume (the same code with or without Ray): a rerun skips the prompts whose graph validates and
    # recomputes a corrupt one.
    graphs = tmp_path / "ray"
    kept = (graphs / "tiny-00.json").stat().st_mtime_ns
    (graphs / "tiny-01.json").write_text('{"nodes": [')
    code, stdout, err = run_cli("extract", "--recipe", recipe, "--out-dir", graphs, "--json", "--quiet")
    assert code == 0, err
    assert (graphs / "tiny-00.json").stat().st_mtime_ns == kept
    again = _files(graphs)
    assert set(again) == set(one)
    for name in one:
        if name != "summary.json":
            assert _timeless(again[name]) == _timeless(one[name]), name


def _worker_pids(title: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(title.encode()):
                pids.append(int(entry.name))
    return pids


def test_features_on_ray_equal_one_process_and_survive_a_killed_worker(run_cli, lm, tmp_path, ray_session):
    # 768 tokens in 24 shards of one 32-token window: a worker is killed while shards are being mapped.
    flags = ["--tokens", "768", "--shard-tokens", "32", "--seed", "7"]
    code, stdout, err = run_cli("features", lm, *flags, "--out-dir", tmp_path / "one", "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["n_features"] == 2 * 16 and summary["n_tokens"] == 768 and summary["n_shards"] == 24

    killed: list[int] = []

    def kill_one_worker() -> None:
        # Once the map has begun (the manifest is written just before it), kill a worker: one mapping a shard
        # if one is seen, else one with shards queued on it.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (tmp_path / "ray" / ".interp-job" / "manifest.json").exists():
            time.sleep(0.005)
        while time.monotonic() < deadline and not killed:
            pids = _worker_pids("ray::FeatureWorker.shard_stats") or _worker_pids("ray::FeatureWorker")
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    code, stdout, err = run_cli("features", lm, *flags, "--out-dir", tmp_path / "ray", "--json", "--ray",
                                "--workers", "2", "--quiet")
    killer.join()
    assert code == 0, err
    assert killed, "no worker was seen"
    one, on_ray = _files(tmp_path / "one"), _files(tmp_path / "ray")
    assert set(one) == set(on_ray)
    assert not [name for name in on_ray if name.endswith(".tmp")]
    for name in one:
        assert one[name] == on_ray[name], name
    card = json.loads(one[next(n for n in one if not n.startswith("."))])
    assert {"examples_quantiles", "top_logits", "histogram", "activation_frequency"} <= set(card)


def test_feature_cards_count_what_one_pass_over_the_corpus_sees(lm, tmp_path):
    """The merged statistics against activations computed directly: density, max, histogram total, top window."""
    import torch

    from interp.graph.feature_job import (
        FeatureWorker,
        generated_shards,
        merge_stats,
    )

    worker = FeatureWorker(lm, None, None, "full", "cpu", None, 7)
    shards = list(generated_shards(6, 2))
    parts = [worker.shard_stats(s) for s in shards]
    left = merge_stats(merge_stats(parts[0], parts[1]), parts[2])
    right = merge_stats(parts[0], merge_stats(parts[2], parts[1]))
    for x, y in zip(left.sites, right.sites):
        for field in ("count", "act_min", "act_max", "fine", "top_value", "top_window"):
            assert torch.equal(getattr(x, field), getattr(y, field)), field
    from interp.data.corpus import training_tokens
    from interp.graph.features import feature_activations

    rep = worker.setup.replacement
    tokens = torch.cat([torch.tensor(training_tokens(worker.setup.tokenizer, s.n, 32, 7 * 1_000_003 + s.index))
                        for s in shards])
    acts = feature_activations(rep, tokens, {0: list(range(16))})[0].double()     # [6, 32, 16]
    site = left.sites[0]
    assert torch.equal(site.count, (acts > 0).sum(dim=(0, 1)))
    assert torch.allclose(site.act_max, acts.amax(dim=(0, 1)))
    assert torch.equal(site.fine.sum(1), site.count)
    best = acts.amax(dim=1).argmax(dim=0)                                           # top window per feature
    active = site.count > 0
    assert torch.equal(site.top_window[active, 0], best[active])


def test_feature_job_refuses_bad_input_with_one_line(run_cli, lm, tmp_path):
    binary = tmp_path / "corpus.bin"
    binary.write_bytes(b"\x00\x01\x02\xff" * 100)
    _one_error_line(*run_cli("features", lm, "--corpus", binary, "--tokens", "64", "--out-dir", tmp_path / "a",
                             "--quiet"), "not text")
    _one_error_line(*run_cli("features", lm, "--tokens", "0", "--out-dir", tmp_path / "a", "--quiet"), "--tokens")
    _one_error_line(*run_cli("features", lm, "--tokens", "64", "--seed", "-1", "--out-dir", tmp_path / "a",
                             "--quiet"), "--seed")
    _one_error_line(*run_cli("features", lm, "--graph-mode", "bilinear-exact", "--tokens", "64", "--out-dir",
                             tmp_path / "a", "--quiet"), "not bilinear-exact")
    assert not (tmp_path / "a").exists()
    # A folder holding another job's files: refused, and nothing in it touched.
    code, _, err = run_cli("features", lm, "--tokens", "64", "--out-dir", tmp_path / "b", "--quiet")
    assert code == 0, err
    before = _files(tmp_path / "b")
    _one_error_line(*run_cli("features", lm, "--tokens", "128", "--out-dir", tmp_path / "b", "--quiet"),
                    "another job")
    _one_error_line(*run_cli("extract", "--recipe", _recipe(lm, tmp_path), "--out-dir", tmp_path / "b", "--quiet"),
                    "another job")
    assert _files(tmp_path / "b") == before
    # The same job again may run (it writes the same files).
    code, _, err = run_cli("features", lm, "--tokens", "64", "--out-dir", tmp_path / "b", "--quiet")
    assert code == 0, err
    assert _files(tmp_path / "b") == before
    # A folder of unrelated files (no manifest) is refused too.
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    _one_error_line(*run_cli("features", lm, "--tokens", "64", "--out-dir", tmp_path / "c", "--quiet"), "not empty")
    assert _files(tmp_path / "c") == {"notes.txt": b"mine"}


def test_without_ray_flag_nothing_imports_ray(lm, tmp_path):
    import subprocess
    import sys

    code = ("import sys, json\nfrom interp.cli import main\n"
            f"code = main(['features', {str(lm)!r}, '--tokens', '64', '--out-dir', {str(tmp_path / 'cards')!r}, "
            "'--quiet'])\nprint('MODULES', code, json.dumps(sorted(sys.modules)))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    line = next(line for line in run.stdout.splitlines() if line.startswith("MODULES "))
    status, modules = line.removeprefix("MODULES ").split(" ", 1)
    assert status == "0", run.stderr
    assert "ray" not in json.loads(modules)
    assert len(list((tmp_path / "cards").glob("*.json"))) == 2 * 16


def test_a_text_corpus_is_cut_into_windows_of_the_model_context(run_cli, lm, tmp_path):
    from interp.data.corpus import make_tokenizer, training_tokens
    from interp.graph.feature_job import file_shards

    tokenizer = make_tokenizer()
    text = "\n".join(tokenizer.decode(ids) for ids in training_tokens(tokenizer, 12, 32, 1))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text + "\n")
    shards = list(file_shards(corpus, tokenizer, 32, n_windows=7, shard_windows=3))
    assert [s.n for s in shards] == [3, 3, 1] and [s.start for s in shards] == [0, 3, 6]
    rows = torch_cat([s.tokens for s in shards])
    assert rows.shape == (7, 32) and (rows[:, 0] == tokenizer.bos_id).all()
    body = [t for line in text.splitlines() for t in tokenizer.encode(line, prepend_bos=False)]
    assert rows[:, 1:].flatten().tolist() == body[:7 * 31]           # the text's tokens in order, none lost
    code, stdout, err = run_cli("features", lm, "--corpus", corpus, "--tokens", "200", "--out-dir",
                                tmp_path / "cards", "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["n_windows"] == 7 and summary["n_tokens"] == 7 * 32


def torch_cat(tensors):
    import torch

    return torch.cat(tensors)
