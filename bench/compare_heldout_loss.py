"""Held-out loss on planted-corpus text, compared between LMs with a paired standard error.

`interp evaluate` measures `heldout_loss` on 200 fresh sequences: enough to rank models far apart, not to tell
whether a new model is "no worse" than a shipped one by a few thousandths. This script scores every model on the
same N sequences (a seed no training run or evaluation uses) and reports, for each model against the first, the
mean difference of per-sequence losses and its standard error.

    .venv/bin/python bench/compare_heldout_loss.py checkpoints/lm-bilinear checkpoints/lm-bilinear-structural \
        [--n 2048] [--json] [--ordinary]

`--ordinary` adds where a model loses on text made only of ordinary sentences: the loss at positions whose previous
word came earlier in the sequence, split by whether copying the word that followed it then would be right, and at
the other positions. A model that copies after any matching word pays at the first kind.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from interp.data import corpus
from interp.models.lm import load_lm

SEED = corpus.EVAL_SEED + 8  # evaluate_lm_tasks uses EVAL_SEED + 7


def per_sequence_loss(model, tokens: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Mean next-token cross-entropy of each sequence (every position after BOS), [n]."""
    return per_token_loss(model, tokens, batch_size).mean(-1)


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


def ordinary_breakdown(paths: list[Path], n: int) -> dict:
    """Mean loss of each model on `n` sequences of ordinary sentences, overall and by `copy_categories`."""
    out = {}
    texts = None
    for path in paths:
        lm = load_lm(path)
        if texts is None:  # the same words for every model, as in main: n_ctx - 1 words after BOS
            rng = random.Random(SEED + 1)
            texts = []
            for _ in range(n):
                words: list[str] = []
                while len(words) < lm.model.cfg.n_ctx - 1:
                    words += corpus.ordinary_sentence(rng).split()
                texts.append(words[:lm.model.cfg.n_ctx - 1])
        tokens = torch.tensor([lm.tokenizer.encode(" ".join(w)) for w in texts])
        loss = per_token_loss(lm.model, tokens)  # position j predicts word j (after BOS)
        by = {}
        for i, words in enumerate(texts):
            for j, kind in enumerate(copy_categories(words)):
                by.setdefault(kind, []).append(loss[i, j].item())
        out[str(path)] = {"all": loss.mean().item(),
                          **{kind: {"loss": sum(v) / len(v), "positions": len(v)} for kind, v in sorted(by.items())}}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="LM checkpoint folders; the first is the reference")
    p.add_argument("--n", type=int, default=2048, help="planted-text sequences")
    p.add_argument("--json", action="store_true")
    p.add_argument("--ordinary", action="store_true", help="also the ordinary-text breakdown (see the module doc)")
    args = p.parse_args()
    torch.set_num_threads(2)
    losses = {}
    texts = None
    for path in args.models:
        lm = load_lm(path)
        if texts is None:  # the same words for every model (each encodes them with its own tokenizer)
            rng = random.Random(SEED)
            texts = [" ".join(corpus.training_document(rng, lm.model.cfg.n_ctx - 1)) for _ in range(args.n)]
        tokens = torch.tensor([lm.tokenizer.encode(text) for text in texts])
        losses[str(path)] = per_sequence_loss(lm.model, tokens)
    reference = str(args.models[0])
    rows = []
    for name, loss in losses.items():
        diff = loss - losses[reference]
        rows.append({"model": name, "loss": loss.mean().item(), "loss_se": (loss.std() / len(loss) ** 0.5).item(),
                     "minus_reference": diff.mean().item(), "minus_reference_se": (diff.std() / len(diff) ** 0.5).item()})
    result = {"reference": reference, "n_sequences": args.n, "seed": SEED, "rows": rows}
    if args.ordinary:
        result["ordinary"] = ordinary_breakdown(args.models, min(args.n, 512))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for row in rows:
        print(f"{row['model']:48s} loss {row['loss']:.4f} ± {row['loss_se']:.4f}   "
              f"− reference {row['minus_reference']:+.4f} ± {row['minus_reference_se']:.4f}")
    for name, parts in result.get("ordinary", {}).items():
        kinds = "   ".join(f"{kind} {v['loss']:.3f} ({v['positions']})" for kind, v in parts.items() if kind != "all")
        print(f"ordinary text {name:40s} {parts['all']:.4f}   {kinds}")


if __name__ == "__main__":
    main()
