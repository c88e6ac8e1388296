"""Training and evaluating a TopK cross-layer transcoder (CLT) on cached activations of one of our LMs.

Layer L's features read the normalised MLP input `blocks.L.ln2.hook_normalized` (as our per-layer
transcoders do) and write the MLP output of L and of every later layer (`interp.models.clt`). The
training data are the LM's activations on fresh synthetic-corpus text (`cache_activations`, BOS
positions left out): every layer's input and every layer's MLP output, side by side per token.

Loss = Σ over output layers L' of ‖ŷ_L' − y_L'‖² / Var(y_L') (mean over tokens; Var the total variance of
y_L' over the cached tokens), so every layer weighs alike and the loss is the sum of the per-layer
fractions of variance unexplained; plus, with `aux_coef`, a dead-feature loss in the manner of TopK
SAEs: the top `aux_k` pre-activations among the features of each layer that have not fired for
`dead_steps` steps reconstruct what the CLT leaves unexplained (the residual, detached) through their
decoders. Adam, a short linear warm-up then cosine decay to lr/10, decoder rows small at the start.

Evaluation (`evaluate_clt`) measures what `evaluate_dictionaries` measures for per-layer transcoders,
with the same definitions (see there): per output layer the FVU of the MLP-output reconstruction and
the CE loss recovered when that MLP output alone is replaced by the CLT's reconstruction (from the
clean inputs of layers ≤ L'), per source layer L0 and the fraction of features dead on the evaluation
text, and CE loss recovered with every MLP output replaced at once (each layer's CLT input read from
the spliced run). Position 0 (BOS) is left as it was.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from interp.data import corpus
from interp.errors import InterpError
from interp.io import git_commit, machine_load, read_json, staged_folder, write_json
from interp.models.clt import CrossLayerTranscoder, save_clt
from interp.models.lm import LoadedLM, load_lm
from interp.results import Result
from interp.train.dictionaries import (DictEvalResult, LayerMetrics, _loss, cache_activations, ce_loss_recovered,
                                       corpus_batches)
from interp.train.options import CLTTrainOptions, DictTrainOptions

INPUT_HOOK = "ln2.hook_normalized"
OUTPUT_HOOK = "hook_mlp_out"


@dataclass
class CLTTrainResult(Result):
    out: str | None
    n_layers: int
    d_sae: int
    k: int
    steps: int
    train_seconds: float
    samples_per_second: float
    loss_curve: list[dict[str, Any]]  # {"step", "loss" (Σ per-layer FVU on the batches), "aux_loss", "dead"}
    eval: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- options


def transcoder_shape(lm_folder: str | Path) -> tuple[int | None, int | None]:
    """(d_sae, k) of the per-layer transcoders shipped beside an LM (`<LM>/transcoders`), None where unknown."""
    folder = Path(lm_folder) / "transcoders"
    d_sae = k = None
    for path in (folder / "config.json", folder / "layer_0" / "cfg.json"):
        if path.is_file():
            config = read_json(path, what="transcoders config")
            d_sae = d_sae or config.get("d_sae")
            k = k or config.get("k")
    if k is None and (folder / "metrics.json").is_file():
        k = (read_json(folder / "metrics.json", what="transcoders metrics").get("options") or {}).get("k")
    return d_sae, k


def resolve_options(lm_folder: str | Path, options: CLTTrainOptions, d_model: int) -> CLTTrainOptions:
    """`options` with k and d_sae filled in from the shipped transcoders (else k 32, d_sae 2 × d_model), checked."""
    d_sae, k = transcoder_shape(lm_folder)
    defaults = DictTrainOptions()
    options = replace(options, d_sae=options.d_sae or d_sae or defaults.expansion * d_model,
                      k=options.k or k or defaults.k)
    check_options(options)
    if options.k > options.d_sae:
        raise InterpError(f"k = {options.k} is more than the {options.d_sae} features per layer; lower --k or raise "
                          "--d-sae")
    return options


def check_options(options: CLTTrainOptions) -> None:
    """InterpError (one line) on options that cannot train."""
    for name in ("steps", "batch_size", "n_tokens", "aux_k", "dead_steps"):
        if getattr(options, name) < 1:
            raise InterpError(f"{name.replace('_', '-')} must be ≥ 1, got {getattr(options, name)}")
    for name in ("k", "d_sae"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise InterpError(f"{name.replace('_', '-')} must be ≥ 1, got {value}")
    if not (options.lr > 0 and math.isfinite(options.lr)):
        raise InterpError(f"lr must be a positive number, got {options.lr}")
    if not (options.aux_coef >= 0 and math.isfinite(options.aux_coef)):
        raise InterpError(f"aux-coef must be ≥ 0, got {options.aux_coef}")
    if not (options.decoder_init > 0 and math.isfinite(options.decoder_init)):
        raise InterpError(f"decoder-init must be a positive number, got {options.decoder_init}")


# ---------------------------------------------------------------- training


def topk_acts(pre: torch.Tensor, k: int) -> torch.Tensor:
    """TopK activation exactly as `CrossLayerTranscoder.encode` computes it from pre-activations."""
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))


def init_clt(n_layers: int, d_model: int, options: CLTTrainOptions, target_mean: torch.Tensor,
             target_var: torch.Tensor, model_name: str = "") -> CrossLayerTranscoder:
    """Encoders N(0, 1/d_model) (unit-scale pre-activations on normalised inputs), zero encoder biases, decoder
    rows of norm `decoder_init` × the target's RMS norm per output layer, decoder biases at the target means."""
    clt = CrossLayerTranscoder(n_layers, d_model, options.d_sae, activation="topk", k=options.k,
                               input_hook=INPUT_HOOK, output_hook=OUTPUT_HOOK, model_name=model_name)
    gen = torch.Generator().manual_seed(options.seed)
    with torch.no_grad():
        clt.W_enc.copy_(torch.randn(clt.W_enc.shape, generator=gen) / math.sqrt(d_model))
        for source in range(n_layers):
            w = torch.randn(clt.W_dec[source].shape, generator=gen)
            scale = options.decoder_init * target_var[source:].sqrt()  # [n_outputs]
            clt.W_dec[source].copy_(w / w.norm(dim=-1, keepdim=True) * scale[None, :, None])
        clt.b_dec.copy_(target_mean)
    return clt


