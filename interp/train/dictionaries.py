"""Training transcoders and attention SAEs on cached activations of a language model, with SAE-Lens.

SAE-Lens' `SAETrainer` takes any iterator of activation batches and a training SAE class; it has
no transcoder step. Our transcoder training classes take batches that hold the input activation
and the target activation side by side (`[x | y]`, width d_in + d_out), encode `x`, and compare
the reconstruction with `y` — the MLP's output — not with the input. ReLU+L1 and TopK variants.
Attention SAEs are SAE-Lens' own `StandardTrainingSAE` / `TopKTrainingSAE` on `hook_attn_out`.

Activations at the BOS position are left out (they are huge and constant; circuit-tracer zeroes
dictionaries there too), and splicing for evaluation leaves position 0 as it was.
"""

from __future__ import annotations

import functools
import random
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from sae_lens import SAE, StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.config import SAETrainerConfig
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY, register_sae_training_class
from sae_lens.saes.sae import TrainStepInput, TrainStepOutput
from sae_lens.training import sae_trainer
from sae_lens.training.sae_trainer import SAETrainer
from torch import nn
from tqdm.auto import tqdm

from interp.data import corpus
from interp.errors import InterpError
from interp.io import git_commit, machine_load, staged_folder, write_json
from interp.models.dictionaries import (DICTIONARY_TYPES, check_dictionaries_fit, input_hook, is_transcoder,
                                        output_hook)
from interp.models.lm import LoadedLM
from interp.results import Result
from interp.train.options import DictTrainOptions

VARIANTS = ("relu", "topk")


# ---------------------------------------------------------------- transcoder training classes


class _TranscoderTraining:
    """Mixin for a SAE-Lens training SAE: batches are `[x | y]`; encode x, reconstruct y."""

    cfg: Any

    def initialize_weights(self) -> None:
        d_in, d_sae, d_out = self.cfg.d_in, self.cfg.d_sae, self.cfg.d_out
        w_dec = torch.randn(d_sae, d_out, dtype=self.dtype, device=self.device)
        w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True) * (self.cfg.decoder_init_norm or 1.0)
        self.W_dec = nn.Parameter(w_dec)
        self.b_dec = nn.Parameter(torch.zeros(d_out, dtype=self.dtype, device=self.device))
        if d_in == d_out:  # Anthropic's initialisation: encoder = decoder transpose
            w_enc = w_dec.T.clone().contiguous()
        else:
            w_enc = torch.empty(d_in, d_sae, dtype=self.dtype, device=self.device)
            nn.init.kaiming_uniform_(w_enc)
        self.W_enc = nn.Parameter(w_enc)
        self.b_enc = nn.Parameter(torch.zeros(d_sae, dtype=self.dtype, device=self.device))

    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        x = step_input.sae_in[..., :self.cfg.d_in]
        target = step_input.sae_in[..., self.cfg.d_in:]
        feature_acts, hidden_pre = self.encode_with_hidden_pre(x)  # type: ignore[attr-defined]
        sae_out = self.decode(feature_acts)  # type: ignore[attr-defined]
        mse_loss = F.mse_loss(sae_out, target, reduction="none").sum(-1).mean()
        # The auxiliary losses (L1, or TopK's dead-feature loss on the residual) see the target as "input".
        aux = self.calculate_aux_loss(step_input=replace(step_input, sae_in=target),  # type: ignore[attr-defined]
                                      feature_acts=feature_acts, hidden_pre=hidden_pre, sae_out=sae_out)
        losses = {"mse_loss": mse_loss, **aux}
        return TrainStepOutput(sae_in=target, sae_out=sae_out, feature_acts=feature_acts, hidden_pre=hidden_pre,
                               loss=sum(losses.values()), losses=losses)


@dataclass
class StandardTrainingTranscoderConfig(StandardTrainingSAEConfig):
    d_out: int = 0
    apply_b_dec_to_input: bool = False

    @classmethod
    def architecture(cls) -> str:
        return "transcoder"


class StandardTrainingTranscoder(_TranscoderTraining, StandardTrainingSAE):
    """ReLU transcoder trained with SAE-Lens' L1 penalty (decoder-norm weighted); saves as `Transcoder`."""


@dataclass
class TopKTrainingTranscoderConfig(TopKTrainingSAEConfig):
    d_out: int = 0
    apply_b_dec_to_input: bool = False

    @classmethod
    def architecture(cls) -> str:
        return "topk_transcoder"


class TopKTrainingTranscoder(_TranscoderTraining, TopKTrainingSAE):
    """TopK transcoder with SAE-Lens' auxiliary dead-feature loss; saves as our `TopKTranscoder`."""


