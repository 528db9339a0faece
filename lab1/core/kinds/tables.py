"""The tables kind (temperature): station readings -> day windows and features -> a
scikit-learn Pipeline (features -> scaler -> classifier) that takes raw reading windows.

Shared with lab5's quality suite: read_raw and to_windows build its test set exactly as
data_preprocessing builds the processed data.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.errors import DataError
from lab1.core.io import atomic_dir, atomic_path, file_sha256, write_json
from lab1.core.params import Params
from lab1.core.paths import PATHS

if TYPE_CHECKING:
    import pandas as pd

    from lab1.core.datasets import RawSplits
    from lab1.core.tracking.stage_run import StageRun

logger = logging.getLogger(__name__)


# --- stage 1: data_creation ------------------------------------------------------------------


def write_raw(splits: RawSplits, out_dir: Path, dataset: str) -> dict:
    """Write one CSV per station and split into ``out_dir``; return the manifest it wrote."""
    files = []
    for split, frames in splits.items():
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        for name, frame in sorted(frames.items()):
            path = out_dir / split / f"{name}.csv"
            frame.to_csv(path, index=False, na_rep="")
            files.append(
                {
                    "path": f"{split}/{name}.csv",
                    "split": split,
                    "rows": len(frame),
                    "faulty": int(frame["is_faulty"].sum()),
                    "sha256": file_sha256(path),
                }
            )
    manifest = {"dataset": dataset, "files": files}
    write_json(out_dir / PATHS.raw_manifest.name, manifest)
    return manifest


def create(params: Params, run: StageRun) -> None:
    from lab1.core.datasets import make_raw

    splits = make_raw(params)
    with atomic_dir(PATHS.raw) as tmp:
        manifest = write_raw(splits, tmp, params.dataset)
    run.add_output(PATHS.raw)
    csv_path = params.data_creation.temperature.csv_path
    if csv_path:  # the user's file by content, not by path
        run.notes |= {
            "data.source": str(csv_path),
            "data.source_sha256": file_sha256(Path(csv_path)),
        }
    run.notes["data.verified"] = "false (user CSV)" if csv_path else "synthetic"
    rows = {split: sum(len(f) for f in frames.values()) for split, frames in splits.items()}
    faulty = sum(f["faulty"] for f in manifest["files"])
    run.log(
        metrics={
            "train_rows": rows["train"],
            "test_rows": rows["test"],
            "faulty_fraction": faulty / max(1, sum(rows.values())),
        }
    )
    logger.info("wrote %d station files (%s rows) to %s", len(manifest["files"]), rows, PATHS.raw)


# --- stage 2: data_preprocessing -------------------------------------------------------------


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
    import pandas as pd

    from lab1.core.features import extract_windows, window_columns
    from lab1.core.processed import LABEL

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
    from lab1.core.processed import LABEL

    classes = sorted(frame[LABEL].unique().tolist()) if len(frame) else []
    if len(classes) < 2:
        raise DataError(
            f"{where}: {LABEL} has only {classes or 'no'} class(es); "
            "need both faulty and normal days"
        )


def add_features(frame: pd.DataFrame, preprocessor: Any, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    from lab1.core.features import FEATURE_NAMES

    features = preprocessor.transform(frame[columns])
    named = pd.DataFrame(features, columns=[f"f_{n}" for n in FEATURE_NAMES], index=frame.index)
    return pd.concat([frame, named], axis=1)


def preprocess(params: Params, manifest: dict[str, Any], run: StageRun) -> None:
    import numpy as np

    from lab1.core.features import build_preprocessor, window_columns
    from lab1.core.processed import LABEL, save_preprocessor

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
        train.to_parquet(tmp / PATHS.processed_table("train").name, index=False)
        test.to_parquet(tmp / PATHS.processed_table("test").name, index=False)
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


# --- stage 3: model_preparation --------------------------------------------------------------


def prepare(params: Params, run: StageRun, out_dir: Path) -> dict[str, Any]:
    import numpy as np
    from sklearn.pipeline import Pipeline

    from lab1.core.model_io import save_skops
    from lab1.core.models import build_estimator
    from lab1.core.processed import (
        CLASS_NAMES,
        LABEL,
        feature_columns,
        input_columns,
        load_preprocessor,
        read_split,
    )

    section = params.model_preparation
    train_path = PATHS.processed_table("train")
    run.add_input(train_path)
    run.add_input(PATHS.preprocessor)
    train = read_split(train_path)
    preprocessor = load_preprocessor(PATHS.preprocessor)
    started = time.perf_counter()
    estimator = build_estimator(section)
    # Fit on the features stage 2 computed (scaled with train statistics).
    estimator.fit(train[feature_columns(train)].to_numpy(), train[LABEL].to_numpy())
    fit_seconds = time.perf_counter() - started
    model = Pipeline([("preprocess", preprocessor), ("classify", estimator)])
    inputs = input_columns(train)
    complete = train[inputs].notna().all(axis=1)
    example = train.loc[complete, inputs].head(5).reset_index(drop=True)
    train_accuracy = float(np.mean(model.predict(train[inputs]) == train[LABEL]))
    # The tracking service (or the in-process recorder) logs it from a skops file: the model
    # crosses the process boundary in the same safe format it is stored in.
    handoff = out_dir / ".model-handoff.skops"
    save_skops(model, handoff)
    info = run.log_sklearn_model(
        handoff,
        example,
        out_dir / PATHS.model_dir.name,
        list(CLASS_NAMES),
        params.logged_model_name,
    )
    handoff.unlink()
    run.log(
        metrics={"fit_s": fit_seconds, "train_accuracy": train_accuracy},
        tags={"model_uri": info["model_uri"]},
    )
    logger.info(
        "%s trained in %.2f s (train accuracy %.3f); logged as %s",
        section.estimator,
        fit_seconds,
        train_accuracy,
        info["model_uri"],
    )
    return {**info, "estimator": section.estimator, "train_digest": file_sha256(train_path)}


# --- stage 4: model_testing ------------------------------------------------------------------


def evaluate(params: Params, run: StageRun) -> tuple[dict[str, Any], dict[str, float]]:
    """The fault detector on the test stations: (report, extra MLflow metrics)."""
    import numpy as np

    from lab1.core.evaluation import classification_metrics, grouped_accuracy, plot_confusion_matrix
    from lab1.core.model_io import load_model
    from lab1.core.params import FAULT_KINDS
    from lab1.core.processed import LABEL, read_split

    test_path = PATHS.processed_table("test")
    test = read_split(test_path)
    model = load_model(PATHS.model_dir)
    test_digest = run.add_input(test_path)[:16]
    y_true = test[LABEL].to_numpy()
    if len(np.unique(y_true)) < 2:
        raise DataError(
            f"{test_path}: {LABEL} has only one class; accuracy alone "
            "would not show whether faults are found"
        )
    proba = _fault_probability(model, test, PATHS.model_dir)
    threshold = params.model_testing.threshold
    y_pred = (proba >= threshold).astype(int)
    faulty = y_true == 1
    by_kind = grouped_accuracy(y_true[faulty], y_pred[faulty], test["fault_kind"][faulty])
    per_station = grouped_accuracy(y_true, y_pred, test["station"])
    per_kind = {k: v for k, v in by_kind.items() if k in FAULT_KINDS}
    report = {
        "metrics": classification_metrics(y_true, proba, threshold),
        "per_station_accuracy": per_station,
        "per_fault_kind_recall": per_kind,
        "test_rows": len(test),
        "test_digest": test_digest,
    }
    with atomic_path(PATHS.confusion_matrix_plot) as tmp:
        plot_confusion_matrix(y_true, y_pred, ["normal", "faulty"], tmp)
    extra = {f"accuracy.{k}": v for k, v in per_station.items()}
    extra |= {f"recall.{k}": v for k, v in per_kind.items()}
    return report, extra


def _fault_probability(model: Any, test: pd.DataFrame, model_dir: Path) -> Any:
    """P(faulty) for each test row; DataError when the model was trained on other features."""
    from lab1.core.processed import input_columns

    columns = input_columns(test)
    expected = [str(c) for c in getattr(model, "feature_names_in_", columns)]
    if expected != columns:
        raise DataError(
            f"{model_dir}: trained on {len(expected)} features ({', '.join(expected[:3])}, ...); "
            f"this test set has {len(columns)} ({', '.join(columns[:3])}, ...)"
        )
    return model.predict_proba(test[columns])[:, 1]


def score(params: Params, model_dir: Path) -> dict[str, float]:
    """The metrics of the model in ``model_dir`` (e.g. the champion's) on this test split.
    DataError when it cannot score it (trained on other features)."""
    from lab1.core.evaluation import classification_metrics
    from lab1.core.model_io import load_model
    from lab1.core.processed import LABEL, read_split

    test = read_split(PATHS.processed_table("test"))
    proba = _fault_probability(load_model(model_dir), test, model_dir)
    return classification_metrics(test[LABEL].to_numpy(), proba, params.model_testing.threshold)
