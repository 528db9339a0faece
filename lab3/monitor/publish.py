"""Where monitoring reads the model's reference from and sends its figures: MLflow (the served
version's training profile; a monitoring run linked to that version, in an experiment of its own
beside the pipeline's) and Prometheus (gauges pushed to a Pushgateway, which Prometheus scrapes:
a batch job has no endpoint of its own)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from lab1.core.errors import DataError, PipelineError
from lab1.core.profile import PROFILE_FILE
from lab3.monitor.checks import Result

logger = logging.getLogger(__name__)

MAX_PROFILE_BYTES = 16 * 2**20  # a profile is ~70 KB; checked before parsing
PUSH_JOB = "lab3_monitor"
GAUGE_PREFIX = "monitoring_"
# Monitoring runs go to "<the pipeline's experiment>-monitoring": the pipeline's runs table tells
# how models were made, and served-traffic figures there would sit in its test-metric columns.
EXPERIMENT_SUFFIX = "-monitoring"
VIEW = ("monitoring", "Monitoring")  # the saved view's key and name: the runs table's columns
VIEW_COLUMNS = [
    "tags.`model.version`",
    "tags.`monitoring.window`",
    "tags.`monitoring.verdict`",
    "metrics.`rows`",
    "metrics.`drift_share`",
    "metrics.`prediction_psi`",
    "metrics.`missing_share`",
    "metrics.`served_accuracy`",
    "metrics.`served_f1`",
]


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


def start_run(
    client: Any, experiment: str, version: Any, window: tuple[str, str], result: Result
) -> Any:
    """The monitoring run, tagged with the served version and named with its verdict, which the
    runs table shows at a glance (its metrics come in finish_run)."""
    from lab1.core.mlflow_ui import experiment_id, saved_view_tag

    tags = {
        "mlops.kind": "monitoring",
        "mlflow.runName": f"v{version.version} {short_verdict(result)} (until {window[1]})",
        "monitoring.verdict": short_verdict(result),
        "model.name": version.name,
        "model.version": str(version.version),
        "model.id": logged_model_id(version),
        "model.source_run_id": version.run_id or "",
        "monitoring.window": f"{window[0]} to {window[1]}",
    }
    view = saved_view_tag(*VIEW, VIEW_COLUMNS)
    mine = experiment_id(client, experiment + EXPERIMENT_SUFFIX, view)
    return client.create_run(mine, tags=tags).info


def finish_run(client: Any, run: Any, version: Any, result: Result, report: Path) -> None:
    """The run's verdict (a short tag for the runs table, the whole of it as the run's
    description), its metrics (also logged against the version's logged model: MLflow 3 shows
    them on the model's page) and the report."""
    import mlflow

    client.set_tag(run.run_id, "monitoring.alarm", "; ".join(result.alarms) or "none")
    client.set_tag(run.run_id, "mlflow.note.content", description(result, report))
    with mlflow.start_run(run_id=run.run_id):
        mlflow.log_metrics(result.metrics(), model_id=logged_model_id(version))
        mlflow.log_artifact(str(report))


def short_verdict(result: Result) -> str:
    """The verdict in a few words, for a column of the runs table."""
    if result.rows < result.min_rows:
        return "too few rows"
    if not result.alarms:
        return "ok"
    return "ALARM, " + result.matters.split(":", 1)[0]  # e.g. "ALARM, quality held"


def description(result: Result, report: Path) -> str:
    """The run's description (Markdown, the run page's first text): the verdict, why, next."""
    if not result.alarms:
        verdict = result.verdict()
        return f"**{verdict[0].upper()}{verdict[1:]}.** Report: `{report.name}` (artifacts)."
    moved = "\n".join(f"- {alarm}" for alarm in result.alarms)
    return (
        f"**Alarm.** What moved:\n\n{moved}\n\n**How much it matters:** {result.matters}.\n\n"
        f"**Next step:** {result.next_step}.\n\nReport: `{report.name}` (artifacts)."
    )


def tested(version: Any) -> float | None:
    """The version's test accuracy when it was registered (its tag), if it has one."""
    try:
        return float((version.tags or {})["test.accuracy"])
    except (KeyError, ValueError):
        return None


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
    for name, value in {**result.metrics(), "last_run_timestamp_seconds": time.time()}.items():
        gauge = Gauge(GAUGE_PREFIX + name, f"lab3.monitor: {name}", list(labels), registry=registry)
        gauge.labels(**labels).set(value)
    try:
        push_to_gateway(gateway, job=PUSH_JOB, registry=registry, timeout=10)
    except OSError as exc:
        raise PipelineError(f"--pushgateway {gateway}: cannot push ({exc})") from None
