"""Write circuits/{induction,ioi,brackets}.toml for the shipped bilinear LM, and a second, held-out prompt set per
task (circuits/<task>-heldout.toml: the next 8 examples the model gets right, which the first recipe does not contain).
A model of the structural corpus gets prompts from the structural held-out sets (`corpus.task_examples`); `--prefix`
names its recipes apart (circuits/<prefix><task>.toml).

    .venv/bin/python circuits/make_recipes.py [MODEL (default checkpoints/lm-bilinear)] [--n 8] [--prefix structural-]
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interp.graph.recipes import write_task_recipe  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the interp command line's vocabulary: the model first and positional
    p.add_argument("model", metavar="MODEL", nargs="?", default="checkpoints/lm-bilinear")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--prefix", default="", help="recipe file and graph folder prefix, e.g. structural-")
    p.add_argument("--dir", type=Path, default=ROOT / "circuits", help="where the recipe files go (default circuits/)")
    args = p.parse_args()
    for task in ("induction", "ioi", "brackets"):
        name = f"{args.prefix}{task}"
        print(write_task_recipe(task, args.model, args.dir / f"{name}.toml", n_prompts=args.n, name=name))
        print(write_task_recipe(task, args.model, args.dir / f"{name}-heldout.toml", n_prompts=args.n,
                                skip=args.n, name=f"{name}-heldout"))
