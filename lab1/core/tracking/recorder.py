"""The MLflow side of one stage run: every method here talks to the tracking store.

A stage never calls these directly: it reports through ``stage_run.StageRun``, which sends each
call either to the pipeline's tracking service (which runs one Recorder per stage connection)
or to a Recorder in the stage's own process. Arguments and results are plain JSON values, so
both paths carry exactly the same data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.tracking.store import experiment_id, log_batch, warn_other_experiment

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)


class Recorder:
    """One stage run in MLflow, from ``start`` to ``end``."""

    def __init__(self, client: MlflowClient, parent_run_id: str | None):
        self.client = client
        self.parent = parent_run_id
        self.run_id: str | None = None
        self.stage = ""
        self.pid = 0
        self.experiment_id = ""

    def start(
        self,
        stage: str,
        experiment: str,
        pid: int,
        tags: dict[str, str],
        params: dict[str, Any],
        existing_run_id: str | None = None,
        start_ms: int | None = None,
    ) -> str:
        """Create the stage's run (a child of the parent run, if that is still RUNNING) with
        ``tags`` and ``params``; return its id. ``existing_run_id``: the run `mlflow run`
        created for the stage (MLflow Projects), recorded into instead. ``start_ms``: when the
        stage started (the service may create the run later, when it catches up)."""
        from mlflow.exceptions import MlflowException

        self.stage, self.pid = stage, pid
        # The process that will end the run: the tracking service, which may still be recording
        # a stage whose process has already exited. The reaper leaves the run alone while it lives.
        tags = {**tags, "mlops.recorder_pid": str(os.getpid())}
        if self.parent is not None:
            try:
                if self.client.get_run(self.parent).info.status != "RUNNING":
                    logger.warning(
                        "parent run %s is not RUNNING; %s runs alone", self.parent, stage
                    )
                    self.parent = None
            except MlflowException:
                logger.warning("parent run %s not found; %s runs alone", self.parent, stage)
                self.parent = None
        if existing_run_id:
            self.run_id = existing_run_id
            self.experiment_id = self.client.get_run(existing_run_id).info.experiment_id
            warn_other_experiment(self.client, self.experiment_id, experiment)
            log_batch(self.client, self.run_id, tags=tags)
        else:
            self.experiment_id = experiment_id(self.client, experiment)
            if self.parent:
                tags = {**tags, "mlflow.parentRunId": self.parent}
            run = self.client.create_run(
                self.experiment_id, start_time=start_ms, tags=tags, run_name=stage
            )
            self.run_id = run.info.run_id
        log_batch(self.client, self.run_id, params=params)
        logger.info(
            "%s run %s started (pid %d%s)",
            stage,
            self.run_id,
            pid,
            f", parent {self.parent}" if self.parent else "",
        )
        return self.run_id

    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("Recorder used before start()")  # a bug, not bad input
        return self.run_id

    def log(self, dataset: list[str] | None = None, **batch: Any) -> None:
        """One store.log_batch (metrics, params, tags, step, model_id); ``dataset``: [name,
        digest] of the data the metrics were measured on."""
        named = (dataset[0], dataset[1]) if dataset else None
        log_batch(self.client, self._run(), dataset=named, **batch)

    def log_inputs(self, datasets: list[dict[str, str]], models: list[str] | None = None) -> None:
        """Record files or folders the stage read or wrote, each with its content digest:
        ``[{name, digest, source, context}]`` where context is "input" or "output"; and the
        ids of the logged models it used (``models``)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelInput

        inputs = [
            DatasetInput(
                Dataset(d["name"], d["digest"], source_type="local", source=d["source"]),
                tags=[InputTag("mlflow.data.context", d["context"])],
            )
            for d in datasets
        ]
        used = [LoggedModelInput(model_id) for model_id in models or []]
        if not inputs and not used:
            return
        from mlflow.exceptions import MlflowException

        try:
            self.client.log_inputs(self._run(), datasets=inputs, models=used)
        except MlflowException:
            # The store looks a dataset up by (experiment, name, digest) and inserts it if missing,
            # in one transaction: two pipelines logging the same data at once can both miss it,
            # and the second insert fails and rolls back whole. Once more finds it and links it.
            self.client.log_inputs(self._run(), datasets=inputs, models=used)

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self._run(), path, artifact_path)

    def log_sklearn_model(
        self,
        model_file: str,
        example: dict,
        local_dir: str,
        classes: list[str],
        name: str,
        extra_files: list[str] = (),  # type: ignore[assignment]
    ) -> dict[str, str]:
        """Log the model saved (skops) in ``model_file`` to this run as ``name``, with
        ``extra_files`` among its artifacts, and copy what was logged to ``local_dir``;
        ``example``: a pandas "split" dict. Returns ``{model_uri, model_id}``."""
        import shutil

        import pandas as pd

        from lab1.core.model_io import load_skops_trusted, log_and_save

        model, trusted = load_skops_trusted(Path(model_file))
        info = log_and_save(
            model, pd.DataFrame(**example), Path(local_dir), classes, self._run(),
            self.experiment_id, trusted, name,
        )  # fmt: skip
        for path in extra_files:  # the logged model's own artifacts, and the local copy's
            self.client.log_model_artifact(info.model_id, path)
            shutil.copy(path, Path(local_dir) / Path(path).name)
        return {"model_uri": info.model_uri, "model_id": info.model_id}

    def gate_state(self, gate: dict[str, float], **args: Any) -> dict[str, Any]:
        """What the quality gate needs from the registry: registry.gate_state."""
        from lab1.core import registry
        from lab1.core.params import GateParams

        return registry.gate_state(self.client, gate=GateParams(**gate), **args)

    def register(self, gate: dict[str, float], **args: Any) -> dict[str, Any]:
        """Apply the quality gate and register a promoted model: registry.register_gated."""
        from lab1.core import registry
        from lab1.core.params import GateParams

        return registry.register_gated(self.client, gate=GateParams(**gate), **args)

    def promote(self, name: str, version: str, previous: str | None) -> None:
        """registry.promote; the service applies it whole even if the stage dies meanwhile."""
        from lab1.core import registry

        registry.promote(self.client, name, version, previous, self._run())

    def find_runs(self, keys: list[str]) -> dict[str, dict[str, str | None]]:
        """``{key: {run_id, pipeline_run_id}}`` of this experiment's runs tagged
        ``mlops.run_key`` with one of ``keys``."""
        found = {}
        for key in keys:
            query = f"tags.`mlops.run_key` = '{key}'"
            for run in self.client.search_runs([self.experiment_id], query, max_results=1):
                parent = run.data.tags.get("mlflow.parentRunId")
                found[key] = {"run_id": run.info.run_id, "pipeline_run_id": parent}
        return found

    def run_info(self) -> dict[str, str | None]:
        return {
            "run_id": self._run(),
            "experiment_id": self.experiment_id,
            "pipeline_run_id": self.parent,
        }

    def end(
        self,
        status: str,
        error: str | None = None,
        reason: str | None = None,
        end_ms: int | None = None,
    ) -> None:
        """End the run FINISHED, FAILED (``error`` goes to the ``mlops.error`` tag) or KILLED
        (``reason`` to ``mlops.end_reason``); ``end_ms``: when the stage ended (default: now)."""
        if self.run_id is None:
            return
        tags = {"mlops.error": " ".join((error or "").split())[:4000], "mlops.end_reason": reason}
        if error or reason:
            self.log(tags={k: v for k, v in tags.items() if v})
        self.client.set_terminated(self.run_id, status=status, end_time=end_ms)
        logger.debug("%s run %s %s", self.stage, self.run_id, status)  # the stage logs its end


# What a caller may ask of a Recorder (the service refuses any other name).
METHODS = frozenset(name for name in vars(Recorder) if not name.startswith("_"))
