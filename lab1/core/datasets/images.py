"""Image datasets read by torchvision's own dataset classes: CIFAR-10 and Fashion-MNIST.

Both come out the same shape: uint8 images (N, H, W, C), int64 labels, class names, and whether
the files were checked against torchvision's published md5 sums.

Where the files come from, first match wins:
  CIFAR-10       data_creation.cifar10.data_dir (a folder holding cifar-10-batches-py), else the
                 data cache (data/cache), downloading there once.
  Fashion-MNIST  data_creation.fashion_mnist.data_dir (a folder with the four idx files, .gz or
                 not), else Debian's dataset-fashion-mnist package (/usr/share/datasets/
                 fashion-mnist: offline), else a download into the data cache.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab1.core.errors import DataError
from lab1.core.params import ImageSourceParams

logger = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class ImageSplits:
    train_images: np.ndarray  # uint8 (N, H, W, C)
    train_labels: np.ndarray  # int64 (N,), 0..len(classes)-1
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    verified: bool  # files matched torchvision's md5 sums
    source: str  # where they were read from


def _torchvision():
    try:
        import torchvision.datasets as datasets
    except ImportError:
        raise DataError(
            "torch/torchvision are not installed: run `bash pipeline.sh --setup --images` "
            "(or pass --dataset to pipeline.sh, which installs them)"
        ) from None
    return datasets


# --- CIFAR-10 --------------------------------------------------------------------------------


def unverified_cifar10_class():
    """torchvision's CIFAR10 with md5-free file lists: reads a user-made CIFAR-format folder.

    torchvision checks every file against the official md5 sums, which any folder not made by
    the CIFAR authors fails. Used only when data_creation.cifar10.verify is false (logged, and
    recorded in MLflow as data.verified=False).
    """
    datasets = _torchvision()

    # These override torchvision's class attributes of the same names (hence RUF012's noqa).
    class UnverifiedCIFAR10(datasets.CIFAR10):
        train_list = [[name, None] for name, _md5 in datasets.CIFAR10.train_list]  # noqa: RUF012
        test_list = [[name, None] for name, _md5 in datasets.CIFAR10.test_list]  # noqa: RUF012
        meta = {**datasets.CIFAR10.meta, "md5": None}  # noqa: RUF012

    return UnverifiedCIFAR10


def load_cifar10(section: ImageSourceParams, cache: Path) -> ImageSplits:
    datasets = _torchvision()
    root = Path(section.data_dir) if section.data_dir else cache
    reader = datasets.CIFAR10 if section.verify else unverified_cifar10_class()
    if not section.verify:
        logger.warning("%s: md5 verification is OFF (data_creation.cifar10.verify=false)", root)
    folder = root / datasets.CIFAR10.base_folder
    download = section.data_dir is None and not folder.exists()
    try:
        train = reader(str(root), train=True, download=download)
        test = reader(str(root), train=False, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        hint = (
            "files fail torchvision's md5 check; for a folder you made yourself set "
            "data_creation.cifar10.verify=false"
            if folder.exists()
            else "put the extracted cifar-10-batches-py folder there or set "
            "data_creation.cifar10.data_dir"
        )
        raise DataError(f"{folder}: CIFAR-10 not usable ({exc}); {hint}") from None
    except OSError as exc:  # URLError is an OSError: no network
        raise DataError(
            f"{folder}: CIFAR-10 not found and the download failed ({_reason(exc)}); download "
            "cifar-10-python.tar.gz elsewhere, extract it and set data_creation.cifar10.data_dir"
        ) from None
    return ImageSplits(
        train_images=np.asarray(train.data, dtype=np.uint8),
        train_labels=np.asarray(train.targets, dtype=np.int64),
        test_images=np.asarray(test.data, dtype=np.uint8),
        test_labels=np.asarray(test.targets, dtype=np.int64),
        classes=list(train.classes),
        verified=section.verify,
        source=str(folder),
    )


# --- Fashion-MNIST ---------------------------------------------------------------------------


def load_fashion_mnist(section: ImageSourceParams, cache: Path) -> ImageSplits:
    datasets = _torchvision()
    from torchvision.datasets.utils import check_md5

    reader = datasets.FashionMNIST
    raw = cache / reader.__name__ / "raw"
    local = Path(section.data_dir) if section.data_dir else DEBIAN_FASHION_MNIST
    verified = section.verify
    if local.is_dir() and (section.data_dir or any(local.glob("*-idx*-ubyte*"))):
        # Put the local files where torchvision's reader looks, unzipped. Verification: Debian
        # recompressed the archives, so its files are checked against the package's own
        # checksums (dpkg --verify); a user's folder against torchvision's published md5 sums.
        debian = local == DEBIAN_FASHION_MNIST
        if debian and section.verify:
            _dpkg_verify("dataset-fashion-mnist", local)
        raw.mkdir(parents=True, exist_ok=True)
        for name, md5 in reader.resources:
            gz, plain = local / name, local / name.removesuffix(".gz")
            if gz.exists():
                if section.verify and not debian and not check_md5(str(gz), md5):
                    raise DataError(
                        f"{gz}: md5 differs from torchvision's published sum; for files you "
                        "made yourself set data_creation.fashion_mnist.verify=false"
                    )
                with gzip.open(gz) as src, open(raw / plain.name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            elif plain.exists():
                verified = False  # the md5 sums are of the .gz archives
                shutil.copyfile(plain, raw / plain.name)
            else:
                raise DataError(f"{local}: {name} (or {plain.name}) missing")
        source = str(local)
    else:
        source = f"{raw} (download)"
    try:
        complete = all((raw / name.removesuffix(".gz")).exists() for name, _ in reader.resources)
        train = reader(str(cache), train=True, download=not complete)
        test = reader(str(cache), train=False, download=False)
    except (RuntimeError, OSError) as exc:
        raise DataError(
            f"Fashion-MNIST not found in {local} or {raw}, and the download failed "
            f"({_reason(exc)}); install Debian's dataset-fashion-mnist package or set "
            "data_creation.fashion_mnist.data_dir to a folder with the four idx files"
        ) from None
    return ImageSplits(
        train_images=train.data.numpy()[..., None],
        train_labels=train.targets.numpy().astype(np.int64),
        test_images=test.data.numpy()[..., None],
        test_labels=test.targets.numpy().astype(np.int64),
        classes=list(train.classes),
        verified=verified,
        source=source,
    )


def _dpkg_verify(package: str, where: Path) -> None:
    """Check an installed Debian package's files against its checksums (dpkg --verify)."""
    import subprocess

    done = subprocess.run(["dpkg", "--verify", package], capture_output=True, text=True)
    if done.returncode != 0 or done.stdout.strip():
        changed = " ".join(done.stdout.split()) or done.stderr.strip()
        raise DataError(f"{where}: dpkg --verify {package} failed ({changed})")


