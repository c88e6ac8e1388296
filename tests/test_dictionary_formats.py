"""One loader for the dictionary layouts people publish: ours, SAE-Lens folders (any version), circuit-tracer sets.

Every file here is written by the test with the key names, shapes and config fields the libraries define
(SAE-Lens 6: `cfg.json` as `SAEConfig.to_dict` writes it + `sae_weights.safetensors` with W_enc [d_in, d_sae],
W_dec [d_sae, d_out], W_skip [d_out, d_in]; SAE-Lens < 6: `hook_point`, `hook_point_layer`, `activation_fn_str`, no
`sae_lens_version`; circuit-tracer: `config.yaml` with `feature_input_hook` / `feature_output_hook` / `transcoders`,
per-layer safetensors with W_enc [d_sae, d_in] (F.linear), W_dec [d_sae, d_out], optional
`activation_function.threshold`, `W_skip` [d_out, d_in] applied as x @ W_skip.T, `k`). Each loaded dictionary is
checked against a hand-written computation on the raw tensors, then a graph is built on it.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import save_file
from sae_lens import SAE

from graph_helpers import incoming_sums, tiny_dictionaries, tiny_model
from interp.errors import InterpError
from interp.graph.attribution import attribute
from interp.graph.replacement import ReplacementModel
from interp.models.dictionaries import check_dictionaries_fit, describe_dictionaries, load_dictionaries
from interp.models.dictionary_formats import DictionaryInfo, detect_layout

D, D_SAE, K = 16, 24, 5
TOKENS = torch.tensor([0, 3, 5, 7, 3, 5, 9, 11, 4])
TRANSCODER_ARCHS = ["transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder",
                    "topk_transcoder"]
SAE_ARCHS = ["standard", "jumprelu", "topk"]


def rand(gen, *shape, scale=0.3):
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale


# ------------------------------------------------------------------------------------------- reference maths


def ref_transcoder(t, x, arch, k=K):
    """SAE-Lens orientation: W_enc [d_in, d_sae], W_dec [d_sae, d_out], W_skip [d_out, d_in]."""
    pre = x @ t["W_enc"] + t["b_enc"]
    if "jumprelu" in arch:
        acts = torch.relu(pre) * (pre > t["threshold"])
    elif "topk" in arch:
        top = pre.topk(k, dim=-1).indices
        acts = torch.zeros_like(pre).scatter(-1, top, pre.gather(-1, top).relu())
    else:
        acts = torch.relu(pre)
    out = acts @ t["W_dec"] + t["b_dec"]
    if "W_skip" in t:
        out = out + x @ t["W_skip"].T
    return acts, out


def ref_sae(t, x, arch, apply_b_dec_to_input=True, k=K):
    pre = (x - t["b_dec"] * apply_b_dec_to_input) @ t["W_enc"] + t["b_enc"]
    if arch == "jumprelu":
        acts = torch.relu(pre) * (pre > t["threshold"])
    elif arch == "topk":
        top = pre.topk(k, dim=-1).indices
        acts = torch.zeros_like(pre).scatter(-1, top, pre.gather(-1, top).relu())
    else:
        acts = torch.relu(pre)
    return acts, acts @ t["W_dec"] + t["b_dec"]


def ref_circuit_tracer(t, x, activation):
    """circuit-tracer's SingleLayerTranscoder on its stored tensors: F.linear encoder (W_enc [d_sae, d_in]),
    JumpReLU x * (x > threshold), TopK keeping the raw top-k values, decode acts @ W_dec + b_dec + x @ W_skip.T."""
    pre = x @ t["W_enc"].T + t["b_enc"]
    if activation == "jumprelu":
        acts = pre * (pre > t["activation_function.threshold"])
    elif activation == "topk":
        top = pre.topk(int(t["k"]), dim=-1).indices
        acts = torch.zeros_like(pre).scatter(-1, top, pre.gather(-1, top))
    else:
        acts = torch.relu(pre)
    out = acts @ t["W_dec"] + t["b_dec"]
    if "W_skip" in t:
        out = out + x @ t["W_skip"].T
    return acts, out


def check_against(sae, ref_acts, ref_out, x):
    with torch.no_grad():
        acts = sae.encode(x)
        acts = acts.to_dense() if acts.is_sparse else acts
        out = sae(x)
    torch.testing.assert_close(acts, ref_acts)
    torch.testing.assert_close(out, ref_out)


# ------------------------------------------------------------------------------------------- file writers


def transcoder_tensors(gen, arch, d_in=D, d_sae=D_SAE, d_out=D):
    t = {"W_enc": rand(gen, d_in, d_sae), "b_enc": rand(gen, d_sae, scale=0.1), "W_dec": rand(gen, d_sae, d_out),
         "b_dec": rand(gen, d_out, scale=0.1)}
    if "jumprelu" in arch:
        t["threshold"] = torch.rand(d_sae, generator=gen, dtype=torch.float64) * 0.2
    if "skip" in arch:
        t["W_skip"] = rand(gen, d_out, d_in, scale=0.1)
    return t


def sae_tensors(gen, arch, d_in=D, d_sae=D_SAE):
    t = {"W_enc": rand(gen, d_in, d_sae), "b_enc": rand(gen, d_sae, scale=0.1), "W_dec": rand(gen, d_sae, d_in),
         "b_dec": rand(gen, d_in, scale=0.1)}
    if arch == "jumprelu":
        t["threshold"] = torch.rand(d_sae, generator=gen, dtype=torch.float64) * 0.2
    return t


def sae_lens_6_cfg(arch, hook_name, hook_name_out=None, d_in=D, d_sae=D_SAE, d_out=D, **extra):
    """cfg.json as SAE-Lens 6's `SAEConfig.to_dict` writes it."""
    metadata = {"sae_lens_version": "6.54.12", "sae_lens_training_version": "6.54.12", "model_name": "tiny",
                "hook_name": hook_name}
    cfg = {"d_in": d_in, "d_sae": d_sae, "dtype": "float64", "device": "cpu", "apply_b_dec_to_input": False,
           "normalize_activations": "none", "reshape_activations": "none", "metadata": metadata,
           "architecture": arch, **extra}
    if "transcoder" in arch:
        metadata["hook_name_out"] = hook_name_out
        cfg["d_out"] = d_out
    if "topk" in arch:
        cfg["k"] = K
    if arch == "topk":
        cfg["rescale_acts_by_decoder_norm"] = False
    return cfg


