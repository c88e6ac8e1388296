"""Held-out loss on planted-corpus text, compared between LMs with a paired standard error.

`interp evaluate` measures `heldout_loss` on 200 fresh sequences: enough to rank models far apart, not to tell
whether a new model is "no worse" than a shipped one by a few thousandths. This script scores every model on the
same N sequences (a seed no training run or evaluation uses) and reports, for each model against the first, the
mean difference of per-sequence losses and its standard error.

    .venv/bin/python bench/compare_heldout_loss.py checkpoints/lm-bilinear checkpoints/lm-bilinear-structural \
        [--n 2048] [--json] [--ordinary]

`--ordinary` adds where a model loses on text made only of ordinary sentences: the loss at positions whose previous
word came earlier in the sequence, split by whether copying the word that followed it then would be right, and at
the other positions. A model that copies after any matching word pays at the first kind. Both kinds are split again
by the previous word: a content word (names, nouns, adjectives, objects, places: what repeat spans are mostly made
of) or another word (determiners, verbs, prepositions, punctuation).

`--by-kind` splits each model's loss, and its difference from the first model, by the kind of planted passage a
word belongs to and by whether it is the passage's first word. The first word of a passage is a choice of which kind
comes next: a model trained on another mix of kinds pays there whatever it learned. `first_word_kl` estimates
that floor from the two corpora's own first-word frequencies (the second model's corpus against the planted one).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from interp.data import corpus
from interp.models.lm import load_lm

SEED = corpus.EVAL_SEED + 8  # evaluate_lm_tasks uses EVAL_SEED + 7
CONTENT_WORDS = set(corpus.INDUCTION_POOL)  # names, nouns, adjectives, objects, places


def per_token_loss(model, tokens: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Next-token cross-entropy at every position after BOS, [n, n_ctx - 1]."""
    out = []
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            batch = tokens[start:start + batch_size]
            logits = model(batch, return_type="logits")[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="none")
            out.append(loss.view(len(batch), -1).double())
    return torch.cat(out)


def copy_categories(words: list[str]) -> list[str]:
    """For each word after the first: "copy right" if the word before it came earlier and was followed there by
    this word, "copy wrong" if it came earlier and was followed by another, else "not repeated". words[0] has no
    previous word and is "not repeated"."""
    out = ["not repeated"]
    for j in range(1, len(words)):
        earlier = [k for k in range(j - 1) if words[k] == words[j - 1]]
        if not earlier:
            out.append("not repeated")
        else:
            out.append("copy right" if any(words[k + 1] == words[j] for k in earlier) else "copy wrong")
    return out


def ordinary_breakdown(lms: dict, n: int) -> dict:
    """Mean loss of each model (`lms`: name → LoadedLM) on `n` sequences of ordinary sentences, overall and by
    `copy_categories`."""
    n_words = next(iter(lms.values())).model.cfg.n_ctx - 1  # as on planted text: n_ctx - 1 words after BOS
    rng = random.Random(SEED + 1)
    texts = []
    for _ in range(n):
        words: list[str] = []
        while len(words) < n_words:
            words += corpus.ordinary_sentence(rng).split()
        texts.append(words[:n_words])
    categories = [copy_categories(words) for words in texts]
    out = {}
    for name, lm in lms.items():
        loss = per_token_loss(lm.model, torch.tensor([lm.tokenizer.encode(" ".join(w)) for w in texts]))
        by, by_previous = {}, {}
        for i, words in enumerate(texts):
            for j, kind in enumerate(categories[i]):  # position j predicts word j (after BOS)
                by.setdefault(kind, []).append(loss[i, j].item())
                if kind != "not repeated":  # content words are those repeat spans are mostly made of
                    previous = "content" if words[j - 1] in CONTENT_WORDS else "other"
                    by_previous.setdefault(f"{kind} after {previous} word", []).append(loss[i, j].item())
        out[name] = {"all": loss.mean().item(),
                     **{kind: {"loss": sum(v) / len(v), "positions": len(v)} for kind, v in sorted(by.items())},
                     "by_previous_word": {kind: {"loss": sum(v) / len(v), "positions": len(v)}
                                          for kind, v in sorted(by_previous.items())}}
    return out


def first_word_kl(config: corpus.CorpusConfig, n_words: int, n_documents: int = 20000) -> dict:
    """KL(planted ‖ `config`) of the first word of a passage, in nats, and the share of planted words that are
    passage firsts (in documents of `n_words`, as scored): the least extra loss per word any model of the `config`
    corpus pays on planted text there."""
    def first_words(config_or_none) -> tuple[dict[str, float], int, int]:
        rng = random.Random(SEED + 2)
        counts: dict[str, int] = {}
        n_firsts = total = 0
        for _ in range(n_documents):
            passages: list = []
            words = corpus.training_document(rng, n_words, config_or_none, passages)
            total += len(words)
            for _, start in passages:
                counts[words[start]] = counts.get(words[start], 0) + 1
                n_firsts += 1
        return {w: c / n_firsts for w, c in counts.items()}, n_firsts, total

    planted, firsts, words = first_words(None)
    other, _, _ = first_words(config)
    missing = sorted(w for w in planted if w not in other)
    kl = sum(p * math.log(p / other[w]) for w, p in planted.items() if w in other)
    return {"kl_nats": kl, "first_word_share": firsts / words, "floor_per_word": kl * firsts / words,
            "missing_in_other": missing}


