"""Stage 2/5: data preprocessing.

Turns each station's daily series into one row per day holding the raw readings of a window
around it (the model's input), builds features from that window (missing readings handled by
data_preprocessing.missing_rule), fits a StandardScaler on the TRAIN stations only and applies it
to both splits. The fitted preprocessor is saved so that the logged model takes raw readings.

Reads:  data/raw/manifest.json, data/raw/{train,test}/*.csv
Writes: data/processed/{train,test}.parquet, data/processed/preprocessor.skops
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import DataError
from lab1.core.io import atomic_dir, file_sha256, read_json
from lab1.core.paths import PATHS
from lab1.core.processed import LABEL, save_preprocessor
from lab1.core.tracking import stage_run

STAGE = "data_preprocessing"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def read_raw(raw_dir: Path) -> dict[str, list[pd.DataFrame]]:
    """Read the station files the manifest lists, checking each digest and schema."""
    from lab1.core.datasets.temperature import read_raw_station_file

    manifest_path = raw_dir / "manifest.json"
    manifest = read_json(manifest_path)
    splits: dict[str, list[pd.DataFrame]] = {"train": [], "test": []}
    for entry in manifest.get("files", []):
        path = raw_dir / entry["path"]
        if not path.exists():
            raise DataError(f"{path}: listed in {manifest_path} but missing")
        if file_sha256(path) != entry["sha256"]:
            raise DataError(f"{path}: content changed since data_creation (sha256 mismatch)")
        splits[entry["split"]].append(read_raw_station_file(path))
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


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__).parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from lab1.core.features import build_preprocessor, window_columns

        params = params_from_args(args)
        section = params.data_preprocessing
        if section.window < 1:
            raise DataError(
                f"{args.params}: data_preprocessing.window={section.window} must be >= 1"
            )
        with stage_run(STAGE, params) as run:
            run.add_input(PATHS.raw)
            splits = read_raw(PATHS.raw)
            train = to_windows(splits["train"], section.window)
            test = to_windows(splits["test"], section.window)
            check_both_classes(train, PATHS.raw / "train")
            check_both_classes(test, PATHS.raw / "test")
            columns = window_columns(section.window)
            # Fit on train only: fitting the scaler on test would leak its statistics.
            preprocessor = build_preprocessor(section.window, section.missing_rule)
            preprocessor.fit(train[columns])
            train, test = (
                add_features(train, preprocessor, columns),
                add_features(test, preprocessor, columns),
            )
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
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
