"""`interp extract`, `interp graph-info` and `interp intervene` end to end on a tiny saved LM, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from graph_helpers import save_tiny_lm
from interp.data.corpus import task_examples

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "attribution-graph.schema.json").read_text())


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("graph-cli") / "lm")


@pytest.fixture(scope="module")
def ioi():
    return task_examples("ioi", n=2)


def _one_error_line(code, out, err):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("interp: error:"), err
    assert "Traceback" not in err


def test_extract_one_prompt_writes_a_valid_graph(run_cli, lm, ioi, tmp_path):
    ex = ioi[0]
    out = tmp_path / "g.json"
    code, stdout, err = run_cli("extract", lm, "--prompt", ex.prompt, "--contrast",
                                f"{ex.target},{ex.contrast}", "--out", out, "--json", "--quiet",
                                "--features-dir", tmp_path / "features")
    assert code == 0, err
    summary = json.loads(stdout)
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert summary["n_nodes"] == len(data["nodes"]) and 0 < summary["replacement_score"] <= 1
    assert data["metadata"]["prompt_tokens"][1:] == ex.prompt.split()
    features = [n for n in data["nodes"] if n["feature_type"] in ("cross layer transcoder", "attention sae feature")]
    assert features and all((tmp_path / "features" / f"{n['feature']}.json").is_file() for n in features)
    code, stdout, err = run_cli("graph-info", out, "--json")
    assert code == 0 and json.loads(stdout)["n_links"] == len(data["links"])


def test_extract_thresholds_one_keep_the_whole_transcoder_only_graph(run_cli, lm, ioi, tmp_path):
    ex = ioi[1]
    code, stdout, err = run_cli("extract", lm, "--prompt", ex.prompt, "--target", ex.target,
                                "--graph-mode", "transcoder-only", "--node-threshold", "1.0", "--edge-threshold", "1.0",
                                "--out", tmp_path / "full.json", "--json", "--quiet")
    assert code == 0, err
    data = json.loads((tmp_path / "full.json").read_text())
    n_tokens = len(ex.prompt.split()) + 1
    s = json.loads(stdout)
    assert len(data["nodes"]) == s["n_active_features"] + 2 * n_tokens + n_tokens + 1
    types = {n["feature_type"] for n in data["nodes"]}
    assert "attention sae feature" not in types and "mlp reconstruction error" in types


def test_recipe_writes_one_graph_per_prompt_features_and_summary(run_cli, lm, ioi, tmp_path):
    lines = ['name = "tiny"', f'model = "{lm}"', 'graph_mode = "full"', "[corpus]", "n_sequences = 8", "seed = 3"]
    for ex in ioi:
        lines += ["[[prompts]]", f'prompt = "{ex.prompt}"', f'target = "{ex.target}"', f'contrast = "{ex.contrast}"']
    recipe = tmp_path / "tiny.toml"
    recipe.write_text("\n".join(lines) + "\n")
    code, stdout, err = run_cli("extract", "--recipe", recipe, "--out-dir", tmp_path / "out", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    for key in ("top10_ablation_drop", "random10_ablation_drop", "replacement_score"):
        assert isinstance(summary[key], float)
    graphs = sorted((tmp_path / "out").glob("tiny-*.json"))
    assert len(graphs) == 2
    for g in graphs:
        jsonschema.validate(json.loads(g.read_text()), SCHEMA)
    assert list((tmp_path / "out" / "features").glob("*.json"))
    assert "recipe tiny" in err          # the progress bar goes to stderr
    assert summary["n_prompts"] == 2 and len(summary["prompts"]) == 2
    # The clean task metric of each prompt, against the model run directly: logit(target) - logit(contrast).
    import torch

    from interp.models.lm import load_lm

    loaded = load_lm(lm)
    for row, ex in zip(summary["prompts"], ioi):
        with torch.no_grad():
            logits = loaded.model(loaded.to_tokens(ex.prompt))[0, -1]
        expected = float(logits[loaded.tokenizer.token_id(ex.target)] - logits[loaded.tokenizer.token_id(ex.contrast)])
        assert row["metric_clean"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        assert 0 < row["replacement_score"] <= 1 and 0 < row["completeness_score"] <= 1


def test_intervene_reports_new_logits(run_cli, lm, ioi):
    import torch

    from interp.graph.setup import load_setup

    prompt = ioi[0].prompt
    last = len(prompt.split())            # BOS first
    code, stdout, err = run_cli("intervene", lm, "--prompt", prompt, "--set", f"mlp:1:{last}:0=20",
                                "--ablation-mode", "free", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    # Reference: the real model with feature 0's decoder row added (20 - its activation) times at layer 1's
    # MLP output, last position.
    setup = load_setup(lm)
    tokens = setup.encode(prompt)
    snap = setup.replacement.snapshot(tokens)
    site = next(i for i, s in enumerate(setup.replacement.sites) if (s.kind, s.layer) == ("mlp", 1))
    act = float(snap.acts[site][last, 0])
    w = setup.replacement.sites[site].W_dec[0]

    def add(x, hook):
        x = x.clone()
        x[0, last] += (20.0 - act) * w
        return x

    with torch.no_grad():
        logits = setup.replacement.model.run_with_hooks(tokens[None], fwd_hooks=[("blocks.1.hook_mlp_out", add)])
    expected = float((logits[0, -1] - snap.logits[-1]).abs().max())
    assert expected > 0.1
    assert abs(res["max_logit_change"] - expected) <= 1e-4 * expected
    assert len(res["top_after"]) == 5


@pytest.mark.parametrize("args", [
    ["--prompt", ""],
    ["--prompt", "   "],
    ["--prompt", "when Mary and Zorblax went to"],
    ["--prompt", " ".join(["the"] * 40)],
    ["--prompt", "when Mary and John went to", "--target", "Zorblax"],
    ["--prompt", "when Mary and John went to", "--contrast", "Mary,Zorblax"],
    ["--prompt", "when Mary and John went to", "--target", "Mary", "--contrast", "Mary,John"],
])
def test_bad_prompts_and_targets_fail_with_one_line(run_cli, lm, tmp_path, args):
    out = tmp_path / "g.json"
    _one_error_line(*run_cli("extract", lm, *args, "--out", out, "--quiet"))
    assert not out.exists()


def test_a_contrast_of_one_word_is_refused_by_the_parser(run_cli, lm, tmp_path):
    out = tmp_path / "g.json"
    code, stdout, err = run_cli("extract", lm, "--prompt", "when Mary and John went to", "--contrast", "Mary",
                                "--out", out, "--quiet")
    assert code == 2 and stdout == "" and not out.exists()
    assert err.strip().splitlines() == ["interp extract: error: argument --contrast: want two names separated by a "
                                        "comma (A,B), got 'Mary' (see interp extract --help)"]


def test_dictionaries_recorded_for_another_model_of_the_same_shape_need_allow_mismatch(run_cli, lm, tmp_path):
    # Same widths and hooks, so only the recorded model tells them apart (lm-gelu's on lm-bilinear, in small).
    twin = save_tiny_lm(tmp_path / "twin", seed=1)
    args = ["extract", lm, "--transcoders", twin / "transcoders", "--prompt", "when Mary and John went to",
            "--out", tmp_path / "g.json", "--quiet", "--graph-mode", "transcoder-only"]
    code, _, err = run_cli(*args)
    _one_error_line(code, "", err)
    assert "made for" in err and not (tmp_path / "g.json").exists()
    code, _, err = run_cli(*args, "--allow-mismatch")
    assert code == 0, err and (tmp_path / "g.json").is_file()


def test_dictionaries_of_another_model_are_rejected(run_cli, lm, tmp_path):
    other = save_tiny_lm(tmp_path / "other", d_model=8)
    _one_error_line(*run_cli("extract", lm, "--transcoders", other / "transcoders",
                             "--prompt", "when Mary and John went to", "--out", tmp_path / "g.json", "--quiet"))
    _one_error_line(*run_cli("extract", lm, "--attn-saes", other / "attn-saes",
                             "--prompt", "when Mary and John went to", "--out", tmp_path / "g.json", "--quiet"))


@pytest.mark.parametrize("text", [
    'name = "x"\nmodel = "LM"\n[[prompts]]\nprompt = "when Mary and John went to"\n',          # no target/contrast
    'name = "x"\nmodel = "LM"\nprompts = []\n',                                                 # no prompts
    'name = "x"\nmodel = "LM"\nnode_threshold = 3\n[[prompts]]\nprompt = "a"\ntarget = "a"\ncontrast = "b"\n',
    'name = "x"\nmodel = "LM"\nbogus = 1\n[[prompts]]\nprompt = "a"\ntarget = "a"\ncontrast = "b"\n',
    'name = "x\nmodel = \n',                                                                     # not TOML
    'model = "LM"\n[[prompts]]\nprompt = "a"\ntarget = "a"\ncontrast = "b"\n',                  # no name
    'name = "x"\nmodel = "LM"\n[[prompts]]\nprompt = "when Zorblax"\ntarget = "Mary"\ncontrast = "John"\n',
    'name = "../../escaped"\nmodel = "LM"\n[[prompts]]\nprompt = "a"\ntarget = "a"\ncontrast = "b"\n',  # path in name
    'name = "/tmp/abs"\nmodel = "LM"\n[[prompts]]\nprompt = "a"\ntarget = "a"\ncontrast = "b"\n',      # absolute name
    'name = "x"\nmodel = "LM"\nbatch_size = 0\n[[prompts]]\nprompt = "a"\ntarget = "a"\ncontrast = "b"\n',
    'name = "x"\nmodel = "LM"\ngraph_mode = "bogus"\n[[prompts]]\nprompt = "a"\ntarget = "a"\ncontrast = "b"\n',
])
def test_malformed_recipes_fail_with_one_line(run_cli, lm, tmp_path, text):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text.replace("LM", str(lm)))
    _one_error_line(*run_cli("extract", "--recipe", recipe, "--out-dir", tmp_path / "out", "--quiet"))
    assert not (tmp_path / "out").exists()


def test_a_recipe_with_the_old_mode_key_names_the_new_one(run_cli, lm, tmp_path):
    recipe = tmp_path / "old.toml"
    recipe.write_text(f'name = "x"\nmodel = "{lm}"\nmode = "full"\n[[prompts]]\nprompt = "a"\ntarget = "a"\n'
                      'contrast = "b"\n')
    code, out, err = run_cli("extract", "--recipe", recipe, "--out-dir", tmp_path / "out", "--quiet")
    _one_error_line(code, out, err)
    assert "'mode' is now 'graph_mode'" in err and not (tmp_path / "out").exists()


def test_a_model_and_a_recipe_together_or_neither_fail_with_one_line(run_cli, lm, tmp_path):
    code, out, err = run_cli("extract", lm, "--recipe", tmp_path / "r.toml", "--out-dir", tmp_path / "o")
    _one_error_line(code, out, err)
    assert "not both" in err and not (tmp_path / "o").exists()
    code, out, err = run_cli("extract", "--prompt", "when Mary and John went to", "--out", tmp_path / "g.json")
    _one_error_line(code, out, err)
    assert "give MODEL" in err and not (tmp_path / "g.json").exists()


def test_missing_arguments_fail_with_one_line(run_cli, lm, tmp_path):
    _one_error_line(*run_cli("extract", lm, "--out", tmp_path / "g.json"))
    _one_error_line(*run_cli("extract", "--recipe", tmp_path / "none.toml", "--out-dir", tmp_path / "o"))
    _one_error_line(*run_cli("graph-info", tmp_path / "none.json"))


def test_hierarchical_pruning_from_the_command_line(run_cli, lm, ioi, tmp_path):
    ex = ioi[0]
    sizes = []
    for threshold in ("0.0", "0.2"):
        out = tmp_path / f"h{threshold}.json"
        code, stdout, err = run_cli("extract", lm, "--prompt", ex.prompt, "--target", ex.target,
                                    "--pruning", "hierarchical", "--hierarchical-threshold", threshold,
                                    "--out", out, "--json", "--quiet")
        assert code == 0, err
        data = json.loads(out.read_text())
        jsonschema.validate(data, SCHEMA)
        sizes.append(len(data["nodes"]))
    assert sizes[1] < sizes[0]


def _argparse_error_line(code, out, err, prefix):
    """A refused flag: exit 2, nothing on stdout, exactly one error line naming the flag."""
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(prefix), err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_intervene_refuses_a_value_that_is_not_finite(run_cli, lm, ioi, value):
    code, out, err = run_cli("intervene", lm, "--prompt", ioi[0].prompt, "--set", f"mlp:1:3:0={value}",
                             "--json")
    _argparse_error_line(code, out, err, "interp intervene: error: argument --set: the value set must be a finite number")


SHIPPED_GRAPH = Path(__file__).resolve().parents[1] / "circuits" / "ioi" / "ioi-00.json"


def _first_feature(data):
    return next(n for n in data["nodes"] if n["feature_type"] == "cross layer transcoder")


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["links"][0].update(weight=float("nan")), "link 0 has a non-finite weight"),
    (lambda d: _first_feature(d).update(activation=float("nan")), "has a non-finite activation"),
    (lambda d: _first_feature(d).update(influence=float("inf")), "has a non-finite influence"),
    (lambda d: _first_feature(d).update(ctx_idx=len(d["metadata"]["prompt_tokens"])), "outside the prompt's"),
    (lambda d: _first_feature(d).update(ctx_idx=-1), "is at position -1, outside the prompt's"),
])
def test_graph_info_refuses_nan_numbers_and_positions_past_the_prompt(run_cli, tmp_path, damage, message):
    data = json.loads(SHIPPED_GRAPH.read_text(encoding="utf-8"))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(data))
    code, stdout, err = run_cli("graph-info", good, "--json")
    assert code == 0, err
    assert json.loads(stdout)["n_nodes"] == len(data["nodes"])
    damage(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them (and reads them back)
    code, stdout, err = run_cli("graph-info", bad, "--json")
    _one_error_line(code, stdout, err)
    assert stdout == "" and message in err


def test_feature_card_windows_come_from_the_corpus_the_model_was_trained_on():
    """A structural-corpus model's feature cards show its own text (unmarked repeats, IOI frames), the planted
    models' cards the planted text."""
    import random

    from interp.data import corpus
    from interp.graph.features import corpus_windows
    from interp.graph.setup import load_setup

    root = Path(__file__).resolve().parents[1] / "checkpoints"
    for name, kind in (("lm-bilinear-structural", "structural"), ("lm-bilinear", "planted")):
        setup = load_setup(root / name)
        assert setup.corpus_config.kind == kind
        windows = corpus_windows(setup, 3, seed=7)
        rng = random.Random(7)
        by_hand = [corpus.training_sequence(setup.tokenizer, rng, 64, setup.corpus_config) for _ in range(3)]
        assert windows.tolist() == by_hand
    planted = corpus.training_tokens(setup.tokenizer, 3, 64, 7)
    structural = corpus.training_tokens(setup.tokenizer, 3, 64, 7, corpus.CorpusConfig(kind="structural",
                                                                                   bracket_depth=6))
    assert planted != structural
