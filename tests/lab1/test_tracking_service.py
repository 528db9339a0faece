"""The tracking service in this process (its socket server and worker as threads), driven by
the same client the stages use: requests are applied in order, answers come back, a stage that
vanishes is ended KILLED, and ending the pipeline waits for every stage's last message."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab1.core.errors import PipelineError
from lab1.core.params import load_params
from lab1.core.paths import project_at
from lab1.core.tracking.service import Service, ServiceClient
from lab1.core.tracking.tags import owner_tags
from tests.conftest import copy_project


@dataclass
class Running:
    service: Service
    socket_path: str
    worker: threading.Thread
    root: Path

    def client(self) -> ServiceClient:
        return ServiceClient(self.socket_path)

    def stop(self, status: str = "FINISHED") -> int:
        client = self.client()
        errors = client.call("end_pipeline", reply=True, status=status)
        client.close()
        self.worker.join(timeout=60)
        return errors

    def mlflow(self):
        from mlflow.tracking import MlflowClient

        uri = f"sqlite:///{self.root / '.mlflow' / 'mlflow.db'}"
        return MlflowClient(uri)


@pytest.fixture
def running(tmp_path, monkeypatch) -> Iterator[Running]:
    root = copy_project(tmp_path / "project")
    for name in ("MLFLOW_TRACKING_URI", "MLOPS_TRACKING_SOCKET", "MLOPS_PARENT_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    with project_at(root):
        params = load_params(root / "params.yaml")
        path = str(tmp_path / "service.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen()
        # This test process owns the parent run (as pipeline.sh would).
        import os

        service = Service(params, os.getpid())
        threading.Thread(target=service.accept, args=(server,), daemon=True).start()
        worker = threading.Thread(target=service.work, daemon=True)
        worker.start()
        yield Running(service, path, worker, root)
        server.close()


def start(client: ServiceClient, stage: str, pid: int = 4242) -> None:
    client.call(
        "start",
        stage=stage,
        experiment="lab1-temperature",
        pid=pid,
        tags={**owner_tags(pid), "mlops.role": "stage"},
        params={"seed": "1"},
    )


def test_requests_are_recorded_in_order_under_the_parent(running):
    stage = running.client()
    start(stage, "data_creation")
    for step in range(3):  # no answer awaited: the stage goes on at once
        stage.call("log", metrics={"loss": 1.0 / (step + 1)}, step=step)
    info = stage.call("run_info", reply=True)
    parent = info["pipeline_run_id"]
    stage.call("end", status="FINISHED")
    stage.close()
    assert running.stop() == 0
    client = running.mlflow()
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.params["seed"] == "1"
    history = client.get_metric_history(info["run_id"], "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert client.get_run(parent).info.status == "FINISHED"


def test_a_run_spans_the_stage_own_times_however_late_it_is_recorded(running):
    """The service may create a stage's run long after the stage began (it catches up under
    load): MLflow's start and end are the times the stage sent, not when they were applied."""
    stage = running.client()
    began, ended = 1_700_000_000_000, 1_700_000_021_600  # a stage that took 21.6 s, long ago
    stage.call(
        "start",
        stage="data_preprocessing",
        experiment="lab1-temperature",
        pid=4242,
        tags={**owner_tags(4242), "mlops.role": "stage"},
        params={},
        start_ms=began,
    )
    info = stage.call("run_info", reply=True)
    stage.call("end", status="FINISHED", end_ms=ended)
    stage.close()
    assert running.stop() == 0
    run = running.mlflow().get_run(info["run_id"])
    assert (run.info.start_time, run.info.end_time) == (began, ended)


def test_a_stage_that_vanishes_is_ended_killed(running):
    stage = running.client()
    start(stage, "model_preparation", pid=999999)
    info = stage.call("run_info", reply=True)
    stage.close()  # as the kernel does for a process killed with SIGKILL
    assert running.stop(status="FAILED") == 0
    run = running.mlflow().get_run(info["run_id"])
    assert run.info.status == "KILLED"
    assert run.data.tags["mlops.end_reason"] == "process 999999 died"


def test_a_failing_request_is_counted_and_answered_with_its_error(running):
    stage = running.client()
    with pytest.raises(PipelineError, match="unknown request 'drop_table'"):
        stage.call("drop_table", reply=True)
    start(stage, "model_testing")
    stage.call("log", metrics={"accuracy": "not a number"})  # fails in the service, later
    stage.call("end", status="FINISHED")
    stage.close()
    assert running.stop() == 2  # pipeline.sh turns this into exit 1


def test_the_end_waits_for_messages_still_in_flight(running):
    """A stage's last messages may still be queued when pipeline.sh asks to end: all of them
    are recorded before the parent run ends."""
    stage = running.client()
    start(stage, "data_preprocessing")
    for step in range(200):
        stage.call("log", metrics={"rows": float(step)}, step=step)
    info = stage.call("run_info", reply=True)
    for step in range(200, 400):
        stage.call("log", metrics={"rows": float(step)}, step=step)
    stage.call("end", status="FINISHED")
    stage.close()
    assert running.stop() == 0
    client = running.mlflow()
    assert len(client.get_metric_history(info["run_id"], "rows")) == 400
    assert client.get_run(info["run_id"]).info.status == "FINISHED"


def test_another_pipelines_reaper_leaves_a_run_the_service_still_records(running):
    """A stage's process exits before its service has applied its end. Another pipeline's start
    (or end) in the same store must not take that run for an orphan; once the recording process
    is gone too, it must."""
    from lab1.core.tracking.parent import mark_orphans_killed

    stage = running.client()
    start(stage, "data_creation", pid=999999)  # a PID that is not running
    info = stage.call("run_info", reply=True)
    client = running.mlflow()
    assert mark_orphans_killed(client) == []  # the service (this process) still records it
    assert client.get_run(info["run_id"]).info.status == "RUNNING"
    client.set_tag(info["run_id"], "mlops.recorder_pid", "999999")  # as if the service died
    assert mark_orphans_killed(client) == [info["run_id"]]
    stage.close()
    running.stop()


def test_a_dataset_race_lost_to_another_pipeline_is_retried(tmp_path, monkeypatch):
    """Two pipelines logging the same data at once: the store's look-up-then-insert of the
    dataset fails for one of them (UNIQUE constraint) and rolls back; the recorder tries once
    more, which finds the row the other pipeline wrote."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from lab1.core.tracking.recorder import Recorder

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    recorder = Recorder(client, None)
    recorder.run_id = client.create_run(client.create_experiment("race")).info.run_id
    real, calls = client.log_inputs, []

    def lose_the_first_race(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets")
        return real(*args, **kwargs)

    monkeypatch.setattr(client, "log_inputs", lose_the_first_race)
    dataset = {"name": "data/raw", "digest": "0123456789abcdef", "source": "file:///x"}
    recorder.log_inputs([{**dataset, "context": "output"}])
    assert len(calls) == 2
    (logged,) = client.get_run(recorder.run_id).inputs.dataset_inputs
    assert logged.dataset.digest == "0123456789abcdef"
