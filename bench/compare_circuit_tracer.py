"""Parity check of our attribution-graph engine against circuit-tracer 0.5.0 (same model, same graph).

    .venv/bin/python bench/compare_circuit_tracer.py                        # lm-bilinear and lm-gelu
    .venv/bin/python bench/compare_circuit_tracer.py lm-gelu --json         # one JSON object on stdout
    .venv/bin/python bench/compare_circuit_tracer.py --probe --d-sae 6144 --k 16 --n-tokens 64 --cap 512
    .venv/bin/python bench/compare_circuit_tracer.py lm-gelu --pairs 5 \\
        --fixture tests/fixtures/circuit_tracer_lm-gelu.npz                 # also (re)writes the test fixture

Both engines build the same attribution graph (transcoder-only mode: per-layer transcoders
`blocks.L.ln2.hook_normalized -> blocks.L.hook_mlp_out`, attention passes signal linearly; unpruned
unless `--max-feature-nodes`/`--cap` is given) on the same model, transcoders and prompt tokens. Each
side runs in its own subprocess and its own venv, and they exchange data only through files in a
temporary folder:

- ours: `.venv/bin/python` (the `interp` package) loads the model and transcoders, then writes
  what circuit-tracer needs: `config.json` (the HookedTransformerConfig), `model.safetensors` (the
  TransformerLens state dict), `transcoder_L.safetensors` (effective weights, see below),
  `tokens.json`, `ref_logits.npy` (the real model's last-position logits, to check that both sides
  run the same model);
- circuit-tracer: `.venv-ct/bin/python` (circuit-tracer 0.5.0, installed there on first use with
  `python -m venv .venv-ct && .venv-ct/bin/pip install torch==2.13.0 && .venv-ct/bin/pip install
  circuit-tracer==0.5.0`) builds its `TransformerLensReplacementModel` from that config and state
  dict (as its `from_config` does: construct, here load the state dict, then
  `_configure_replacement_model(TranscoderSet)`), offline, and calls `circuit_tracer.attribute`.
  circuit-tracer is never imported by `interp`; this file imports only the standard library at the
  top, so that each venv can run it as a worker (`--worker ours|ct`).

Each worker loads once, then runs attribution whenever the driver asks (a line on its stdin), so
timings alternate ours / circuit-tracer in pairs (who goes first alternates too), after `--warmup`
untimed runs each; the time ratio is the median over pairs of ours / circuit-tracer, with
`torch.set_num_threads(--threads)` (and OMP/MKL_NUM_THREADS) in both. Peak RSS is each worker's
`resource.getrusage(RUSAGE_SELF).ru_maxrss` (whole process: loading included; the value just
before the first attribution is reported too).

Conventions aligned between the two engines:

- activation: our transcoders are SAE-Lens-style TopK (keep the k largest pre-activations, then
  ReLU); circuit-tracer's own `TopK` has no ReLU, so its side gets `TopKReLU` below, which is
  SAE-Lens' rule. Pre-activations are `x @ W_enc + b_enc` on both sides (our transcoders have
  `apply_b_dec_to_input=False`; anything else is refused).
- weights: our `Site` folds `rescale_acts_by_decoder_norm` into effective weights (W_enc × |W_dec
  row|, W_dec / |W_dec row|; see `Site.__post_init__` in interp/graph/replacement.py). The export
  writes the effective `site.W_enc`, `site.W_dec` (and `b_enc × |W_dec row|` when folded), so a
  feature's activation and decoder row are the ones our graph uses. circuit-tracer stores
  W_enc as [d_sae, d_model] (F.linear), so it gets the transpose.
- logit nodes: demeaned logits on both sides (our direction e_v − 1/V on the logits equals
  circuit-tracer's W_U[:, v] − mean_v' W_U[:, v'] on ln_final's output; b_U is a constant), the same
  top-logit rule (max_n_logits=10, cumulative probability 0.95).
- zero_bos: circuit-tracer always zeroes features and errors at position 0; ours runs with
  `zero_bos=True`. The token at position 0 must be the BOS (our tokenizer prepends it); the
  circuit-tracer side gets a stub tokenizer whose only special id is that token, so its
  `ensure_tokenized` does not prepend another one.
- batch size: the same `--batch-size` on both sides (forward copies and rows per backward pass).
- the lm-bilinear model uses TransformerLens activation "identity" with gated_mlp=True (registered
  by importing interp.models.lm); the circuit-tracer side registers the same identity in
  `transformer_lens.utilities.activation_functions.SUPPORTED_ACTIVATIONS` before building the
  config (the MLP output is replaced by the transcoder anyway).
- circuit-tracer 0.5.0 pins transformers<=4.57.3, so its venv has TransformerLens 3.2.1 where ours
  has 3.9.0; config fields the older version does not know are dropped (listed in the report) and
  `ref_logits` checks that the two builds compute the same model.

Node mapping (both sides are written as the same arrays: kinds, layers, positions, indices):
circuit-tracer's selected active features (layer, pos, feature) are our "mlp" nodes; its error
nodes (layer, pos) our "mlp_error" nodes; its token nodes (pos, token id) our "embedding" nodes
(layer −1); its logit targets (vocab id) our "logit" nodes (layer n_layers, last position). The node
sets must be equal; the adjacency A[target, source] is compared after aligning circuit-tracer's
order onto ours, as max |ΔA| / max |A|.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS_PY = ROOT / ".venv" / "bin" / "python"
CT_VENV = ROOT / ".venv-ct"
CT_PY = CT_VENV / "bin" / "python"
CT_VERSION = "0.5.0"
TORCH_VERSION = "2.13.0"
SHIPPED = ("lm-bilinear", "lm-gelu")
KIND_NAMES = ("mlp", "mlp_error", "embedding", "logit")   # codes 0..3 in the saved node arrays


# ----------------------------------------------------------------------------- circuit-tracer venv

def ct_installed_version() -> str | None:
    if not CT_PY.exists():
        return None
    r = subprocess.run([str(CT_PY), "-c", "import importlib.metadata as m; print(m.version('circuit-tracer'))"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_ct_venv(log=print) -> None:
    """Create .venv-ct with torch==2.13.0 (CPU build, first) and circuit-tracer==0.5.0, once."""
    if ct_installed_version() == CT_VERSION:
        return
    log(f"installing circuit-tracer {CT_VERSION} into {CT_VENV} (once; a few minutes)")
    if not CT_PY.exists():
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(CT_VENV)], check=True)
    pip = [str(CT_PY), "-m", "pip", "install", "-q"]
    # torch first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
    subprocess.run(pip + [f"torch=={TORCH_VERSION}"], check=True)
    subprocess.run(pip + [f"circuit-tracer=={CT_VERSION}"], check=True)
    found = ct_installed_version()
    if found != CT_VERSION:
        raise SystemExit(f"circuit-tracer install in {CT_VENV} failed (found {found!r})")


# ----------------------------------------------------------------------------- worker plumbing

def _protocol_stream():
    """Keep the real stdout for protocol lines; send everything else printed on stdout to stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _serve(proto, run_once, ready: dict) -> None:
    """READY <json>, then for each `run <i>` line: RESULT <json> (seconds, peak RSS); `quit` ends."""
    ready = dict(ready, peak_rss_mib_before=_peak_rss_mib())
    proto.write("READY " + json.dumps(ready) + "\n")
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "run":
            i = int(cmd[1])
            seconds = run_once(save=(i == 0))
            proto.write("RESULT " + json.dumps({"i": i, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}) + "\n")
    proto.write("BYE " + json.dumps({"peak_rss_mib": _peak_rss_mib()}) + "\n")


