"""Training the small language models on the synthetic corpus, and measuring their planted tasks.

The loop is nanoGPT's: AdamW, linear warm-up then cosine decay, next-token cross-entropy on
BOS-prefixed sequences of the corpus. Data and initialisation come from explicit seeds, so the same
options give the same checkpoint on CPU.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp.data import corpus
from interp.errors import InterpError
from interp.io import git_commit, machine_load
from interp.io import staged_folder
from interp.models.lm import ARCHS, LoadedLM, build_lm, make_lm_config, save_lm
from interp.results import Result
from interp.train.options import LMTrainOptions


@dataclass
class LMEvalResult(Result):
    """Held-out task metrics of a language model (and its loss on fresh corpus text)."""

    tasks: dict[str, dict[str, float]]
    heldout_loss: float
    n_examples: int
    heldout_loss_training_corpus: float | None = None
    corpus: dict[str, Any] = field(default_factory=dict)


@dataclass
class LMTrainResult(Result):
    arch: str
    steps: int
    tokens_seen: int
    train_seconds: float
    tokens_per_second: float
    final_train_loss: float
    n_params: int
    eval: dict[str, Any] = field(default_factory=dict)
    # [{"step", "loss", "<task>": accuracy, ...}] every `eval_every` steps: how each task is learned (and, for
    # held-out IOI names, unlearned) over training. Evaluation time is not counted in train_seconds.
    learning_curve: list[dict[str, float]] = field(default_factory=list)


def curve_point(evaluation: LMEvalResult, step: int, loss: float) -> dict[str, float]:
    """One learning-curve entry: the held-out task accuracies (and IOI logit difference) at `step`."""
    tasks = evaluation.tasks
    point = {"step": step, "loss": round(loss, 4)}
    point.update({task: round(metrics["accuracy"], 4) for task, metrics in tasks.items()})
    point["ioi_logit_diff"] = round(tasks["ioi"]["logit_diff"], 4)
    return point


def lr_at(step: int, options: LMTrainOptions) -> float:
    if step < options.warmup_steps:
        return options.lr * (step + 1) / options.warmup_steps
    progress = (step - options.warmup_steps) / max(1, options.steps - options.warmup_steps)
    return options.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def lm_loss(model: HookedTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over every position after BOS."""
    logits = model(tokens, return_type="logits")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


class _TransposeOf(torch.nn.Module):
    """A parametrization that replaces a weight with the transpose of another module's `W_E`."""

    def __init__(self, embed: torch.nn.Module) -> None:
        super().__init__()
        self.embed = [embed]  # in a list so that the embedding is not registered (and saved) twice

    def forward(self, _unused: torch.Tensor) -> torch.Tensor:
        return self.embed[0].W_E.T


def tie_unembedding(model: HookedTransformer) -> None:
    """Make `unembed.W_U` read `embed.W_Eᵀ` during training. Tying gives every token the same direction in and
    out, so a head that copies a token's embedding raises that token's logit whether or not the token was ever
    an answer of the task that trained the head (held-out IOI names). `untie_unembedding` undoes it."""
    torch.nn.utils.parametrize.register_parametrization(model.unembed, "W_U", _TransposeOf(model.embed), unsafe=True)
    model.unembed.parametrizations.W_U.original.requires_grad_(False)


def untie_unembedding(model: HookedTransformer) -> None:
    """Freeze the tied value into a plain `W_U` parameter (so checkpoints stay ordinary HookedTransformers)."""
    torch.nn.utils.parametrize.remove_parametrizations(model.unembed, "W_U", leave_parametrized=True)
    model.unembed.W_U.requires_grad_(True)


