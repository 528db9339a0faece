"""How the MLflow UI shows this project's runs: the model-training view, links, and a saved view
of the runs table whose columns tell a pipeline's story.

Both facts below were read from MLflow 3.17's UI code and checked in headless Chromium
(tests/lab1/test_mlflow_ui.py):

- The UI opens an experiment in its GenAI view ("Overview": traces, token usage) unless the link
  says ``workflowType=machine_learning`` or the browser remembers that the user switched. The
  experiment's ``mlflow.experimentKind`` tag is not read while its workflow-type selector is on,
  so every link this project prints carries the view (``ML_VIEW``).
- The runs table's columns are the browser's own choice (its localStorage). The UI's supported
  way to share a choice is a *saved view*: an experiment tag ``mlflow.sharedViewState.<key>``
  holding ``{name, createdAt, updatedAt, state}``, listed under "Views" and opened by
  ``viewStateShareKey=<key>`` in a link. Every experiment this project creates gets one.

Standard library only at import: report.py builds links without importing MLflow. ``python -m
lab1.core.mlflow_ui`` (``make ui``) starts the UI and says when its pages answer.
``show_pipeline`` fills the parent run's columns (Dataset, Models, metrics, description) from
what its stage runs recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from lab1.core.errors import PipelineError, without_credentials
from lab1.core.io import read_json
from lab1.core.paths import PATHS, is_embedded, sqlite_file, tracking_uri

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
ML_VIEW = "workflowType=machine_learning"

SAVED_VIEW_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "pipeline-story"
VIEW_NAME = "Pipeline story"
# The runs table's columns in that view: what data went in, which code ran, the model it made,
# its test metrics, and what the quality gate decided. The UI's column keys: type.`name`.
VIEW_COLUMNS = [
    "attributes.`Dataset`",
    "attributes.`Source`",
    "attributes.`Models`",
    "params.`model_preparation.estimator`",
    "metrics.`accuracy`",
    "metrics.`f1`",
    "metrics.`roc_auc`",
    "metrics.`baseline_accuracy`",
    "tags.`gate.decision`",
]


def ui_base() -> str:
    """The MLflow UI's address, for links: MLFLOW_UI_URL if set (the Makefile sets it from `make
    ui`'s PORT), else the tracking server of MLFLOW_TRACKING_URI (it is its own UI), else `mlflow
    ui`'s default, LOCAL_UI. Without credentials: links are shown and stored (the browser asks
    for what it needs). A value that is no http(s) address raises PipelineError."""
    given = os.environ.get("MLFLOW_UI_URL", "")
    if given and not is_http_address(given):
        raise PipelineError(
            f"environment: MLFLOW_UI_URL={without_credentials(given)!r} is not the address of "
            "an MLflow UI (e.g. http://127.0.0.1:5001)"
        )
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    server = uri if uri.startswith(("http://", "https://")) else ""
    return without_credentials(given or server or LOCAL_UI, hidden="").rstrip("/")


def is_http_address(text: str) -> bool:
    """Whether ``text`` is http(s)://host, with a port from 1 to 65535 if it has one."""
    parts = urllib.parse.urlsplit(text)
    try:
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # urllib's word for a port that is no number from 0 to 65535
        return False


def run_link(experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI, in the model-training view."""
    return f"{ui_base()}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"


def version_link(name: str, version: str | int) -> str:
    """A registry version's page in the MLflow UI, in the model-training view."""
    return f"{ui_base()}/#/models/{name}/versions/{version}?{ML_VIEW}"


def runs_link(experiment_id: str) -> str:
    """An experiment's runs table in the model-training view, with the pipeline-story columns."""
    return f"{ui_base()}/#/experiments/{experiment_id}/runs?{ML_VIEW}&viewStateShareKey={VIEW_KEY}"


def saved_view_tag(
    key: str = VIEW_KEY, name: str = VIEW_NAME, columns: list[str] = VIEW_COLUMNS
) -> dict[str, str]:
    """The experiment tag that saves a view (by default the pipeline story; see the module doc)."""
    state = {
        "searchFilter": "",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": columns,
        "columnOrder": [],
        "columnWidths": {},
        "runsExpanded": {},
        "runsPinned": [],
        "runsHidden": [],
        "runsVisibilityMap": {},
        "runsHiddenMode": "FIRST_10_RUNS",
        "groupBy": None,
        "groupsExpanded": {},
    }
    now = int(time.time() * 1000)
    envelope = {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    return {SAVED_VIEW_PREFIX + key: json.dumps(envelope)}


def experiment_id(client: MlflowClient, name: str, view: dict[str, str] | None = None) -> str:
    """The id of experiment ``name``, created if missing (race-safe between processes): a
    model-training experiment with the saved ``view`` (default: the "Pipeline story"), whose
    artifacts an embedded store keeps beside its database, never in the working directory."""
    from mlflow.exceptions import MlflowException

    view = view or saved_view_tag()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if not view.keys() <= found.tags.keys():  # an experiment from before the saved view
            for key, value in view.items():
                client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    uri, location = tracking_uri(), None
    if is_embedded(uri):
        location = (sqlite_file(uri).parent / PATHS.mlflow_artifacts.name / name).as_uri()
    try:
        tags = {"mlflow.experimentKind": "custom_model_development", **view}
        return client.create_experiment(name, artifact_location=location, tags=tags)
    except MlflowException:
        found = client.get_experiment_by_name(name)  # another process created it first
        if found is None:
            raise
        return found.experiment_id


# Which files the stages recorded are the pipeline's datasets, and as what (the parent run's
# Dataset column): (stage, the stage's context) -> the parent's context.
PIPELINE_DATASETS = {
    ("data_creation", "output"): "raw",
    ("model_preparation", "input"): "training",
    ("model_testing", "input"): "testing",
}


def show_pipeline(client: MlflowClient, run_id: str) -> None:
    """Show on the parent run what its stages recorded: the test metrics and the gate's
    decision (the run's description), the raw, training and test data as its datasets, and the
    model model_preparation logged as its output (the runs table's Dataset and Models columns)."""
    from mlflow.entities import DatasetInput, InputTag, LoggedModelOutput, Metric, RunTag

    # A failed pipeline may have no reports, or an earlier pipeline's.
    report, decision = (
        read_json(p) if p.exists() else {} for p in (PATHS.metrics, PATHS.registration)
    )
    metrics: dict[str, float] = {}
    if report.get("pipeline_run_id") == run_id:
        metrics = {k: float(v) for k, v in report["metrics"].items()}
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    if decision.get("pipeline_run_id") == run_id:
        tags = {"gate.decision": decision["decision"], "gate.reason": decision["reason"]}
        tags["mlflow.note.content"] = description(metrics, decision)
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    parent = client.get_run(run_id)
    query = f"tags.`mlflow.parentRunId` = '{run_id}'"
    datasets, models = [], []
    for child in client.search_runs([parent.info.experiment_id], query):
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


def main(argv: list[str] | None = None) -> int:
    """`make ui`: `mlflow ui` on the store, and one line with the link once its pages answer
    (uvicorn says "running" half a minute before they do, on a slow machine)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--backend-store-uri", required=True)
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}"
    command = ["mlflow", "ui", "--backend-store-uri", args.backend_store_uri, "--port"]
    server = subprocess.Popen([sys.executable, "-m", *command, str(args.port)])
    # SIGTERM as Ctrl-C: the UI goes down with this process, never left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started, note = time.monotonic(), 10.0
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        while server.poll() is None:
            try:  # the API the pages call first: answered, the UI is usable
                probe = f"{url}/ajax-api/2.0/mlflow/experiments/search?max_results=1"
                with direct.open(probe, timeout=2):
                    sys.stderr.write(f"MLflow UI ready: {url}/#/experiments?{ML_VIEW}\n")
                    break
            except OSError:
                time.sleep(0.5)
                if time.monotonic() - started > note:
                    sys.stderr.write(f"MLflow UI starting ({note:.0f} s)\n")
                    note += 10
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