for _name, _cls, _cfg in (("transcoder", StandardTrainingTranscoder, StandardTrainingTranscoderConfig),
                          ("topk_transcoder", TopKTrainingTranscoder, TopKTrainingTranscoderConfig)):
    if _name not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(_name, _cls, _cfg)


# ---------------------------------------------------------------- cached activations


def hooks_for(kind: str, layer: int) -> tuple[str, str]:
    """(input hook, output hook) of a dictionary of `kind` at `layer`."""
    if kind == "transcoder":
        return f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"
    if kind == "attn_sae":
        return f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_attn_out"
    raise InterpError(f"unknown dictionary type {kind!r}; choose one of {', '.join(DICTIONARY_TYPES)}")


def corpus_batches(lm: LoadedLM, n_sequences: int, seed: int, batch_size: int = 64) -> Iterator[torch.Tensor]:
    """Token batches of fresh corpus text ([batch, n_ctx], BOS first). Our word tokenizer gives one token per
    word; a Hugging Face model's subword tokenizer is cut to n_ctx tokens (`corpus.training_sequence`)."""
    rng = random.Random(seed)
    n_ctx = lm.model.cfg.n_ctx
    # the text the model was trained on: a structural-corpus model's dictionaries learn its repeats and frames too
    config = corpus.corpus_config_from_options((lm.config or {}).get("train_options"))
    for start in range(0, n_sequences, batch_size):
        rows = [corpus.training_sequence(lm.tokenizer, rng, n_ctx, config)
                for _ in range(min(batch_size, n_sequences - start))]
        yield torch.tensor(rows, dtype=torch.long, device=lm.model.cfg.device)


