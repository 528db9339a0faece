"""The images kind (cifar10, fashion_mnist): uint8 images -> per-channel statistics of the
train images -> a PyTorch CNN whose first layer normalises, so it takes raw images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.errors import DataError, one_line
from lab1.core.io import atomic_dir, atomic_path, file_sha256, read_json, write_json
from lab1.core.params import Params
from lab1.core.paths import PATHS

if TYPE_CHECKING:
    from lab1.core.datasets.images import ImageSplits

logger = logging.getLogger(__name__)
SPLITS = ("train", "test")


# --- stage 1: data_creation ------------------------------------------------------------------


def write_images(splits: ImageSplits, out_dir: Path, dataset: str) -> dict:
    """Write train.npz / test.npz (uint8 images + labels) and the manifest; return it."""
    import numpy as np

    from lab1.core.datasets.images import save_split

    files = []
    for split in SPLITS:
        images, labels = getattr(splits, f"{split}_images"), getattr(splits, f"{split}_labels")
        path = out_dir / PATHS.raw_images(split).name
        save_split(path, images, labels)
        counts = np.bincount(labels, minlength=len(splits.classes)).tolist()
        files.append(
            {
                "path": path.name,
                "split": split,
                "rows": len(labels),
                "per_class": counts,
                "sha256": file_sha256(path),
            }
        )
    manifest = {
        "dataset": dataset,
        "classes": splits.classes,
        "verified": splits.verified,
        "source": splits.source,
        "image_shape": list(splits.train_images.shape[1:]),
        "files": files,
    }
    write_json(out_dir / PATHS.raw_manifest.name, manifest)
    return manifest


# --- stage 2: data_preprocessing -------------------------------------------------------------


def read_raw(classes: list[str]) -> dict[str, tuple[Any, Any]]:
    """``{split: (images, labels)}`` from data/raw; DataError when a split's labels do not cover
    at least two of ``classes``."""
    import numpy as np

    from lab1.core.datasets.images import load_split

    loaded = {split: load_split(PATHS.raw_images(split)) for split in SPLITS}
    for split, (_, labels) in loaded.items():
        present = np.unique(labels)
        if len(present) < 2 or labels.min() < 0 or labels.max() >= len(classes):
            raise DataError(
                f"{PATHS.raw_images(split)}: labels {present.tolist()} do not "
                f"cover at least two of the {len(classes)} classes"
            )
    return loaded


def write_processed(
    splits: dict[str, tuple[Any, Any]],
    mean: list[float],
    std: list[float],
    manifest: dict[str, Any],
    augmentation: Any,
    out_dir: Path,
) -> None:
    """data/processed: the splits unchanged and normalization.json (the statistics, classes and
    the augmentation to apply while training), all at once."""
    from lab1.core.datasets.images import save_split

    with atomic_dir(out_dir) as tmp:
        for split, (images, labels) in splits.items():
            save_split(tmp / PATHS.processed_images(split).name, images, labels)
        write_json(
            tmp / PATHS.normalization.name,
            {
                "mean": mean,
                "std": std,
                "classes": manifest["classes"],
                "augmentation": augmentation.model_dump(),
                "verified": manifest.get("verified"),
            },
        )


# --- stage 4: model_testing ------------------------------------------------------------------


def evaluate(model: Any, test_path: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """The CNN on the test images: (the report: metrics, accuracy per class; extra MLflow
    metrics). Draws the confusion matrix and the misclassified images into reports/."""
    from lab1.core.cnn import predict_proba
    from lab1.core.datasets.images import load_split
    from lab1.core.evaluation import (
        grouped_accuracy,
        misclassified_grid,
        multiclass_metrics,
        plot_confusion_matrix,
    )

    images, labels = load_split(test_path)
    classes = read_json(PATHS.normalization)["classes"]
    proba = predict_proba(model, images)
    y_pred = proba.argmax(axis=1)
    names = [classes[i] for i in labels]
    per_class = grouped_accuracy(labels, y_pred, names)
    report = {
        "metrics": multiclass_metrics(labels, proba),
        "per_class_accuracy": per_class,
        "test_rows": len(labels),
        "classes": classes,
    }
    with atomic_path(PATHS.confusion_matrix_plot) as tmp:
        plot_confusion_matrix(labels, y_pred, classes, tmp)
    with atomic_path(PATHS.misclassified_plot) as tmp:
        misclassified_grid(images, labels, y_pred, classes, tmp)
    return report, {f"accuracy.{k}": v for k, v in per_class.items()}


def score(params: Params, model_dir: Path) -> dict[str, float]:
    """The metrics of the model in ``model_dir`` (e.g. the champion's) on this test split.
    DataError when it cannot score these images (other classes or image shape)."""
    from lab1.core.cnn import predict_proba
    from lab1.core.datasets.images import load_split
    from lab1.core.evaluation import multiclass_metrics
    from lab1.core.model_io import load_torch_model

    images, labels = load_split(PATHS.processed_images("test"))
    classes = read_json(PATHS.normalization)["classes"]
    model = load_torch_model(model_dir)
    try:
        proba = predict_proba(model, images)
    except RuntimeError as exc:
        raise DataError(f"{model_dir}: cannot score these test images ({one_line(exc)})") from None
    if proba.shape[1] != len(classes):
        raise DataError(
            f"{model_dir}: scores {proba.shape[1]} classes; this test set has {len(classes)}"
        )
    return multiclass_metrics(labels, proba)


def follow_rank0(params: Params) -> int:
    """model_preparation on a torchrun rank other than 0 (lab1/core/distributed.py): the same
    training as rank 0's (model_preparation.train_cnn), its share of every batch, and nothing
    recorded or written."""
    from lab1.core import cnn
    from lab1.core.datasets.images import load_split

    logging.getLogger("lab1").setLevel(logging.WARNING)  # rank 0 logs the epochs
    images, labels = load_split(PATHS.processed_images("train"))
    norm = read_json(PATHS.normalization)
    cnn.train(
        images, labels, len(norm["classes"]), (norm["mean"], norm["std"]), params.cnn,
        params.data_preprocessing.augmentation[params.dataset], params.model_preparation.seed,
    )  # fmt: skip
    return 0
