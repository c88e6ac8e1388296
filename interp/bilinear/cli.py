"""`interp eigen DIR`: read a bilinear classifier from its weights (spectra, truncation, masks)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from interp.argtypes import contrast_pair, non_negative_int, positive_float, positive_int
from interp.device import resolve_dtype
from interp.errors import InterpError


def eigen_command(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from interp.bilinear.analysis import TRUNCATION_KS, class_eigen, eigen_report
    from interp.bilinear.core import classifier_weights
    from interp.data.images import load_image_dataset
    from interp.io import check_output_file
    from interp.models.checkpoints import load_classifier

    check_output_file(args.html, args.force, "--out-html")
    dtype = resolve_dtype(args.dtype)
    if dtype not in (torch.float32, torch.float64):
        raise InterpError("eigendecompositions need --dtype float32 or float64")
    if args.direction is not None and args.contrast is not None:
        raise InterpError("give --direction or --contrast, not both")
    model, config, _ = load_classifier(args.model, expect_arch="bilinear")
    dataset = load_image_dataset(config.get("dataset", ""), args.data_dir)
    if model.d_in != dataset.test.images[0].numel():
        raise InterpError(f"{args.model} expects inputs of size {model.d_in}, but {dataset.name} images have "
                          f"{dataset.test.images[0].numel()} pixels")
    if args.html is not None and args.html.suffix.lower() not in (".html", ".htm"):
        raise InterpError(f"--out-html must name an .html file, got {args.html}")
    direction = _output_direction(args, model.n_classes, dataset.class_names)
    report = eigen_report(model.to(dtype), dataset.test.images.to(dtype), dataset.test.labels, dataset.class_names,
                          ks=TRUNCATION_KS, n_values=args.top, direction=direction, with_hosvd=args.hosvd,
                          mask_target=args.mask, mask_vectors=args.mask_vectors, mask_norm=args.mask_norm, dtype=dtype,
                          demean=args.demean)
    result = report.to_dict()
    if args.html is not None:
        from interp.viz.bilinear import report_figures, write_html

        weights = classifier_weights(model).to(dtype)
        eig = class_eigen(weights, args.demean)
        vectors = {f"{c}: {dataset.class_names[c]}": (eig.eigenvectors[c, :args.vectors].tolist(),
                                                      eig.eigenvalues[c, :args.vectors].tolist())
                   for c in range(weights.d_out)}
        write_html(args.html, report_figures(result, dataset.image_shape, vectors), title=f"interp eigen {args.model}")
        result["html"] = str(args.html)
    return result


def _output_direction(args: argparse.Namespace, n_out: int, class_names: list[str]) -> str | None:
    """The direction spec for `eigen_report` from --direction (one class or n_out numbers) or --contrast A,B.

    The library reads a difference of classes as "A-B" too; the command line spells it --contrast A,B only,
    as every command does, so a difference given to --direction is refused with the flag to use."""
    from interp.bilinear.core import parse_direction

    if args.contrast is not None:
        classes = []
        for side in args.contrast:
            try:
                one_hot = parse_direction(side, n_out, class_names)
            except InterpError:
                one_hot = None
            if one_hot is None or int((one_hot != 0).sum()) != 1:
                raise InterpError(f"--contrast A,B wants one class on each side (an index 0..{n_out - 1} or a class "
                                  f"name), got {side!r}")
            classes.append(int(one_hot.abs().argmax()))
        if classes[0] == classes[1]:
            raise InterpError(f"--contrast A,B needs two different classes; {args.contrast[0]!r} and "
                              f"{args.contrast[1]!r} name the same one")
        return f"{args.contrast[0]}-{args.contrast[1]}"
    if args.direction is not None and "," not in args.direction:
        try:
            one_hot = parse_direction(args.direction, n_out, class_names)
        except InterpError:  # the library's message offers "A-B", which this command spells --contrast
            one_hot = None
        if one_hot is None or int((one_hot != 0).sum()) != 1:
            raise InterpError(f"--direction takes one class (an index 0..{n_out - 1} or one of "
                              f"{', '.join(class_names)}) or {n_out} comma-separated numbers; for a difference of "
                              f"two classes use --contrast A,B (got {args.direction!r})")
    return args.direction


def bilinear_lm_command(args: argparse.Namespace) -> dict[str, Any]:
    """Top input pairs (and head pair terms) behind an output direction of a bilinear LM's MLP."""
    from interp.bilinear.lm import read_bilinear_mlp
    from interp.models.dictionaries import load_dictionaries
    from interp.models.lm import load_lm

    dtype = resolve_dtype(args.dtype)
    loaded = load_lm(args.model, dtype=dtype)
    # The default folder may be absent: only feature:... specs need dictionaries.
    transcoders = args.transcoders if args.transcoders is not None else args.model / "transcoders"
    dictionaries = load_dictionaries(transcoders) if args.transcoders is not None or transcoders.is_dir() else None
    reading = read_bilinear_mlp(loaded.model, args.layer, args.output, args.inputs, loaded.tokenizer, dictionaries,
                                top=args.top, heads=args.heads)
    pairs = reading.pairs
    result: dict[str, Any] = {"layer": args.layer, "output": reading.output_label, "inputs": args.inputs,
                              "pairs": [{"a": a, "b": b, "coefficient": c}
                                        for (a, b), (_, _, c) in zip(pairs.pair_labels, pairs.pairs)],
                              "diagonal_share": pairs.diagonal_share}
    if args.heads:
        result["heads"] = reading.heads
    return result


