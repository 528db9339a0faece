"""The tracking store: its URI, one connection, experiments. MLflow is imported on first use."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.errors import PipelineError, one_line
from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's embedded SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PATHS.mlflow_db}"


def store_name(uri: str | None = None) -> str:
    """The store as a user knows it: an embedded store's database file, or the server's URI
    without the credentials it may carry (http://user:password@host)."""
    uri = uri or tracking_uri()
    return str(sqlite_file(uri)) if is_embedded(uri) else without_credentials(uri)


def without_credentials(text: str, hidden: str = "***@") -> str:
    """``text`` with the credentials of any URI in it (scheme://user:password@host) replaced by
    ``hidden`` ("" for a link): the one scrubber for every message a user or client sees. Up to
    the last "@" before the path, as urllib and requests split a URI: a password may hold one."""
    return re.sub(r"(?<=://)[^/\s]+@", hidden, text)


def is_embedded(uri: str) -> bool:
    return uri.startswith("sqlite:")


def sqlite_file(uri: str) -> Path:
    """The database file of a ``sqlite:///`` URI."""
    return Path(uri.removeprefix("sqlite:///"))


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise store creation across processes for a local SQLite store (a no-op otherwise).

    Several processes creating a fresh SQLite store at the same moment crash in its schema
    migration; creating it once, under a file lock, lets concurrent pipelines share it.
    """
    if not is_embedded(uri):
        yield
        return
    db = sqlite_file(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# A tracking server that does not answer must fail a run in seconds, not after MLflow's default
# of 7 retries with back-off and 120 s timeouts (about 4 minutes): at most 2 tries of 10 s.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
PROBE_TIMEOUT_S = 5.0


def check_store(uri: str) -> None:
    """Fail fast, before any work, with one PipelineError line when the store cannot be used: a
    tracking server that does not answer (http/https), or an embedded SQLite file that is not a
    database or is locked. Takes milliseconds, and imports no MLflow."""
    if is_embedded(uri):
        _check_sqlite(uri)
    elif uri.startswith(("http://", "https://")):
        _check_server(uri)


def _check_sqlite(uri: str) -> None:
    import sqlite3

    db = sqlite_file(uri)
    if not db.exists():
        return  # created on first use
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            c.execute("pragma schema_version").fetchone()
    except sqlite3.Error as exc:
        raise PipelineError(
            f"{db}: not a usable MLflow store ({one_line(exc)}); if another program holds it, "
            f"wait for it; if it is damaged, move it aside (mv {db} {db}.broken) to start anew"
        ) from None


def _check_server(uri: str) -> None:
    """The server's /health answers within PROBE_TIMEOUT_S, or a PipelineError line names the
    URI and what to check."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(_health_request(uri), timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError as exc:  # `mlflow server` answers /health with 200 "OK"
        why = f"HTTP {exc.code} {exc.reason} for /health: a proxy, or not an MLflow server"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        why = one_line(reason) if isinstance(reason, BaseException) else str(reason)
    raise PipelineError(
        f"MLFLOW_TRACKING_URI={store_name(uri)}: the tracking server does not answer ({why}); "
        "check that `mlflow server` runs there, the host and port, and any proxy (or unset the "
        "variable for the embedded store)"
    )


def _health_request(uri: str) -> Any:
    """GET /health of the server at ``uri``. urllib would take "user:password@host" for a host
    name; MLflow (requests) sends such credentials, or MLFLOW_TRACKING_USERNAME and _PASSWORD
    first, as basic auth: so does this, to the URI without them."""
    import base64
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    request = urllib.request.Request(f"{bare.rstrip('/')}/health")
    env = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    url = [urllib.parse.unquote(part or "") for part in (parts.username, parts.password)]
    user, password = env if all(env) else url
    if user or password:
        pair = f"{user}:{password}"
        request.add_header("Authorization", f"Basic {base64.b64encode(pair.encode()).decode()}")
    return request


def connect() -> MlflowClient:
    """Point MLflow at the tracking URI and return a client; creates the embedded store once.
    A server that does not answer, or a store that is not one, is a PipelineError line."""
    # Progress bars for downloads of a few small files are noise on a log (stderr) stream.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    check_store(uri)
    import mlflow
    from mlflow.tracking import MlflowClient

    # MLflow gives its loggers a handler and format of their own: route them through ours (one
    # format on stderr; levels as cli.setup_logging set them).
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with _store_lock(uri):
            # Creating the store objects runs their schema set-up: the tracking store in the
            # constructor, the registry store on first use. Both happen inside the lock.
            client = MlflowClient(uri, registry_uri=uri)
            client.search_registered_models(max_results=1)
    except Exception as exc:  # SQLAlchemy's and MLflow's errors for a broken or locked store
        where = store_name(uri) if is_embedded(uri) else f"MLFLOW_TRACKING_URI={store_name(uri)}"
        advice = (
            f"move it aside (mv {where} {where}.broken) to start a new store"
            if is_embedded(uri)
            else "check the server's log"
        )
        raise PipelineError(
            f"{where}: not a usable MLflow store ({without_credentials(one_line(exc))}); {advice}"
        ) from None
    return client


def experiment_id(client: MlflowClient, name: str, view: dict[str, str] | None = None) -> str:
    """The id of experiment ``name``, created if missing (race-safe between processes), with the
    saved ``view`` (default: the pipeline story)."""
    from mlflow.exceptions import MlflowException

    from lab1.core.tracking.ui import saved_view_tag

    view = view or saved_view_tag()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if not view.keys() <= found.tags.keys():  # an experiment from before the saved view
            for key, value in view.items():
                client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    location = None
    uri = tracking_uri()
    if is_embedded(uri):
        # A SQLite store keeps its artifacts beside the database file (for the embedded default:
        # .mlflow/artifacts), never in whatever directory the caller happens to run from.
        db = sqlite_file(uri)
        location = (db.parent / PATHS.mlflow_artifacts.name / name).as_uri()
    try:
        # A model-training experiment, for UIs that read the kind from the experiment (3.17's
        # takes the view from the link: tracking/ui.py), with the pipeline-story saved view.
        tags = {"mlflow.experimentKind": "custom_model_development", **view}
        return client.create_experiment(name, artifact_location=location, tags=tags)
    except MlflowException:
        found = client.get_experiment_by_name(name)  # another process created it first
        if found is None:
            raise
        return found.experiment_id


def log_batch(
    client: MlflowClient,
    run_id: str,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    step: int = 0,
    model_id: str | None = None,
    dataset: tuple[str, str] | None = None,
) -> None:
    """Log metrics, params and tags in one request (one round trip against a server).
    ``model_id``: the metrics are also the LoggedModel's (MLflow 3 shows them on the model's
    page); ``dataset``: (name, digest) of the data they were measured on."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    name, digest = dataset or (None, None)
    client.log_batch(
        run_id,
        metrics=[
            Metric(
                k, float(v), now, step, model_id=model_id, dataset_name=name, dataset_digest=digest
            )
            for k, v in (metrics or {}).items()
        ],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


def warn_other_experiment(client: MlflowClient, run_experiment_id: str, wanted: str) -> None:
    """`mlflow run` makes its run in the experiment given by --experiment-name (else
    "Default"): say so when that is not ``wanted``, this dataset's experiment, where the UI
    links point. Compared by name, so that a warning creates no experiment."""
    found = client.get_experiment(run_experiment_id).name
    if found != wanted:
        logger.warning(
            "this `mlflow run` run is in experiment %s, not %s: pass --experiment-name %s",
            found,
            wanted,
            wanted,
        )