def by_kind_breakdown(texts: list[list[str]], passages_of: list[list], losses: dict, reference: str) -> dict:
    """Loss by planted passage kind and by first word / rest of passage, for each model, from the per-word
    `losses` (name → [n, n_words], index j predicts word j) of `texts`, whose passages `passages_of` records;
    `contribution`: the kind's share of the mean per-word difference from the `reference` model."""
    flat = []
    for words, passages in zip(texts, passages_of):
        starts = {start: kind for kind, start in passages}
        kind = None
        for j in range(len(words)):
            kind = starts.get(j, kind)
            flat.append(f"{kind} {'first' if j in starts else 'rest'}")
    masks = {label: torch.tensor([x == label for x in flat]) for label in sorted(set(flat))}
    out = {}
    for name, loss in losses.items():
        values = loss.reshape(-1)
        diff = values - losses[reference].reshape(-1)
        out[name] = {label: {"words": int(mask.sum()), "loss": values[mask].mean().item(),
                             "minus_reference": diff[mask].mean().item(),
                             "contribution": (diff[mask].sum() / len(diff)).item()}
                     for label, mask in masks.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="LM checkpoint folders; the first is the reference")
    p.add_argument("--n", type=int, default=2048, help="planted-text sequences")
    p.add_argument("--json", action="store_true")
    p.add_argument("--ordinary", action="store_true", help="also the ordinary-text breakdown (see the module doc)")
    p.add_argument("--by-kind", action="store_true",
                   help="also the loss by passage kind, first word or rest (see the module doc)")
    args = p.parse_args()
    torch.set_num_threads(2)
    lms = {str(path): load_lm(path) for path in args.models}
    reference = str(args.models[0])
    # The same words for every model (each encodes them with its own tokenizer), scored once per model.
    rng = random.Random(SEED)
    n_words = lms[reference].model.cfg.n_ctx - 1
    texts, passages_of = [], []
    for _ in range(args.n):
        passages: list = []
        texts.append(corpus.training_document(rng, n_words, None, passages))
        passages_of.append(passages)
    token_losses = {name: per_token_loss(lm.model, torch.tensor([lm.tokenizer.encode(" ".join(w)) for w in texts]))
                    for name, lm in lms.items()}
    rows = []
    for name, tokens in token_losses.items():
        loss = tokens.mean(-1)
        diff = loss - token_losses[reference].mean(-1)
        rows.append({"model": name, "loss": loss.mean().item(), "loss_se": (loss.std() / len(loss) ** 0.5).item(),
                     "minus_reference": diff.mean().item(), "minus_reference_se": (diff.std() / len(diff) ** 0.5).item()})
    result = {"reference": reference, "n_sequences": args.n, "seed": SEED, "rows": rows}
    if args.ordinary:
        result["ordinary"] = ordinary_breakdown(lms, min(args.n, 512))
    if args.by_kind:
        k = min(args.n, 1024)
        result["by_kind"] = by_kind_breakdown(texts[:k], passages_of[:k],
                                              {name: loss[:k] for name, loss in token_losses.items()}, reference)
        last = lms[str(args.models[-1])]
        config = corpus.corpus_config_from_options(last.config.get("train_options"))
        result["first_word_kl"] = first_word_kl(config, n_words) if config.kind != "planted" else None
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for row in rows:
        print(f"{row['model']:48s} loss {row['loss']:.4f} ± {row['loss_se']:.4f}   "
              f"− reference {row['minus_reference']:+.4f} ± {row['minus_reference_se']:.4f}")
    for name, parts in result.get("ordinary", {}).items():
        kinds = "   ".join(f"{kind} {v['loss']:.3f} ({v['positions']})" for kind, v in parts.items()
                           if kind not in ("all", "by_previous_word"))
        print(f"ordinary text {name:40s} {parts['all']:.4f}   {kinds}")
        print("    " + "   ".join(f"{kind} {v['loss']:.3f} ({v['positions']})"
                                  for kind, v in parts["by_previous_word"].items()))
    for name, groups in result.get("by_kind", {}).items():
        if name == reference:
            continue
        print(f"by passage kind, {name} − reference (loss difference, its part of the mean difference):")
        for label, g in groups.items():
            print(f"  {label:20s} {g['words']:6d} words   {g['minus_reference']:+.4f}   {g['contribution']:+.4f}")
    if result.get("first_word_kl"):
        kl = result["first_word_kl"]
        print(f"first-word KL(planted ‖ {args.models[-1]}'s corpus) {kl['kl_nats']:.4f} nats on a share "
              f"{kl['first_word_share']:.3f} of words: a floor of {kl['floor_per_word']:+.4f} per word"
              + (f"; planted first words the other corpus never starts with: {kl['missing_in_other']}"
                 if kl['missing_in_other'] else ""))


if __name__ == "__main__":
    main()