def register(cli) -> None:
    p = cli.add_command("bilinear-lm", bilinear_lm_command,
                        help="read a bilinear LM's MLP from its weights: the input pairs behind an output direction")
    p.add_argument("model", metavar="MODEL", type=Path, help="checkpoint folder of a bilinear LM (kind 'lm')")
    p.add_argument("--layer", type=non_negative_int, required=True, help="which MLP")
    p.add_argument("--output", required=True,
                   help="output direction: token:WORD (demeaned unembedding), feature:LAYER:INDEX (a dictionary "
                        "feature's encoder row), or d_model comma-separated numbers")
    p.add_argument("--inputs", default="tokens", help="input features: tokens (embeddings) or features:LAYER "
                                                      "(decoder rows of that layer's dictionary)")
    p.add_argument("--transcoders", type=Path, default=None, metavar="DIR",
                   help="transcoders folder for feature:... specs (default: MODEL/transcoders where it exists)")
    p.add_argument("--demean", action="store_true",
                   help="per class, read the logit minus the mean logit (same predictions; drops shared components)")
    p.add_argument("--top", type=positive_int, default=20, help="pairs to list (default 20)")
    p.add_argument("--heads", action="store_true", help="also the direct-path × head OV-path pair terms")

    p = cli.add_command("eigen", eigen_command,
                        help="eigendecompose a bilinear classifier's interaction matrices: spectra, truncation, masks")
    p.add_argument("model", metavar="MODEL", type=Path,
                   help="checkpoint folder of a bilinear classifier (kind 'classifier', arch bilinear)")
    p.add_argument("--direction", default=None,
                   help="also decompose one output direction: a class index or name, or comma-separated numbers "
                        "(one per class); a difference of two classes is --contrast")
    p.add_argument("--contrast", type=contrast_pair, default=None, metavar="A,B",
                   help="also decompose the output direction e_A - e_B (classes by index or name, e.g. Coat,Shirt "
                        "or 4,6)")
    p.add_argument("--demean", action="store_true",
                   help="per class, read the logit minus the mean logit (same predictions; drops shared components)")
    p.add_argument("--top", type=positive_int, default=20, help="eigenvalues per class to print (default 20)")
    p.add_argument("--hosvd", action="store_true", help="also the HOSVD of the whole tensor (no direction)")
    p.add_argument("--mask", default=None, metavar="CLASS",
                   help="also build an adversarial mask towards CLASS from its top positive eigenvectors")
    p.add_argument("--mask-vectors", type=positive_int, default=3, help="positive eigenvectors in the mask (default 3)")
    p.add_argument("--mask-norm", type=positive_float, default=3.0, help="L2 norm of the mask in pixel units (default 3)")
    p.add_argument("--out-html", dest="html", type=Path, default=None, help="write every figure into this HTML file")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--vectors", type=positive_int, default=8, help="eigenvector images per class in the HTML (default 8)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the Fashion-MNIST .gz files")