def write_sae_lens(folder, cfg, tensors):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "sae_weights.safetensors"))
    return folder


def circuit_tracer_tensors(gen, activation, skip=False, d_sae=D_SAE):
    """circuit-tracer's `SingleLayerTranscoder.to_safetensors` keys and orientation."""
    t = {"W_enc": rand(gen, d_sae, D), "W_dec": rand(gen, d_sae, D), "b_enc": rand(gen, d_sae, scale=0.1),
         "b_dec": rand(gen, D, scale=0.1)}
    if activation == "jumprelu":
        t["activation_function.threshold"] = torch.rand(d_sae, generator=gen, dtype=torch.float64) * 0.2
    if activation == "topk":
        t["k"] = torch.tensor(K)
        t["b_enc"] -= 1.0          # some of the k kept pre-activations are negative: circuit-tracer keeps them
    if skip:
        t["W_skip"] = rand(gen, D, D, scale=0.1)
    return t


# ------------------------------------------------------------------------------------------- graph invariant


def assert_graph_invariant(rep):
    """For every logit and feature node: incoming edges + constant terms == its value (tests/test_graph_core.py)."""
    graph = attribute(rep, TOKENS, batch_size=16)
    snap = rep.snapshot(TOKENS)
    checked = 0
    for j, total, value in incoming_sums(rep, graph, snap):
        assert total == pytest.approx(value, rel=1e-4, abs=1e-8)
        checked += 1
    assert graph.n_logits >= 1 and checked == graph.n_features + graph.n_logits
    return graph


