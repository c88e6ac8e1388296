"""No command replaces an existing file without --force, and none writes inside a checkpoint folder it does not own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import CHECKPOINTS
from graph_helpers import save_tiny_lm

PROMPT = "when Eva and Leo arrived at the lake , Leo handed a cup to"


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("guard") / "lm")


@pytest.fixture
def cnn(tmp_path):
    folder = tmp_path / "fmnist-cnn"
    shutil.copytree(CHECKPOINTS / "fmnist-cnn", folder)
    return folder


def _refused(result, *paths_and_bytes):
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err and len([l for l in err.splitlines() if l.strip()]) == 1, err
    for path, before in paths_and_bytes:
        assert path.read_bytes() == before


def _commands(lm, cnn, out):
    return [
        ["extract", lm, "--prompt", PROMPT, "--out", out, "--quiet"],
        ["harmless", cnn, "--out", out],
        ["harmless", cnn, "--out-html", out],
        ["eigen", CHECKPOINTS / "fmnist-bilinear", "--out-html", out],
        ["relevance", cnn, "--out", out],
        ["relevance", cnn, "--out-html", out],
        ["relevance-eval", cnn, "--out-html", out],
    ]


@pytest.mark.parametrize("which", range(7))
def test_an_existing_output_file_is_not_replaced_without_force(run_cli, lm, cnn, tmp_path, which):
    out = tmp_path / "existing.html"
    out.write_text("keep me")
    _refused(run_cli(*_commands(lm, cnn, out)[which]), (out, b"keep me"))


@pytest.mark.parametrize("which", range(7))
def test_no_output_inside_a_checkpoint_folder_even_with_force(run_cli, lm, cnn, which):
    target = cnn / "config.json"
    before = target.read_bytes()
    weights = (cnn / "model.safetensors").read_bytes()
    _refused(run_cli(*_commands(lm, cnn, target)[which], "--force"), (target, before),
             (cnn / "model.safetensors", weights))


def test_outputs_under_a_plain_file_or_naming_a_folder_are_one_line_errors(run_cli, lm, tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")
    _refused(run_cli("extract", lm, "--prompt", PROMPT, "--out", plain / "g.json", "--quiet"),
             (plain, b"x"))
    _refused(run_cli("extract", lm, "--prompt", PROMPT, "--out", tmp_path, "--quiet"))


def test_force_replaces_an_existing_graph(run_cli, lm, tmp_path):
    import json

    out = tmp_path / "g.json"
    out.write_text("old")
    code, _, err = run_cli("extract", lm, "--prompt", PROMPT, "--out", out, "--quiet", "--force")
    assert code == 0, err
    assert json.loads(out.read_text())["metadata"]["prompt"] == PROMPT


def test_a_recipe_does_not_write_into_a_folder_holding_other_files(run_cli, lm, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = "r"\nmodel = "{lm}"\n[[prompts]]\nprompt = "{PROMPT}"\ntarget = "Eva"\ncontrast = "Leo"\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.json").write_text("{}")
    _refused(run_cli("extract", "--recipe", recipe, "--out-dir", out, "--quiet"), (out / "other.json", b"{}"))
    assert sorted(p.name for p in out.iterdir()) == ["other.json"]


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_never_replaces_a_checkpoint_of_another_kind(run_cli, lm, cnn):
    before = _snapshot(cnn)
    _refused(run_cli("train", "transcoders", lm, "--out", cnn, "--force", "--steps", "1"))
    _refused(run_cli("train", "lm", "--out", cnn, "--force", "--steps", "1"))
    assert _snapshot(cnn) == before


def test_training_an_lm_over_itself_needs_force_and_then_replaces_the_whole_folder(run_cli, lm, tmp_path):
    copy = tmp_path / "lm"
    shutil.copytree(lm, copy)
    before = _snapshot(copy)
    tiny = ["--n-layers", "1", "--d-model", "16", "--n-heads", "2", "--d-mlp", "32", "--n-ctx", "64", "--steps", "2",
            "--batch-size", "2", "--threads", "1", "--quiet"]
    _refused(run_cli("train", "lm", "--out", copy, *tiny))
    assert _snapshot(copy) == before
    code, _, err = run_cli("train", "lm", "--out", copy, *tiny, "--force")
    assert code == 0, err
    # The old model's dictionaries went with it: nothing is left to mismatch the new weights.
    assert not (copy / "transcoders").exists() and not (copy / "attn-saes").exists()
    assert (copy / "model.safetensors").read_bytes() != before[Path("model.safetensors")]


def test_dictionaries_go_only_into_their_own_lm_or_a_new_folder(run_cli, lm, tmp_path):
    other = save_tiny_lm(tmp_path / "other")
    before = _snapshot(other)
    # Into another LM's folder: refused even with --force.
    _refused(run_cli("train", "transcoders", lm, "--out", other / "transcoders", "--force", "--steps", "1"))
    assert _snapshot(other) == before


def _recipe_file(path, lm, prompts):
    body = f'name = "r"\nmodel = "{lm}"\n'
    for prompt, target, contrast in prompts:
        body += f'[[prompts]]\nprompt = "{prompt}"\ntarget = "{target}"\ncontrast = "{contrast}"\n'
    path.write_text(body)
    return path


OTHER_PROMPT = "when Leo and Eva arrived at the lake , Eva handed a cup to"


def test_force_over_an_earlier_recipe_folder_leaves_none_of_its_files(run_cli, lm, tmp_path):
    out = tmp_path / "out"
    two = _recipe_file(tmp_path / "two.toml", lm, [(PROMPT, "Eva", "Leo"), (OTHER_PROMPT, "Leo", "Eva")])
    code, _, err = run_cli("extract", "--recipe", two, "--out-dir", out, "--quiet")
    assert code == 0, err
    assert (out / "r-01.json").is_file() and any((out / "features").iterdir())
    (out / "features" / "999999.json").write_text("{}")   # a card of a feature the new graphs will not have
    (out / "notes.txt").write_text("mine")                 # not written by the job
    one = _recipe_file(tmp_path / "one.toml", lm, [(PROMPT, "Eva", "Leo")])
    _refused(run_cli("extract", "--recipe", one, "--out-dir", out, "--quiet"), (out / "notes.txt", b"mine"))
    code, _, err = run_cli("extract", "--recipe", one, "--out-dir", out, "--quiet", "--force")
    assert code == 0, err
    assert (out / "r-00.json").is_file() and not (out / "r-01.json").exists()  # the dropped prompt's graph is gone
    assert not (out / "features" / "999999.json").exists() and any((out / "features").iterdir())
    assert sorted(p.name for p in (out / ".interp-job" / "prompts").iterdir()) == ["r-00.json"]
    assert (out / "notes.txt").read_text() == "mine"


def test_a_recipe_rerun_on_retrained_weights_does_not_resume_from_the_old_graphs(run_cli, lm, tmp_path):
    from safetensors.torch import load_file, save_file

    model = tmp_path / "lm"
    shutil.copytree(lm, model)
    recipe = _recipe_file(tmp_path / "r.toml", model, [(PROMPT, "Eva", "Leo")])
    out = tmp_path / "out"
    code, _, err = run_cli("extract", "--recipe", recipe, "--out-dir", out, "--quiet")
    assert code == 0, err
    weights = load_file(model / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] * 1.5                   # "retrained": same recipe bytes, other weights
    save_file(weights, model / "model.safetensors")
    before = (out / "r-00.json").read_bytes()
    code, _, err = run_cli("extract", "--recipe", recipe, "--out-dir", out, "--quiet")
    assert code == 2 and "holds the files of another job" in err, err
    assert (out / "r-00.json").read_bytes() == before


def test_force_over_an_earlier_feature_job_leaves_none_of_its_cards(run_cli, lm, tmp_path):
    out = tmp_path / "cards"
    code, _, err = run_cli("features", lm, "--tokens", "64", "--out-dir", out, "--quiet")
    assert code == 0, err
    (out / "999.json").write_text("{}")     # a card of a feature the new dictionaries will not have
    (out / "notes.txt").write_text("mine")  # not written by the job
    _refused(run_cli("features", lm, "--tokens", "96", "--out-dir", out, "--quiet"), (out / "notes.txt", b"mine"))
    code, _, err = run_cli("features", lm, "--tokens", "96", "--out-dir", out, "--quiet", "--force")
    assert code == 0, err
    fresh = tmp_path / "fresh"                # the same job into an empty folder: the cards it writes
    code, _, err = run_cli("features", lm, "--tokens", "96", "--out-dir", fresh, "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.json")) == sorted(p.name for p in fresh.glob("*.json"))  # no 999
    assert (out / "notes.txt").read_text() == "mine"
