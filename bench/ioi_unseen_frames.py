"""IOI accuracy in the held-out frame families on more prompts than `interp evaluate` uses.

`interp evaluate` scores 200 unseen-frame prompts (a standard error of about 0.02). This scores `--n` fresh prompts
from each of several seeds that no training run or evaluation uses (EVAL_SEED + 1000, + 2000, …), with the corpus
configuration each model recorded, so the ≥ 0.85 target can be read with a tighter error.

    .venv/bin/python bench/ioi_unseen_frames.py checkpoints/lm-bilinear-structural checkpoints/lm-gelu-structural
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from interp.data import corpus
from interp.models.lm import load_lm
from interp.train.lm import ioi_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="LM checkpoint folders trained on the structural corpus")
    p.add_argument("--n", type=int, default=1000, help="prompts per seed")
    p.add_argument("--seeds", type=int, default=2, help="how many seeds (EVAL_SEED + 1000 × i)")
    args = p.parse_args()
    torch.set_num_threads(2)
    out = {}
    for path in args.models:
        lm = load_lm(path)
        config = corpus.corpus_config_from_options(lm.config.get("train_options"))
        out[str(path)] = [ioi_metrics(lm, corpus.ioi_frame_examples(config, args.n, corpus.EVAL_SEED + 1000 * i),
                                       families=config.ioi_heldout_families)["accuracy"]
                          for i in range(1, args.seeds + 1)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
