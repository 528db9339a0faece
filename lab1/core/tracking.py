"""Only what MLflow lacks; the stage scripts call MLflow themselves (mlflow.log_metrics...): the
default store (``connect``), a stage's child run ended KILLED by Ctrl-C or SIGTERM
(``stage_run``), the pipeline's parent run (``begin_pipeline``, ``end_pipeline``; `mlflow run`'s
adopted), the reaping of runs a SIGKILL left RUNNING (``reap``), git/DVC/CI tags (``run_tags``).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import yaml

from lab1.core.cli import Terminated, check_store, raise_terminated, store_name
from lab1.core.errors import PipelineError, one_line, without_credentials
from lab1.core.io import pid_alive, read_json, write_json
from lab1.core.mlflow_ui import experiment_id, show_pipeline
from lab1.core.paths import PATHS, is_embedded, sqlite_file, tracking_uri
from lab1.core.stage_io import run_params

if TYPE_CHECKING:
    from mlflow import ActiveRun
    from mlflow.tracking import MlflowClient

    from lab1.core.params import Params

logger = logging.getLogger(__name__)

PARENT_ENV = "MLOPS_PARENT_RUN_ID"  # pipeline.sh passes its parent run to the stages
PROJECT_RUN_ENV = "MLFLOW_RUN_ID"  # set by `mlflow run` (MLflow Projects): the run it made
CI_ENV = ("BUILD_NUMBER", "BUILD_URL", "JOB_NAME", "GIT_BRANCH")  # Jenkins'; run tags if set
CI_ENV_TAGS = {env: f"ci.{env.lower()}" for env in CI_ENV}  # ci.build_number, ...
# A dead server fails a run in seconds (2 tries of 10 s), not MLflow's default 4 minutes.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a bar is noise on a log stream
    # Against a server, MLflow prints "View run ... at" on stdout: the accuracy line's alone.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def connect() -> MlflowClient:
    """Point MLflow at the store and return a client; a store that does not answer or is not
    one is a PipelineError line. A new embedded store is created once, under a file lock:
    processes creating one at the same moment crash in its schema migration."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    check_store(uri)
    import mlflow
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # MLflow's loggers through ours: one format on stderr
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with contextlib.ExitStack() as stack:
            if is_embedded(uri):
                sqlite_file(uri).parent.mkdir(parents=True, exist_ok=True)
                lock = stack.enter_context(open(f"{sqlite_file(uri)}.lock", "w"))
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            client = MlflowClient(uri, registry_uri=uri)
            client.search_registered_models(max_results=1)  # the registry's schema, too
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


def git(*args: str, timeout: float = 10) -> str | None:
    """``git ARGS`` in the project checkout: its stdout, or None when git cannot say."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run(
            ["git", *args], cwd=PATHS.root, capture_output=True, text=True, timeout=timeout
        )
        return done.stdout if done.returncode == 0 else None
    return None


def code_state() -> dict[str, str]:
    """Commit and dirty flag of the checkout ("unknown" outside git), and the digest of the code
    the stages run: lab1's modules and the locked libraries. The model's fingerprint takes that
    digest, not the commit: a change anywhere else (a README, .dvc/config) leaves the same code."""
    commit = (git("rev-parse", "HEAD") or "").strip() or os.environ.get("GIT_COMMIT") or "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    code = hashlib.sha256()
    for file in sorted([*PATHS.root.glob("lab1/**/*.py"), *PATHS.root.glob("requirements*.lock")]):
        code.update(f"{file.relative_to(PATHS.root).as_posix()}\0".encode() + file.read_bytes())
    dirty = "unknown" if status is None else str(bool(status.strip()))
    return {"git.commit": commit, "git.dirty": dirty, "code.sha256": code.hexdigest()[:16]}


def dvc_state() -> dict[str, str]:
    """Under `dvc repro` (DVC sets DVC_STAGE): the stage, and DVC's hash of data/raw from the
    dvc.lock DVC has just verified or written. Empty otherwise (an old dvc.lock may lie)."""
    stage, lock = os.environ.get("DVC_STAGE"), PATHS.root / "dvc.lock"
    if not stage or not lock.exists():
        return {}
    raw = PATHS.raw.relative_to(PATHS.root).as_posix()
    entry = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get("data_creation", {})
    md5 = next((out.get("md5") for out in entry.get("outs", []) if out.get("path") == raw), None)
    return {"dvc.stage": stage, **({"dvc.data_md5": md5} if md5 else {})}


def run_tags(params: Params, script: str, pid: int, role: str) -> dict[str, str]:
    """What every run carries: MLflow's Source and User columns for ``script`` (named, since a
    test may run it), git and DVC state, params hash, CI build, and its owner (host, pid) for
    the reaper."""
    tags = {
        "mlflow.source.name": script,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": getpass.getuser(),
        **code_state(),
        **dvc_state(),
        "dataset": params.dataset,
        "params.hash": params.digest(),
        "mlops.host": socket.gethostname(),
        "mlops.pid": str(pid),
        "mlops.role": role,
    }
    tags.update({tag: os.environ[env] for env, tag in CI_ENV_TAGS.items() if os.environ.get(env)})
    if tags["git.commit"] != "unknown":
        tags["mlflow.source.git.commit"] = tags["git.commit"]
    return tags


def parent_run_id() -> str | None:
    """The pipeline's run: from pipeline.sh (environment), else the run-context file (Jenkins)."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    with contextlib.suppress(Exception):
        return str(read_json(PATHS.run_context)["run_id"])
    return None