def fit_clt(inputs: torch.Tensor, targets: torch.Tensor, options: CLTTrainOptions, model_name: str = "",
            quiet: bool = False, log_every: int | None = None) -> tuple[CrossLayerTranscoder, list[dict[str, Any]]]:
    """Train a TopK CLT on `inputs` and `targets` [tokens, n_layers, d_model] (layer L's MLP input and output);
    return it (eval mode, no grad) and the loss curve."""
    check_options(options)
    if options.k is None or options.d_sae is None:
        raise InterpError("fit_clt needs k and d_sae; see resolve_options")
    n_tokens, n_layers, d_model = inputs.shape
    target_mean = targets.mean(0)
    target_var = (targets - target_mean).pow(2).sum(-1).mean(0)  # [n_layers]: total variance per layer
    if not bool((target_var > 0).all()):
        raise InterpError("an MLP output is constant on the cached text: nothing to reconstruct")
    clt = init_clt(n_layers, d_model, options, target_mean, target_var, model_name)
    params = list(clt.parameters())
    optimiser = torch.optim.Adam(params, lr=options.lr)
    warmup = max(1, options.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return options.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, options.steps - warmup)
        return options.lr / 10 + (options.lr - options.lr / 10) * 0.5 * (1 + math.cos(math.pi * progress))

    gen = torch.Generator().manual_seed(options.seed + 1)
    order = torch.randperm(n_tokens, generator=gen)
    position = 0
    since_fired = torch.zeros(n_layers, options.d_sae, dtype=torch.long)
    log_every = log_every or max(1, options.steps // 50)
    curve: list[dict[str, Any]] = []
    window = {"loss": 0.0, "aux_loss": 0.0, "n": 0}
    aux_k = min(options.aux_k, options.d_sae)
    for step in tqdm(range(options.steps), desc="train CLT", disable=quiet):
        if position + options.batch_size > n_tokens:
            order = torch.randperm(n_tokens, generator=gen)
            position = 0
        rows = order[position:position + options.batch_size]
        position += options.batch_size
        x, y = inputs[rows], targets[rows]
        pres = [clt.pre_activation(x[:, L], L) for L in range(n_layers)]
        acts = [topk_acts(pre, options.k) for pre in pres]
        recon = clt.decode(acts)
        losses = torch.stack([(recon[L] - y[:, L]).pow(2).sum(-1).mean() / target_var[L] for L in range(n_layers)])
        loss = losses.sum()
        with torch.no_grad():
            fired = torch.stack([(a > 0).any(0) for a in acts])
            since_fired = torch.where(fired, 0, since_fired + 1)
            dead = since_fired >= options.dead_steps
        aux = torch.zeros(())
        if options.aux_coef > 0 and bool(dead.any()):
            first = int(dead.any(1).nonzero()[0])
            aux_acts = []
            for L in range(n_layers):
                if L < first or not bool(dead[L].any()):
                    aux_acts.append(torch.zeros_like(pres[L]))
                    continue
                masked = pres[L].masked_fill(~dead[L], float("-inf"))
                kk = min(aux_k, int(dead[L].sum()))
                aux_acts.append(topk_acts(masked, kk))
            aux_recon = [sum(aux_acts[s] @ clt.W_dec[s][:, t - s] for s in range(t + 1)) for t in range(n_layers)]
            aux = sum(((aux_recon[t] - (y[:, t] - recon[t]).detach()).pow(2).sum(-1).mean() / target_var[t])
                      for t in range(first, n_layers))
            loss = loss + options.aux_coef * aux
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        window["loss"] += losses.detach().sum().item()
        window["aux_loss"] += float(aux.detach())
        window["n"] += 1
        if (step + 1) % log_every == 0 or step + 1 == options.steps:
            curve.append({"step": step + 1, "loss": window["loss"] / window["n"],
                          "aux_loss": window["aux_loss"] / window["n"], "dead": int(dead.sum())})
            window = {"loss": 0.0, "aux_loss": 0.0, "n": 0}
    clt.requires_grad_(False)
    return clt.eval(), curve


def train_clt(lm_folder: str | Path, options: CLTTrainOptions, out: str | Path | None = None, force: bool = False,
              command: str | Callable[[CLTTrainOptions], str] | None = None, quiet: bool = False,
              device: str = "cpu") -> CLTTrainResult:
    """Train a TopK CLT for the LM in `lm_folder` (k and d_sae default to its shipped transcoders'), evaluate it
    and, with `out`, save it there (circuit-tracer's layout + config.json kind "clt" + metrics.json) atomically.
    An existing, non-empty `out` is refused unless `force`. `command` (recorded in metrics.json) may be a function
    of the resolved options."""
    check_options(options)
    lm_folder = Path(lm_folder)
    if out is not None:
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
            raise InterpError(f"{out} already exists; choose another --out or pass --force to replace it")
    lm = load_lm(lm_folder, device=device)
    cfg = lm.model.cfg
    options = resolve_options(lm_folder, options, cfg.d_model)
    if callable(command):
        command = command(options)
    inputs, targets = cached_layers(lm, options.n_tokens, options.seed + 1, quiet)
    start = time.perf_counter()
    model_name = str(lm.path or lm_folder)
    clt, curve = fit_clt(inputs, targets, options, model_name=model_name, quiet=quiet)
    seconds = time.perf_counter() - start
    evaluation = evaluate_clt(lm, clt)
    result = CLTTrainResult(out=None if out is None else str(out), n_layers=cfg.n_layers, d_sae=options.d_sae,
                            k=options.k, steps=options.steps, train_seconds=seconds,
                            samples_per_second=options.steps * options.batch_size / seconds, loss_curve=curve,
                            eval=evaluation.to_dict())
    if out is not None:
        model_ref = os.path.relpath(lm_folder.resolve(), out.resolve())
        with staged_folder(out) as tmp:
            save_clt(clt, tmp, extra={"model": model_ref, "architecture": "topk_clt"})
            write_json(tmp / "metrics.json", {"kind": "clt", **result.to_dict(), "options": asdict(options),
                                              "command": command, "git_commit": git_commit(), **machine_load()})
    return result


@torch.no_grad()
def cached_layers(lm: LoadedLM, n_tokens: int, seed: int, quiet: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's MLP input (ln2.hook_normalized) and MLP output on about `n_tokens` corpus tokens (BOS left
    out), each [tokens, n_layers, d_model]."""
    n_layers = lm.model.cfg.n_layers
    ins = [f"blocks.{L}.{INPUT_HOOK}" for L in range(n_layers)]
    outs = [f"blocks.{L}.{OUTPUT_HOOK}" for L in range(n_layers)]
    cache = cache_activations(lm, ins + outs, n_tokens, seed, quiet=quiet)
    return torch.stack([cache[h] for h in ins], 1), torch.stack([cache[h] for h in outs], 1)


# ---------------------------------------------------------------- evaluation


def check_clt_fits(model, clt: CrossLayerTranscoder) -> None:
    if clt.n_layers != model.cfg.n_layers or clt.d_model != model.cfg.d_model:
        raise InterpError(f"the CLT has {clt.n_layers} layers of width {clt.d_model} but the model has "
                          f"{model.cfg.n_layers} of width {model.cfg.d_model}: it belongs to another model")
    for L in range(clt.n_layers):
        for hook in (clt.read_hook(L), clt.write_hook(L)):
            if hook not in model.hook_dict:
                raise InterpError(f"the CLT uses hook {hook!r}, which this model does not have")


def clt_splice_hooks(clt: CrossLayerTranscoder, outputs: list[int], mode: str) -> list[tuple[str, Callable]]:
    """Forward hooks that replace the MLP output of each layer in `outputs` by the CLT's reconstruction (mode
    "splice": from the activations of layers ≤ it, each encoded from its input in this very run) or by zeros
    (mode "ablate"), at every position but BOS."""
    stored: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks: list[tuple[str, Callable]] = []
    if mode == "splice":
        for L in range(max(outputs) + 1):
            def keep(act, hook, L=L):
                x = act.to(clt.W_enc.dtype)
                stored[L] = (x, clt.encode(x, L))
                return act
            hooks.append((clt.read_hook(L), keep))
    for L in outputs:
        def replace_output(act, hook, L=L):
            if mode == "ablate":
                new = torch.zeros_like(act)
            else:
                new = clt.b_dec[L] + sum(stored[s][1] @ clt.W_dec[s][:, L - s] for s in range(L + 1))
                if clt.W_skip is not None:
                    new = new + stored[L][0] @ clt.W_skip[L]
            act = act.clone()
            act[:, 1:] = new[:, 1:].to(act.dtype)
            return act
        hooks.append((clt.write_hook(L), replace_output))
    return hooks


@torch.no_grad()
def evaluate_clt(lm: LoadedLM, clt: CrossLayerTranscoder, n_sequences: int = 256,
                 seed: int = corpus.EVAL_SEED) -> DictEvalResult:
    """FVU and CE loss recovered per output layer, L0 and dead fraction per source layer, CE loss recovered with
    every layer spliced; on the corpus text `evaluate_dictionaries` uses, with its definitions."""
    model = lm.model
    check_clt_fits(model, clt)
    n_layers, d = clt.n_layers, clt.d_model
    layers = list(range(n_layers))
    names = {h for L in layers for h in (clt.read_hook(L), clt.write_hook(L))}
    err = [0.0] * n_layers
    y_sum = [torch.zeros(d, dtype=torch.float64) for _ in layers]
    sq_sum = [0.0] * n_layers
    l0 = [0.0] * n_layers
    fired = torch.zeros(n_layers, clt.d_sae, dtype=torch.bool)
    count = 0
    ce = {"clean": 0.0, "all_spliced": 0.0, "all_ablated": 0.0}
    ce.update({f"{what}_{L}": 0.0 for L in layers for what in ("spliced", "ablated")})
    for tokens in corpus_batches(lm, n_sequences, seed):
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
        xs = [cache[clt.read_hook(L)][:, 1:].reshape(-1, d).to(clt.W_enc.dtype) for L in layers]
        acts = [clt.encode(xs[L], L) for L in layers]
        recon = clt.decode(acts, xs)
        for L in layers:
            y = cache[clt.write_hook(L)][:, 1:].reshape(-1, d).to(torch.float64)
            err[L] += (recon[L].to(torch.float64) - y).pow(2).sum().item()
            y_sum[L] += y.sum(0).cpu()
            sq_sum[L] += y.pow(2).sum().item()
            l0[L] += (acts[L] > 0).sum().item()
            fired[L] |= (acts[L] > 0).any(0).cpu()
        count += tokens.shape[0] * (tokens.shape[1] - 1)
        ce["clean"] += _loss(model, tokens, []).item()
        ce["all_spliced"] += _loss(model, tokens, clt_splice_hooks(clt, layers, "splice")).item()
        ce["all_ablated"] += _loss(model, tokens, clt_splice_hooks(clt, layers, "ablate")).item()
        for L in layers:
            ce[f"spliced_{L}"] += _loss(model, tokens, clt_splice_hooks(clt, [L], "splice")).item()
            ce[f"ablated_{L}"] += _loss(model, tokens, clt_splice_hooks(clt, [L], "ablate")).item()
    ce = {k: v / count for k, v in ce.items()}
    rows = []
    for L in layers:
        total_var = sq_sum[L] - y_sum[L].pow(2).sum().item() / count
        rows.append(LayerMetrics(layer=L, fvu=err[L] / total_var, l0=l0[L] / count,
                                 dead_fraction=1 - fired[L].float().mean().item(),
                                 ce_loss_recovered=ce_loss_recovered(ce[f"ablated_{L}"], ce[f"spliced_{L}"],
                                                                     ce["clean"]),
                                 ce_clean=ce["clean"], ce_spliced=ce[f"spliced_{L}"],
                                 ce_ablated=ce[f"ablated_{L}"]).to_dict())
    return DictEvalResult(kind="clt", layers=rows,
                          ce_loss_recovered_all=ce_loss_recovered(ce["all_ablated"], ce["all_spliced"], ce["clean"]),
                          ce_clean=ce["clean"], ce_spliced_all=ce["all_spliced"], ce_ablated_all=ce["all_ablated"],
                          n_tokens=count)


def clt_model_path(folder: str | Path) -> Path:
    """The LM a CLT folder was trained on (config.json "model", relative to the folder; default "..")."""
    from interp.io import read_checkpoint_config

    config = read_checkpoint_config(folder)
    if config["kind"] != "clt":
        raise InterpError(f"{folder} holds a {config['kind']!r} checkpoint, not a cross-layer transcoder")
    return (Path(folder) / config.get("model", "..")).resolve()
