"""Write small image datasets in the real on-disk formats torchvision reads.

CIFAR-10: the python version, a folder ``cifar-10-batches-py`` with pickled dicts
(``data_batch_1..5``, ``test_batch``: 'data' N x 3072 uint8 rows in CHW order, 'labels';
``batches.meta``: 'label_names'). Fashion-MNIST: the four gzipped idx files (big-endian magic
2051 for images, 2049 for labels, then the dimensions).

The images carry a learnable pattern: a bright stripe whose height depends on the class, on a
noisy background, so a correctly wired CNN learns them in a few epochs.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def pattern_images(labels: np.ndarray, size: int, channels: int, seed: int) -> np.ndarray:
    """uint8 (N, size, size, channels): noise plus a bright full-width stripe whose height in
    the image is the label (up to 10 classes). Horizontal stripes survive horizontal flips; a
    random crop of more than a stripe's height would blur them, so tests switch cropping off."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, size=(len(labels), size, size, channels), dtype=np.uint8)
    band = max(1, (size - 4) // 10)
    for index, label in enumerate(labels):
        top = 2 + band * int(label)
        images[index, top : top + band, :, :] = 230
    return images


def write_cifar10(root: Path, per_batch: int = 100, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with 5 train batches and a test batch; returns ``root``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for number, name in enumerate(names):
        labels = rng.integers(0, 10, size=per_batch)
        images = pattern_images(labels, 32, 3, seed + number)
        batch = {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(per_batch, -1),  # rows of R, G, B planes
            "filenames": [f"{name}_{i}.png" for i in range(per_batch)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(
            {"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch}, handle, protocol=2
        )
    return root


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(folder: Path, train: int = 600, test: int = 200, seed: int = 0) -> Path:
    """The four gzipped idx files of Fashion-MNIST in ``folder``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, size=count)
        images = pattern_images(labels, 28, 1, seed + count)[..., 0]
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return folder
