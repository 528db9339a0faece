"""Where monitoring reads the model's reference from and sends its figures: MLflow (the served
version's training profile; a monitoring run linked to that version) and Prometheus (gauges
pushed to a Pushgateway, which Prometheus scrapes: a batch job has no endpoint of its own)."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from lab1.core.errors import DataError, PipelineError
from lab1.core.profile import PROFILE_FILE
from lab3.monitor.checks import Result

logger = logging.getLogger(__name__)

MAX_PROFILE_BYTES = 16 * 2**20  # a profile is ~70 KB; checked before parsing
PUSH_JOB = "lab3_monitor"
GAUGE_PREFIX = "monitoring_"


def served_version(client: Any, name: str, version: str) -> tuple[Any, dict[str, Any]]:
    """The registry's version and the training profile stored with its logged model."""
    import mlflow

    try:
        found = client.get_model_version(name, version)
        location = client.get_logged_model(logged_model_id(found)).artifact_location
    except mlflow.exceptions.MlflowException as exc:
        raise DataError(f"models:/{name}/{version}: not in the registry ({exc.message})") from None
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{location}/{PROFILE_FILE}", dst_path=folder
            )
        except (mlflow.exceptions.MlflowException, OSError):
            raise DataError(
                f"models:/{name}/{version} has no {PROFILE_FILE} (trained before monitoring "
                "existed): run `bash pipeline.sh` to train a version that has one"
            ) from None
        size = Path(path).stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise DataError(f"models:/{name}/{version}: {PROFILE_FILE} is {size} bytes, too big")
        return found, json.loads(Path(path).read_text())


def logged_model_id(version: Any) -> str:
    """The id of the logged model a registry version was made from (a SQLite store leaves
    ``model_id`` empty; its ``source`` is then ``models:/<id>``)."""
    return str(version.model_id or version.source.removeprefix("models:/"))


def start_run(client: Any, experiment: str, version: Any, window: tuple[str, str]) -> Any:
    """The monitoring run, tagged with the served version (its metrics come in finish_run)."""
    from lab1.core.mlflow_ui import experiment_id

    tags = {
        "mlops.kind": "monitoring",
        "mlflow.runName": f"monitoring v{version.version} until {window[1]}",
        "model.name": version.name,
        "model.version": str(version.version),
        "model.id": logged_model_id(version),
        "model.source_run_id": version.run_id or "",
        "monitoring.window": f"{window[0]} to {window[1]}",
    }
    return client.create_run(experiment_id(client, experiment), tags=tags).info


def finish_run(client: Any, run: Any, version: Any, result: Result, report: Path) -> None:
    """The run's alarm, its metrics (also logged against the version's logged model: MLflow 3
    shows them on the model's page) and the report."""
    import mlflow

    client.set_tag(run.run_id, "monitoring.alarm", "; ".join(result.alarms) or "none")
    with mlflow.start_run(run_id=run.run_id):
        mlflow.log_metrics(result.metrics(), model_id=logged_model_id(version))
        mlflow.log_artifact(str(report))


def links(client: Any, run: Any, version: Any) -> dict[str, str]:
    """Where a reader of the report goes next, in the MLflow UI."""
    from lab1.core.mlflow_ui import run_link, version_link

    found = {
        "this monitoring run": run_link(run.experiment_id, run.run_id),
        f"version {version.version} in the registry": version_link(version.name, version.version),
    }
    if version.run_id:
        training = client.get_run(version.run_id).info
        found["the run that trained it"] = run_link(training.experiment_id, version.run_id)
    return found


def lineage(version: Any) -> str:
    """What the registry says the version was made from, in one sentence."""
    tags = version.tags or {}
    return (
        f"Trained from data {tags.get('data.digest', '?')} at commit "
        f"{tags.get('git.commit', '?')[:12]}; test accuracy {tags.get('test.accuracy', '?')} "
        f"when registered."
    )


def push_gauges(gateway: str, result: Result) -> None:
    """The run's figures as Prometheus gauges, labelled with the model and version."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    labels = {"model": result.traffic.model, "version": result.traffic.version}
    for name, value in {**result.metrics(), "last_run_timestamp_seconds": _now()}.items():
        gauge = Gauge(GAUGE_PREFIX + name, f"lab3.monitor: {name}", list(labels), registry=registry)
        gauge.labels(**labels).set(value)
    try:
        push_to_gateway(gateway, job=PUSH_JOB, registry=registry, timeout=10)
    except OSError as exc:
        raise PipelineError(f"--pushgateway {gateway}: cannot push ({exc})") from None


def _now() -> float:
    import time

    return time.time()
