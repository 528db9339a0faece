"""The tables kind (temperature): station readings -> day windows and features -> a
scikit-learn Pipeline (features -> scaler -> classifier) that takes raw reading windows.

Shared with lab5's quality suite: read_raw and to_windows build its test set exactly as
data_preprocessing builds the processed data.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.errors import DataError
from lab1.core.io import atomic_dir, atomic_path, file_sha256, write_json
from lab1.core.params import FAULT_KINDS, DataPreprocessingParams, Params
from lab1.core.paths import PATHS
from lab1.core.processed import LABEL, META_COLUMNS, feature_columns, input_columns, read_split

if TYPE_CHECKING:
    import pandas as pd

    RawSplits = dict[str, dict[str, pd.DataFrame]]  # {split: {station: readings}}

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

    parts = []
    for frame in frames:
        readings = frame["temperature"].to_numpy(dtype=float)
        rows = extract_windows(readings, window)
        if len(rows) == 0:
            continue
        kept = frame.iloc[window : len(frame) - window]
        part = pd.DataFrame(rows, columns=window_columns(window))
        for position, column in enumerate(META_COLUMNS):
            part.insert(position, column, kept[column].to_numpy())
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def check_both_classes(frame: pd.DataFrame, where: Path) -> None:
    classes = sorted(frame[LABEL].unique().tolist()) if len(frame) else []
    if len(classes) < 2:
        raise DataError(
            f"{where}: {LABEL} has only {classes or 'no'} class(es); "
            "need both faulty and normal days"
        )


def fit_preprocessor(train: pd.DataFrame, params: DataPreprocessingParams) -> Any:
    """The features-and-scaler pipeline (lab1/core/features.py), fitted on ``train``'s windows."""
    from lab1.core.features import build_preprocessor, window_columns

    preprocessor = build_preprocessor(params)
    preprocessor.fit(train[window_columns(params.window)])
    return preprocessor


def add_features(frame: pd.DataFrame, preprocessor: Any) -> pd.DataFrame:
    """``frame`` with the preprocessor's (scaled) features of its windows as columns f_*."""
    import pandas as pd

    from lab1.core.features import FEATURE_NAMES, window_columns

    columns = window_columns(preprocessor[0].window)
    features = preprocessor.transform(frame[columns])
    named = pd.DataFrame(features, columns=[f"f_{n}" for n in FEATURE_NAMES], index=frame.index)
    return pd.concat([frame, named], axis=1)


def faulty_fraction(frame: pd.DataFrame) -> float:
    return float(frame[LABEL].mean())


def write_processed(
    train: pd.DataFrame, test: pd.DataFrame, preprocessor: Any, out_dir: Path
) -> None:
    """data/processed: train.parquet, test.parquet and preprocessor.skops, all at once."""
    from lab1.core.model_io import save_skops

    with atomic_dir(out_dir) as tmp:
        train.to_parquet(tmp / PATHS.processed_table("train").name, index=False)
        test.to_parquet(tmp / PATHS.processed_table("test").name, index=False)
        save_skops(preprocessor, tmp / PATHS.preprocessor.name)


# --- stage 3: model_preparation --------------------------------------------------------------


def train(train: pd.DataFrame, preprocessor: Any, section: Any) -> Any:
    """The estimator named in ``section`` (model_preparation) fitted on ``train``'s features,
    joined with the fitted preprocessor into one Pipeline that takes raw reading windows."""
    from sklearn.pipeline import Pipeline

    from lab1.core.models import build_estimator

    estimator = build_estimator(section)
    estimator.fit(train[feature_columns(train)].to_numpy(), train[LABEL].to_numpy())
    return Pipeline([("preprocess", preprocessor), ("classify", estimator)])


def input_example(train: pd.DataFrame) -> pd.DataFrame:
    """Five complete rows of the model's input (raw windows): MLflow's input example."""
    inputs = input_columns(train)
    complete = train[inputs].notna().all(axis=1)
    return train.loc[complete, inputs].head(5).reset_index(drop=True)


def write_reference_profile(model: Any, train: pd.DataFrame, section: Any, into: Path) -> Path:
    """Write the training rows' profile for monitoring (lab1.core.profile: their features,
    classes and the model's fault probability on them) into the folder ``into``; its path.
    ``section``: params.data_preprocessing."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_val_predict

    from lab1.core import profile

    inputs = input_columns(train)
    # The answers a model like this one gives on rows it has not seen (3 folds): on its own
    # training rows it is surer than it will ever be on traffic, and monitoring took the
    # difference for drift (1 normal week in 20 raised an alarm, tests/lab3/test_monitor.py).
    folds = KFold(3, shuffle=True, random_state=0)
    answers = cross_val_predict(
        clone(model), train[inputs], train[LABEL], cv=folds, method="predict_proba"
    )
    probabilities = answers[:, 1]
    settings = {"window": section.window, "missing_rule": section.missing_rule, "columns": inputs}
    built = profile.build(
        train[inputs].to_numpy(), train[LABEL].to_numpy(), probabilities, settings
    )
    write_json(into / profile.PROFILE_FILE, built)
    return into / profile.PROFILE_FILE


def accuracy(model: Any, frame: pd.DataFrame) -> float:
    return float((model.predict(frame[input_columns(frame)]) == frame[LABEL]).mean())


# --- stage 4: model_testing ------------------------------------------------------------------


def evaluate(model: Any, test_path: Path, threshold: float) -> tuple[dict, dict[str, float]]:
    """The fault detector on the test stations: (the report: metrics, accuracy per station,
    recall per fault kind; extra MLflow metrics). Draws the confusion matrix into reports/."""
    import numpy as np

    from lab1.core.evaluation import classification_metrics, grouped_accuracy, plot_confusion_matrix

    test = read_split(test_path)
    y_true = test[LABEL].to_numpy()
    if len(np.unique(y_true)) < 2:
        raise DataError(
            f"{test_path}: {LABEL} has only one class; accuracy alone "
            "would not show whether faults are found"
        )
    proba = _fault_probability(model, test, PATHS.model_dir)
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
    }
    with atomic_path(PATHS.confusion_matrix_plot) as tmp:
        plot_confusion_matrix(y_true, y_pred, ["normal", "faulty"], tmp)
    extra = {f"accuracy.{k}": v for k, v in per_station.items()}
    extra |= {f"recall.{k}": v for k, v in per_kind.items()}
    return report, extra


def _fault_probability(model: Any, test: pd.DataFrame, model_dir: Path) -> Any:
    """P(faulty) for each test row; DataError when the model was trained on other features."""
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

    test = read_split(PATHS.processed_table("test"))
    proba = _fault_probability(load_model(model_dir), test, model_dir)
    return classification_metrics(test[LABEL].to_numpy(), proba, params.model_testing.threshold)
