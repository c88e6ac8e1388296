"""A PNG of a bilinear image classifier's top eigenvectors per class (rows: classes; columns: top k by |λ|).

Each tile is the pixel part of one eigenvector of Q_c, red positive, blue negative, white zero, scaled
to its own largest |entry| and signed so that entry is positive (v and −v give the same form λ(vᵀx)²);
the eigenvalue λ is written above it. Drawn with PIL from the arrays (no plotting library needed).

    .venv/bin/python scripts/eigenvector_picture.py checkpoints/fmnist-bilinear docs/img/fmnist-bilinear-eigenvectors.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from interp.bilinear.analysis import class_eigen
from interp.bilinear.core import classifier_weights
from interp.models.checkpoints import load_classifier


def tile(vector: np.ndarray, shape: tuple[int, int], scale: int) -> Image.Image:
    """One eigenvector as an RGB image: white at 0, red at +max, blue at −max."""
    v = vector.reshape(shape)
    v = v / max(float(np.abs(v).max()), 1e-12)
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    rgb = np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1)  # + → (1, 1−p, 1−p) red; − → (1−n, 1−n, 1) blue
    img = Image.fromarray((255 * rgb).round().astype(np.uint8), "RGB")
    return img.resize((shape[1] * scale, shape[0] * scale), Image.NEAREST)


def picture(model: torch.nn.Module, class_names: list[str], shape: tuple[int, int], k: int = 5,
            scale: int = 3) -> Image.Image:
    eig = class_eigen(classifier_weights(model).to(torch.float64))
    d_pix = shape[0] * shape[1]
    values = eig.eigenvalues[:, :k].numpy()
    vectors = eig.eigenvectors[:, :k, :d_pix].numpy()
    label_w, head_h, gap, text_h = 90, 16, 4, 12
    th, tw = shape[0] * scale, shape[1] * scale
    n = len(class_names)
    canvas = Image.new("RGB", (label_w + k * (tw + gap), head_h + n * (th + text_h + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for j in range(k):
        draw.text((label_w + j * (tw + gap) + 2, 2), f"#{j + 1} by |eigval|", fill="black")
    for c, name in enumerate(class_names):
        y = head_h + c * (th + text_h + gap)
        draw.text((2, y + text_h + th // 2 - 6), name[:14], fill="black")
        for j in range(k):
            v = vectors[c, j]
            v = v if v[np.abs(v).argmax()] >= 0 else -v
            x = label_w + j * (tw + gap)
            draw.text((x + 2, y), f"{values[c, j]:+.3g}", fill="black")
            canvas.paste(tile(v, shape, scale), (x, y + text_h))
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--k", type=int, default=5, help="eigenvectors per class (default 5)")
    parser.add_argument("--scale", type=int, default=3, help="pixels per image pixel (default 3)")
    args = parser.parse_args(argv)
    model, config, _ = load_classifier(args.checkpoint, expect_arch="bilinear")
    shape = tuple(config.get("image_shape", (28, 28)))
    names = config.get("class_names") or [str(c) for c in range(model.n_classes)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture(model, names, shape, k=args.k, scale=args.scale).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
