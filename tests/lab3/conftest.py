"""Models for the service tests: small but real, logged with the project's own model_io.

``models`` (one per session) is an embedded MLflow store (SQLite, in a temporary folder) holding
two versions of a registered temperature classifier, plus each version's local model folder and
a sample of raw reading windows with the offline predictions to compare against.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab1.core.features import build_preprocessor, window_columns
from tests.project import REPO, clean_env, preprocessing

NAME = "temperature-classifier"


def windows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw 15-reading windows of a smooth series; a third have a spike on the judged day."""
    rng = np.random.default_rng(seed)
    base = rng.normal(10, 8, size=(n, 1)) + np.cumsum(rng.normal(0, 1, size=(n, 15)), axis=1)
    faulty = rng.random(n) < 0.33
    base[faulty, 7] += rng.choice([-1, 1], faulty.sum()) * rng.uniform(6, 18, faulty.sum())
    return pd.DataFrame(base, columns=window_columns(7)), faulty.astype(int)


@dataclass
class Models:
    tracking_uri: str
    folders: dict[str, Path]  # version -> local model folder
    sample: pd.DataFrame
    expected: dict[str, np.ndarray]  # version -> offline predict_proba on sample

    def registered(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from lab1.core import registry
    from lab1.core.model_io import keep_copy, load_model, sklearn_options

    root = tmp_path_factory.mktemp("service-models")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    x, y = windows(600, seed=1)
    sample, _ = windows(40, seed=2)
    sample.iloc[3, 2] = np.nan  # a missing reading: the service takes null for it
    folders, expected = {}, {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        from lab1.core.mlflow_ui import experiment_id
        from lab1.core.tracking import connect

        client = connect()
        experiment = experiment_id(client, "service-tests")
        for version, c in (("1", 0.05), ("2", 5.0)):  # two genuinely different models
            model = Pipeline(
                [
                    ("preprocess", build_preprocessor(preprocessing(window=7))),
                    ("classify", LogisticRegression(C=c, max_iter=2000)),
                ]
            )
            model.fit(x, y)
            with mlflow.start_run(experiment_id=experiment) as run:  # as model_preparation does
                folder = root / f"v{version}"
                with sklearn_options(model, x.head(3), ["normal", "faulty"]) as options:
                    info = mlflow.sklearn.log_model(model, name="model", **options)
                keep_copy(info, folder)
            tags = {
                "git.commit": f"commit{version}",
                "data.digest": f"digest{version}",
                "source_run_id": run.info.run_id,
                "test.accuracy": "0.9",
            }
            registered = registry.register(info.model_uri, NAME, tags)
            assert str(registered.version) == version
            folders[version] = folder
            expected[version] = load_model(folder).predict_proba(sample)
        registry.promote(client, NAME, "1", None)
    assert not np.allclose(expected["1"], expected["2"])
    return Models(uri, folders, sample, expected)


def wait_for(condition, timeout: float = 120.0, every: float = 0.05):
    """Poll ``condition()`` until it is truthy; returns its value or fails the test. The timeout
    is a failure guard only (generous: a busy machine may be slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"condition not met within {timeout} s")


def run_monitor(*args: str) -> subprocess.CompletedProcess:
    """``python -m lab3.monitor`` with these arguments, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "lab3.monitor", *args],
        cwd=REPO,
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_answer(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    started = time.perf_counter()
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            received += chunk
    return received, time.perf_counter() - started


def rows(frame: pd.DataFrame) -> list[list[float | None]]:
    """A DataFrame as JSON rows, NaN as null (how a client sends a missing reading)."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in frame.to_numpy()]


@dataclass
class ImageModel:
    folder: Path
    images: np.ndarray  # uint8 (N, 16, 16, 1)
    expected: np.ndarray  # offline probabilities


@pytest.fixture(scope="session")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> ImageModel:
    """A tiny untrained CNN on 16x16 grey images, logged in MLflow's pt2 format (a real model
    of the image kind; its answers need not be good, only the same online and offline)."""
    import mlflow

    from lab1.core import cnn
    from lab1.core.model_io import keep_copy, load_torch_model, torch_options
    from tests.lab1.image_archives import pattern_images

    root = tmp_path_factory.mktemp("image-model")
    images = pattern_images(np.arange(12) % 3, 16, 1, seed=5)
    model = cnn.ImageClassifier(*cnn.channel_stats(images), classes=3, width=4, dropout=0.0)
    model.eval()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        from lab1.core.mlflow_ui import experiment_id
        from lab1.core.tracking import connect

        # The project's experiment keeps artifacts beside the store (MLflow's default: ./mlruns).
        with mlflow.start_run(experiment_id=experiment_id(connect(), "image-model")):
            served = cnn.Probabilities(model).eval()
            options = torch_options(served, images[:2], ["circle", "square", "star"])
            keep_copy(mlflow.pytorch.log_model(served, name="model", **options), root / "model")
    expected = cnn.predict_proba(load_torch_model(root / "model"), images)
    return ImageModel(root / "model", images, expected)
