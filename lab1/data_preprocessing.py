"""Stage 2/5: data preprocessing.

temperature: turns each station's daily series into one row per day holding the raw readings of
a window around it (the model's input), builds features from that window (missing readings
handled by data_preprocessing.missing_rule), fits a StandardScaler on the TRAIN stations only and
applies it to both splits. The fitted preprocessor is saved so that the logged model takes raw
readings.

Images: per-channel mean/std of the TRAIN images only (saved; the model normalises with them)
and the training-time augmentation declared in data_preprocessing.augmentation.

Reads:  data/raw/manifest.json, data/raw/{train,test}/*.csv or data/raw/{train,test}.npz
Writes: data/processed/{train,test}.parquet + preprocessor.skops, or for images
        data/processed/{train,test}.npz + normalization.json
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import DataError
from lab1.core.io import atomic_dir, file_sha256, read_json, write_json
from lab1.core.paths import PATHS
from lab1.core.processed import LABEL, save_preprocessor
from lab1.core.tracking.stage_run import stage_run

STAGE = "data_preprocessing"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def checked_manifest(raw_dir: Path, dataset: str) -> dict:
    """The raw manifest, after checking it is of ``dataset`` and every file it lists is intact."""
    manifest_path = raw_dir / "manifest.json"
    manifest = read_json(manifest_path)
    made_for = manifest.get("dataset", "temperature")
    if made_for != dataset:
        raise DataError(
            f"{manifest_path}: dataset={made_for!r} but params ask for {dataset!r}; "
            "run data_creation for it first"
        )
    for entry in manifest.get("files", []):
        path = raw_dir / entry["path"]
        if not path.exists():
            raise DataError(f"{path}: listed in {manifest_path} but missing")
        if file_sha256(path) != entry["sha256"]:
            raise DataError(f"{path}: content changed since data_creation (sha256 mismatch)")
    return manifest


def read_raw(raw_dir: Path, manifest: dict) -> dict[str, list[pd.DataFrame]]:
    """Read the station files the (checked) manifest lists, checking each one's schema."""
    from lab1.core.datasets.temperature import read_raw_station_file

    splits: dict[str, list[pd.DataFrame]] = {"train": [], "test": []}
    for entry in manifest.get("files", []):
        splits[entry["split"]].append(read_raw_station_file(raw_dir / entry["path"]))
    for split, frames in splits.items():
        if not frames:
            raise DataError(f"{raw_dir / split}: no station files (empty {split} split)")
    return splits


def to_windows(frames: list[pd.DataFrame], window: int) -> pd.DataFrame:
    """One row per judged day: meta columns + the raw readings window (columns t_*)."""
    from lab1.core.features import extract_windows, window_columns

    parts = []
    for frame in frames:
        readings = frame["temperature"].to_numpy(dtype=float)
        rows = extract_windows(readings, window)
        if len(rows) == 0:
            continue
        kept = frame.iloc[window : len(frame) - window]
        part = pd.DataFrame(rows, columns=window_columns(window))
        part.insert(0, "station", kept["station"].to_numpy())
        part.insert(1, "date", kept["date"].to_numpy())
        part.insert(2, LABEL, kept[LABEL].to_numpy())
        part.insert(3, "fault_kind", kept["fault_kind"].to_numpy())
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def check_both_classes(frame: pd.DataFrame, where: Path) -> None:
    classes = sorted(frame[LABEL].unique().tolist()) if len(frame) else []
    if len(classes) < 2:
        raise DataError(
            f"{where}: {LABEL} has only {classes or 'no'} class(es); "
            "need both faulty and normal days"
        )


def add_features(frame: pd.DataFrame, preprocessor, columns: list[str]) -> pd.DataFrame:
    from lab1.core.features import FEATURE_NAMES

    features = preprocessor.transform(frame[columns])
    named = pd.DataFrame(features, columns=[f"f_{n}" for n in FEATURE_NAMES], index=frame.index)
    return pd.concat([frame, named], axis=1)


def preprocess_stations(params, manifest: dict, run) -> None:
    from lab1.core.features import build_preprocessor, window_columns

    section = params.data_preprocessing
    if section.window < 1:
        raise DataError(f"params.yaml: data_preprocessing.window={section.window} must be >= 1")
    splits = read_raw(PATHS.raw, manifest)
    train = to_windows(splits["train"], section.window)
    test = to_windows(splits["test"], section.window)
    check_both_classes(train, PATHS.raw / "train")
    check_both_classes(test, PATHS.raw / "test")
    columns = window_columns(section.window)
    # Fit on train only: fitting the scaler on test would leak its statistics.
    preprocessor = build_preprocessor(section.window, section.missing_rule)
    preprocessor.fit(train[columns])
    train = add_features(train, preprocessor, columns)
    test = add_features(test, preprocessor, columns)
    with atomic_dir(PATHS.processed) as tmp:
        train.to_parquet(tmp / "train.parquet", index=False)
        test.to_parquet(tmp / "test.parquet", index=False)
        save_preprocessor(preprocessor, tmp / PATHS.preprocessor.name)
    run.add_output(PATHS.processed)
    run.log(
        metrics={
            "train_rows": len(train),
            "test_rows": len(test),
            "train_faulty_fraction": float(np.mean(train[LABEL])),
            "test_faulty_fraction": float(np.mean(test[LABEL])),
        }
    )
    logger.info(
        "train %d rows, test %d rows, %d features -> %s",
        len(train),
        len(test),
        preprocessor[-1].n_features_in_,
        PATHS.processed,
    )


def preprocess_images(params, manifest: dict, run) -> None:
    """Per-channel statistics of the TRAIN images (the model's first layer normalises with
    them); the augmentation to apply while training; the splits, unchanged, for stage 3/4."""
    from lab1.core.cnn import channel_stats
    from lab1.core.datasets.images import load_split, save_split

    train_images, train_labels = load_split(PATHS.raw / "train.npz")
    test_images, test_labels = load_split(PATHS.raw / "test.npz")
    classes = manifest["classes"]
    for name, labels in (("train", train_labels), ("test", test_labels)):
        present = np.unique(labels)
        if len(present) < 2 or labels.min() < 0 or labels.max() >= len(classes):
            raise DataError(
                f"{PATHS.raw / (name + '.npz')}: labels {present.tolist()} do not "
                f"cover at least two of the {len(classes)} classes"
            )
    mean, std = channel_stats(train_images)
    augmentation = params.data_preprocessing.augmentation[params.dataset]
    with atomic_dir(PATHS.processed) as tmp:
        save_split(tmp / "train.npz", train_images, train_labels)
        save_split(tmp / "test.npz", test_images, test_labels)
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


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__).parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        params = params_from_args(args)
        with stage_run(STAGE, params) as run:
            run.add_input(PATHS.raw)
            manifest = checked_manifest(PATHS.raw, params.dataset)
            if params.is_image:
                preprocess_images(params, manifest, run)
            else:
                preprocess_stations(params, manifest, run)
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
