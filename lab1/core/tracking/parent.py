"""The parent run of one pipeline execution: begin, end, and where stages find its id.

pipeline.sh's tracking service begins and ends it in one long-lived process. Callers with no
process that lives as long as the pipeline (Jenkins runs each stage in a new shell) keep its id
in the run-context file (``.mlops/pipeline_run.json``) instead; stages run by them find it there
or in ``MLOPS_PARENT_RUN_ID``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from lab1.core.io import pid_alive, read_json, write_json
from lab1.core.paths import PATHS
from lab1.core.stage_io import run_params
from lab1.core.tracking.store import (
    connect,
    experiment_id,
    log_batch,
    tracking_uri,
    warn_other_experiment,
)
from lab1.core.tracking.tags import PROJECT_RUN_ENV, lineage_tags, owner_tags, source_tags

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from lab1.core.params import Params

logger = logging.getLogger(__name__)

PARENT_ENV = "MLOPS_PARENT_RUN_ID"


def begin_pipeline(
    params: Params, owner_pid: int | None, client: MlflowClient | None = None
) -> str:
    """Start the parent run of one pipeline execution and return its id.

    ``owner_pid`` is the process that will end it (pipeline.sh's PID); if that process dies
    first, the next pipeline marks the run KILLED. With ``owner_pid=None`` the run belongs to the
    run-context file instead (Jenkins: every step is a new shell, so no process lives as long as
    the build): its id is written there, and a later begin in the same workspace ends a run a
    crashed build left behind.
    """
    client = client or connect()
    mark_orphans_killed(client)
    if owner_pid is None:
        _end_stale_context(client)
    tags = {
        **source_tags("pipeline.sh"),
        **lineage_tags(params),
        **owner_tags(owner_pid or 0),
        "mlops.role": "pipeline",
        "mlflow.runName": f"pipeline-{params.dataset}-{time.strftime('%Y%m%d-%H%M%S')}",
    }
    # Under `mlflow run` (MLproject's main entry) MLflow has made this pipeline's run already.
    adopted = os.environ.get(PROJECT_RUN_ENV)
    if adopted:
        run = client.get_run(adopted)
        warn_other_experiment(client, run.info.experiment_id, params.experiment_name)
        log_batch(client, adopted, tags=tags)
    else:
        run = client.create_run(experiment_id(client, params.experiment_name), tags=tags)
    # The resolved params (params.yaml with the overrides): as the runs table's params, every
    # stage's under its name, and in full as params.yaml.
    log_batch(client, run.info.run_id, params=run_params(params))
    client.log_text(run.info.run_id, params.resolved_yaml(), "params.yaml")
    if owner_pid is None:
        write_json(PATHS.run_context, {"run_id": run.info.run_id, "tracking_uri": tracking_uri()})
    logger.info("pipeline run %s started (experiment %s)", run.info.run_id, params.experiment_name)
    return run.info.run_id


def end_pipeline(run_id: str, status: str, client: MlflowClient | None = None) -> None:
    """End the parent run with ``status`` (FINISHED, FAILED or KILLED), copying the test metrics
    and the registration decision onto it."""
    client = client or connect()
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
            # The run's description in the MLflow UI: what was trained and what became of it.
            tags["mlflow.note.content"] = description(metrics, decision)
    with contextlib.suppress(Exception):
        if read_json(PATHS.run_context).get("run_id") == run_id:
            PATHS.run_context.unlink()
    log_batch(client, run_id, metrics=metrics, tags=tags)
    with contextlib.suppress(Exception):  # the links are for the UI; a failure must not keep
        link_children(client, run_id)  # the run from ending
    client.set_terminated(run_id, status=status)
    logger.info("pipeline run %s ended %s", run_id, status)


# Which files the stages recorded are the pipeline's datasets, and as what (the parent run's
# Dataset column): (stage, the stage's context) -> the parent's context.
PIPELINE_DATASETS = {
    ("data_creation", "output"): "raw",
    ("model_preparation", "input"): "training",
    ("model_testing", "input"): "testing",
}


def link_children(client: MlflowClient, run_id: str) -> None:
    """Show on the parent run what its stages recorded: the raw, training and test data as its
    datasets, and the model model_preparation logged as its output (the runs table's Dataset
    and Models columns)."""
    from mlflow.entities import DatasetInput, InputTag, LoggedModelOutput

    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'"
    )
    datasets, models = [], []
    for child in children:
        stage = child.info.run_name  # a stage's run is named after it
        for used in child.inputs.dataset_inputs if child.inputs else []:
            context = {tag.key: tag.value for tag in used.tags}.get("mlflow.data.context")
            role = PIPELINE_DATASETS.get((stage, context or ""))
            # Only data: a stage's other inputs (the model folder, a fitted preprocessor) are not.
            if role and _is_data(used.dataset.name):
                datasets.append(
                    DatasetInput(used.dataset, tags=[InputTag("mlflow.data.context", role)])
                )
        if stage == "model_preparation" and child.outputs:
            models += [LoggedModelOutput(out.model_id, 0) for out in child.outputs.model_outputs]
    if datasets:
        client.log_inputs(run_id, datasets=datasets)
    if models:
        client.log_outputs(run_id, models)


def _is_data(name: str) -> bool:
    """A dataset, not a fitted artefact: the raw data folder or a train/test split."""
    path = PATHS.root / name
    return path == PATHS.raw or (path.parent == PATHS.processed and path.stem in ("train", "test"))


def description(metrics: dict[str, float], decision: dict[str, Any]) -> str:
    """The parent run's description (Markdown): dataset, model, test metrics, the decision."""
    model = read_json(PATHS.model_info)
    version = f" version {decision['version']}" if decision.get("version") else ""
    accuracy, f1 = metrics.get("accuracy", float("nan")), metrics.get("f1", float("nan"))
    return (
        f"**{decision['registered_model']}**: `{model.get('estimator', 'cnn')}`, trained and "
        f"tested in this run: test accuracy {accuracy:.3f}, F1 {f1:.3f}.\n\n"
        f"Gate: **{decision['decision']}**{version}: {decision['reason']}"
    )


def _end_stale_context(client: MlflowClient) -> None:
    """End the run an earlier, crashed build of this workspace left in the run-context file."""
    with contextlib.suppress(Exception):
        stale = str(read_json(PATHS.run_context)["run_id"])
        if client.get_run(stale).info.status == "RUNNING":
            client.set_tag(stale, "mlops.end_reason", "a new build started in this workspace")
            client.set_terminated(stale, status="KILLED")
            logger.warning("ended run %s left RUNNING by an earlier build: KILLED", stale)


def parent_run_id() -> str | None:
    """The parent run for a stage with no tracking service: from the environment, else the
    run-context file."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    if PATHS.run_context.exists():
        with contextlib.suppress(Exception):
            return str(read_json(PATHS.run_context)["run_id"])
    return None


def mark_orphans_killed(client: MlflowClient) -> list[str]:
    """Mark KILLED every RUNNING run started on this host by a process that no longer exists.

    Runs with PID 0 belong to a run-context file, not a process, and are left alone here. A
    stage's run is also left alone while the process recording it (``mlops.recorder_pid``: the
    pipeline's tracking service) lives: its stage may have exited with the end still queued.
    """
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    killed = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get("mlops.pid", "")
        recorder = tags.get("mlops.recorder_pid", "")
        if recorder.isdigit() and pid_alive(int(recorder)):
            continue
        if tags.get("mlops.host") == host and pid.isdigit() and not pid_alive(int(pid)):
            client.set_tag(run.info.run_id, "mlops.end_reason", f"process {pid} died")
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    if killed:
        logger.warning("marked %d run(s) KILLED whose process had died: %s", len(killed), killed)
    return killed
