"""What a stage records, and where it goes: ``stage_run`` opens one child run per stage.

Under pipeline.sh (``MLOPS_TRACKING_SOCKET`` set) every call goes to the pipeline's tracking
service and the stage does not wait for MLflow; otherwise (a stage run alone, Jenkins' steps,
``dvc repro``, ``mlflow run``) a Recorder in this process does the same calls itself. Both paths
carry the same JSON values, so MLflow shows the same run either way.

Every declared input or output is checked against the stage's contract (``stage_io``): an
undeclared one is a bug in the stage and fails it.
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

from lab1.core.io import file_sha256, tree_sha256
from lab1.core.lineage import Ancestry
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.stage_io import STAGE_IO, check_declared, run_params
from lab1.core.tracking.client import Channel, open_channel
from lab1.core.tracking.parent import PROJECT_RUN_ENV
from lab1.core.tracking.tags import lineage_tags, owner_tags, source_tags

logger = logging.getLogger(__name__)


class StageRun:
    """What a stage may record on its run. Times the calls it waits for (``mlflow_seconds``)."""

    def __init__(self, stage: str, channel: Channel):
        self.stage = stage
        self.channel = channel
        # The finished runs behind the stage's inputs (the runner sets it: check_inputs).
        self.ancestry = Ancestry()
        # Facts for the stage's lineage record (e.g. the source CSV's digest).
        self.notes: dict[str, str] = {}
        # Names this run before the store has given it an id (tag mlops.run_key): the record of
        # a stage that never needed its run id is written without waiting for the service.
        self.key = uuid.uuid4().hex
        self.mlflow_seconds = 0.0
        self._datasets: list[dict[str, str]] = []
        self._models: list[str] = []
        self._run_info: dict[str, str] | None = None
        self._parent: str | None = None
        self._parent_known = False

    def _call(self, method: str, reply: bool = False, **args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.channel.call(method, reply, **args)
        finally:
            self.mlflow_seconds += time.perf_counter() - start

    def _info(self) -> dict[str, str]:
        if self._run_info is None:  # waits for the tracking service to have created the run
            self._run_info = dict(self._call("run_info", reply=True))
        return self._run_info

    @property
    def run_id(self) -> str:
        """This stage's run id."""
        return self._info()["run_id"]

    def ids_if_known(self) -> tuple[str | None, str | None]:
        """(run id, parent run id) as far as the stage has learnt them, without waiting."""
        run_id = self._run_info["run_id"] if self._run_info else None
        return run_id, self._parent if self._parent_known else None

    def find_runs(self, keys: list[str]) -> dict[str, dict[str, str | None]]:
        """``{key: {run_id, pipeline_run_id}}`` of the runs tagged with these run keys."""
        return dict(self._call("find_runs", reply=True, keys=keys))

    @property
    def experiment_id(self) -> str:
        return self._info()["experiment_id"]

    @property
    def pipeline_run_id(self) -> str | None:
        """The parent run's id, or None when the stage runs alone."""
        if not self._parent_known:
            self._parent = self._call("pipeline_run_id", reply=True)
            self._parent_known = True
        return self._parent

    def log_input(self, path: Path) -> str:
        """Record ``path`` (file or folder) as an input with its content digest; return it
        (``mlflow.log_input`` with a dataset named by its path)."""
        return self._add_dataset(path, "input")

    def log_output(self, path: Path) -> str:
        """Record ``path`` as an output with its content digest; return the digest."""
        return self._add_dataset(path, "output")

    def log_model_input(self, model_id: str) -> None:
        """Record the logged model this stage used (the runs table's Models column)."""
        self._models.append(model_id)

    def _add_dataset(self, path: Path, context: str) -> str:
        check_declared(self.stage, path, "reads" if context == "input" else "writes")
        name = path.relative_to(PATHS.root).as_posix()
        # A declared input was hashed by the input check (and cannot change while the workspace
        # is held): its digest is reused, not computed again.
        known = self.ancestry.digests.get(name) if context == "input" else None
        digest = known or (file_sha256(path) if path.is_file() else tree_sha256(path))
        self._datasets.append(
            {
                "name": name,
                "digest": digest[:16],
                "source": path.resolve().as_uri(),
                "context": context,
            }
        )
        return digest

    def log_metrics(
        self,
        metrics: dict[str, float],
        step: int = 0,
        model_id: str | None = None,
        dataset: tuple[str, str] | None = None,
    ) -> None:
        """``mlflow.log_metrics``: ``step`` for per-epoch metrics; ``model_id`` links the
        metrics to a logged model, ``dataset`` (name, digest) to the data they were measured on.
        """
        self._log(metrics=metrics, step=step, model_id=model_id, dataset=dataset)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """``mlflow.set_tags``."""
        self._log(tags=tags)

    def _log(
        self,
        metrics: dict[str, float] | None = None,
        tags: dict[str, Any] | None = None,
        step: int = 0,
        model_id: str | None = None,
        dataset: tuple[str, str] | None = None,
    ) -> None:
        """One request (one log_batch) for all of it."""
        self._call(
            "log",
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            params={},
            tags={k: str(v) for k, v in (tags or {}).items()},
            step=int(step),
            model_id=model_id,
            dataset=list(dataset) if dataset else None,
        )

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        check_declared(self.stage, path, "writes")
        self._call("log_artifact", path=str(path), artifact_path=artifact_path)

    def log_sklearn_model(
        self, model: Any, example: Any, local_dir: Path, classes: list[str], name: str
    ) -> dict[str, str]:
        """``mlflow.sklearn.log_model`` (skops format) to this run as ``name``, then a copy of
        what was logged in ``local_dir``. Returns ``{model_uri, model_id}``. ``example``: a
        pandas DataFrame of model inputs."""
        from lab1.core.model_io import save_skops

        started = time.perf_counter()
        # The tracking service (or the in-process recorder) logs it from a skops file: the model
        # crosses the process boundary in the same safe format it is stored in.
        handoff = local_dir.parent / ".model-handoff.skops"
        save_skops(model, handoff)
        info = self._call(
            "log_sklearn_model",
            reply=True,
            model_file=str(handoff),
            example=json.loads(example.to_json(orient="split", index=False)),
            local_dir=str(local_dir),
            classes=list(classes),
            name=name,
        )
        handoff.unlink()
        self.log_metrics({"log_model_s": time.perf_counter() - started})
        return dict(info)

    def log_pytorch_model(
        self, model: Any, example: Any, local_dir: Path, classes: list[str], name: str
    ) -> dict[str, str]:
        """``mlflow.pytorch.log_model`` (pt2 format) to this run as ``name``, then a copy in
        ``local_dir``. Logged from this process: the tracking service does not import torch, and
        minutes of training dwarf the seconds of connecting to the store here."""
        from lab1.core.model_io import log_and_save_torch
        from lab1.core.tracking.store import connect

        connect()
        logged = log_and_save_torch(
            model, example, local_dir, classes, self.run_id, self.experiment_id, name
        )
        return {"model_uri": logged.model_uri, "model_id": logged.model_id}

    def gate_state(self, name: str, fingerprint: str, test_digest: str) -> dict[str, Any]:
        """The registry's state for a gate (registry.gate_state): reconciled, the version with
        this fingerprint if any, the champion (downloaded when it must be re-scored)."""
        return dict(
            self._call(
                "gate_state",
                reply=True,
                name=name,
                fingerprint=fingerprint,
                test_digest=test_digest,
            )
        )

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
    ) -> dict[str, Any]:
        """Apply the gate and register a promoted model (registry.register_gated)."""

        return dict(
            self._call(
                "register",
                reply=True,
                name=name,
                model_uri=model_uri,
                metrics={k: float(v) for k, v in metrics.items()},
                tags=tags,
                gate=gate.model_dump(),
                champion_seen=champion_seen,
                champion_here=champion_here,
                incomparable=incomparable,
                card=card,
            )
        )

    def wait(self) -> None:
        """Return once everything sent so far is recorded; raise if any of it failed."""
        self._call("run_info", reply=True)

    def promote(self, name: str, version: str, previous: str | None) -> None:
        """Move `champion` to ``version``, the registration's last write (registry.promote);
        waits until it is done."""
        self._call("promote", reply=True, name=name, version=version, previous=previous)

    def flush_datasets(self) -> None:
        if self._datasets or self._models:
            self._call("log_inputs", datasets=self._datasets, models=self._models)
            self._datasets, self._models = [], []


