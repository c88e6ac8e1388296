"""`interp harmless MODEL`: the harmless subspace of a model's layer, checked on a test image.

    interp harmless checkpoints/fmnist-bilinear --layer bilinear --index 3 --magnitude 100 --json

prints {"dimension", "exact", "magnitude", "max_abs_logit_change", "max_abs_logit", ...}: the
space's dimension, whether it is an exact null space (false: the approximate space of the smallest
singular values, or an input-dependent ReLU space whose pattern breaks at this magnitude), and the
logits of test image I before and after adding δ from the space with ‖δ‖ = M · ‖x‖.
`--secret J` also hides test image J in image I; `--other DIR2` tries the same δ on another model.
An LM (ours or a Hugging Face folder) gives, per dictionary input of a layer, the directions no encoder of its
dictionaries reads (--transcoders / --attn-saes, default MODEL/transcoders and MODEL/attn-saes).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from interp.argtypes import (
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
)
from interp.device import resolve_device, resolve_dtype
from interp.errors import InterpError


def _test_image(dataset: Any, index: int, what: str) -> Any:
    n = len(dataset.test)
    if not 0 <= index < n:
        raise InterpError(f"{what} {index} is out of range: the {dataset.name} test set has images 0..{n - 1}")
    return dataset.test.images[index]


def run_harmless(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from interp.io import check_output_file, read_checkpoint_config, save_tensors

    check_output_file(args.out, args.force, "--out")
    check_output_file(args.html, args.force, "--out-html")
    from interp.models.hf import is_hf_folder

    # a Hugging Face model folder (config.json without "kind") is an LM folder: its transcoders/ and attn-saes/
    config = {"kind": "lm"} if is_hf_folder(args.model) else read_checkpoint_config(args.model)
    if not (math.isfinite(args.magnitude) and args.magnitude > 0):
        raise InterpError(f"--magnitude must be a finite number > 0, got {args.magnitude}")
    if args.rtol is not None and not 0 < args.rtol < 1:
        raise InterpError(f"--rtol must be a number in (0, 1), got {args.rtol}")
    if args.approx_dim < 1 or args.n_images < 1:
        raise InterpError("--approx-dim and --n-images must be at least 1")
    if config["kind"] in ("dictionaries", "lm"):
        from interp.harmless.lm import dictionaries_null_space_from_folder

        if args.secret is not None or args.other is not None or args.out is not None or args.html is not None:
            raise InterpError("--secret, --other, --out and --out-html are for image classifiers, not language models")
        return dictionaries_null_space_from_folder(args.model, layer=args.layer, rtol=args.rtol,
                                                   magnitude=args.magnitude, seed=args.seed,
                                                   approx_dim=args.approx_dim, transcoders=args.transcoders,
                                                   attn_saes=args.attn_saes,
                                                   allow_mismatch=args.allow_mismatch).summary()
    if config["kind"] != "classifier":
        raise InterpError(f"{args.model} holds a {config['kind']!r} checkpoint; `interp harmless` reads image "
                          "classifiers and language models")
    if args.transcoders is not None or args.attn_saes is not None or args.allow_mismatch:
        raise InterpError("--transcoders, --attn-saes and --allow-mismatch are for language models, not classifiers")
    from interp.data.images import load_image_dataset
    from interp.harmless.apply import check_perturbation, hide_image, identify_model
    from interp.harmless.layers import harmless_layers, harmless_space
    from interp.models.checkpoints import load_classifier

    dtype, device = resolve_dtype(args.dtype), resolve_device(args.device)
    model, _, _ = load_classifier(args.model)
    layers = harmless_layers(model)
    if args.layer is not None and args.layer not in layers:
        raise InterpError(f"no layer {args.layer!r} in {args.model}; choose one of {', '.join(layers)}")
    dataset = load_image_dataset(config.get("dataset", "fashion-mnist"), args.data_dir)
    x = _test_image(dataset, args.index, "--index")
    # Check every input before computing anything, so a bad one gives one line and nothing else.
    secret = _test_image(dataset, args.secret, "--secret") if args.secret is not None else None
    other = None
    if args.other is not None:
        other, other_config, _ = load_classifier(args.other)
        if other_config.get("dataset") != config.get("dataset"):
            raise InterpError(f"{args.other} was trained on {other_config.get('dataset')!r}, {args.model} on "
                              f"{config.get('dataset')!r}: compare models of the same dataset")
    space = harmless_space(model, args.layer, x, image_shape=dataset.image_shape, rtol=args.rtol,
                           approx_dim=args.approx_dim, quiet=args.quiet)
    check = check_perturbation(model, x, space, args.magnitude, seed=args.seed, dtype=dtype, device=device)
    out: dict[str, Any] = {
        "dimension": space.dimension, "exact": space.exact, "magnitude": args.magnitude,
        "max_abs_logit_change": check.max_abs_logit_change, "max_abs_logit": check.max_abs_logit,
        "relative_logit_change": check.relative_logit_change, "layer": space.layer, "kind": space.kind,
        "valid": space.valid, "layers": list(layers), "d_in": space.d_in, "rank": space.rank,
        "null_dimension": space.null_dimension, "tolerance": space.tolerance, "gain": space.gain,
        "index": args.index, "input_norm": check.input_norm, "perturbation_norm": check.perturbation_norm,
        "prediction_before": check.prediction_before, "prediction_after": check.prediction_after,
        "valid_magnitude": check.valid_magnitude, "pattern_holds": check.pattern_holds,
        "dtype": check.dtype, "note": space.note,
    }
    from interp.viz import harmless as viz

    figures = [viz.logits_figure(check, dataset.class_names), viz.singular_values_figure(space),
               viz.basis_images_figure(space)]
    if args.out is not None:
        # The basis B (d_in × dimension, orthonormal columns); the projector is P = B Bᵀ.
        save_tensors(args.out, {"basis": space.basis, "singular_values": torch.tensor(space.singular_values)})
        out["out"] = str(args.out)
    if secret is not None:
        hidden = hide_image(model, space, x, secret, dtype=dtype, device=device)
        figures += [viz.hidden_image_figure(hidden), viz.hidden_logits_figure(hidden, dataset.class_names)]
        out["secret"] = {"index": args.secret, "secret_kept": hidden.secret_kept, "secret_cosine": hidden.secret_cosine,
                         "scales": [{k: v for k, v in s.to_dict().items() if k not in ("result_image", "logits_after")}
                                    for s in hidden.scales]}
    if other is not None:
        # An input-dependent space belongs to image I alone; a fixed space is tried on the first N test images.
        n = min(args.n_images, len(dataset.test))
        images = x[None] if space.pre_activation is not None else dataset.test.images[:n]
        ident = identify_model(model, other, space, images, args.magnitude, seed=args.seed, dtype=dtype, device=device)
        out["other"] = {"path": str(args.other), **ident.to_dict()}
    if args.html is not None:
        from interp.viz.bilinear import write_html

        write_html(args.html, figures, title=f"harmless: {args.model} {space.layer}")
        out["html"] = str(args.html)
    return out


def register(cli: Any) -> None:
    p = cli.add_command("harmless", run_harmless,
                        help="harmless subspace of a layer (null space, or ReLU input-dependent space), "
                             "checked on a test image")
    p.add_argument("model", metavar="MODEL", type=Path,
                   help="image-classifier checkpoint folder, or an LM (checkpoint folder or Hugging Face model folder) "
                        "whose dictionaries to read")
    p.add_argument("--transcoders", type=Path, default=None, metavar="DIR",
                   help="LM: transcoders folder to read (default, when neither this nor --attn-saes is given: "
                        "MODEL/transcoders and MODEL/attn-saes where they exist)")
    p.add_argument("--attn-saes", type=Path, default=None, metavar="DIR",
                   help="LM: attention SAE folder to read (default: see --transcoders)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="LM: use dictionaries that record another model (hooks and widths must still fit)")
    p.add_argument("--layer", default=None,
                   help="layer name (classifier; default: the first layer, a bad name lists the choices) or "
                        "layer number (LM; default: the first with dictionaries)")
    p.add_argument("--index", type=non_negative_int, default=0, help="test image x to perturb (default 0)")
    p.add_argument("--magnitude", type=positive_float, default=100.0, help="‖δ‖ as a multiple of ‖x‖ (default 100)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random direction in the space")
    p.add_argument("--rtol", type=open_fraction, default=None,
                   help="σ ≤ rtol·σ_max counts as zero, 0 < rtol < 1 (default max(m, n)·eps·σ_max)")
    p.add_argument("--approx-dim", type=positive_int, default=32,
                   help="size of the approximate space where the exact one is empty (default 32)")
    p.add_argument("--secret", type=non_negative_int, default=None, help="also hide test image J in x at 10× and 100× ‖x‖")
    p.add_argument("--other", type=Path, default=None,
                   help="another classifier folder: does δ (harmless here) change its logits?")
    p.add_argument("--n-images", type=positive_int, default=100, help="test images for --other (default 100)")
    p.add_argument("--out", type=Path, default=None,
                   help="save the basis (d_in × dimension; projector P = B Bᵀ) and singular values as safetensors")
    p.add_argument("--out-html", dest="html", type=Path, default=None,
                   help="write the figures (logits, singular values, basis, hidden image) to one HTML page")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--data-dir", type=Path, default=None, help="where Fashion-MNIST lies")
    # At 100× ‖x‖ float32 rounding alone moves logits by ~1e-5 of their size: check in float64.
    p.set_defaults(dtype="float64")
