"""The images kind (cifar10, fashion_mnist): uint8 images -> per-channel statistics of the
train images -> a PyTorch CNN whose first layer normalises, so it takes raw images."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.errors import DataError, one_line
from lab1.core.io import atomic_dir, atomic_path, file_sha256, read_json, write_json
from lab1.core.params import Params
from lab1.core.paths import PATHS

if TYPE_CHECKING:
    from lab1.core.datasets.images import ImageSplits
    from lab1.core.tracking.stage_run import StageRun

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


def create(params: Params, run: StageRun) -> None:
    from lab1.core.datasets.images import make_images

    section = getattr(params.data_creation, params.dataset)
    splits = make_images(params.dataset, section, params.data_creation.seed, PATHS.data_cache)
    with atomic_dir(PATHS.raw) as tmp:
        manifest = write_images(splits, tmp, params.dataset)
    run.add_output(PATHS.raw)
    # Whether the files passed the md5 check is part of the data's lineage.
    run.log(
        metrics={"train_rows": len(splits.train_labels), "test_rows": len(splits.test_labels)},
        tags={"data.verified": str(splits.verified), "data.source": splits.source},
    )
    run.notes |= {"data.verified": str(splits.verified).lower(), "data.source": splits.source}
    logger.info(
        "wrote %s images of %d classes (%s) to %s",
        {f["split"]: f["rows"] for f in manifest["files"]},
        len(splits.classes),
        "verified" if splits.verified else "NOT verified",
        PATHS.raw,
    )


# --- stage 2: data_preprocessing -------------------------------------------------------------


def preprocess(params: Params, manifest: dict[str, Any], run: StageRun) -> None:
    """Per-channel statistics of the TRAIN images (the model's first layer normalises with
    them); the augmentation to apply while training; the splits, unchanged, for stage 3/4."""
    import numpy as np

    from lab1.core.cnn import channel_stats
    from lab1.core.datasets.images import load_split, save_split

    loaded = {split: load_split(PATHS.raw_images(split)) for split in SPLITS}
    classes = manifest["classes"]
    for split, (_, labels) in loaded.items():
        present = np.unique(labels)
        if len(present) < 2 or labels.min() < 0 or labels.max() >= len(classes):
            raise DataError(
                f"{PATHS.raw_images(split)}: labels {present.tolist()} do not "
                f"cover at least two of the {len(classes)} classes"
            )
    train_images, train_labels = loaded["train"]
    mean, std = channel_stats(train_images)
    augmentation = params.data_preprocessing.augmentation[params.dataset]
    with atomic_dir(PATHS.processed) as tmp:
        for split, (images, labels) in loaded.items():
            save_split(tmp / PATHS.processed_images(split).name, images, labels)
        write_json(
            tmp / PATHS.normalization.name,
            {
                "mean": mean,
                "std": std,
                "classes": classes,
                "augmentation": dataclasses.asdict(augmentation),
                "verified": manifest.get("verified"),
            },
        )
    run.add_output(PATHS.processed)
    test_labels = loaded["test"][1]
    run.log(
        metrics={
            "train_rows": len(train_labels),
            "test_rows": len(test_labels),
            **{f"channel_mean.{i}": m for i, m in enumerate(mean)},
            **{f"channel_std.{i}": v for i, v in enumerate(std)},
        }
    )
    logger.info(
        "images: train %d, test %d; channel mean %s std %s -> %s",
        len(train_labels),
        len(test_labels),
        np.round(mean, 3).tolist(),
        np.round(std, 3).tolist(),
        PATHS.processed,
    )


# --- stage 3: model_preparation --------------------------------------------------------------


def prepare(params: Params, run: StageRun, out_dir: Path) -> dict[str, Any]:
    from lab1.core import cnn
    from lab1.core.datasets.images import load_split
    from lab1.core.model_io import log_and_save_torch
    from lab1.core.tracking.store import connect

    train_path = PATHS.processed_images("train")
    run.add_input(train_path)
    run.add_input(PATHS.normalization)
    images, labels = load_split(train_path)
    norm = read_json(PATHS.normalization)
    section = params.cnn
    augmentation = params.data_preprocessing.augmentation[params.dataset]

    def log_epoch(result: cnn.EpochResult) -> None:  # one request per epoch, not one per metric
        run.log(
            metrics={
                "train_loss": result.train_loss,
                "train_accuracy": result.train_accuracy,
                "val_loss": result.val_loss,
                "val_accuracy": result.val_accuracy,
                "images_per_second": result.images_per_second,
            },
            step=result.epoch,
        )

    started = time.perf_counter()
    model, history = cnn.train(
        images,
        labels,
        len(norm["classes"]),
        (norm["mean"], norm["std"]),
        section,
        augmentation,
        params.model_preparation.seed,
        on_epoch=log_epoch,
    )
    fit_seconds = time.perf_counter() - started
    best = max(history, key=lambda r: r.val_accuracy)
    # Logged from this process (the tracking service does not import torch): the minutes of
    # training dwarf the seconds of connecting to the store here.
    connect()
    logged = log_and_save_torch(
        cnn.Probabilities(model),
        images[:2],
        out_dir / PATHS.model_dir.name,
        norm["classes"],
        run.run_id,
        run.experiment_id,
        params.logged_model_name,
    )
    run.log(
        metrics={
            "fit_s": fit_seconds,
            "best_epoch": best.epoch,
            "best_val_accuracy": best.val_accuracy,
            "epochs_run": len(history),
        },
        tags={"model_uri": logged.model_uri, "device": str(cnn.device())},
    )
    logger.info(
        "CNN trained in %.0f s; best epoch %d (val accuracy %.3f); logged as %s",
        fit_seconds,
        best.epoch,
        best.val_accuracy,
        logged.model_uri,
    )
    return {
        "model_uri": logged.model_uri,
        "model_id": logged.model_id,
        "estimator": "cnn",
        "train_digest": file_sha256(train_path),
        "classes": norm["classes"],
    }


# --- stage 4: model_testing ------------------------------------------------------------------


def evaluate(params: Params, run: StageRun) -> tuple[dict[str, Any], dict[str, float]]:
    """The CNN on the test images: (report, extra MLflow metrics); also draws the misclassified
    images."""
    from lab1.core.cnn import predict_proba
    from lab1.core.datasets.images import load_split
    from lab1.core.evaluation import (
        grouped_accuracy,
        misclassified_grid,
        multiclass_metrics,
        plot_confusion_matrix,
    )
    from lab1.core.model_io import load_torch_model

    test_path = PATHS.processed_images("test")
    images, labels = load_split(test_path)
    classes = read_json(PATHS.normalization)["classes"]
    model = load_torch_model(PATHS.model_dir)
    test_digest = run.add_input(test_path)[:16]
    proba = predict_proba(model, images)
    y_pred = proba.argmax(axis=1)
    names = [classes[i] for i in labels]
    per_class = grouped_accuracy(labels, y_pred, names)
    report = {
        "metrics": multiclass_metrics(labels, proba),
        "per_class_accuracy": per_class,
        "test_rows": len(labels),
        "test_digest": test_digest,
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