def train_lm(options: LMTrainOptions, out: str | Path | None = None, device: str = "cpu",
             quiet: bool = False) -> tuple[LoadedLM, LMTrainResult]:
    """Train one LM on fresh corpus batches; save it (with its eval metrics) to `out` if given."""
    if options.arch not in ARCHS:
        raise InterpError(f"unknown LM architecture {options.arch!r}; choose one of {', '.join(ARCHS)}")
    if options.steps < 1 or options.batch_size < 1:
        raise InterpError("steps and batch size must be at least 1")
    corpus_config = corpus.corpus_config_from_options(asdict(options))
    corpus.check_corpus_config(corpus_config, options.n_ctx)
    tokenizer = corpus.make_tokenizer()
    cfg = make_lm_config(options.arch, options.n_layers, options.d_model, options.n_heads, options.d_mlp,
                         options.n_ctx, len(tokenizer), options.seed)
    cfg.device = str(device)
    torch.manual_seed(options.seed)
    model = build_lm(cfg).to(device, print_details=False)
    if options.tie_embeddings:
        tie_unembedding(model)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": options.wd},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=options.lr, betas=(0.9, 0.98))
    averaged = None
    if options.ema:
        if not 0 < options.ema < 1:
            raise InterpError(f"--ema must be a decay in (0, 1), got {options.ema}")
        averaged = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(options.ema))
    rng = random.Random(options.seed)
    model.train()
    start = time.perf_counter()
    eval_seconds = 0.0
    curve: list[dict[str, float]] = []
    loss_value = float("nan")
    bar = tqdm(range(options.steps), desc=f"train lm ({options.arch})", disable=quiet, mininterval=1.0)
    for step in bar:
        batch = [tokenizer.encode(" ".join(corpus.training_document(rng, options.n_ctx - 1, corpus_config)))
                 for _ in range(options.batch_size)]
        tokens = torch.tensor(batch, dtype=torch.long, device=device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, options)
        loss = lm_loss(model, tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(model)
        loss_value = loss.item()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}")
        if options.eval_every and (step + 1) % options.eval_every == 0 and step + 1 < options.steps:
            eval_start = time.perf_counter()
            model.eval()
            evaluated = averaged.module if averaged is not None else model
            evaluation = evaluate_lm_tasks(LoadedLM(model=evaluated, tokenizer=tokenizer), n=options.n_eval,
                                           corpus_config=corpus_config)
            curve.append(curve_point(evaluation, step + 1, loss_value))
            model.train()
            eval_seconds += time.perf_counter() - eval_start
    seconds = time.perf_counter() - start - eval_seconds
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())
    if options.tie_embeddings:
        untie_unembedding(model)
    model.eval()
    loaded = LoadedLM(model=model, tokenizer=tokenizer)
    evaluation = evaluate_lm_tasks(loaded, n=options.n_eval, corpus_config=corpus_config)
    tokens_seen = options.steps * options.batch_size * options.n_ctx
    result = LMTrainResult(arch=options.arch, steps=options.steps, tokens_seen=tokens_seen,
                           train_seconds=seconds, tokens_per_second=tokens_seen / seconds,
                           final_train_loss=loss_value, n_params=sum(p.numel() for p in model.parameters()),
                           eval=evaluation.to_dict())
    if options.eval_every:
        result.learning_curve = curve + [curve_point(evaluation, options.steps, loss_value)]
    if out is not None:
        metrics = {**result.to_dict(), "options": asdict(options), "git_commit": git_commit(), **machine_load(),
                   "command": (f"interp train lm --arch {options.arch} --n-layers {options.n_layers} "
                               f"--d-model {options.d_model} --n-heads {options.n_heads} --d-mlp {options.d_mlp} "
                               f"--n-ctx {options.n_ctx} --steps {options.steps} --batch-size {options.batch_size} "
                               f"--lr {options.lr} --wd {options.wd} --seed {options.seed}"
                               f"{' --tie-embeddings' if options.tie_embeddings else ''}"
                               f"{f' --eval-every {options.eval_every}' if options.eval_every else ''}"
                               f" --ema {options.ema}"
                               + (f" --corpus structural --bracket-depth {options.bracket_depth} --repeat-min "
                                  f"{options.repeat_min} --repeat-max {options.repeat_max} --ioi-heldout-families "
                                  f"{options.ioi_heldout_families}" if options.corpus != "planted" else "")
                               + f" --out {out}")}
        # The whole folder is replaced at once, so an old model's dictionaries never outlive it.
        with staged_folder(out) as staged:
            save_lm(staged, model, tokenizer, metrics, extra={"train_options": asdict(options)})
        loaded.path = Path(out)
    loaded.metrics = result.to_dict()
    return loaded, result


# ---------------------------------------------------------------- evaluation


