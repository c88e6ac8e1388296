"""The one-line contract under bad input: every command × every kind of bad input exits 2 with exactly one line
on stderr, prints nothing on stdout, and changes no file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import CHECKPOINTS
from graph_helpers import save_tiny_lm


def _fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Folders and files that are wrong in each way a user can get them wrong."""
    root = tmp_path_factory.mktemp("fuzz")
    lm = save_tiny_lm(root / "lm")
    paths = {"missing": root / "nope", "plain file": root / "plain.txt", "empty folder": root / "empty"}
    paths["plain file"].write_text("not a checkpoint")
    paths["empty folder"].mkdir()
    kind = root / "bogus-kind"
    kind.mkdir()
    (kind / "config.json").write_text(json.dumps({"kind": "bogus"}))
    paths["unknown kind"] = kind
    truncated = root / "truncated"
    shutil.copytree(lm, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    paths["truncated weights"] = truncated
    typed = root / "typed"
    shutil.copytree(lm, typed)
    config = json.loads((typed / "config.json").read_text())
    config["hooked_transformer_config"]["d_model"] = "wide"
    (typed / "config.json").write_text(json.dumps(config))
    paths["wrongly typed config"] = typed
    negative = root / "negative"
    shutil.copytree(lm, negative)
    config = json.loads((negative / "config.json").read_text())
    config["hooked_transformer_config"]["n_ctx"] = -4
    (negative / "config.json").write_text(json.dumps(config))
    paths["negative width"] = negative
    not_json = root / "not-json"
    shutil.copytree(lm, not_json)
    (not_json / "config.json").write_text("{ nope")
    paths["config not JSON"] = not_json
    return root, paths, lm


COMMANDS = {
    "evaluate": lambda p, out: ["evaluate", p],
    "eigen": lambda p, out: ["eigen", p, "--out-html", out / "e.html"],
    "bilinear-lm": lambda p, out: ["bilinear-lm", p, "--layer", "0", "--output", "token:the"],
    "extract": lambda p, out: ["extract", p, "--prompt", "the dog sees a", "--out", out / "g.json"],
    "extract exact": lambda p, out: ["extract", p, "--graph-mode", "bilinear-exact", "--basis", "eigen", "--prompt",
                                     "the dog sees a", "--out", out / "g.json"],
    "features": lambda p, out: ["features", p, "--corpus", "generated", "--tokens", "64", "--out-dir", out / "cards"],
    "intervene": lambda p, out: ["intervene", p, "--prompt", "the dog sees a", "--set", "mlp:0:1:0"],
    "relevance": lambda p, out: ["relevance", p, "--index", "0", "--out", out / "r.png"],
    "relevance-eval": lambda p, out: ["relevance-eval", p, "--n-images", "2"],
    "harmless": lambda p, out: ["harmless", p, "--out", out / "h.safetensors"],
    "graph-info": lambda p, out: ["graph-info", p],
    "train transcoders": lambda p, out: ["train", "transcoders", p, "--out", out / "tc", "--steps", "1"],
    "train attn-saes": lambda p, out: ["train", "attn-saes", p, "--out", out / "sae", "--steps", "1"],
    "train clt": lambda p, out: ["train", "clt", p, "--out", out / "clt", "--steps", "1"],
}
CASES = ["missing", "plain file", "empty folder", "unknown kind", "truncated weights", "wrongly typed config",
         "negative width", "config not JSON"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(run_cli, bad, tmp_path, command, case):
    root, paths, _ = bad
    before = _fingerprint(root)
    out = tmp_path / "out"
    code, stdout, err = run_cli(*COMMANDS[command](paths[case], out), "--quiet")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and stdout == "" and len(lines) == 1 and "error" in lines[0], (command, case, err)
    assert "Traceback" not in err
    # Foreseen, so named: not the catch-all's "run again with --debug".
    assert "--debug" not in err, (command, case, err)
    assert _fingerprint(root) == before
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command", ["extract", "eigen", "relevance", "harmless"])
def test_an_output_under_a_plain_file_is_one_line(run_cli, bad, tmp_path, command):
    _, _, lm = bad
    plain = tmp_path / "plain"
    plain.write_text("x")
    model = {"extract": lm, "eigen": CHECKPOINTS / "fmnist-bilinear", "relevance": CHECKPOINTS / "fmnist-cnn",
             "harmless": CHECKPOINTS / "fmnist-cnn"}[command]
    code, stdout, err = run_cli(*COMMANDS[command](model, plain), "--quiet")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and stdout == "" and len(lines) == 1, err
    assert plain.read_text() == "x"
