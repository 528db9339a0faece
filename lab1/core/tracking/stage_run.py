"""A stage's MLflow run: ``stage_run`` opens one child run of the pipeline's run, and the
``StageRun`` it yields has MLflow's fluent calls (``log_input``, ``log_metrics``, ``set_tags``,
``log_model``...).

Under pipeline.sh (``MLOPS_TRACKING_SOCKET`` set) each call goes to the pipeline's tracking
service, and the stage waits only for the answers it needs (a run id, a model URI, a registry
decision). Alone (a stage by hand, Jenkins' steps, ``dvc repro``, ``mlflow run``) the same calls
go to a Recorder in this process. Both carry the same JSON values: MLflow shows the same run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab1.core.io import file_sha256, tree_sha256, write_json
from lab1.core.lineage import Ancestry
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.stage_io import STAGE_IO, check_declared, run_params
from lab1.core.tracking.service import SOCKET_ENV, ServiceClient
from lab1.core.tracking.tags import PROJECT_RUN_ENV, lineage_tags, owner_tags, source_tags

logger = logging.getLogger(__name__)


class InProcess:
    """A Recorder in this process, for a stage with no tracking service."""

    def __init__(self) -> None:
        from lab1.core.tracking.parent import parent_run_id
        from lab1.core.tracking.recorder import Recorder
        from lab1.core.tracking.store import connect

        self.recorder = Recorder(connect(), parent_run_id())

    def call(self, method: str, reply: bool = False, **args: Any) -> Any:
        # Through JSON, as over the socket: both paths see exactly the same values.
        return getattr(self.recorder, method)(**json.loads(json.dumps(args)))

    def close(self) -> None:
        pass


class StageRun:
    """What a stage records on its run. ``mlflow_seconds``: how long it waited for tracking."""

    def __init__(self, stage: str):
        path = os.environ.get(SOCKET_ENV)
        self.stage = stage
        self.channel = ServiceClient(path) if path else InProcess()
        self.ancestry = Ancestry()  # the finished runs behind the inputs (lineage.check_inputs)
        self.notes: dict[str, str] = {}  # facts for the stage's lineage record
        # Names the run before the store has given it an id (tag mlops.run_key): a stage that
        # never needs its run id finishes without waiting for the service.
        self.key = uuid.uuid4().hex
        self.mlflow_seconds = 0.0
        self._inputs: list[dict[str, str]] = []
        self._models: list[str] = []
        self._info: dict[str, Any] | None = None

    def _call(self, method: str, reply: bool = False, **args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.channel.call(method, reply, **args)
        finally:
            self.mlflow_seconds += time.perf_counter() - start

    def info(self) -> dict[str, Any]:
        """``{run_id, experiment_id, pipeline_run_id}``; waits until the run exists."""
        if self._info is None:
            self._info = dict(self._call("run_info", reply=True))
        return self._info

    @property
    def run_id(self) -> str:
        return str(self.info()["run_id"])

    @property
    def experiment_id(self) -> str:
        return str(self.info()["experiment_id"])

    @property
    def pipeline_run_id(self) -> str | None:
        """The parent run's id; None when the stage runs alone."""
        return self.info()["pipeline_run_id"]

    def ids_if_known(self) -> tuple[str | None, str | None]:
        """(run id, parent run id) if the stage has learnt them; never waits."""
        info = self._info or {}
        return info.get("run_id"), info.get("pipeline_run_id")

    def wait(self) -> None:
        """Return once everything sent so far is recorded; raise if any of it failed."""
        self._call("run_info", reply=True)

    def log_input(self, path: Path) -> str:
        """``mlflow.log_input``: ``path`` (file or folder) as a dataset named by its path, with
        its content digest (returned)."""
        return self._dataset(path, "input")

    def log_output(self, path: Path) -> str:
        """``path`` as an output dataset (context "output"); returns its digest."""
        return self._dataset(path, "output")

    def log_model_input(self, model_id: str) -> None:
        """The logged model this stage used (the runs table's Models column)."""
        self._models.append(model_id)

    def _dataset(self, path: Path, context: str) -> str:
        check_declared(self.stage, path, "reads" if context == "input" else "writes")
        name = path.relative_to(PATHS.root).as_posix()
        # An input was hashed by the input check, and cannot change while the workspace is held.
        known = self.ancestry.digests.get(name) if context == "input" else None
        digest = known or (file_sha256(path) if path.is_file() else tree_sha256(path))
        source = path.resolve().as_uri()
        self._inputs.append(
            {"name": name, "digest": digest[:16], "source": source, "context": context}
        )
        return digest

    def log_metrics(
        self,
        metrics: dict[str, float],
        step: int = 0,
        model_id: str | None = None,
        dataset: tuple[str, str] | None = None,
    ) -> None:
        """``mlflow.log_metrics``; ``model_id`` links them to a logged model, ``dataset``
        (name, digest) to the data they were measured on."""
        metrics = {k: float(v) for k, v in metrics.items()}
        self._call("log", metrics=metrics, step=int(step), model_id=model_id, dataset=dataset)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """``mlflow.set_tags``."""
        self._call("log", tags={k: str(v) for k, v in tags.items()})

    def log_params(self, params: dict[str, Any]) -> None:
        """``mlflow.log_params`` (beyond those the run started with)."""
        self._call("log", params={k: str(v) for k, v in params.items()})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """``mlflow.log_artifact``."""
        check_declared(self.stage, path, "writes")
        self._call("log_artifact", path=str(path), artifact_path=artifact_path)

    def log_sklearn_model(
        self,
        model: Any,
        example: Any,
        local_dir: Path,
        classes: list[str],
        name: str,
        profile: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """``mlflow.sklearn.log_model`` (skops format) as ``name``, and a copy of what was
        logged in ``local_dir``; ``example``: a DataFrame of inputs; ``profile``: the training
        data's profile, stored with the model as PROFILE_FILE. Returns ``{model_uri, model_id}``."""
        from lab1.core.model_io import save_skops
        from lab1.core.profile import PROFILE_FILE

        started = time.perf_counter()
        # The model crosses to the recorder in the safe format it is stored in.
        handoff = local_dir.parent / ".model-handoff.skops"
        save_skops(model, handoff)
        extra_files = []
        if profile is not None:
            extra_files.append(str(local_dir.parent / PROFILE_FILE))
            write_json(Path(extra_files[0]), profile)
        logged = self._call(
            "log_sklearn_model",
            reply=True,
            model_file=str(handoff),
            example=json.loads(example.to_json(orient="split", index=False)),
            local_dir=str(local_dir),
            classes=list(classes),
            name=name,
            extra_files=extra_files,
        )
        handoff.unlink()
        for path in extra_files:
            Path(path).unlink()
        self.log_metrics({"log_model_s": time.perf_counter() - started})
        return dict(logged)

    def log_pytorch_model(
        self, model: Any, example: Any, local_dir: Path, classes: list[str], name: str
    ) -> dict[str, str]:
        """``mlflow.pytorch.log_model`` (pt2 format), logged from this process: the service does
        not import torch, and minutes of training dwarf the seconds of connecting here."""
        from lab1.core.model_io import log_and_save_torch
        from lab1.core.tracking.store import connect

        connect()
        logged = log_and_save_torch(
            model, example, local_dir, classes, self.run_id, self.experiment_id, name
        )
        return {"model_uri": logged.model_uri, "model_id": logged.model_id}

    def find_runs(self, keys: list[str]) -> dict[str, dict[str, str | None]]:
        """``{key: {run_id, pipeline_run_id}}`` of the runs tagged with these run keys."""
        return dict(self._call("find_runs", reply=True, keys=keys))

    def gate_state(
        self, name: str, fingerprint: str, test_digest: str, gate: Any
    ) -> dict[str, Any]:
        """The registry's state for a gate (registry.gate_state)."""
        args = {"name": name, "fingerprint": fingerprint, "test_digest": test_digest}
        args["gate"] = gate.model_dump()
        return dict(self._call("gate_state", reply=True, **args))

    def register(
        self,
        name: str,
        model_uri: str,
        metrics: dict[str, float],
        tags: dict[str, str],
        gate: Any,
        champion_seen: str | None,
        champion_here: dict[str, float] | None,
        incomparable: str | None,
        card: dict[str, str] | None = None,
        existing: str | None = None,
    ) -> dict[str, Any]:
        """Apply the gate; register a promoted model, or gate ``existing`` again
        (registry.register_gated)."""
        args = {k: v for k, v in locals().items() if k != "self"}
        args |= {"gate": gate.model_dump(), "metrics": {k: float(v) for k, v in metrics.items()}}
        return dict(self._call("register", reply=True, **args))

    def promote(self, name: str, version: str, previous: str | None) -> None:
        """Move `champion` to ``version`` (registry.promote); waits until it is done."""
        self._call("promote", reply=True, name=name, version=version, previous=previous)

    def end(self, status: str, error: str | None, started_ms: int, duration: float) -> None:
        """Send the inputs, the timings, and the end at the stage's own clock."""
        with contextlib.suppress(Exception):
            if self._inputs or self._models:
                self._call("log_inputs", datasets=self._inputs, models=self._models)
            self.log_metrics({"duration_s": duration, "mlflow_s": self.mlflow_seconds})
        with contextlib.suppress(Exception):
            end_ms = started_ms + int(duration * 1000)
            self._call("end", status=status, error=error, end_ms=end_ms)
        self.channel.close()


class Terminated(BaseException):
    """Raised in place of the default SIGTERM action so that runs are ended, not abandoned."""


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def stage_run(stage: str, params: Params) -> Iterator[StageRun]:
    """One child run for ``stage``, with the params it uses and the lineage tags; ends
    FINISHED, FAILED (an exception) or KILLED (Ctrl-C, SIGTERM; SIGKILL: by the service, or by
    the next pipeline's reaper)."""
    if stage not in STAGE_IO:
        raise ValueError(f"unknown stage {stage!r}")  # a bug: stage names come from code
    started, started_ms = time.perf_counter(), int(time.time() * 1000)
    run = StageRun(stage)
    tags = {
        **source_tags(f"lab1/{stage}.py"),
        **lineage_tags(params),
        **owner_tags(os.getpid()),
        "mlops.role": "stage",
        "mlops.run_key": run.key,
    }
    if tags["git.commit"] != "unknown":
        tags["mlflow.source.git.commit"] = tags["git.commit"]
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    status, error = "FAILED", None
    try:
        run._call(
            "start",
            stage=stage,
            experiment=params.experiment_name,
            pid=os.getpid(),
            tags=tags,
            params=run_params(params, stage),  # the part of its section the stage uses
            existing_run_id=os.environ.get(PROJECT_RUN_ENV) or None,  # made by `mlflow run`
            start_ms=started_ms,  # MLflow shows when the stage ran, not when it was recorded
        )
        logger.info("%s started (pid %d)", stage, os.getpid())
        yield run
        status = "FINISHED"
    except (KeyboardInterrupt, Terminated):
        status = "KILLED"
        raise
    except Exception as exc:
        error = str(exc)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        duration = time.perf_counter() - started
        run.end(status, error, started_ms, duration)
        logger.info("%s %s in %.2f s", stage, status, duration)
