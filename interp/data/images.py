"""Image datasets: Fashion-MNIST from its gzip IDX files and sklearn's bundled 8x8 digits.

Fashion-MNIST is looked for in `--data-dir`, then `$INTERP_DATA_DIR`, then Debian's
`/usr/share/datasets/fashion-mnist` (package `dataset-fashion-mnist`). Where a network exists it
may be downloaded from the dataset's official location into the first writable place.
Images come back as float32 in [0, 1], shape (N, H, W); labels as int64.
"""

from __future__ import annotations

import gzip
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from interp.errors import InterpError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
from interp.data import DATASETS  # noqa: E402,F401


@dataclass
class ImageSplit:
    images: torch.Tensor  # (N, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def flat(self) -> torch.Tensor:
        return self.images.reshape(len(self.images), -1)


@dataclass
class ImageDataset:
    name: str
    train: ImageSplit
    test: ImageSplit
    class_names: list[str]

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file into a uint8 array, with clear errors on bad files."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise InterpError(f"{path} is truncated or not a valid gzip file ({e}); reinstall dataset-fashion-mnist or delete it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InterpError(f"{path} is not an IDX file of unsigned bytes; reinstall dataset-fashion-mnist")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InterpError(f"{path} is truncated (header incomplete)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise InterpError(f"{path} is truncated or corrupt: expected {expected} data bytes for shape {shape}, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _candidate_dirs(data_dir: str | Path | None) -> list[Path]:
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get("INTERP_DATA_DIR"):
        dirs.append(Path(os.environ["INTERP_DATA_DIR"]))
    dirs.append(DEBIAN_DIR)
    return dirs


def _has_all(d: Path) -> bool:
    return all((d / f).is_file() for pair in FILES.values() for f in pair)


def _try_download(target: Path) -> bool:
    """Download the four files from the official location; False where there is no network."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        for pair in FILES.values():
            for name in pair:
                if (target / name).is_file():
                    continue
                with urllib.request.urlopen(OFFICIAL_URL + name, timeout=10) as r:
                    data = r.read()
                tmp = target / f".{name}.tmp"
                tmp.write_bytes(data)
                tmp.replace(target / name)
        return True
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def find_fashion_mnist(data_dir: str | Path | None = None, download: bool = False) -> Path:
    tried = _candidate_dirs(data_dir)
    for d in tried:
        if _has_all(d):
            return d
    if download:
        target = tried[0]
        if _try_download(target) and _has_all(target):
            return target
    places = ", ".join(str(d) for d in tried)
    raise InterpError(f"Fashion-MNIST not found (looked in {places}"
                      f"{'; download failed' if download else ''}); run `apt-get install dataset-fashion-mnist` or pass --data-dir")


def load_fashion_mnist(data_dir: str | Path | None = None, download: bool = False) -> ImageDataset:
    root = find_fashion_mnist(data_dir, download=download)
    splits = {}
    for split, (img_name, lbl_name) in FILES.items():
        images = read_idx(root / img_name)
        labels = read_idx(root / lbl_name)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InterpError(f"Fashion-MNIST {split} files in {root} do not match (images {images.shape}, labels {labels.shape})")
        splits[split] = ImageSplit(torch.from_numpy(images.astype(np.float32) / 255.0),
                                   torch.from_numpy(labels.astype(np.int64)))
    return ImageDataset("fashion-mnist", splits["train"], splits["test"], list(FASHION_CLASSES))


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> ImageDataset:
    """sklearn's bundled 8x8 digits (1,797 images), scaled to [0, 1], split with a fixed seed."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = torch.tensor(d.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=g)
    n_test = int(round(test_fraction * len(labels)))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    return ImageDataset("digits", ImageSplit(images[train_idx], labels[train_idx]),
                        ImageSplit(images[test_idx], labels[test_idx]), [str(i) for i in range(10)])


def load_image_dataset(name: str, data_dir: str | Path | None = None) -> ImageDataset:
    if data_dir is not None and not Path(data_dir).is_dir():
        # A folder the user named and that is not there: say so rather than fall back to another copy.
        raise InterpError(f"--data-dir {data_dir} is not a folder")
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if name == "digits":
        return load_digits()
    raise InterpError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
