"""Per-input null spaces of a layer's dictionaries, on a tiny TransformerLens model with SAE-Lens SAEs."""

from __future__ import annotations

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.errors import InterpError
from interp.harmless.lm import check_dictionary_perturbation, dictionary_null_space, encoder_rows
from interp.harmless.subspace import DTYPE


def _model() -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=20, n_ctx=8,
                                  act_fn="relu", seed=0)
    return HookedTransformer(cfg).eval()


def _sae(d_in: int, d_sae: int, hook: str, seed: int) -> StandardSAE:
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_enc.normal_()
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    sae.cfg.metadata["hook_name"] = hook
    return sae.eval()


def test_each_input_gets_its_own_space_and_its_delta_is_not_read_there():
    model = _model()
    saes = {"transcoders": _sae(16, 6, "blocks.0.ln2.hook_normalized", 1),
            "also-ln2": _sae(16, 4, "blocks.0.ln2.hook_normalized", 5),
            "attn-saes": _sae(16, 5, "blocks.0.hook_attn_out", 2)}
    result = dictionary_null_space(saes, 0)
    # Dictionaries reading the same activation stack (6 + 4 rows); the attention SAE reads another one.
    spaces = {i.input: i for i in result.inputs}
    assert set(spaces) == {"blocks.0.ln2.hook_normalized", "blocks.0.hook_attn_out"}
    assert spaces["blocks.0.ln2.hook_normalized"].space.dimension == 16 - 10
    assert spaces["blocks.0.hook_attn_out"].space.dimension == 16 - 5
    assert [d.null_dimension for d in result.dictionaries] == [10, 12, 11]
    tokens = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(tokens)
    acts = {name: cache[str(sae.cfg.metadata.hook_name)] for name, sae in saes.items()}
    checked = check_dictionary_perturbation(result, saes, acts, magnitude=100.0)
    assert checked.n_activations == 3 * 24
    assert checked.max_abs_feature_change <= 1e-9 * checked.max_abs_feature
    summary = checked.summary()
    assert summary["kind"] == "per-input null spaces" and summary["exact"] is True
    assert [i["dimension"] for i in summary["inputs"]] == [6, 11]
    # Negative control: the ln2 space's δ added at the attention output is read there; the spaces do not transfer.
    d = spaces["blocks.0.ln2.hook_normalized"].space.basis[:, 0]
    assert float((encoder_rows(saes["attn-saes"]) @ d).abs().max()) > 1e-3
    a = acts["attn-saes"].reshape(-1, 16).to(DTYPE)
    sae64 = saes["attn-saes"].to(DTYPE)
    moved = (sae64.encode(a + 100 * a.norm(dim=1, keepdim=True) * d) - sae64.encode(a)).abs().max()
    assert float(moved) > 1.0


def test_full_rank_dictionaries_have_no_exact_space():
    saes = {"t": _sae(16, 64, "blocks.0.ln2.hook_normalized", 3)}
    result = dictionary_null_space(saes, 0, approx_dim=4)
    space = result.inputs[0].space
    assert not space.exact and space.null_dimension == 0 and space.dimension == 4 and not result.exact
    assert "not above the rank" in space.note


def test_hook_z_encoder_maps_through_w_v_with_frozen_patterns():
    model = _model()
    sae = _sae(16, 10, "blocks.0.attn.hook_z", 4)  # z: n_heads · d_head = 16
    with pytest.raises(InterpError):
        encoder_rows(sae)
    result = dictionary_null_space({"z": sae}, 0, model)
    assert result.inputs[0].input == "blocks.0.ln1.hook_normalized (through W_V)"
    assert result.inputs[0].space.exact and result.inputs[0].space.dimension == 6
    d = result.inputs[0].space.basis[:, 0].to(torch.float32)
    tokens = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(1))
    # Move the values as a residual direction d (after ln1) would: v += d W_V; patterns stay as they are.
    shift = 50.0 * torch.einsum("m,hmd->hd", d, model.W_V[0])
    _, clean = model.run_with_cache(tokens)
    with model.hooks(fwd_hooks=[("blocks.0.attn.hook_v", lambda v, hook: v + shift)]):
        _, moved = model.run_with_cache(tokens)
    z, z_moved = clean["blocks.0.attn.hook_z"], moved["blocks.0.attn.hook_z"]
    assert float((z_moved - z).abs().max()) > 1.0  # z itself moves ...
    to_flat = lambda t: t.reshape(-1, 16).to(DTYPE)
    sae64 = sae.to(DTYPE)
    change = (sae64.encode(to_flat(z_moved)) - sae64.encode(to_flat(z))).abs().max()
    assert float(change) <= 1e-4 * float(sae64.encode(to_flat(z)).abs().max())  # ... but no feature reads it


LM = __import__("pathlib").Path(__file__).resolve().parents[1] / "checkpoints" / "lm-bilinear"


@pytest.mark.skipif(not (LM / "transcoders" / "config.json").is_file(), reason="lm-bilinear dictionaries not shipped")
def test_cli_on_shipped_lm_dictionaries(run_cli):
    import json

    from interp.models.dictionaries import load_dictionaries

    code, out, err = run_cli("harmless", LM, "--transcoders", LM / "transcoders", "--layer", "0", "--magnitude", "1",
                             "--json")
    assert code == 0, err
    result = json.loads(out)
    w_enc = load_dictionaries(LM / "transcoders")[0].W_enc.detach().double()
    rank = int(torch.linalg.matrix_rank(w_enc.T))
    (space,) = result["inputs"]
    assert space["rank"] == rank and space["null_dimension"] == w_enc.shape[0] - rank
    assert result["exact"] is (rank < w_enc.shape[0])
    assert result["max_abs_feature"] > 0 and result["n_activations"] > 0
    code, out, err = run_cli("harmless", LM, "--layer", "99", "--json")
    assert code == 2 and out == "" and "no dictionary for layer 99" in err and len(err.strip().splitlines()) == 1