def graph_on(transcoders, attn_saes=None):
    model = tiny_model()
    check_dictionaries_fit(model, transcoders)
    rep = ReplacementModel.build(model, transcoders, attn_saes, mode="full" if attn_saes else "transcoder-only")
    skips = [s.W_skip is not None for s in rep.sites if s.kind == "mlp"]
    assert skips == [hasattr(transcoders[layer], "W_skip") for layer in sorted(transcoders)]  # the engine sees W_skip
    return assert_graph_invariant(rep)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


# ------------------------------------------------------------------------------------------- SAE-Lens 6 folders


@pytest.mark.parametrize("arch", TRANSCODER_ARCHS)
def test_folder_of_sae_lens_transcoders_matches_the_reference_and_builds_a_graph(arch, tmp_path):
    gen = torch.Generator().manual_seed(1)
    raw = {}
    for layer, read in ((0, "ln2.hook_normalized"), (1, "hook_resid_mid")):
        raw[layer] = transcoder_tensors(gen, arch)
        # folder names say nothing: the layer comes from metadata.hook_name
        write_sae_lens(tmp_path / f"tc_{'ab'[layer]}",
                       sae_lens_6_cfg(arch, f"blocks.{layer}.{read}", f"blocks.{layer}.hook_mlp_out"), raw[layer])
    assert detect_layout(tmp_path) == "sae-lens-folders"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    dicts = load_dictionaries(tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before   # nothing written
    assert sorted(dicts) == [0, 1]
    x = rand(gen, 7, D, scale=1.0)
    for layer, sae in dicts.items():
        assert sae.cfg.architecture() == arch and not sae.cfg.apply_b_dec_to_input
        assert sae.W_enc.dtype == torch.float64
        check_against(sae, *ref_transcoder(raw[layer], x, arch), x)
        plain = SAE.load_from_disk(tmp_path / f"tc_{'ab'[layer]}")       # the files are SAE-Lens' own format
        torch.testing.assert_close(plain(x), sae(x))
    assert dicts[0].cfg.metadata.hook_name == "blocks.0.ln2.hook_normalized"
    assert dicts[1].cfg.metadata.hook_name == "blocks.1.hook_resid_mid"
    assert [d.writes for d in describe_dictionaries(dicts)] == ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
    graph_on(dicts)


@pytest.mark.parametrize("arch", SAE_ARCHS)
def test_sae_lens_attention_saes_match_the_reference_and_build_a_full_graph(arch, tmp_path, model):
    gen = torch.Generator().manual_seed(2)
    raw = {}
    for layer in (0, 1):
        raw[layer] = sae_tensors(gen, arch)
        cfg = sae_lens_6_cfg(arch, f"blocks.{layer}.hook_attn_out")
        cfg["apply_b_dec_to_input"] = layer == 0
        write_sae_lens(tmp_path / f"layer_{layer}", cfg, raw[layer])
    saes = load_dictionaries(tmp_path)
    x = rand(gen, 7, D, scale=1.0)
    for layer, sae in saes.items():
        assert sae.cfg.architecture() == arch and sae.cfg.metadata.hook_name == f"blocks.{layer}.hook_attn_out"
        check_against(sae, *ref_sae(raw[layer], x, arch, apply_b_dec_to_input=layer == 0), x)
    info = describe_dictionaries(saes)[0]
    assert (info.kind, info.reads, info.writes, info.d_out, info.skip) == ("sae", "blocks.0.hook_attn_out",
                                                                           "blocks.0.hook_attn_out", D, False)
    transcoders, _ = tiny_dictionaries(model)
    graph_on(transcoders, attn_saes=saes)


def test_single_sae_lens_folder_loads_as_its_layer(tmp_path):
    gen = torch.Generator().manual_seed(3)
    raw = transcoder_tensors(gen, "transcoder")
    folder = write_sae_lens(tmp_path / "anything", sae_lens_6_cfg("transcoder", "blocks.1.ln2.hook_normalized",
                                                                  "blocks.1.hook_mlp_out"), raw)
    assert detect_layout(folder) == "sae-lens"
    for path in (folder, folder / "cfg.json"):
        dicts = load_dictionaries(path)
        assert list(dicts) == [1]
        x = rand(gen, 3, D)
        check_against(dicts[1], *ref_transcoder(raw, x, "transcoder"), x)


def test_our_layout_still_loads_with_its_config(tmp_path, model):
    transcoders, _ = tiny_dictionaries(model)
    for layer, tc in transcoders.items():
        tc.save_model(str(tmp_path / f"layer_{layer}"))
    (tmp_path / "config.json").write_text(json.dumps({"kind": "dictionaries", "type": "transcoder", "model": "..",
                                                      "layers": [0, 1]}))
    assert detect_layout(tmp_path) == "interp"
    dicts = load_dictionaries(tmp_path)
    x = torch.randn(4, D, dtype=torch.float64)
    for layer in (0, 1):
        torch.testing.assert_close(dicts[layer](x), transcoders[layer](x))
    graph_on(dicts)


# ------------------------------------------------------------------------------------------- older SAE-Lens configs


def legacy_transcoder_cfg(layer, **extra):
    """A transcoder cfg.json without any SAE-Lens version, with pre-6 field names and no d_out."""
    return {"architecture": "transcoder", "d_in": D, "d_sae": D_SAE, "dtype": "float64", "device": "cpu",
            "hook_point": f"blocks.{layer}.ln2.hook_normalized", "hook_point_layer": layer,
            "hook_point_out": f"blocks.{layer}.hook_mlp_out", "activation_fn_str": "relu", "context_size": 128,
            "model_name": "tiny", "normalize_activations": False, **extra}


def test_config_without_sae_lens_version_loads_as_transcoder_without_apply_b_dec_to_input(tmp_path):
    gen = torch.Generator().manual_seed(4)
    raw = {}
    for layer in (0, 1):
        raw[layer] = transcoder_tensors(gen, "transcoder")
        write_sae_lens(tmp_path / f"layer_{layer}", legacy_transcoder_cfg(layer), raw[layer])
    with pytest.raises(ValueError, match="apply_b_dec_to_input"):
        SAE.load_from_disk(tmp_path / "layer_0")          # what plain SAE-Lens makes of it
    before = (tmp_path / "layer_0" / "cfg.json").read_text()
    dicts = load_dictionaries(tmp_path)
    assert (tmp_path / "layer_0" / "cfg.json").read_text() == before
    x = rand(gen, 5, D, scale=1.0)
    for layer, tc in dicts.items():
        assert tc.cfg.architecture() == "transcoder" and tc.cfg.apply_b_dec_to_input is False
        assert tc.cfg.d_out == D and tc.cfg.normalize_activations == "none"
        assert tc.cfg.metadata.hook_name == f"blocks.{layer}.ln2.hook_normalized"
        assert tc.cfg.metadata.hook_name_out == f"blocks.{layer}.hook_mlp_out"
        check_against(tc, *ref_transcoder(raw[layer], x, "transcoder"), x)
    graph_on(dicts)


def test_legacy_transcoder_fields_are_filled_in(tmp_path):
    """Only hook_point + hook_point_layer: d_out from W_dec, output hook the layer's MLP output; relative hook names."""
    gen = torch.Generator().manual_seed(5)
    raw = transcoder_tensors(gen, "skip_transcoder")
    cfg = {"architecture": "transcoder", "d_in": D, "d_sae": D_SAE, "dtype": "float64", "hook_point": "hook_resid_mid",
           "hook_point_layer": 1, "d_out": None}
    write_sae_lens(tmp_path / "tc", cfg, raw)
    (layer, tc), = load_dictionaries(tmp_path / "tc").items()
    assert layer == 1 and tc.cfg.architecture() == "skip_transcoder"       # W_skip in the weights decides it
    assert tc.cfg.metadata.hook_name == "blocks.1.hook_resid_mid"
    assert tc.cfg.metadata.hook_name_out == "blocks.1.hook_mlp_out"
    x = rand(gen, 5, D)
    check_against(tc, *ref_transcoder(raw, x, "skip_transcoder"), x)


def test_pre_6_saes_load_with_their_old_field_names(tmp_path):
    gen = torch.Generator().manual_seed(6)
    x = rand(gen, 6, D, scale=1.0)
    # a standard SAE of SAE-Lens 3-5: no architecture, hook_point, apply_b_dec_to_input implied True, scaling_factor 1
    raw = sae_tensors(gen, "standard")
    write_sae_lens(tmp_path / "std", {"d_in": D, "d_sae": D_SAE, "dtype": "float64", "hook_point": "blocks.0.hook_attn_out",
                                      "hook_point_layer": 0, "activation_fn_str": "relu"},
                   {**raw, "scaling_factor": torch.ones(D_SAE, dtype=torch.float64)})
    (_, sae), = load_dictionaries(tmp_path / "std").items()
    assert sae.cfg.architecture() == "standard" and sae.cfg.apply_b_dec_to_input
    check_against(sae, *ref_sae(raw, x, "standard", apply_b_dec_to_input=True), x)
    # topk as SAE-Lens 4-5 wrote it: architecture "standard", activation_fn "topk" with kwargs
    raw = sae_tensors(gen, "topk")
    write_sae_lens(tmp_path / "topk", {"architecture": "standard", "d_in": D, "d_sae": D_SAE, "dtype": "float64",
                                       "hook_name": "blocks.1.hook_attn_out", "hook_layer": 1,
                                       "activation_fn": "topk", "activation_fn_kwargs": {"k": K},
                                       "apply_b_dec_to_input": False}, raw)
    (layer, sae), = load_dictionaries(tmp_path / "topk").items()
    assert layer == 1 and sae.cfg.architecture() == "topk" and sae.cfg.k == K
    check_against(sae, *ref_sae(raw, x, "topk", apply_b_dec_to_input=False), x)
    # jumprelu with log_threshold, and a scaling_factor that is folded into W_dec
    raw = sae_tensors(gen, "jumprelu")
    scale = torch.rand(D_SAE, generator=gen, dtype=torch.float64) + 0.5
    stored = {k: v for k, v in raw.items() if k != "threshold"}
    write_sae_lens(tmp_path / "jr", {"architecture": "jumprelu", "d_in": D, "d_sae": D_SAE, "dtype": "float64",
                                     "hook_name": "blocks.0.hook_attn_out", "apply_b_dec_to_input": False,
                                     "finetuning_scaling_factor": True},
                   {**stored, "log_threshold": raw["threshold"].log(), "scaling_factor": scale})
    (_, sae), = load_dictionaries(tmp_path / "jr").items()
    acts, _ = ref_sae(raw, x, "jumprelu", apply_b_dec_to_input=False)
    check_against(sae, acts, (acts * scale) @ raw["W_dec"] + raw["b_dec"], x)


# ------------------------------------------------------------------------------------------- circuit-tracer


@pytest.mark.parametrize("activation,skip,read", [("relu", False, "hook_resid_mid"),
                                                  ("jumprelu", False, "ln2.hook_normalized"),
                                                  ("relu", True, "ln2.hook_normalized"),
                                                  ("jumprelu", True, "hook_resid_mid"),
                                                  ("topk", False, "ln2.hook_normalized")])
def test_circuit_tracer_set_matches_its_own_maths_and_builds_a_graph(activation, skip, read, tmp_path):
    gen = torch.Generator().manual_seed(7)
    raw = {layer: circuit_tracer_tensors(gen, activation, skip) for layer in (0, 1)}
    for layer, t in raw.items():
        save_file(t, str(tmp_path / f"layer_{layer}.safetensors"))
    config = {"model_name": "tiny", "model_kind": "transcoder_set", "feature_input_hook": read,
              "feature_output_hook": "hook_mlp_out", "scan": "tiny-test",
              "transcoders": ["layer_0.safetensors", str(tmp_path / "layer_1.safetensors")]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert detect_layout(tmp_path) == "circuit-tracer"
    dicts = load_dictionaries(tmp_path)
    expected = {("relu", False): "transcoder", ("relu", True): "skip_transcoder",
                ("jumprelu", False): "jumprelu_transcoder", ("jumprelu", True): "jumprelu_skip_transcoder",
                ("topk", False): "topk_transcoder"}[activation, skip]
    x = rand(gen, 7, D, scale=1.0)
    for layer, tc in dicts.items():
        assert tc.cfg.architecture() == expected and tc.W_enc.shape == (D, D_SAE)
        assert tc.cfg.metadata.hook_name == f"blocks.{layer}.{read}"
        assert tc.cfg.metadata.hook_name_out == f"blocks.{layer}.hook_mlp_out"
        assert tc.cfg.metadata.model_name == "tiny"
        check_against(tc, *ref_circuit_tracer(raw[layer], x, activation), x)
    info = describe_dictionaries(dicts)[1]
    assert isinstance(info, DictionaryInfo) and info.skip == skip and info.kind == "transcoder"
    assert (info.d_in, info.d_sae, info.d_out) == (D, D_SAE, D) and "\n" not in info.line()
    dicts[1].save_model(str(tmp_path / "saved" / "layer_1"))     # converted once, saved as SAE-Lens, same maths
    resaved = load_dictionaries(tmp_path / "saved")
    check_against(resaved[1], *ref_circuit_tracer(raw[1], x, activation), x)
    graph_on(dicts)


def test_circuit_tracer_first_format_list_of_layer_filepath_with_transposed_decoder(tmp_path):
    """circuit-tracer's first release: transcoders: [{id, layer, filepath}], W_dec stored [d_model, d_sae]."""
    gen = torch.Generator().manual_seed(8)
    raw = {}
    for layer in (1, 0):
        raw[layer] = circuit_tracer_tensors(gen, "relu", skip=False, d_sae=D)    # square: the format decides
        stored = {**raw[layer], "W_dec": raw[layer]["W_dec"].T.contiguous()}
        save_file(stored, str(tmp_path / f"tc{layer}.safetensors"))
    config = {"model_name": "org/tiny", "feature_input_hook": "hook_resid_mid", "feature_output_hook": "hook_mlp_out",
              "transcoders": [{"id": f"tc{layer}", "layer": layer, "filepath": f"tc{layer}.safetensors"}
                              for layer in (1, 0)]}
    (tmp_path / "my-set.yml").write_text(yaml.safe_dump(config))
    dicts = load_dictionaries(tmp_path / "my-set.yml")
    x = rand(gen, 5, D, scale=1.0)
    for layer, tc in dicts.items():
        check_against(tc, *ref_circuit_tracer(raw[layer], x, "relu"), x)
    graph_on(dicts)


def test_circuit_tracer_cache_layout_json_config_and_gemma_scope_npz(tmp_path):
    gen = torch.Generator().manual_seed(9)
    # cache layout: config.yaml without a transcoders list, layer_L.safetensors beside it
    cache = tmp_path / "cache"
    cache.mkdir()
    raw = {layer: circuit_tracer_tensors(gen, "jumprelu") for layer in (0, 1)}
    for layer, t in raw.items():
        save_file(t, str(cache / f"layer_{layer}.safetensors"))
    (cache / "config.yaml").write_text(yaml.safe_dump({"model_kind": "transcoder_set", "scan": "s",
                                                       "feature_input_hook": "ln2.hook_normalized",
                                                       "feature_output_hook": "hook_mlp_out"}))
    x = rand(gen, 5, D, scale=1.0)
    dicts = load_dictionaries(cache)
    for layer, tc in dicts.items():
        check_against(tc, *ref_circuit_tracer(raw[layer], x, "jumprelu"), x)
    # a JSON config, activation topk with k in the config; Gemma Scope's .npz (W_enc [d_in, d_sae], "threshold")
    js = tmp_path / "js"
    js.mkdir()
    topk = circuit_tracer_tensors(gen, "topk")
    save_file({k: v for k, v in topk.items() if k != "k"}, str(js / "a.safetensors"))
    import numpy as np

    gemma = circuit_tracer_tensors(gen, "jumprelu")
    np.savez(js / "b.npz", W_enc=gemma["W_enc"].T.numpy(), W_dec=gemma["W_dec"].numpy(),
             b_enc=gemma["b_enc"].numpy(), b_dec=gemma["b_dec"].numpy(),
             threshold=gemma["activation_function.threshold"].numpy())
    (js / "config.json").write_text(json.dumps({"feature_input_hook": "ln2.hook_normalized",
                                                "feature_output_hook": "hook_mlp_out", "activation": "topk", "k": K,
                                                "transcoders": ["a.safetensors"]}))
    dicts = load_dictionaries(js)                                   # config.json with feature_input_hook
    assert list(dicts) == [0] and dicts[0].cfg.architecture() == "topk_transcoder"
    check_against(dicts[0], *ref_circuit_tracer(topk, x, "topk"), x)
    (js / "set.json").write_text(json.dumps({"feature_input_hook": "ln2.hook_normalized",
                                             "feature_output_hook": "hook_mlp_out",
                                             "transcoders": ["b.npz", "b.npz"]}))
    dicts = load_dictionaries(js / "set.json")
    check_against(dicts[1], *ref_circuit_tracer(gemma, x, "jumprelu"), x)


# ------------------------------------------------------------------------------------------- fit and bad input


def test_check_dictionaries_fit_refuses_another_models_circuit_tracer_set(tmp_path, model):
    gen = torch.Generator().manual_seed(10)
    t = {"W_enc": rand(gen, D_SAE, 8), "W_dec": rand(gen, D_SAE, 8), "b_enc": rand(gen, D_SAE), "b_dec": rand(gen, 8)}
    save_file(t, str(tmp_path / "layer_0.safetensors"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"feature_input_hook": "hook_resid_mid",
                                                          "feature_output_hook": "hook_mlp_out"}))
    dicts = load_dictionaries(tmp_path)
    assert dicts[0].cfg.d_in == 8
    with pytest.raises(InterpError, match="widths"):
        check_dictionaries_fit(model, dicts)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"feature_input_hook": "hook_nothing",
                                                          "feature_output_hook": "hook_mlp_out"}))
    with pytest.raises(InterpError, match="hook"):
        check_dictionaries_fit(model, load_dictionaries(tmp_path))