class Terminated(BaseException):
    """Raised in place of the default SIGTERM action so that runs are ended, not abandoned."""


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def stage_run(stage: str, params: Params) -> Iterator[StageRun]:
    """One child run for ``stage`` (under the pipeline's parent run when there is one).

    Logs the params the stage uses, lineage tags and duration; the stage adds its inputs,
    outputs and metrics through the yielded StageRun. The run ends FINISHED, FAILED (exception)
    or KILLED (Ctrl-C, SIGTERM; SIGKILL: by the service, or by the next pipeline's reaper).
    """
    if stage not in STAGE_IO:
        raise ValueError(f"unknown stage {stage!r}")  # a bug: stage names come from code
    started, started_ms = time.perf_counter(), int(time.time() * 1000)
    run = StageRun(stage, open_channel())
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
            # Each stage logs the part of its params.yaml section it uses for this dataset.
            params=run_params(params, stage),
            # Under `mlflow run` (MLflow Projects) the stage's run already exists.
            existing_run_id=os.environ.get(PROJECT_RUN_ENV) or None,
            # The stage's own clock: MLflow shows when the stage ran, not when it was recorded.
            start_ms=started_ms,
        )
        logger.info("%s started (pid %d)", stage, os.getpid())  # the run id: the recorder's line
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
        with contextlib.suppress(Exception):
            run.flush_datasets()
        duration = time.perf_counter() - started
        with contextlib.suppress(Exception):
            run.log_metrics({"duration_s": duration, "mlflow_s": run.mlflow_seconds})
        with contextlib.suppress(Exception):
            run._call("end", status=status, error=error, end_ms=started_ms + int(duration * 1000))
        run.channel.close()
        logger.info("%s %s in %.2f s", stage, status, duration)
