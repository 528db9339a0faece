"""The only module that starts and ends MLflow runs.

Layout: one experiment per dataset; per pipeline execution one parent run (``begin_pipeline`` /
``end_pipeline``) and one child run per stage (``stage_run``). Stages are separate processes, so
the parent's id travels in the environment variable ``MLOPS_PARENT_RUN_ID`` (pipeline.sh) or in
the run-context file (Jenkins, which runs each stage in its own ``sh`` step).

Every run ends FINISHED, FAILED or KILLED. Runs whose process died without ending them (SIGKILL,
power loss) are marked KILLED by the next ``begin_pipeline`` / ``end_pipeline`` on the same host,
recognised by the host and PID tags they carry.

Tracking URI: ``MLFLOW_TRACKING_URI`` if set (a server: nothing else changes), otherwise the
embedded SQLite store + artifact folder under ``.mlflow/`` in the project.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lab1.core.io import file_sha256, pid_alive, read_json, tree_sha256, write_json
from lab1.core.params import Params
from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)

PARENT_ENV = "MLOPS_PARENT_RUN_ID"
# Environment variables Jenkins sets, recorded as run tags when present.
CI_ENV_TAGS = {
    "BUILD_NUMBER": "ci.build_number",
    "BUILD_URL": "ci.build_url",
    "JOB_NAME": "ci.job_name",
    "GIT_BRANCH": "ci.git_branch",
}


# --- store -----------------------------------------------------------------------------------


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


def connect() -> MlflowClient:
    """Point MLflow at the tracking URI and return a client; creates the embedded store once."""
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


# --- lineage ---------------------------------------------------------------------------------


def git_state() -> dict[str, str]:
    """Commit and dirty flag of the project checkout ("unknown" outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=PATHS.root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD") or os.environ.get("GIT_COMMIT") or "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git.commit": commit, "git.dirty": "unknown" if status is None else str(bool(status))}


def dvc_state() -> dict[str, str]:
    """Under `dvc repro` / `dvc exp run` (DVC sets DVC_STAGE for each stage's command): DVC's
    content hash of data/raw from dvc.lock, which DVC has just verified or written, and the
    stage. Empty otherwise: a dvc.lock left from an earlier repro may not describe this data."""
    stage = os.environ.get("DVC_STAGE")
    lock = PATHS.root / "dvc.lock"
    if not stage or not lock.exists():
        return {}
    import yaml

    raw = PATHS.raw.relative_to(PATHS.root).as_posix()
    entry = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get("data_creation", {})
    md5 = next((out.get("md5") for out in entry.get("outs", []) if out.get("path") == raw), None)
    tags = {"dvc.stage": stage}
    if md5:
        tags["dvc.data_md5"] = md5
    return tags


def lineage_tags(params: Params) -> dict[str, str]:
    """Tags every run and model version carries: code, data choice (and DVC's data hash under
    DVC), params, CI build."""
    tags = {**git_state(), **dvc_state(), "dataset": params.dataset, "params.hash": params.digest()}
    tags.update({tag: os.environ[env] for env, tag in CI_ENV_TAGS.items() if os.environ.get(env)})
    return tags


def _owner_tags(pid: int) -> dict[str, str]:
    return {"mlops.host": socket.gethostname(), "mlops.pid": str(pid)}


# --- pipeline (parent) runs ------------------------------------------------------------------


def begin_pipeline(params: Params, owner_pid: int | None) -> str:
    """Start the parent run of one pipeline execution and return its id.

    ``owner_pid`` is the process that will end it (pipeline.sh's PID); if that process dies
    first, the next pipeline marks the run KILLED. With ``owner_pid=None`` the run belongs to the
    run-context file instead (Jenkins: every step is a new shell, so no process lives as long as
    the build): its id is written there, and a later begin in the same workspace ends a run a
    crashed build left behind.
    """
    client = connect()
    mark_orphans_killed(client)
    if owner_pid is None:
        _end_stale_context(client)
    exp = experiment_id(client, params.experiment_name)
    tags = {
        **lineage_tags(params),
        **_owner_tags(owner_pid or 0),
        "mlops.role": "pipeline",
        "mlflow.runName": f"pipeline-{params.dataset}-{time.strftime('%Y%m%d-%H%M%S')}",
    }
    run = client.create_run(exp, tags=tags)
    if owner_pid is None:
        write_json(PATHS.run_context, {"run_id": run.info.run_id, "tracking_uri": tracking_uri()})
    logger.info("pipeline run %s started (experiment %s)", run.info.run_id, params.experiment_name)
    return run.info.run_id


def end_pipeline(run_id: str, status: str) -> None:
    """End the parent run with ``status`` (FINISHED, FAILED or KILLED), copying the test metrics
    and the registration decision onto it, and close any child its stages left RUNNING."""
    client = connect()
    mark_orphans_killed(client)
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    with contextlib.suppress(Exception):  # a failed run may have no reports; that is fine
        report = read_json(PATHS.metrics)
        if report.get("pipeline_run_id") == run_id:
            metrics = {k: float(v) for k, v in report["metrics"].items()}
    with contextlib.suppress(Exception):
        decision = read_json(PATHS.registration)
        if decision.get("pipeline_run_id") == run_id:
            tags = {"gate.decision": decision["decision"], "gate.reason": decision["reason"]}
    with contextlib.suppress(Exception):
        if read_json(PATHS.run_context).get("run_id") == run_id:
            PATHS.run_context.unlink()
    log_batch(client, run_id, metrics=metrics, tags=tags)
    client.set_terminated(run_id, status=status)
    logger.info("pipeline run %s ended %s", run_id, status)


def _end_stale_context(client: MlflowClient) -> None:
    """End the run an earlier, crashed build of this workspace left in the run-context file."""
    with contextlib.suppress(Exception):
        stale = str(read_json(PATHS.run_context)["run_id"])
        if client.get_run(stale).info.status == "RUNNING":
            client.set_tag(stale, "mlops.end_reason", "a new build started in this workspace")
            client.set_terminated(stale, status="KILLED")
            logger.warning("ended run %s left RUNNING by an earlier build: KILLED", stale)


def parent_run_id() -> str | None:
    """The parent run for a stage: from the environment, else the run-context file."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    if PATHS.run_context.exists():
        with contextlib.suppress(Exception):
            return str(read_json(PATHS.run_context)["run_id"])
    return None


def mark_orphans_killed(client: MlflowClient) -> list[str]:
    """Mark KILLED every RUNNING run started on this host by a process that no longer exists.

    Runs with PID 0 belong to a run-context file, not a process, and are left alone here.
    """
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    killed = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get("mlops.pid", "")
        if tags.get("mlops.host") == host and pid.isdigit() and not pid_alive(int(pid)):
            client.set_tag(run.info.run_id, "mlops.end_reason", f"process {pid} died")
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    if killed:
        logger.warning("marked %d run(s) KILLED whose process had died: %s", len(killed), killed)
    return killed


def log_batch(
    client: MlflowClient,
    run_id: str,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    step: int = 0,
) -> None:
    """Log metrics, params and tags in one request (one round trip against a server)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


# --- stage (child) runs ----------------------------------------------------------------------


class StageRun:
    """What a stage may record on its run. Times its own MLflow calls (``mlflow_seconds``)."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client = client
        self.run_id = run_id
        self.mlflow_seconds = 0.0
        self._datasets: list[DatasetInput] = []

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Count the enclosed MLflow work into ``mlflow_seconds`` (reported by the benchmark)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.mlflow_seconds += time.perf_counter() - start

    def add_input(self, path: Path) -> str:
        """Record ``path`` (file or folder) as an input with its content digest; return it."""
        return self._add_dataset(path, "input")

    def add_output(self, path: Path) -> str:
        """Record ``path`` as an output with its content digest; return the digest."""
        return self._add_dataset(path, "output")

    def _add_dataset(self, path: Path, context: str) -> str:
        digest = file_sha256(path) if path.is_file() else tree_sha256(path)
        name = (
            path.relative_to(PATHS.root).as_posix()
            if path.is_relative_to(PATHS.root)
            else str(path)
        )
        dataset = Dataset(
            name=name, digest=digest[:16], source_type="local", source=path.resolve().as_uri()
        )
        self._datasets.append(
            DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])
        )
        return digest

    def log(
        self,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        step: int = 0,
    ) -> None:
        """One request for all of it (one round trip against a server); ``step`` for per-epoch
        metrics."""
        with self.timed():
            log_batch(self.client, self.run_id, metrics=metrics, params=params, tags=tags,
                      step=step)  # fmt: skip

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        with self.timed():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def _flush_datasets(self) -> None:
        if self._datasets:
            with self.timed():
                self.client.log_inputs(self.run_id, datasets=self._datasets)
            self._datasets = []


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(f"{prefix}.{key}" if prefix else key, inner))
        return out
    return {prefix: value}


class _Terminated(BaseException):
    """Raised in place of the default SIGTERM action so that runs are ended, not abandoned."""


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise _Terminated(f"signal {signum}")


@contextlib.contextmanager
def stage_run(stage: str, params: Params) -> Iterator[StageRun]:
    """One child run for ``stage`` (under the pipeline's parent run when there is one).

    Logs the stage's own params section, lineage tags and duration; the stage adds its inputs,
    outputs and metrics through the yielded StageRun. The run ends FINISHED, FAILED (exception)
    or KILLED (Ctrl-C, SIGTERM).
    """
    started = time.perf_counter()
    client = connect()
    exp = experiment_id(client, params.experiment_name)
    parent = parent_run_id()
    if parent is not None:
        try:
            if client.get_run(parent).info.status != "RUNNING":
                logger.warning("parent run %s is not RUNNING; %s runs on its own", parent, stage)
                parent = None
        except MlflowException:
            logger.warning("parent run %s not found; %s runs on its own", parent, stage)
            parent = None
    tags = {**lineage_tags(params), **_owner_tags(os.getpid()), "mlops.role": "stage"}
    if os.environ.get("MLFLOW_RUN_ID"):
        # Under `mlflow run` (MLflow Projects) the run already exists: record into it.
        mlflow_active = mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"], tags=tags)
    else:
        mlflow_active = mlflow.start_run(
            experiment_id=exp, run_name=stage, parent_run_id=parent, tags=tags
        )
    run = StageRun(client, mlflow_active.info.run_id)
    logger.info(
        "%s run %s started (pid %d%s)",
        stage,
        run.run_id,
        os.getpid(),
        f", parent {parent}" if parent else "",
    )
    run.mlflow_seconds += time.perf_counter() - started
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    status = "FAILED"
    try:
        # Each stage logs its own params.yaml section (stage names are section names).
        run.log(params={"dataset": params.dataset, **_flatten("", params.section(stage))})
        yield run
        status = "FINISHED"
    except (KeyboardInterrupt, _Terminated):
        status = "KILLED"
        raise
    except Exception as exc:
        with contextlib.suppress(Exception):
            run.log(tags={"mlops.error": " ".join(str(exc).split())[:4000]})
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        with contextlib.suppress(Exception):
            run._flush_datasets()
        duration = time.perf_counter() - started
        with contextlib.suppress(Exception):
            run.log(metrics={"duration_s": duration, "mlflow_s": run.mlflow_seconds})
        mlflow.end_run(status=RunStatus.to_string(RunStatus.from_string(status)))
        logger.info("%s run %s %s in %.2f s", stage, run.run_id, status, duration)