def one_line_error(path, match):
    with pytest.raises(InterpError) as info:
        load_dictionaries(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert match in message, message
    return message


def test_bad_inputs_are_one_line_interp_errors_naming_the_file(tmp_path):
    gen = torch.Generator().manual_seed(11)
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(empty, "no recognisable dictionaries")
    (empty / "notes.txt").write_text("hello")
    one_line_error(empty, "no recognisable dictionaries")
    one_line_error(tmp_path / "nowhere", "not found")

    good = transcoder_tensors(gen, "transcoder")
    cfg = sae_lens_6_cfg("transcoder", "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out")
    unknown = write_sae_lens(tmp_path / "unknown", {**cfg, "architecture": "banana"}, good)
    assert str(unknown / "cfg.json") in one_line_error(unknown, "unknown SAE architecture 'banana'")
    gated = write_sae_lens(tmp_path / "gated", {**sae_lens_6_cfg("gated", "blocks.0.hook_attn_out")}, good)
    one_line_error(gated, "'gated' is not supported")

    wrong = write_sae_lens(tmp_path / "wrong", {**cfg, "d_in": 12}, good)
    message = one_line_error(wrong, "W_enc has shape [16, 24]")
    assert "sae_weights.safetensors" in message and "d_in=12" in message
    lacking = write_sae_lens(tmp_path / "lacking", cfg, {k: v for k, v in good.items() if k != "b_enc"})
    one_line_error(lacking, "lacks b_enc")

    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "cfg.json").write_text(json.dumps(cfg))
    assert str(missing / "sae_weights.safetensors") in one_line_error(missing, "weights not found")
    corrupt = write_sae_lens(tmp_path / "corrupt", cfg, good)
    (corrupt / "sae_weights.safetensors").write_bytes(b"not safetensors at all")
    one_line_error(corrupt, "not a safetensors file")
    badjson = write_sae_lens(tmp_path / "badjson", cfg, good)
    (badjson / "cfg.json").write_text("{nope")
    one_line_error(badjson, "not valid JSON")
    nolayer = write_sae_lens(tmp_path / "nolayer", {**cfg, "metadata": {"hook_name": "hook_resid_mid"}}, good)
    one_line_error(nolayer, "cannot tell its layer")

    twice = tmp_path / "twice"
    write_sae_lens(twice / "a", cfg, good)
    write_sae_lens(twice / "b", cfg, good)
    one_line_error(twice, "second dictionary for layer 0")
    ours = tmp_path / "ours"
    write_sae_lens(ours / "layer_0", cfg, good)
    (ours / "config.json").write_text(json.dumps({"kind": "dictionaries", "layers": [0, 0]}))
    one_line_error(ours, "repeats")
    (ours / "config.json").write_text(json.dumps({"kind": "dictionaries", "layers": [0, 1]}))
    one_line_error(ours, "layer_1")