@contextlib.contextmanager
def stage_run(stage: str, params: Params) -> Iterator[ActiveRun]:
    """``mlflow.start_run`` for ``stage``: a child of the pipeline's run while that is RUNNING
    (else alone), or the run `mlflow run` made. Ends FINISHED, FAILED (the error in tag
    ``mlops.error``) or KILLED (Ctrl-C, SIGTERM), with its ``duration_s`` metric."""
    import mlflow

    client = connect()
    parent = parent_run_id()
    if parent is not None and not _running(client, parent):
        logger.warning("parent run %s is not RUNNING; %s runs alone", parent, stage)
        parent = None
    tags = run_tags(params, f"lab1/{stage}.py", os.getpid(), "stage")
    experiment = experiment_id(client, params.experiment_name)  # made with the saved view
    if os.environ.get(PROJECT_RUN_ENV):  # start_run resumes it, in `mlflow run`'s experiment
        experiment = client.get_run(os.environ[PROJECT_RUN_ENV]).info.experiment_id
    held = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, raise_terminated)
    run = mlflow.start_run(
        experiment_id=experiment, run_name=stage, parent_run_id=parent, tags=tags
    )
    logger.info("%s run %s started (pid %d)", stage, run.info.run_id, os.getpid())
    logger.info("%s started (pid %d)", stage, os.getpid())  # its run exists: it ends KILLED
    started, status, error = time.perf_counter(), "FAILED", ""
    try:
        yield run
        status = "FINISHED"
    except (KeyboardInterrupt, Terminated):
        status = "KILLED"
        raise
    except Exception as exc:
        error = " ".join(str(exc).split())[:4000]
        raise
    finally:
        caught: list[int] = []  # a signal while the run ends waits until it has ended
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda n, _frame: caught.append(n))
        duration = time.perf_counter() - started
        with contextlib.suppress(Exception):  # the run must end even if the store fails here
            mlflow.log_metric("duration_s", duration)
            if error:
                mlflow.set_tag("mlops.error", error)
        mlflow.end_run(status)
        signal.signal(signal.SIGINT, held[0]), signal.signal(signal.SIGTERM, held[1])
        logger.info("%s %s in %.2f s", stage, status, duration)
        if caught and status != "KILLED":  # now it acts (a second one while stopping: dropped)
            os.kill(os.getpid(), caught[0])


def _running(client: MlflowClient, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        return bool(client.get_run(run_id).info.status == "RUNNING")
    return False


def begin_pipeline(params: Params, owner_pid: int | None) -> str:
    """Start the parent run of one pipeline execution (or adopt `mlflow run`'s) and return its
    id. ``owner_pid``: the process that ends it (pipeline.sh); None: the run belongs to the
    run-context file (Jenkins runs each step in a new shell), and a later begin ends the run a
    crashed build left there."""
    client = connect()
    reap(client)
    with contextlib.suppress(Exception):
        if owner_pid is None and _running(client, stale := read_json(PATHS.run_context)["run_id"]):
            client.set_tag(stale, "mlops.end_reason", "a new build started in this workspace")
            client.set_terminated(stale, status="KILLED")
            logger.warning("ended run %s left RUNNING by an earlier build: KILLED", stale)
    tags = run_tags(params, "pipeline.sh", owner_pid or 0, "pipeline")
    tags["mlflow.runName"] = f"pipeline-{params.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_id = os.environ.get(PROJECT_RUN_ENV)
    if run_id:
        wanted = params.experiment_name  # the experiment the UI links point to
        found = client.get_experiment(client.get_run(run_id).info.experiment_id).name
        if found != wanted:
            logger.warning("`mlflow run` ran in %s: pass --experiment-name %s", found, wanted)
    else:
        experiment = experiment_id(client, params.experiment_name)
        run_id = client.create_run(experiment, tags=tags).info.run_id
    from mlflow.entities import Param, RunTag

    # The resolved params: every stage's under its name, and in full as params.yaml.
    client.log_batch(
        run_id,
        params=[Param(k, v) for k, v in run_params(params).items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.log_text(run_id, params.resolved_yaml(), "params.yaml")
    if owner_pid is None:
        write_json(PATHS.run_context, {"run_id": run_id, "tracking_uri": tracking_uri()})
    logger.info("pipeline run %s started (experiment %s)", run_id, params.experiment_name)
    return run_id


def end_pipeline(run_id: str, status: str) -> None:
    """End the parent run FINISHED, FAILED or KILLED, with the test metrics, the gate's decision
    and what its stages recorded (mlflow_ui.show_pipeline) on it."""
    client = connect()
    reap(client)
    with contextlib.suppress(Exception):
        if read_json(PATHS.run_context).get("run_id") == run_id:
            PATHS.run_context.unlink()
    with contextlib.suppress(Exception):  # the UI's view must not keep the run from ending
        show_pipeline(client, run_id)
    client.set_terminated(run_id, status=status)
    logger.info("pipeline run %s ended %s", run_id, status)


def reap(client: MlflowClient) -> list[str]:
    """End KILLED every RUNNING run started on this host by a process that no longer exists
    (pid 0: a run-context file's run, ended by the next begin)."""
    host, killed = socket.gethostname(), []
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = (
        client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []
    )
    for run in running:
        tags = run.data.tags
        pid = int(tags["mlops.pid"]) if tags.get("mlops.pid", "").isdigit() else 0
        if tags.get("mlops.host") == host and pid > 0 and not pid_alive(pid):
            client.set_tag(run.info.run_id, "mlops.end_reason", f"process {pid} died")
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    if killed:
        logger.warning("marked %d run(s) KILLED whose process had died: %s", len(killed), killed)
    return killed