@torch.no_grad()
def cache_activations(lm: LoadedLM, hooks: list[str], n_tokens: int, seed: int,
                      quiet: bool = True) -> dict[str, torch.Tensor]:
    """Activations at `hooks` on about `n_tokens` corpus tokens (BOS positions left out), [tokens, width]."""
    n_ctx = lm.model.cfg.n_ctx
    n_sequences = max(1, n_tokens // (n_ctx - 1))
    cached: dict[str, list[torch.Tensor]] = {h: [] for h in hooks}
    batches = corpus_batches(lm, n_sequences, seed)
    for tokens in tqdm(batches, total=-(-n_sequences // 64), desc="cache activations", disable=quiet):
        _, cache = lm.model.run_with_cache(tokens, names_filter=lambda name: name in cached)
        for h in hooks:
            act = cache[h][:, 1:]
            cached[h].append(act.reshape(-1, act.shape[-1]).float().cpu())
    return {h: torch.cat(v) for h, v in cached.items()}


class ShuffledBatches:
    """An endless, seeded iterator of shuffled rows of a cached activation table."""

    def __init__(self, table: torch.Tensor, batch_size: int, seed: int):
        self.table, self.batch_size = table, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(table), generator=self.generator)
        self.position = 0

    def __iter__(self) -> "ShuffledBatches":
        return self

    def __next__(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.table), generator=self.generator)
            self.position = 0
        rows = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return self.table[rows]


# ---------------------------------------------------------------- training


def make_training_sae(options: DictTrainOptions, d_model: int, metadata: dict[str, Any]) -> SAE:
    d_sae = options.expansion * d_model
    common = dict(d_in=d_model, d_sae=d_sae, dtype="float32", device="cpu")
    if options.variant not in VARIANTS:
        raise InterpError(f"unknown dictionary variant {options.variant!r}; choose one of {', '.join(VARIANTS)}")
    if options.kind == "transcoder":
        if options.variant == "topk":
            sae: SAE = TopKTrainingTranscoder(TopKTrainingTranscoderConfig(d_out=d_model, k=options.k, **common))
        else:
            sae = StandardTrainingTranscoder(StandardTrainingTranscoderConfig(
                d_out=d_model, l1_coefficient=options.l1, l1_warm_up_steps=options.steps // 10, **common))
    elif options.variant == "topk":
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(k=options.k, **common))
    else:
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=options.l1,
                                                            l1_warm_up_steps=options.steps // 10, **common))
    for key, value in metadata.items():
        sae.cfg.metadata[key] = value
    return sae


@dataclass
class LayerMetrics(Result):
    layer: int
    fvu: float
    l0: float
    dead_fraction: float
    ce_loss_recovered: float
    ce_clean: float
    ce_spliced: float
    ce_ablated: float


@dataclass
class DictEvalResult(Result):
    kind: str
    layers: list[dict[str, float]]
    ce_loss_recovered_all: float
    ce_clean: float
    ce_spliced_all: float
    ce_ablated_all: float
    n_tokens: int


@dataclass
class DictTrainResult(Result):
    kind: str
    variant: str
    train_seconds: float
    samples_per_second: float
    eval: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _sae_lens_progress(quiet: bool) -> Iterator[None]:
    """SAE-Lens' trainer draws its own tqdm bar; with `quiet`, hand it a disabled one for this call."""
    original = sae_trainer.tqdm
    if quiet:
        sae_trainer.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        sae_trainer.tqdm = original


def train_dictionaries(lm: LoadedLM, options: DictTrainOptions, out: str | Path | None = None,
                       model_ref: str = "..", quiet: bool = False) -> tuple[dict[int, SAE], DictTrainResult]:
    """Train one dictionary per layer through SAE-Lens' SAETrainer; save the folder atomically if `out`."""
    model = lm.model
    layers = options.layers if options.layers is not None else list(range(model.cfg.n_layers))
    bad = [L for L in layers if not 0 <= L < model.cfg.n_layers]
    if bad:
        raise InterpError(f"layers {bad} do not exist: the model has {model.cfg.n_layers}")
    hooks = {L: hooks_for(options.kind, L) for L in layers}
    names = sorted({h for pair in hooks.values() for h in pair})
    cache = cache_activations(lm, names, options.n_tokens, options.seed + 1, quiet=quiet)
    dicts: dict[int, SAE] = {}
    start = time.perf_counter()
    samples = 0
    for layer in layers:
        hook_in, hook_out = hooks[layer]
        metadata = {"model_name": str(lm.path or "lm"), "hook_name": hook_in, "hook_layer": layer,
                    "context_size": model.cfg.n_ctx, "prepend_bos": True, "dictionary_type": options.kind}
        if options.kind == "transcoder":
            metadata["hook_name_out"] = hook_out
            table = torch.cat([cache[hook_in], cache[hook_out]], dim=-1)
        else:
            table = cache[hook_in]
        torch.manual_seed(options.seed + layer)
        sae = make_training_sae(options, model.cfg.d_model, metadata)
        trainer_cfg = SAETrainerConfig(
            total_training_samples=options.steps * options.batch_size, train_batch_size_samples=options.batch_size,
            lr=options.lr, lr_scheduler_name="cosineannealing", lr_warm_up_steps=options.steps // 20,
            lr_decay_steps=0, lr_end=options.lr / 10, dead_feature_window=200, feature_sampling_window=500,
            device=str(model.cfg.device))
        batches = ShuffledBatches(table, options.batch_size, options.seed + layer)
        with _sae_lens_progress(quiet):
            trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches)
            trainer.fit()
        samples += options.steps * options.batch_size
        dicts[layer] = to_inference(sae)
    seconds = time.perf_counter() - start
    evaluation = evaluate_dictionaries(lm, dicts)
    result = DictTrainResult(kind=options.kind, variant=options.variant, train_seconds=seconds,
                             samples_per_second=samples / seconds, eval=evaluation.to_dict())
    if out is not None:
        save_dictionaries(out, dicts, options, model_ref, {**result.to_dict(), "options": asdict(options),
                                                           "git_commit": git_commit(), **machine_load()})
    return dicts, result


def to_inference(sae: SAE) -> SAE:
    """The inference SAE-Lens class of a training SAE, through its own save/load path (folds TopK norms)."""
    with tempfile.TemporaryDirectory() as tmp:
        sae.save_inference_model(tmp)
        loaded = SAE.load_from_disk(tmp)
    loaded.eval()
    return loaded


def save_dictionaries(out: str | Path, dicts: dict[int, SAE], options: DictTrainOptions, model_ref: str,
                      metrics: dict[str, Any]) -> Path:
    """Write `config.json`, `metrics.json` and `layer_L/` SAE-Lens folders; the folder appears whole or not at all."""
    out = Path(out)
    with staged_folder(out) as tmp:
        for layer, sae in dicts.items():
            sae.save_model(tmp / f"layer_{layer}")
        config = {"kind": "dictionaries", "type": options.kind, "variant": options.variant, "model": model_ref,
                  "layers": sorted(dicts), "architecture": dicts[min(dicts)].cfg.architecture(),
                  "d_sae": dicts[min(dicts)].cfg.d_sae}
        write_json(tmp / "config.json", config)
        write_json(tmp / "metrics.json", metrics)
    return out


# ---------------------------------------------------------------- evaluation


def _splice_hooks(dicts: dict[int, SAE], layers: list[int], mode: str) -> list[tuple[str, Any]]:
    """Forward hooks that replace each layer's output hook by the dictionary's reconstruction
    (mode "splice") or by zeros (mode "ablate"), at every position but BOS."""
    hooks: list[tuple[str, Any]] = []
    for layer in layers:
        sae = dicts[layer]
        stored: dict[str, torch.Tensor] = {}

        def keep_input(act, hook, stored=stored):
            stored["x"] = act
            return act

        def replace_output(act, hook, sae=sae, stored=stored):
            new = torch.zeros_like(act) if mode == "ablate" else sae(stored["x"]).to(act.dtype)
            act = act.clone()
            act[:, 1:] = new[:, 1:]
            return act

        if mode == "splice":
            hooks.append((input_hook(sae), keep_input))
        hooks.append((output_hook(sae), replace_output))
    return hooks


def ce_loss_recovered(ablated: float, spliced: float, clean: float) -> float:
    """(L_ablated − L_spliced) / (L_ablated − L_clean): 1 when splicing costs nothing, 0 when it is as bad as zero
    ablation (NaN when ablation costs nothing)."""
    return (ablated - spliced) / (ablated - clean) if ablated != clean else float("nan")


def _loss(model, tokens: torch.Tensor, hooks: list[tuple[str, Any]]) -> torch.Tensor:
    logits = model.run_with_hooks(tokens, return_type="logits", fwd_hooks=hooks)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                           reduction="sum")


