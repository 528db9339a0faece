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


@dataclass
class ProjectPaths:
    """The files that are the contracts between stages (see README, "What each stage reads and
    writes"). Every path is derived from ``root`` when asked for, never stored."""

    root: Path

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    # Stage 1 -> 2
    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def raw_manifest(self) -> Path:
        return self.raw / "manifest.json"

    def raw_images(self, split: str) -> Path:
        """Image datasets: one split's uint8 images and labels."""
        return self.raw / f"{split}.npz"

    @property
    def data_cache(self) -> Path:
        """Downloaded or unpacked image datasets (torchvision's layout), reused across runs."""
        return self.root / "data" / "cache"

    # Stage 2 -> 3, 4
    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    def processed_table(self, split: str) -> Path:
        """temperature: one split's rows (meta columns, the raw window, the features)."""
        return self.processed / f"{split}.parquet"

    def processed_images(self, split: str) -> Path:
        """Image datasets: one split, as stage 3/4 read it."""
        return self.processed / f"{split}.npz"

    @property
    def preprocessor(self) -> Path:
        return self.processed / "preprocessor.skops"

    @property
    def normalization(self) -> Path:
        """Image datasets: per-channel mean/std of the train images and the augmentation."""
        return self.processed / "normalization.json"

    # Stage 3 -> 4, 5
    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def model_dir(self) -> Path:
        return self.models / "model"

    @property
    def model_info(self) -> Path:
        return self.models / "model.json"

    # Stage 4 -> 5
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics.json"

    @property
    def confusion_matrix_plot(self) -> Path:
        return self.reports / "confusion_matrix.png"

    @property
    def misclassified_plot(self) -> Path:
        return self.reports / "misclassified.png"

    # Stage 5
    @property
    def registration(self) -> Path:
        return self.reports / "registration.json"

    @property
    def lineage(self) -> Path:
        return self.reports / "lineage.json"

    @property
    def code_diff(self) -> Path:
        return self.reports / "code.diff"

    @property
    def registration_staging(self) -> Path:
        """Where the registration's records are written before the alias moves."""
        return self.reports / ".registration-staged"

    # Embedded MLflow store (used when MLFLOW_TRACKING_URI is not set)
    @property
    def mlflow_dir(self) -> Path:
        return self.root / ".mlflow"

    @property
    def mlflow_db(self) -> Path:
        return self.mlflow_dir / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    # Parent-run hand-off for callers that run the stages one by one (Jenkins)
    @property
    def run_context(self) -> Path:
        return self.root / ".mlops" / "pipeline_run.json"

    # Held while stages run: one pipeline per workspace (workspace.py)
    @property
    def workspace_lock(self) -> Path:
        return self.root / ".mlops" / "workspace.lock"


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