def _pad(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to one length (causal attention: padding never affects earlier positions)."""
    length = max(len(ids) for ids in batch)
    tokens = torch.full((len(batch), length), pad_id, dtype=torch.long)
    for row, ids in enumerate(batch):
        tokens[row, :len(ids)] = torch.tensor(ids)
    lengths = torch.tensor([len(ids) for ids in batch])
    return tokens, lengths


@torch.no_grad()
def last_logits(lm: LoadedLM, prompts: list[str], batch_size: int = 128) -> torch.Tensor:
    """Logits at the last position of each prompt, [n_prompts, d_vocab]."""
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = [lm.to_tokens(p)[0].tolist() for p in prompts[start:start + batch_size]]
        tokens, lengths = _pad(batch, lm.tokenizer.bos_id)
        logits = lm.model(tokens.to(lm.model.cfg.device), return_type="logits")
        out.append(logits[torch.arange(len(batch)), lengths - 1].float().cpu())
    return torch.cat(out)


def check_tokenizer_fits(lm: LoadedLM) -> None:
    if len(lm.tokenizer) != lm.model.cfg.d_vocab:
        raise InterpError(f"tokenizer has {len(lm.tokenizer)} words but the model's d_vocab is "
                          f"{lm.model.cfg.d_vocab}: the tokenizer does not belong to this model")
    missing = [w for w in corpus.vocabulary() if w not in lm.tokenizer.index]
    if missing:
        raise InterpError(f"the model's tokenizer lacks corpus words {missing[:5]}: it was not trained on this corpus")


def ioi_metrics(lm: LoadedLM, examples: list[corpus.TaskExample],
                families: tuple[str, ...] = ()) -> dict[str, float]:
    """IOI accuracy, logit difference and where the top-1 prediction goes; with `families`, also the accuracy on
    the examples built from each of those frame families (`by_family`)."""
    tok = lm.tokenizer
    logits = last_logits(lm, [e.prompt for e in examples])
    target = torch.tensor([tok.token_id(e.target) for e in examples])
    contrast = torch.tensor([tok.token_id(e.contrast) for e in examples])
    rows = torch.arange(len(examples))
    diff = logits[rows, target] - logits[rows, contrast]
    top = logits.argmax(-1)
    # Where the top-1 prediction goes: the IO, the subject, a name that answers IOI in training (the prior a
    # model learns when held-out names never do), another name, or any other word.
    training_names = {tok.token_id(w) for w in corpus.NAMES[:corpus.N_TRAIN_NAMES] if w in tok.index}
    all_names = {tok.token_id(w) for w in corpus.NAMES if w in tok.index}
    kinds = {"io": 0, "s": 0, "ioi_training_name": 0, "other_name": 0, "other": 0}
    for predicted, io, s in zip(top.tolist(), target.tolist(), contrast.tolist()):
        kind = ("io" if predicted == io else "s" if predicted == s else "ioi_training_name"
                if predicted in training_names else "other_name" if predicted in all_names else "other")
        kinds[kind] += 1
    out = {"accuracy": (top == target).float().mean().item(), "logit_diff": diff.mean().item(),
           "io_over_s_fraction": (diff > 0).float().mean().item(), "n": len(examples),
           "top1": {kind: count / max(1, len(examples)) for kind, count in kinds.items()}}
    if families:
        correct = (top == target).tolist()
        by_family = {}
        for family in families:
            rows = [i for i, e in enumerate(examples) if family in e.frame]
            by_family[family] = {"accuracy": sum(correct[i] for i in rows) / len(rows) if rows else None,
                                 "n": len(rows)}
        out["by_family"] = by_family
    return out


@torch.no_grad()
def _sequence_accuracy(lm: LoadedLM, sequences: list[tuple[str, list[int]]]) -> dict[str, float]:
    """Top-1 accuracy on the scored words of whole texts: word w sits at token w+1 and is predicted at token w."""
    model = lm.model
    correct = total = 0
    for start in range(0, len(sequences), 128):
        chunk = sequences[start:start + 128]
        batch = [lm.to_tokens(text)[0].tolist() for text, _ in chunk]
        tokens, _ = _pad(batch, lm.tokenizer.bos_id)
        predictions = model(tokens.to(model.cfg.device), return_type="logits").argmax(-1).cpu()
        for row, (_, word_positions) in enumerate(chunk):
            for w in word_positions:
                correct += int(predictions[row, w] == tokens[row, w + 1])
                total += 1
    return {"accuracy": correct / total, "n_tokens": total}


def _closer_accuracy(lm: LoadedLM, examples: list[corpus.TaskExample]) -> dict[str, float]:
    """The right closer beats the three other closing brackets (and, top1_accuracy, every other word)."""
    tok = lm.tokenizer
    logits = last_logits(lm, [e.prompt for e in examples])
    closer_ids = torch.tensor([tok.token_id(c) for c in corpus.BRACKETS.values()])
    target = torch.tensor([tok.token_id(e.target) for e in examples])
    chosen = closer_ids[logits[:, closer_ids].argmax(-1)]
    return {"accuracy": (chosen == target).float().mean().item(),
            "top1_accuracy": (logits.argmax(-1) == target).float().mean().item(), "n": len(examples)}


@torch.no_grad()
def evaluate_lm_tasks(lm: LoadedLM, n: int = 200, seed: int = corpus.EVAL_SEED,
                      corpus_config: corpus.CorpusConfig | None = None) -> LMEvalResult:
    """Held-out metrics: induction accuracy (top-1 on each repeated token after the first of the second copy),
    IOI accuracy (top-1 over the whole vocabulary is the indirect object) and mean logit difference IO − S,
    bracket accuracy (the right closer beats the three other closing brackets). `ioi_seen_names` repeats IOI
    on the held-out templates with names seen in IOI training.

    The structural sets (`corpus.STRUCTURAL_SETS`): induction on unmarked repeats, after a distractor span, on
    spans of 20 words and on spans cut from ordinary sentences; IOI in held-out frame families with held-out names;
    brackets nested exactly as deep as the training corpus allows, and one level deeper. `corpus_config` None: the one recorded in the checkpoint's
    train_options (the planted corpus when none is). `heldout_loss` is on fresh planted-corpus text for every
    model (comparable across corpora); `heldout_loss_training_corpus` on the model's own corpus."""
    check_tokenizer_fits(lm)
    if corpus_config is None:
        corpus_config = corpus.corpus_config_from_options(lm.config.get("train_options"))
        corpus.check_corpus_config(corpus_config, lm.model.cfg.n_ctx)
    tok = lm.tokenizer
    model = lm.model
    model.eval()

    induction = _sequence_accuracy(lm, corpus.induction_sequences(n, seed))
    ioi = ioi_metrics(lm, corpus.ioi_examples(n, seed))
    # Same held-out templates, places and objects, but names the model saw in IOI training.
    ioi_seen_names = ioi_metrics(lm, corpus.ioi_examples(n, seed, names="train"))
    brackets = _closer_accuracy(lm, corpus.bracket_examples(n, seed))

    depth = corpus_config.bracket_depth
    structural = {}
    # Texts of up to 52 tokens: a set whose longest text does not fit a shorter-context model is left out.
    for kind in ("unmarked", "distractor", "long", "ordinary"):
        sequences = corpus.repeat_sequences(kind, n, seed)
        if max(len(text.split()) + 1 for text, _ in sequences) <= model.cfg.n_ctx:
            structural[f"induction_{kind}"] = _sequence_accuracy(lm, sequences)
    structural.update({
        "ioi_unseen_frames": ioi_metrics(lm, corpus.ioi_frame_examples(corpus_config, n, seed),
                                         families=corpus_config.ioi_heldout_families),
        "brackets_trained_depth": {"depth": depth, **_closer_accuracy(lm, corpus.bracket_depth_examples(depth, n, seed))},
        "brackets_deeper": {"depth": depth + 1,
                            **_closer_accuracy(lm, corpus.bracket_depth_examples(depth + 1, n, seed))},
    })

    losses = {}
    for name, config in (("planted", None), ("own", corpus_config)):
        rng = random.Random(seed + 7)
        heldout = torch.tensor([tok.encode(" ".join(corpus.training_document(rng, model.cfg.n_ctx - 1, config)))
                                for _ in range(min(n, 256))], device=model.cfg.device)
        losses[name] = lm_loss(model, heldout).item()
    return LMEvalResult(tasks={"induction": induction, "ioi": ioi, "brackets": brackets,
                               "ioi_seen_names": ioi_seen_names, **structural},
                        heldout_loss=losses["planted"], n_examples=n,
                        heldout_loss_training_corpus=losses["own"],
                        corpus={**asdict(corpus_config),
                                "ioi_heldout_families": list(corpus_config.ioi_heldout_families)})
