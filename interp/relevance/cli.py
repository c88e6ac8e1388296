"""`interp relevance` and `interp relevance-eval`: parse, call one function, print."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interp.argtypes import non_negative_int, positive_int


def _relevance(args: argparse.Namespace) -> dict[str, Any]:
    from interp.relevance.commands import relevance_command

    return relevance_command(args)


def _relevance_eval(args: argparse.Namespace) -> dict[str, Any]:
    from interp.relevance.commands import relevance_eval_command

    return relevance_eval_command(args)


def register(cli: Any) -> None:
    p = cli.add_command("relevance", _relevance,
                        "deep Taylor relevance of one input (image or text) for one output: sum, explained output, top pixels/tokens")
    p.add_argument("model", metavar="MODEL", type=Path,
                   help="image-classifier checkpoint folder, LM checkpoint folder or Hugging Face model folder")
    p.add_argument("--index", type=non_negative_int, default=None, help="test-set image index (image classifiers)")
    p.add_argument("--text", default=None, help="prompt (language models)")
    p.add_argument("--target", default=None,
                   help="class index or name (classifier; default: predicted) or token (LM; default: top next token)")
    p.add_argument("--rule-map", default="dtd", help="dtd (default), lrp0, epsilon, zplus, w2")
    p.add_argument("--bounds", default="range", choices=["range", "data"],
                   help="zᴮ pixel bounds: range = [0, 1] (default); data = each pixel's min/max over the training set")
    p.add_argument("--top", type=positive_int, default=10, help="how many top pixels or tokens to print")
    p.add_argument("--pairs", action="store_true", help="bilinear classifiers: also print the top pixel pairs R_ij")
    p.add_argument("--out", type=Path, default=None, help="write the heatmap as an image (.png; image classifiers)")
    p.add_argument("--out-html", type=Path, default=None, metavar="HTML",
                   help="write the heatmap as an interactive page (.html; pixels or tokens)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--data-dir", type=Path, default=None)

    p = cli.add_command("relevance-eval", _relevance_eval,
                        "pixel flipping and AOPC for DTD, gradient×input, gradient and random on test images")
    p.add_argument("model", metavar="MODEL", type=Path, help="image-classifier checkpoint folder (kind 'classifier')")
    p.add_argument("--n-images", type=positive_int, default=1000)
    p.add_argument("--steps", type=positive_int, default=50, help="flipping steps")
    p.add_argument("--pixels-per-step", type=positive_int, default=8)
    p.add_argument("--rule-map", default="dtd")
    p.add_argument("--replacement", default="zero", choices=["zero", "uniform"],
                   help="what a flipped pixel becomes: zero (removed, default) or uniform noise")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=250)
    p.add_argument("--out-html", dest="out", metavar="HTML", type=Path, default=None, help="write the pixel-flipping curves (.html)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--data-dir", type=Path, default=None)