def _save_graph(path: Path, adjacency, kinds, layers, positions, indices, activations, tokens, **extra) -> None:
    import numpy as np

    np.savez(path, adjacency=np.asarray(adjacency, dtype=np.float32),
             kinds=np.asarray(kinds, dtype=np.int8), layers=np.asarray(layers, dtype=np.int32),
             positions=np.asarray(positions, dtype=np.int32), indices=np.asarray(indices, dtype=np.int32),
             activations=np.asarray(activations, dtype=np.float32), tokens=np.asarray(tokens, dtype=np.int32),
             kind_names=np.array(KIND_NAMES), **extra)


# ----------------------------------------------------------------------------- our side

def worker_ours(args) -> None:
    proto = _protocol_stream()
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from safetensors.torch import save_file

    from interp.graph.attribution import attribute
    from interp.graph.replacement import ReplacementModel
    from interp.models.lm import config_to_json

    out = Path(args.dir)
    if args.probe:
        sys.path.insert(0, str(ROOT / "bench"))
        from scale_probe import ProbeShape, build_probe, probe_tokens

        shape = ProbeShape(d_sae=args.d_sae, k=args.k)
        model, transcoders = build_probe(shape)
        rep = ReplacementModel.build(model, transcoders, None, mode="transcoder-only")
        tokens = probe_tokens(shape, args.n_tokens)
        prompt = f"probe tokens (seed {shape.seed}, n={args.n_tokens})"
    else:
        from interp.graph.setup import load_setup

        setup = load_setup(ROOT / "checkpoints" / args.target, mode="transcoder-only")
        rep = setup.replacement
        prompt = args.prompt
        tokens = setup.encode(prompt)
    model = rep.model

    # ---- export for circuit-tracer
    (out / "config.json").write_text(json.dumps(config_to_json(model.cfg)))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
    save_file(state, str(out / "model.safetensors"))
    del state
    hooks = set()
    for site in rep.sites:
        sae = site.sae
        if getattr(sae.cfg, "apply_b_dec_to_input", False):
            raise SystemExit(f"transcoder of layer {site.layer} subtracts b_dec from its input; not supported here")
        b_enc = sae.b_enc.detach()
        if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):   # Site folded the decoder norm
            b_enc = b_enc * sae.W_dec.detach().norm(dim=-1)
        save_file({"W_enc": site.W_enc.contiguous(), "W_dec": site.W_dec.contiguous(),
                   "b_enc": b_enc.contiguous(), "b_dec": site.b_dec.contiguous()},
                  str(out / f"transcoder_{site.layer}.safetensors"))
        hooks.add((site.read_hook.split(".", 2)[2], site.write_hook.split(".", 2)[2]))
    if len(hooks) != 1 or any(s.kind != "mlp" for s in rep.sites):
        raise SystemExit(f"need one transcoder per layer with the same hooks, got {sorted(hooks)}")
    (read_hook, write_hook), = hooks
    with torch.no_grad():
        ref = model(tokens[None])[0, -1]
    np.save(out / "ref_logits.npy", ref.float().numpy())
    info = {"tokens": tokens.tolist(), "prompt": prompt, "n_layers": model.cfg.n_layers,
            "k": [int(s.sae.cfg.k) for s in rep.sites], "d_sae": rep.sites[0].d_sae,
            "feature_input_hook": read_hook, "feature_output_hook": write_hook}
    (out / "tokens.json").write_text(json.dumps(info))

    def run_once(save: bool) -> float:
        start = time.perf_counter()
        graph = attribute(rep, tokens, max_feature_nodes=args.cap, batch_size=args.batch_size, zero_bos=True)
        seconds = time.perf_counter() - start
        if save:
            codes = {name: i for i, name in enumerate(KIND_NAMES)}
            n = graph.nodes
            _save_graph(out / "ours.npz", graph.adjacency.float().numpy(), [codes[x.kind] for x in n],
                        [x.layer for x in n], [x.pos for x in n], [x.index for x in n],
                        [x.activation if x.is_feature else float("nan") for x in n], graph.tokens,
                        logit_weights=np.asarray(graph.logit_weights, dtype=np.float32))
        return seconds

    _serve(proto, run_once, {"side": "ours", "n_tokens": len(info["tokens"])})


