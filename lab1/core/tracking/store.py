"""The tracking store: its URI, one connection, experiments. MLflow is imported on first use."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's embedded SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PATHS.mlflow_db}"


def is_embedded(uri: str) -> bool:
    return uri.startswith("sqlite:")


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise store creation across processes for a local SQLite store (a no-op otherwise).

    Several processes creating a fresh SQLite store at the same moment crash in its schema
    migration; creating it once, under a file lock, lets concurrent pipelines share it.
    """
    if not is_embedded(uri):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def registry_lock(name: str) -> Iterator[None]:
    """Serialise quality gates on registered model ``name`` in this store across processes on
    this machine: a gate reads the champion, may re-score it, then registers; a second gate in
    between would compare against a stale champion. (Across machines, registry.register_gated's
    champion check refuses a gate whose champion moved; Jenkins runs one build at a time.)"""
    uri = tracking_uri()
    key = hashlib.sha256(f"{uri}\0{name}".encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mlops-registry-{key}.lock"
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("registered model %s: waiting for another registration to finish", name)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def connect() -> MlflowClient:
    """Point MLflow at the tracking URI and return a client; creates the embedded store once."""
    # Progress bars for downloads of a few small files are noise on a log (stderr) stream.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with _store_lock(uri):
        # Creating the store objects runs their schema set-up: the tracking store in the
        # constructor, the registry store on first use. Both happen inside the lock.
        client = MlflowClient(uri, registry_uri=uri)
        client.search_registered_models(max_results=1)
    return client


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing (race-safe between processes)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    uri = tracking_uri()
    if is_embedded(uri):
        # A SQLite store keeps its artifacts beside the database file (for the embedded default:
        # .mlflow/artifacts), never in whatever directory the caller happens to run from.
        db = Path(uri.removeprefix("sqlite:///"))
        location = (db.parent / PATHS.mlflow_artifacts.name / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        found = client.get_experiment_by_name(name)  # another process created it first
        if found is None:
            raise
        return found.experiment_id
