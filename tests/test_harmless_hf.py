"""Harmless subspaces of dictionaries on Hugging Face model folders (GPT-2 with LayerNorm, Llama with RMSNorm and
grouped-query attention), with dictionaries narrower than d_model so that the encoders leave a real null space."""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from graph_helpers import tiny_dictionaries
from hf_helpers import make_hf_folder, one_thread  # noqa: F401 (an autouse fixture)
from interp.data.corpus import training_tokens
from interp.harmless.apply import harmless_direction
from interp.harmless.lm import dictionaries_null_space_from_folder
from interp.models.lm import load_lm

D_SAE = 6  # per dictionary; two per layer read 12 of d_model (32 for GPT-2, 48 for Llama) directions at most



def _write(folder, dicts, kind, model):
    for layer, sae in dicts.items():
        sae.to(torch.float32).save_model(str(folder / f"layer_{layer}"))
    (folder / "config.json").write_text(json.dumps({"kind": "dictionaries", "type": kind, "model": model,
                                                    "layers": sorted(dicts)}))


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def hf(request, tmp_path_factory):
    """(family, HF folder with transcoders/ and attn-saes/, LoadedLM, {folder name: {layer: SAE}})."""
    root = tmp_path_factory.mktemp(f"harmless-{request.param}")
    folder = root / "model"
    make_hf_folder(request.param, folder, seed=3)
    lm = load_lm(folder)
    transcoders, attn_saes = tiny_dictionaries(lm.model, d_sae=D_SAE, seed=4, dtype="float32")
    _write(folder / "transcoders", transcoders, "transcoder", "..")
    _write(folder / "attn-saes", attn_saes, "attn_sae", "..")
    return request.param, folder, lm, {"transcoders": transcoders, "attn-saes": attn_saes}


def _features(sae, a):
    return copy.deepcopy(sae).to(torch.float64).encode(a.to(torch.float64))


@torch.no_grad()
def test_the_null_space_leaves_every_feature_unchanged(hf, run_cli):
    family, folder, lm, dicts = hf
    d_model = lm.model.cfg.d_model
    code, stdout, stderr = run_cli("harmless", folder, "--layer", "1", "--json")
    assert code == 0, stderr
    out = json.loads(stdout)
    assert out["exact"] is True and out["layer"] == 1
    # The transcoders read ln2.hook_normalized, the attention SAEs hook_attn_out: one space each.
    assert [(i["input"], i["d_in"], i["dimension"]) for i in out["inputs"]] == [
        ("blocks.1.ln2.hook_normalized", d_model, d_model - D_SAE), ("blocks.1.hook_attn_out", d_model, d_model - D_SAE)]
    assert [d["name"] for d in out["dictionaries"]] == ["transcoders", "attn-saes"]
    assert out["max_abs_feature_change"] <= 1e-9 * out["max_abs_feature"] and out["max_abs_feature"] > 0.1

    # Independently: δ from the space, added at 100 × ‖a‖ to activations of our own corpus windows (the folder's
    # subword tokenizer, cut to n_ctx), changes no feature; a random direction of the same norm changes many.
    result = dictionaries_null_space_from_folder(folder, layer="1")
    space_of = {name: group.space for group in result.inputs for name in group.dictionaries}
    random = torch.randn(d_model, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    tokens = torch.tensor(training_tokens(lm.tokenizer, 3, lm.model.cfg.n_ctx, seed=11))
    saes = {name: d[1] for name, d in dicts.items()}
    _, cache = lm.model.run_with_cache(tokens)
    for name, sae in saes.items():
        delta = harmless_direction(space_of[name], seed=5)
        a = cache[str(sae.cfg.metadata.hook_name)].reshape(-1, d_model).to(torch.float64)
        size = 100 * a.norm(dim=1, keepdim=True)
        before = _features(sae, a)
        assert float((before > 0).float().mean()) > 0.1  # features are active, so a change would show
        moved = float((_features(sae, a + size * delta) - before).abs().max())
        assert moved <= 1e-9 * float(before.abs().max()), (family, name, moved)
        # Negative control: the part of a random direction outside this input's space, at the same norm.
        control = random - space_of[name].project(random)
        control = control / control.norm()
        changed = (_features(sae, a + size * control) - before).abs()
        assert float(changed.max()) > 0.1 * float(before.abs().max())


def test_dictionaries_given_with_transcoders_are_checked_against_the_model(hf, tmp_path, run_cli):
    family, folder, lm, dicts = hf
    absolute, relative = tmp_path / "abs" / "transcoders", tmp_path / "rel" / "transcoders"
    _write(absolute, dicts["transcoders"], "transcoder", str(folder))
    _write(relative, dicts["transcoders"], "transcoder", os.path.relpath(folder, relative))
    assert not os.path.isabs(json.loads((relative / "config.json").read_text())["model"])
    results = {}
    for way, where in (("absolute", absolute), ("relative", relative)):
        code, stdout, stderr = run_cli("harmless", folder, "--transcoders", where, "--layer", "0", "--json")
        assert code == 0, stderr
        results[way] = json.loads(stdout)
    for out in results.values():
        # only the dictionaries given: the transcoders' one space, not the folder's attention SAEs too
        assert out["exact"] is True and [i["dimension"] for i in out["inputs"]] == [lm.model.cfg.d_model - D_SAE]
        assert [d["name"] for d in out["dictionaries"]] == ["transcoders"]
        assert out["max_abs_feature_change"] <= 1e-9 * out["max_abs_feature"]
    assert results["absolute"] == results["relative"]
    # A dictionaries folder is not a model: one line naming the flag to give it with.
    code, stdout, stderr = run_cli("harmless", absolute, "--layer", "0", "--json")
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert "is a dictionaries folder" in stderr and "--transcoders" in stderr
    # Dictionaries that record another model are refused, unless --allow-mismatch; a missing folder is one line.
    _write(tmp_path / "other", dicts["transcoders"], "transcoder", str(tmp_path / "abs"))
    code, stdout, stderr = run_cli("harmless", folder, "--transcoders", tmp_path / "other", "--layer", "0", "--json")
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1 and "--allow-mismatch" in stderr
    code, stdout, stderr = run_cli("harmless", folder, "--transcoders", tmp_path / "other", "--layer", "0",
                                   "--allow-mismatch", "--json")
    assert code == 0, stderr
    assert json.loads(stdout) == results["absolute"]
    code, stdout, stderr = run_cli("harmless", folder, "--attn-saes", tmp_path / "nowhere", "--json")
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert "--attn-saes folder not found" in stderr