# ----------------------------------------------------------------------------- circuit-tracer side

def worker_ct(args) -> None:
    proto = _protocol_stream()
    import dataclasses
    import importlib.metadata

    import numpy as np
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(args.threads)
    from transformer_lens.utilities import activation_functions

    # lm-bilinear's MLP activation (gated_mlp=True, act_fn="identity"), as interp.models.lm registers it.
    activation_functions.SUPPORTED_ACTIVATIONS.setdefault("identity", lambda x: x)
    from transformer_lens import HookedTransformerConfig

    from circuit_tracer import attribute
    from circuit_tracer.replacement_model.replacement_model_transformerlens import TransformerLensReplacementModel
    from circuit_tracer.transcoder import TranscoderSet
    from circuit_tracer.transcoder.single_layer_transcoder import SingleLayerTranscoder

    class TopKReLU(torch.nn.Module):
        """SAE-Lens' TopK: keep the k largest pre-activations, ReLU them, zero the rest."""

        def __init__(self, k: int):
            super().__init__()
            self.k = k

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values, indices = torch.topk(x, k=self.k, dim=-1, sorted=False)
            return torch.zeros_like(x).scatter(-1, indices, values.relu())

    class StubTokenizer:
        """What circuit-tracer asks of a tokenizer when given token ids: the BOS is already there."""

        def __init__(self, bos: int, d_vocab: int):
            self.bos_token_id = bos
            self.pad_token_id = self.eos_token_id = None
            self.all_special_ids = [bos]
            self.vocab_size = d_vocab
            self.padding_side = "right"      # read by HookedTransformer.forward

        def decode(self, ids) -> str:
            ids = [ids] if isinstance(ids, int) else list(ids)
            return " ".join(str(int(i)) for i in ids)

    src = Path(args.dir)
    info = json.loads((src / "tokens.json").read_text())
    raw = json.loads((src / "config.json").read_text())
    known = {f.name for f in dataclasses.fields(HookedTransformerConfig) if f.init}
    dropped = {k: v for k, v in raw.items() if k not in known}
    kw = {k: v for k, v in raw.items() if k in known}
    if isinstance(kw.get("dtype"), str):
        kw["dtype"] = getattr(torch, kw["dtype"])
    cfg = HookedTransformerConfig(**kw)
    model = TransformerLensReplacementModel(cfg)          # what from_config does, with our weights loaded
    state = load_file(str(src / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith((".mask", ".IGNORE"))]
    if missing or unexpected:
        raise SystemExit(f"state dict does not fit TransformerLens here: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    del state
    transcoders = {}
    for layer in range(cfg.n_layers):
        w = load_file(str(src / f"transcoder_{layer}.safetensors"))
        d_sae = w["W_enc"].shape[1]
        tc = SingleLayerTranscoder(cfg.d_model, d_sae, TopKReLU(info["k"][layer]), layer,
                                   device=torch.device("cpu"), dtype=torch.float32)
        with torch.no_grad():
            tc.W_enc.copy_(w["W_enc"].T)                  # circuit-tracer: [d_sae, d_model]
            tc.W_dec.copy_(w["W_dec"])
            tc.b_enc.copy_(w["b_enc"])
            tc.b_dec.copy_(w["b_dec"])
        transcoders[layer] = tc
    tset = TranscoderSet(transcoders, feature_input_hook=info["feature_input_hook"],
                         feature_output_hook=info["feature_output_hook"], scan="interp-parity")
    model._configure_replacement_model(tset)
    model.eval()
    tokens = torch.tensor(info["tokens"], dtype=torch.long)
    model.tokenizer = StubTokenizer(int(tokens[0]), cfg.d_vocab)
    with torch.no_grad():
        logits = model(tokens[None])[0, -1]
    ref = torch.from_numpy(np.load(src / "ref_logits.npy"))
    logit_diff = float((logits - ref).abs().max() / ref.abs().max())

    def run_once(save: bool) -> float:
        start = time.perf_counter()
        graph = attribute(tokens, model, batch_size=args.batch_size, max_feature_nodes=args.cap, verbose=False)
        seconds = time.perf_counter() - start
        if save:
            n_layers, n_pos = cfg.n_layers, len(tokens)
            feats = graph.active_features[graph.selected_features]          # [n, 3] (layer, pos, feature)
            acts = graph.activation_values[graph.selected_features]
            vocab = [t.vocab_idx for t in graph.logit_targets]
            nf, nl = len(feats), len(vocab)
            kinds = [0] * nf + [1] * (n_layers * n_pos) + [2] * n_pos + [3] * nl
            layers = feats[:, 0].tolist() + [l for l in range(n_layers) for _ in range(n_pos)] + [-1] * n_pos \
                + [n_layers] * nl
            positions = feats[:, 1].tolist() + list(range(n_pos)) * n_layers + list(range(n_pos)) + [n_pos - 1] * nl
            indices = feats[:, 2].tolist() + [-1] * (n_layers * n_pos) + tokens.tolist() + vocab
            activations = acts.tolist() + [float("nan")] * (n_layers * n_pos + n_pos + nl)
            assert graph.adjacency_matrix.shape[0] == len(kinds)
            _save_graph(src / "ct.npz", graph.adjacency_matrix.float().numpy(), kinds, layers, positions, indices,
                        activations, tokens.tolist(),
                        logit_weights=graph.logit_probabilities.float().numpy(),
                        n_active_features=np.int64(graph.active_features.shape[0]))
        return seconds

    _serve(proto, run_once, {"side": "circuit-tracer", "circuit_tracer_version": importlib.metadata.version("circuit-tracer"),
                             "transformer_lens_version": importlib.metadata.version("transformer-lens"),
                             "dropped_config_fields": dropped, "max_rel_logit_diff": logit_diff})


# ----------------------------------------------------------------------------- driver

class Worker:
    def __init__(self, python: Path, side: str, args, target: str, tmp: Path):
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", side, "--dir", str(tmp),
               "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
        if args.cap is not None:
            cmd += ["--cap", str(args.cap)]
        if target == "probe":
            cmd += ["--probe", "--d-sae", str(args.d_sae), "--k", str(args.k), "--n-tokens", str(args.n_tokens)]
        else:
            cmd += ["--target", target, "--prompt", args.prompt_text[target]]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
        self.side = side
        self.log_path = tmp / f"{side}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, env=env, cwd=str(ROOT))

    def expect(self, word: str) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                self.log.flush()
                tail = self.log_path.read_text()[-3000:]
                raise SystemExit(f"{self.side} worker died (exit {self.proc.returncode}):\n{tail}")
            if line.startswith(word + " "):
                return json.loads(line[len(word) + 1:])

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def run(self, i: int) -> dict:
        self.send(f"run {i}")
        return self.expect("RESULT")

    def close(self) -> dict:
        self.send("quit")
        bye = self.expect("BYE")
        self.proc.wait()
        self.log.close()
        return bye


def node_keys(g) -> list[tuple]:
    kinds = [str(g["kind_names"][k]) for k in g["kinds"]]
    return list(zip(kinds, g["layers"].tolist(), g["positions"].tolist(), g["indices"].tolist()))


def compare_graphs(ours, ct) -> dict:
    """Node-set equality and max |ΔA| / max |A| after aligning circuit-tracer's node order onto ours."""
    import numpy as np

    ko, kc = node_keys(ours), node_keys(ct)
    so, sc = set(ko), set(kc)
    out = {"n_nodes_ours": len(ko), "n_nodes_ct": len(kc), "node_sets_equal": so == sc and len(ko) == len(kc),
           "node_order_equal": ko == kc, "only_ours": sorted(so - sc)[:10], "only_ct": sorted(sc - so)[:10],
           "tokens_equal": ours["tokens"].tolist() == ct["tokens"].tolist()}
    counts = {}
    for k in ko:
        counts[k[0]] = counts.get(k[0], 0) + 1
    out["nodes_by_kind"] = counts
    A = ours["adjacency"].astype(np.float64)
    out["max_abs_A"] = float(np.abs(A).max())
    if not out["node_sets_equal"]:
        out["max_abs_dA"] = out["rel_dA"] = None
        return out
    where = {k: i for i, k in enumerate(kc)}
    perm = np.array([where[k] for k in ko])
    B = ct["adjacency"].astype(np.float64)[np.ix_(perm, perm)]
    d = np.abs(A - B)
    out["max_abs_dA"] = float(d.max())
    out["rel_dA"] = float(d.max() / max(out["max_abs_A"], 1e-30))
    t, s = np.unravel_index(int(d.argmax()), d.shape)
    out["worst_edge"] = {"target": list(map(str, ko[t])), "source": list(map(str, ko[s])),
                         "ours": float(A[t, s]), "ct": float(B[t, s])}
    out["nonzero_edges_ours"] = int((A != 0).sum())
    out["nonzero_edges_ct"] = int((B != 0).sum())
    fa, fb = ours["activations"].astype(np.float64), ct["activations"][perm].astype(np.float64)
    feat = ~np.isnan(fa)
    out["max_abs_d_activation"] = float(np.abs(fa[feat] - fb[feat]).max()) if feat.any() else 0.0
    out["logit_weights_max_abs_diff"] = float(np.abs(ours["logit_weights"] - ct["logit_weights"]).max()) \
        if ours["logit_weights"].shape == ct["logit_weights"].shape else None
    return out


def run_target(target: str, args, log) -> dict:
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix=f"ct-parity-{target}-"))
    log(f"[{target}] work dir {tmp}")
    ours = ct = None
    try:
        ours = Worker(OURS_PY, "ours", args, target, tmp)
        ready_ours = ours.expect("READY")           # ours exports the files circuit-tracer loads
        ct = Worker(CT_PY, "ct", args, target, tmp)
        ready_ct = ct.expect("READY")
        log(f"[{target}] {ready_ours['n_tokens']} tokens; both sides loaded; relative max |Δ last logits| "
            f"between the two TransformerLens builds {ready_ct['max_rel_logit_diff']:.2e}")
        runs = {"ours": [], "ct": []}
        i = 0
        for w in range(args.warmup):
            for side in ((ours, ct) if w % 2 == 0 else (ct, ours)):
                side.run(i)
            i += 1
        for p in range(args.pairs):
            order = (ours, ct) if p % 2 == 0 else (ct, ours)
            for side in order:
                r = side.run(i)
                runs["ours" if side is ours else "ct"].append(r["seconds"])
            i += 1
            log(f"[{target}] pair {p + 1}/{args.pairs}: ours {runs['ours'][-1]:.3f} s, "
                f"circuit-tracer {runs['ct'][-1]:.3f} s")
        bye_ours, bye_ct = ours.close(), ct.close()
        g_ours, g_ct = np.load(tmp / "ours.npz"), np.load(tmp / "ct.npz")
        result = {"target": target, "prompt": json.loads((tmp / "tokens.json").read_text())["prompt"],
                  "n_tokens": ready_ours["n_tokens"], "batch_size": args.batch_size,
                  "max_feature_nodes": args.cap, "threads": args.threads,
                  "n_active_features_ct": int(g_ct["n_active_features"])}
        result.update(compare_graphs(g_ours, g_ct))
        ratios = [a / b for a, b in zip(runs["ours"], runs["ct"])]
        result.update({
            "seconds_ours": runs["ours"], "seconds_ct": runs["ct"],
            "median_seconds_ours": statistics.median(runs["ours"]) if runs["ours"] else None,
            "median_seconds_ct": statistics.median(runs["ct"]) if runs["ct"] else None,
            "time_ratio_ours_over_ct": statistics.median(ratios) if ratios else None,
            "peak_rss_mib_ours": bye_ours["peak_rss_mib"], "peak_rss_mib_ct": bye_ct["peak_rss_mib"],
            "peak_rss_mib_before_attribution_ours": ready_ours["peak_rss_mib_before"],
            "peak_rss_mib_before_attribution_ct": ready_ct["peak_rss_mib_before"],
            "max_rel_logit_diff_models": ready_ct["max_rel_logit_diff"],
            "circuit_tracer_version": ready_ct["circuit_tracer_version"],
            "transformer_lens_version_ct": ready_ct["transformer_lens_version"],
            "dropped_config_fields_ct": ready_ct["dropped_config_fields"],
        })
        if args.fixture:
            write_fixture(Path(args.fixture), g_ct, result, args)
            log(f"[{target}] wrote {args.fixture}")
        return result
    finally:
        for w in (ours, ct):
            if w is not None and w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
        if args.keep_dir:
            log(f"[{target}] kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def write_fixture(path: Path, g_ct, result: dict, args) -> None:
    """circuit-tracer's graph, compressed, with its node list and the prompt tokens (+ a README)."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: g_ct[k] for k in ("adjacency", "kinds", "layers", "positions", "indices",
                                                      "activations", "tokens", "kind_names", "logit_weights")},
                        prompt=np.array(result["prompt"]), batch_size=np.int64(args.batch_size),
                        model=np.array(f"checkpoints/{result['target']}"),
                        circuit_tracer_version=np.array(result["circuit_tracer_version"]))
    cmd = ("  .venv/bin/python bench/compare_circuit_tracer.py " + result["target"]
           + f" --prompt-file {args.prompt_file} --prompt-index {args.prompt_index} --batch-size {args.batch_size}"
           + (f" --max-feature-nodes {args.cap}" if args.cap is not None else "")
           + f" --threads {args.threads} --pairs {args.pairs} --fixture {path.relative_to(ROOT) if path.is_absolute() and ROOT in path.parents else path}")
    readme = path.with_suffix(".README")
    readme.write_text(
        f"{path.name}: circuit-tracer's attribution graph of checkpoints/{result['target']} (transcoder-only,\n"
        f"unpruned, zero BOS, batch size {args.batch_size}, default top logits) on the prompt\n"
        f"  {result['prompt']!r}\n"
        f"({result['n_tokens']} tokens with BOS, encoded by our tokenizer). Used by tests/test_graph_parity.py.\n\n"
        f"Made by (from the repository root; installs .venv-ct/ on first use):\n{cmd}\n\n"
        f"circuit-tracer {result['circuit_tracer_version']} (TransformerLens {result['transformer_lens_version_ct']} in .venv-ct),\n"
        f"torch {TORCH_VERSION}, CPU, float32. Arrays: adjacency [n, n] float32 A[target, source]; per node kinds\n"
        f"(codes into kind_names: mlp, mlp_error, embedding, logit), layers (-1 embedding, n_layers logit),\n"
        f"positions, indices (feature index, -1 for errors, token id, vocab id), activations (features; NaN\n"
        f"otherwise); tokens; logit_weights (target probabilities); prompt; batch_size; model;\n"
        f"circuit_tracer_version. Nodes are in circuit-tracer's order. At the time it was made our engine\n"
        f"matched it with relative max |dA| = {result['rel_dA']:.2e}.\n")


def print_report(results: list[dict]) -> None:
    for r in results:
        print(f"== {r['target']}: {r['n_tokens']} tokens, batch {r['batch_size']}, cap {r['max_feature_nodes']}, "
              f"{r['threads']} threads")
        print(f"  nodes: ours {r['n_nodes_ours']}, circuit-tracer {r['n_nodes_ct']} {r['nodes_by_kind']}; "
              f"node sets equal: {r['node_sets_equal']} (same order: {r['node_order_equal']})")
        if not r["node_sets_equal"]:
            print(f"  only ours: {r['only_ours']}\n  only circuit-tracer: {r['only_ct']}")
        else:
            print(f"  max |dA| = {r['max_abs_dA']:.3e}, max |A| = {r['max_abs_A']:.3e}, "
                  f"max |dA| / max |A| = {r['rel_dA']:.3e}; max |d activation| = {r['max_abs_d_activation']:.2e}")
        print(f"  models agree: relative max |d last logits| {r['max_rel_logit_diff_models']:.2e} "
              f"(TransformerLens {r['transformer_lens_version_ct']} in .venv-ct)")
        if r["time_ratio_ours_over_ct"] is not None:
            print(f"  attribution time: ours median {r['median_seconds_ours']:.3f} s, circuit-tracer median "
                  f"{r['median_seconds_ct']:.3f} s; ratio ours/ct (median of {len(r['seconds_ours'])} pairs) "
                  f"{r['time_ratio_ours_over_ct']:.3f}")
        print(f"  peak RSS: ours {r['peak_rss_mib_ours']:.0f} MiB (before attribution "
              f"{r['peak_rss_mib_before_attribution_ours']:.0f}), circuit-tracer {r['peak_rss_mib_ct']:.0f} MiB "
              f"(before attribution {r['peak_rss_mib_before_attribution_ct']:.0f})")


def first_prompt(path: Path, index: int) -> str:
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)["prompts"][index]["prompt"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help=f"shipped models to compare: {', '.join(SHIPPED)} (default: both, unless --probe)")
    p.add_argument("--probe", action="store_true", help="the random GPT-2-small-shaped model of bench/scale_probe.py")
    p.add_argument("--d-sae", type=int, default=6144)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--n-tokens", type=int, default=64)
    p.add_argument("--cap", "--max-feature-nodes", dest="cap", type=int, default=None,
                   help="max_feature_nodes on both sides (default: none, the unpruned graph)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pairs", type=int, default=5, help="timed alternating pairs (at least 5 for the ratio)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per side first")
    p.add_argument("--prompt-file", default="circuits/ioi.toml")
    p.add_argument("--prompt-index", type=int, default=0)
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="print the results as one JSON object (or write them to PATH)")
    p.add_argument("--fixture", default=None, help="also save circuit-tracer's graph here (one shipped target)")
    p.add_argument("--keep-dir", action="store_true")
    # worker mode (internal)
    p.add_argument("--worker", choices=["ours", "ct"], help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--prompt", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker == "ours":
        return worker_ours(args)
    if args.worker == "ct":
        return worker_ct(args)

    bad = [t for t in args.targets if t not in SHIPPED]
    if bad:
        p.error(f"unknown target(s) {bad}; choose from {', '.join(SHIPPED)}")
    targets = list(args.targets or ([] if args.probe else SHIPPED)) + (["probe"] if args.probe else [])
    if args.fixture and (len(targets) != 1 or targets[0] == "probe"):
        p.error("--fixture needs exactly one shipped target")
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json == "-" else \
        (lambda *a: print(*a, flush=True))
    ensure_ct_venv(log)
    prompt_file = ROOT / args.prompt_file if not Path(args.prompt_file).is_absolute() else Path(args.prompt_file)
    prompt = first_prompt(prompt_file, args.prompt_index) if any(t in SHIPPED for t in targets) else ""
    args.prompt_text = {t: prompt for t in SHIPPED}
    results = [run_target(t, args, log) for t in targets]
    if args.json is None:
        print_report(results)
    else:
        text = json.dumps({"results": results}, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            print_report(results)


if __name__ == "__main__":
    main()