def test_bad_circuit_tracer_sets_are_one_line_interp_errors(tmp_path):
    gen = torch.Generator().manual_seed(12)
    save_file(circuit_tracer_tensors(gen, "relu"), str(tmp_path / "l0.safetensors"))
    config = tmp_path / "config.yaml"

    def write(**settings):
        config.write_text(yaml.safe_dump({"feature_input_hook": "hook_resid_mid", "feature_output_hook": "hook_mlp_out",
                                          **settings}))

    write(transcoders=["l0.safetensors", "l1.safetensors"])
    assert str(tmp_path / "l1.safetensors") in one_line_error(tmp_path, "weights file not found")
    write(transcoders=[{"layer": 0, "filepath": "l0.safetensors"}, {"layer": 0, "filepath": "l0.safetensors"}])
    one_line_error(tmp_path, "lists layer 0 twice")
    write(transcoders=["hf://org/repo/layer_7.safetensors"])
    one_line_error(tmp_path, "Hugging Face hub")
    write(transcoders=["l0.safetensors"], model_kind="cross_layer_transcoder")
    one_line_error(tmp_path, "cross_layer_transcoder")
    config.write_text(yaml.safe_dump({"feature_output_hook": "hook_mlp_out", "transcoders": ["l0.safetensors"]}))
    one_line_error(config, "no feature_input_hook")
    config.write_text("feature_input_hook: [unclosed\n")
    one_line_error(config, "not valid YAML")
    t = circuit_tracer_tensors(gen, "relu")
    save_file({**t, "W_dec": rand(gen, D_SAE, D + 1)}, str(tmp_path / "bad.safetensors"))
    write(transcoders=["bad.safetensors"])
    assert str(tmp_path / "bad.safetensors") in one_line_error(tmp_path, "W_dec has shape [24, 17]")
    save_file({k: v for k, v in t.items() if k != "W_dec"}, str(tmp_path / "nodec.safetensors"))
    write(transcoders=["nodec.safetensors"])
    one_line_error(tmp_path, "lacks W_dec")