@torch.no_grad()
def evaluate_dictionaries(lm: LoadedLM, dicts: dict[int, SAE], n_sequences: int = 256,
                          seed: int = corpus.EVAL_SEED) -> DictEvalResult:
    """Per layer: fraction of variance unexplained, L0, dead fraction and CE loss recovered
    ((L_ablated − L_spliced) / (L_ablated − L_clean), zero ablation); then all layers spliced at once."""
    model = lm.model
    check_dictionaries_fit(model, dicts)
    kind = "transcoder" if is_transcoder(next(iter(dicts.values()))) else "attn_sae"
    layers = sorted(dicts)
    batches = list(corpus_batches(lm, n_sequences, seed))
    names = {h for sae in dicts.values() for h in (input_hook(sae), output_hook(sae))}
    err = {L: 0.0 for L in layers}
    # Sums in float64: the variance is a difference of two large sums, and float32 loses digits there.
    var_sum = {L: torch.zeros(model.cfg.d_model, dtype=torch.float64) for L in layers}
    sq_sum = {L: 0.0 for L in layers}
    count = 0
    l0 = {L: 0.0 for L in layers}
    fired = {L: torch.zeros(dicts[L].cfg.d_sae, dtype=torch.bool) for L in layers}
    ce = {"clean": 0.0, "all_spliced": 0.0, "all_ablated": 0.0}
    ce.update({f"spliced_{L}": 0.0 for L in layers})
    ce.update({f"ablated_{L}": 0.0 for L in layers})
    n_predictions = 0
    for tokens in batches:
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
        for L in layers:
            sae = dicts[L]
            x = cache[input_hook(sae)][:, 1:].reshape(-1, sae.cfg.d_in)
            y = cache[output_hook(sae)][:, 1:].reshape(-1, model.cfg.d_model)
            acts = sae.encode(x)
            recon = sae.decode(acts)
            err[L] += (recon - y).pow(2).sum().item()
            var_sum[L] += y.sum(0).double().cpu()
            sq_sum[L] += y.pow(2).sum().item()
            l0[L] += (acts > 0).sum().item()
            fired[L] |= (acts > 0).any(0).cpu()
        count += tokens.shape[0] * (tokens.shape[1] - 1)
        n_predictions += tokens.shape[0] * (tokens.shape[1] - 1)
        ce["clean"] += _loss(model, tokens, []).item()
        ce["all_spliced"] += _loss(model, tokens, _splice_hooks(dicts, layers, "splice")).item()
        ce["all_ablated"] += _loss(model, tokens, _splice_hooks(dicts, layers, "ablate")).item()
        for L in layers:
            ce[f"spliced_{L}"] += _loss(model, tokens, _splice_hooks(dicts, [L], "splice")).item()
            ce[f"ablated_{L}"] += _loss(model, tokens, _splice_hooks(dicts, [L], "ablate")).item()
    ce = {k: v / n_predictions for k, v in ce.items()}

    def recovered(ablated: float, spliced: float) -> float:
        return ce_loss_recovered(ablated, spliced, ce["clean"])

    rows = []
    for L in layers:
        total_var = sq_sum[L] - (var_sum[L].pow(2).sum().item() / count)
        rows.append(LayerMetrics(layer=L, fvu=err[L] / total_var, l0=l0[L] / count,
                                 dead_fraction=1 - fired[L].float().mean().item(),
                                 ce_loss_recovered=recovered(ce[f"ablated_{L}"], ce[f"spliced_{L}"]),
                                 ce_clean=ce["clean"], ce_spliced=ce[f"spliced_{L}"],
                                 ce_ablated=ce[f"ablated_{L}"]).to_dict())
    return DictEvalResult(kind=kind, layers=rows, ce_loss_recovered_all=recovered(ce["all_ablated"], ce["all_spliced"]),
                          ce_clean=ce["clean"], ce_spliced_all=ce["all_spliced"], ce_ablated_all=ce["all_ablated"],
                          n_tokens=count)
