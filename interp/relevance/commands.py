"""CLI glue: what the `relevance` and `relevance-eval` commands do: load, call one analysis, summarise as a dict."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path
from typing import Any

import torch

from interp.device import resolve_device, resolve_dtype
from interp.errors import InterpError
from interp.io import atomic_write_bytes, atomic_write_text, read_checkpoint_config


def load_image_model(path: Path, device: torch.device, dtype: torch.dtype):
    """(model, config) of an image-classifier checkpoint (any kind in interp.models.registry)."""
    from interp.models.checkpoints import load_classifier

    model, config, _ = load_classifier(path)
    return model.to(device=device, dtype=dtype), config


def test_images(config: dict[str, Any], data_dir: Path | None):
    from interp.data.images import load_image_dataset

    return load_image_dataset(config.get("dataset", "fashion-mnist"), data_dir)


def parse_class(target: str | None, class_names: list[str]) -> int | None:
    """A class given as an index or a name; InterpError for one that does not exist."""
    if target is None:
        return None
    if target.lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < len(class_names):
            raise InterpError(f"class {index} does not exist: choose 0..{len(class_names) - 1} or a class name")
        return index
    lowered = [name.lower() for name in class_names]
    if target.lower() not in lowered:
        raise InterpError(f"class {target!r} does not exist: choose 0..{len(class_names) - 1} or one of "
                          f"{', '.join(class_names)}")
    return lowered.index(target.lower())


def pixel_bounds(train_images: torch.Tensor, image: torch.Tensor, bounds: str) -> tuple[Any, Any]:
    """zᴮ bounds: the pixel range [0, 1] ("range"), or each pixel's own range over the training set
    widened to include this image ("data"), so that l ≤ x ≤ h holds pixel by pixel."""
    if bounds == "range":
        return 0.0, 1.0
    if bounds == "data":
        train = train_images.to(image)
        return torch.minimum(train.amin(0), image), torch.maximum(train.amax(0), image)
    raise InterpError(f"unknown --bounds {bounds!r}; choose range or data")


def top_pixels(relevance: torch.Tensor, image: torch.Tensor, k: int) -> list[dict[str, Any]]:
    width = relevance.shape[-1]
    flat, values = relevance.flatten(), image.flatten()
    order = flat.argsort(descending=True)[:k]
    return [{"pixel": int(i), "row": int(i) // width, "col": int(i) % width, "relevance": float(flat[i]),
             "value": float(values[i])} for i in order]


def top_pairs(pairs: torch.Tensor, width: int, k: int) -> list[dict[str, Any]]:
    """The k pixel pairs i < j with the largest |R_ij + R_ji| (a pair's total share of the logit)."""
    d = pairs.shape[0]
    both = (pairs + pairs.T).triu(diagonal=1)
    order = both.abs().flatten().argsort(descending=True)[:k]
    out = []
    for index in order.tolist():
        i, j = divmod(index, d)
        out.append({"i": i, "j": j, "i_row_col": [i // width, i % width], "j_row_col": [j // width, j % width],
                    "relevance": float(both[i, j])})
    return out


def write_html_figure(out: Path, figure) -> None:
    """One plotly figure as a page (--out-html; its suffix is checked before any work)."""
    atomic_write_text(out, figure.to_html(include_plotlyjs="cdn", full_html=True))


def for_reading(result: dict[str, Any]) -> dict[str, Any]:
    """Without --json, the CLI shortens long lists to "[N items]": show the top lists as label → value."""
    out = dict(result)
    for key in ("top_pixels", "bottom_pixels"):
        if key in out:
            out[key] = {f"({p['row']}, {p['col']})": round(p["relevance"], 6) for p in out[key]}
    if "top_pairs" in out:
        out["top_pairs"] = {f"({p['i_row_col'][0]}, {p['i_row_col'][1]})-({p['j_row_col'][0]}, {p['j_row_col'][1]})":
                            round(p["relevance"], 6) for p in out["top_pairs"]}
    if "top_tokens" in out:
        out["top_tokens"] = {f"{p['position']}:{p['token']}": round(p["relevance"], 6) for p in out["top_tokens"]}
    return out


def relevance_command(args: argparse.Namespace) -> dict[str, Any]:
    from interp.io import check_output_file

    check_output_file(args.out, args.force, "--out")
    check_output_file(args.out_html, args.force, "--out-html")
    result = _relevance_command(args)
    return result if args.json else for_reading(result)


def _relevance_command(args: argparse.Namespace) -> dict[str, Any]:
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    # --out is the heatmap as an image, --out-html the page (as every command writes HTML)
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise InterpError(f"--out {args.out}: the heatmap image is a .png file (an HTML page is --out-html)")
    if args.out_html is not None and args.out_html.suffix.lower() not in (".html", ".htm"):
        raise InterpError(f"--out-html must name an .html file, got {args.out_html}")
    if args.top < 1:
        raise InterpError("--top must be at least 1")
    from interp.models.hf import is_hf_folder

    if is_hf_folder(args.model):  # a Hugging Face model folder: config.json has no "kind"
        return _token_command(args, device, dtype)
    config = read_checkpoint_config(args.model)
    if config["kind"] == "lm":
        return _token_command(args, device, dtype)
    if config["kind"] != "classifier":
        raise InterpError(f"{args.model} holds a {config['kind']!r} checkpoint; relevance needs an image classifier or an LM")
    return _image_command(args, config, device, dtype)


def _image_command(args: argparse.Namespace, config: dict[str, Any], device, dtype) -> dict[str, Any]:
    from interp.relevance.engine import bilinear_pair_relevance, relevance
    from interp.relevance.composites import rule_map
    from interp.viz.relevance import pixel_relevance_figure, relevance_png

    if args.index is None:
        raise InterpError("image classifiers need --index I (a test-set image)")
    if args.text is not None:
        raise InterpError("--text is for language models; this checkpoint is an image classifier")
    rule_map(args.rule_map)  # bad names fail before anything is loaded
    model, config = load_image_model(args.model, device, dtype)
    data = test_images(config, args.data_dir)
    if not 0 <= args.index < len(data.test):
        raise InterpError(f"index {args.index} is out of range: the {data.name} test set has images 0..{len(data.test) - 1}")
    target = parse_class(args.target, data.class_names)
    image = data.test.images[args.index].to(device=device, dtype=dtype)
    low, high = pixel_bounds(data.train.images, image, args.bounds)
    rules = rule_map(args.rule_map, low=low, high=high)
    maps = relevance(model, image[None], target, rules)
    with torch.no_grad():
        prediction = int(model(image[None]).argmax(-1))
    R = maps.relevance[0].reshape(image.shape)
    target = int(maps.target[0])
    result: dict[str, Any] = {
        "model": getattr(model, "arch", type(model).__name__), "index": args.index,
        "label": int(data.test.labels[args.index]), "label_name": data.class_names[int(data.test.labels[args.index])],
        "prediction": prediction, "target": target, "target_name": data.class_names[target],
        "output": float(maps.output[0]), "relevance_sum": float(R.sum()), "absorbed": float(maps.absorbed[0]),
        "absorbed_by_layer": {k: float(v[0]) for k, v in maps.absorbed_by_layer.items()},
        "rule_map": maps.rule_map, "rules": maps.rules, "top_pixels": top_pixels(R, image, args.top),
        "bottom_pixels": top_pixels(-R, image, args.top),
    }
    for entry in result["bottom_pixels"]:
        entry["relevance"] = -entry["relevance"]
    if args.pairs:
        if getattr(model, "arch", None) != "bilinear":
            raise InterpError("--pairs needs a bilinear classifier (pair relevance is exact only for a quadratic form)")
        pairs = bilinear_pair_relevance(model, image, target)
        result["pair_sum"] = float(pairs.pairs.sum())
        result["top_pairs"] = top_pairs(pairs.pairs[:model.d_in, :model.d_in], image.shape[-1], args.top)
    if args.out is not None:
        atomic_write_bytes(args.out, relevance_png(image, R))
        result["out"] = str(args.out)
    if args.out_html is not None:
        title = f"{data.class_names[target]} (logit {result['output']:.3g}), rule map {maps.rule_map}"
        write_html_figure(args.out_html, pixel_relevance_figure(image, R, title))
        result["html"] = str(args.out_html)
    return result


def _token_command(args: argparse.Namespace, device, dtype) -> dict[str, Any]:
    from interp.models.lm import load_lm
    from interp.relevance.tokens import prompt_relevance
    from interp.viz.relevance import token_relevance_figure

    if args.text is None:
        raise InterpError("language models need --text PROMPT")
    if args.out is not None:
        raise InterpError("--out writes an image's heatmap; token relevance is written as a page with --out-html")
    # TransformerLens prints "Moving model to device" on stdout; --json must print one object only,
    # and an error exactly one line, so that chatter is dropped.
    with contextlib.redirect_stdout(io.StringIO()):
        lm = load_lm(args.model, device=device, dtype=dtype)
    result = prompt_relevance(lm, args.text, args.target)
    order = sorted(range(len(result.relevance)), key=lambda i: -result.relevance[i])[:args.top]
    name = lm.config.get("model_type") if lm.config.get("kind") == "hf" else f"{lm.arch}-lm"
    out = {"model": name, **result.to_dict(), "relevance_sum": sum(result.relevance) + result.constant,
           "top_tokens": [{"position": i, "token": result.tokens[i], "relevance": result.relevance[i]} for i in order]}
    if args.out_html is not None:
        title = f"relevance for {result.target!r} (logit {result.output:.3g})"
        write_html_figure(args.out_html, token_relevance_figure(result.tokens, result.relevance, title))
        out["html"] = str(args.out_html)
    return out


def relevance_eval_command(args: argparse.Namespace) -> dict[str, Any]:
    from interp.relevance.evaluate import pixel_flipping
    from interp.relevance.composites import rule_map
    from interp.viz.relevance import flipping_curves_figure

    from interp.io import check_output_file

    check_output_file(args.out, args.force, "--out-html")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    if args.out is not None and args.out.suffix.lower() != ".html":
        raise InterpError(f"--out-html {args.out}: the flipping curves are written as .html")
    if args.n_images < 1 or args.batch_size < 1:
        raise InterpError("--n-images and --batch-size must be at least 1")
    rules = rule_map(args.rule_map)
    config = read_checkpoint_config(args.model)
    if config["kind"] != "classifier":
        raise InterpError(f"{args.model} holds a {config['kind']!r} checkpoint; relevance-eval needs an image classifier")
    model, config = load_image_model(args.model, device, dtype)
    data = test_images(config, args.data_dir)
    images = data.test.images[:args.n_images].to(device=device, dtype=dtype)
    result = pixel_flipping(model, images, rules, steps=args.steps, pixels_per_step=args.pixels_per_step,
                            seed=args.seed, batch_size=args.batch_size,
                            replacement=args.replacement, quiet=args.quiet)
    out = {"model": getattr(model, "arch", type(model).__name__), "path": str(args.model), **result.to_dict(),
           "dtd_above_random": result.aopc["dtd"] > result.aopc["random"],
           "dtd_at_least_gradient": result.aopc["dtd"] >= result.aopc["gradient"]}
    if not args.json:
        out.pop("curves")  # hundreds of numbers; --json or --out have them
    if args.out is not None:
        write_html_figure(args.out, flipping_curves_figure(result.curves, result.pixels_per_step, result.aopc))
        out["out"] = str(args.out)
    return out
