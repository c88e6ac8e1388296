"""Held-out loss on planted-corpus text, compared between LMs with a paired standard error.

`interp evaluate` measures `heldout_loss` on 200 fresh sequences: enough to rank models far apart, not to tell
whether a new model is "no worse" than a shipped one by a few thousandths. This script scores every model on the
same N sequences (a seed no training run or evaluation uses) and reports, for each model against the first, the
mean difference of per-sequence losses and its standard error.

    .venv/bin/python bench/compare_heldout_loss.py checkpoints/lm-bilinear checkpoints/lm-bilinear-structural \
        [--n 2048] [--json]
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


@torch.no_grad()
def per_sequence_loss(model, tokens: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Mean next-token cross-entropy of each sequence (every position after BOS), [n]."""
    out = []
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start:start + batch_size]
        logits = model(batch, return_type="logits")[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="none")
        out.append(loss.view(len(batch), -1).mean(-1).double())
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="LM checkpoint folders; the first is the reference")
    p.add_argument("--n", type=int, default=2048, help="planted-text sequences")
    p.add_argument("--json", action="store_true")
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
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for row in rows:
        print(f"{row['model']:48s} loss {row['loss']:.4f} ± {row['loss_se']:.4f}   "
              f"− reference {row['minus_reference']:+.4f} ± {row['minus_reference_se']:.4f}")


if __name__ == "__main__":
    main()