def _reason(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "reason", exc)).split())[:200]


# --- selection -------------------------------------------------------------------------------


def select(splits: ImageSplits, section: ImageSourceParams, seed: int, name: str) -> ImageSplits:
    """Keep the classes named in params (relabelled 0..k-1 in that order) and at most
    max_train / max_test images (a seeded random subset)."""
    classes = section.classes or splits.classes
    unknown = [c for c in classes if c not in splits.classes]
    if unknown:
        raise DataError(
            f"params.yaml: data_creation.{name}.classes has {unknown[0]!r} "
            f"(classes: {', '.join(splits.classes)})"
        )
    if len(classes) < 2:
        raise DataError(f"params.yaml: data_creation.{name}.classes needs at least two classes")
    originals = [splits.classes.index(c) for c in classes]
    rng = np.random.default_rng(seed)

    def pick(images, labels, limit) -> tuple[np.ndarray, np.ndarray]:
        keep = np.flatnonzero(np.isin(labels, originals))
        if limit is not None and limit < len(keep):
            keep = np.sort(rng.permutation(keep)[:limit])
        relabel = np.full(labels.max() + 1, -1, dtype=np.int64)
        relabel[originals] = np.arange(len(originals))
        return images[keep], relabel[labels[keep]]

    train = pick(splits.train_images, splits.train_labels, section.max_train)
    test = pick(splits.test_images, splits.test_labels, section.max_test)
    return ImageSplits(*train, *test, list(classes), splits.verified, splits.source)


LOADERS = {"cifar10": load_cifar10, "fashion_mnist": load_fashion_mnist}


def make_images(name: str, section: ImageSourceParams, seed: int, cache: Path) -> ImageSplits:
    """The selected train/test images of dataset ``name``."""
    return select(LOADERS[name](section, cache), section, seed, name)


def save_split(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """One split as .npz (uncompressed: fast to read, and DVC dedupes it as one file)."""
    np.savez(path, images=images, labels=labels)


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a split written by save_split, checking shapes and types."""
    try:
        with np.load(path, allow_pickle=False) as data:  # never unpickle data files
            images, labels = data["images"], data["labels"]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run the stage that writes it first)") from None
    except (ValueError, KeyError, OSError) as exc:
        raise DataError(f"{path}: not a readable image split ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise DataError(
            f"{path}: expected uint8 images (N, H, W, C) and N labels, found {images.dtype} "
            f"{images.shape} and {len(labels)} labels"
        )
    if len(images) == 0:
        raise DataError(f"{path}: no images")
    return images, labels.astype(np.int64)
