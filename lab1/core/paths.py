"""One home for every path the pipeline reads or writes.

All paths derive from the project root, so the scripts work from any working directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class _Below:
    """A path of the project, ``relative`` to its root: read on every access, never stored."""

    def __init__(self, relative: str):
        self.relative = relative

    def __get__(self, paths: ProjectPaths, owner: type) -> Path:
        return paths.root / self.relative


@dataclass
class ProjectPaths:
    """The files that are the contracts between stages (see README, "What each stage reads and
    writes"). Every path is derived from ``root`` when asked for, never stored."""

    root: Path

    params = _Below("params.yaml")

    # Stage 1 -> 2
    raw = _Below("data/raw")
    raw_manifest = _Below("data/raw/manifest.json")
    # Downloaded or unpacked image datasets (torchvision's layout), reused across runs.
    data_cache = _Below("data/cache")

    def raw_images(self, split: str) -> Path:
        """Image datasets: one split's uint8 images and labels."""
        return self.raw / f"{split}.npz"

    # Stage 2 -> 3, 4
    processed = _Below("data/processed")
    preprocessor = _Below("data/processed/preprocessor.skops")
    # Image datasets: per-channel mean/std of the train images and the augmentation.
    normalization = _Below("data/processed/normalization.json")

    def processed_table(self, split: str) -> Path:
        """temperature: one split's rows (meta columns, the raw window, the features)."""
        return self.processed / f"{split}.parquet"

    def processed_images(self, split: str) -> Path:
        """Image datasets: one split, as stage 3/4 read it."""
        return self.processed / f"{split}.npz"

    # Stage 3 -> 4, 5
    models = _Below("models")
    model_dir = _Below("models/model")
    model_info = _Below("models/model.json")

    # Stage 4 -> 5
    reports = _Below("reports")
    metrics = _Below("reports/metrics.json")
    confusion_matrix_plot = _Below("reports/confusion_matrix.png")
    misclassified_plot = _Below("reports/misclassified.png")

    # Stage 5
    registration = _Below("reports/registration.json")
    lineage = _Below("reports/lineage.json")
    code_diff = _Below("reports/code.diff")
    # Where the registration's records are written before the alias moves.
    registration_staging = _Below("reports/.registration-staged")

    # Embedded MLflow store (used when MLFLOW_TRACKING_URI is not set)
    mlflow_dir = _Below(".mlflow")
    mlflow_db = _Below(".mlflow/mlflow.db")
    mlflow_artifacts = _Below(".mlflow/artifacts")

    # Parent-run hand-off for callers that run the stages one by one (Jenkins)
    run_context = _Below(".mlops/pipeline_run.json")
    # Held while stages run: one pipeline per workspace (workspace.py)
    workspace_lock = _Below(".mlops/workspace.lock")


PATHS = ProjectPaths(PROJECT_ROOT)


@contextlib.contextmanager
def project_at(root: Path) -> Iterator[ProjectPaths]:
    """Point every path at the project copy in ``root`` for the duration (in-process tests run
    the stages against a copy this way); the real root is restored afterwards."""
    previous = PATHS.root
    PATHS.root = root.resolve()
    try:
        yield PATHS
    finally:
        PATHS.root = previous


# The MLflow store: a fact of where things are, read by tracking.py, the UI links and the service.
def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's embedded SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PATHS.mlflow_db}"


def is_embedded(uri: str) -> bool:
    return uri.startswith("sqlite:")


def sqlite_file(uri: str) -> Path:
    """The database file of a ``sqlite:///`` URI."""
    return Path(uri.removeprefix("sqlite:///"))
