"""Lineage: which finished run made a file, and what made a registered model.

**Were my inputs made by one finished execution?** MLflow's dataset records are the one record:
every stage run logs what it read (context "input") and wrote ("output"), each named by its path
with its content digest (records.py). Before a stage runs, ``check_inputs`` finds, for each
input's content, the newest FINISHED run of this dataset that wrote it, and follows that run's
own inputs back to data_creation. It refuses, in one line, an input no finished run wrote (naming
the file that changed, with both digests, or the other dataset whose pipeline made it) and inputs
from different executions. Matching is by content, so outputs DVC restores from its cache still
match.

**What made this model?** The chain found is the model's lineage (``model_lineage``):
model_registration tags the version with it and logs it as lineage.json. ``version_lineage``
reads it back from the registry for ``python -m lab1.lineage`` and the service's ``GET /model``,
with the command that reproduces the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lab1.core.errors import DataError
from lab1.core.io import file_digests, first_change, tree_sha256
from lab1.core.mlflow_ui import run_link, version_link
from lab1.core.paths import PATHS
from lab1.core.records import DIGEST, datasets, find, finished_runs, producer_of
from lab1.core.registry import version_metrics
from lab1.core.stage_io import STAGE_IO, flatten
from lab1.core.stages import STAGES
from lab1.core.tracking import git

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

GIT_TAGS = ("git.commit", "git.dirty", "code.sha256")


@dataclass
class Ancestry:
    """The finished runs behind a stage's inputs: ``runs[stage]`` is the record (``record``) of
    the run of ``stage`` whose output this lineage uses; ``digests[path]`` what it contains."""

    digests: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_inputs(
    stage: str, client: MlflowClient, experiments: list[str], dataset: str
) -> Ancestry:
    """Check that ``stage``'s declared inputs are outputs of finished runs of one lineage, in
    ``experiments`` (``dataset``'s); return that lineage. Raises DataError (one line) otherwise."""
    ancestry = Ancestry()
    pending: list[tuple[str, str]] = []  # (path, digest) whose producing run is still to find
    for path in STAGE_IO[stage].reads:
        if not (PATHS.root / path).exists():
            raise DataError(f"{path}: missing; run {producer_of(path)} first")
        ancestry.digests[path] = content = tree_sha256(PATHS.root / path)[:DIGEST]
        pending.append((path, content))
    while pending:
        path, content = pending.pop(0)
        producer = producer_of(path)
        if producer in ancestry.runs:
            continue
        run = find(client, experiments, path, content)
        if run is None:
            if os.environ.get("DVC_STAGE"):
                # Restored by DVC from a cache filled elsewhere: dvc.lock vouches for it.
                logger.info(
                    "%s: no finished %s run here; DVC's lock vouches for it", path, producer
                )
                continue
            raise DataError(_not_made_by(client, experiments, producer, path, content, dataset))
        ancestry.runs[producer] = record = _record(run)
        for used, used_content in record["inputs"].items():
            known = ancestry.digests.get(used)
            if known is not None and known != used_content:
                raise DataError(
                    f"{path}: made by a {producer} run from another {used} "
                    f"({used_content[:12]}) than the one the other inputs go with "
                    f"({known[:12]}); run the stages from {producer_of(used)} on again"
                )
            if known is None:
                ancestry.digests[used] = used_content
                pending.append((used, used_content))
    return ancestry


def _record(run: Run) -> dict[str, Any]:
    """What lineage needs of a finished stage run, from its MLflow record."""
    tags, stage = run.data.tags, run.info.run_name
    inputs = datasets(run, "input")
    return {
        "stage": stage,
        "run_id": run.info.run_id,
        "pipeline_run_id": tags.get("mlflow.parentRunId"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.info.end_time / 1000)),
        "git": {k: tags[k] for k in GIT_TAGS if k in tags},
        "params": json.loads(tags.get("mlops.params", "{}")),
        "params_hash": tags.get("params.hash", ""),  # the run's params.hash tag (Params.digest)
        "inputs": {p: inputs[p].digest for p in STAGE_IO[stage].reads if p in inputs},
        "notes": {k: v for k, v in tags.items() if k.startswith("data.")},
    }


def _not_made_by(
    client: MlflowClient,
    experiments: list[str],
    producer: str,
    path: str,
    content: str,
    dataset: str,
) -> str:
    """Why ``path`` is not an output of a finished ``producer`` run of ``dataset``: another
    dataset's pipeline made it (after a run with --dataset), or else it changed since its last
    run wrote it (named, with both digests) or that run did not finish."""
    other = _written_for(client, experiments, path, content)
    if other is not None and other != dataset:
        return (
            f"{path} holds the {other} pipeline's output (from a finished {other} {producer} "
            f"run), not {dataset}'s: the {dataset} stages need their own; run bash pipeline.sh "
            f"--dataset {dataset} first"
        )
    last = next(iter(finished_runs(client, experiments, producer)), None)
    written = datasets(last, "output").get(path) if last is not None else None
    change: tuple[str, str | None, str | None] = (path, written and written.digest, content)
    before = json.loads(written.profile or "{}").get("files") if written is not None else None
    if before is not None:
        now = {k: v[:DIGEST] for k, v in file_digests(PATHS.root / path).items()}
        if inside := first_change(before, now):
            change = (f"{path}/{inside[0]}", *inside[1:])
    name, was, now_digest = change
    return (
        f"{path}: not the output of a finished {producer} run: {name} changed since its last run "
        f"wrote it (sha256 {(was or 'none')[:12]}, now {(now_digest or 'none')[:12]}), or that run "
        f"failed or was interrupted; run {producer} again"
    )


def _written_for(
    client: MlflowClient, experiments: list[str], path: str, content: str
) -> str | None:
    """The dataset whose finished run, recorded outside ``experiments`` (each dataset has an
    experiment of its own), wrote ``content`` to ``path``; None when none did."""
    others = [e.experiment_id for e in client.search_experiments()]
    others = [e for e in others if e not in experiments]
    run = find(client, others, path, content) if others else None
    return json.loads(run.data.tags.get("mlops.params", "{}")).get("dataset") if run else None


MODEL_STAGES = STAGES[:-1]  # the stages whose runs make and measure a model


def model_lineage(ancestry: Ancestry) -> dict[str, Any]:
    """What made the model that ``ancestry`` leads to: the resolved params of every stage that
    made and tested it, the code each ran, the data digests, the runs, and a fingerprint of
    code + data + params (equal fingerprints: the same model, which is registered only once).
    """
    runs = {stage: ancestry.runs[stage] for stage in MODEL_STAGES if stage in ancestry.runs}
    params: dict[str, Any] = {}
    for record in runs.values():
        params.update(record["params"])
    code = sorted({json.dumps(r["git"], sort_keys=True) for r in runs.values()})
    raw, processed = PATHS.raw.relative_to(PATHS.root), PATHS.processed.relative_to(PATHS.root)
    data = {
        "raw_digest": ancestry.digests.get(raw.as_posix(), "")[:16],
        "processed_digest": ancestry.digests.get(processed.as_posix(), "")[:16],
        **runs.get("data_creation", {}).get("notes", {}),
    }
    # The code is lab1's modules and the locks (code.sha256), not the commit (a README's change).
    same_code = sorted({r["git"].get("code.sha256", "") for r in runs.values()})
    identity = {"code": same_code, "data": data["raw_digest"], "params": params}
    canonical = json.dumps(identity, sort_keys=True).encode()
    return {
        "fingerprint": hashlib.sha256(canonical).hexdigest()[:16],
        # The training run's params.hash tag, so that the version and its runs agree.
        "params_hash": runs.get("model_preparation", {}).get("params_hash")
        or hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12],
        "params": params,
        "code": [json.loads(c) for c in code],
        "data": data,
        "runs": {
            stage: {k: r.get(k) for k in ("run_id", "pipeline_run_id", "finished_at")}
            for stage, r in runs.items()
        },
        "stages": runs,
    }


def version_lineage(client: MlflowClient, version: ModelVersion) -> dict[str, Any]:
    """Everything known about how ``version`` was made, as plain data (see the module doc)."""
    tags = version.tags or {}
    recorded = _lineage_json(client, tags.get("lineage.run_id"))
    runs = {stage: dict(ids) for stage, ids in recorded.get("runs", {}).items()}
    if tags.get("lineage.run_id"):
        runs["model_registration"] = {"run_id": tags["lineage.run_id"]}
    pipeline_run = tags.get("pipeline_run_id") or None
    if pipeline_run:
        runs["pipeline"] = {"run_id": pipeline_run}
    for entry in runs.values():
        entry["url"] = _run_url(client, entry.get("run_id"))
    data = dict(recorded.get("data", {}))
    data["logged_by_data_creation"] = _logged_output(
        client, runs.get("data_creation", {}).get("run_id"), "data/raw"
    )
    data["test_digest"] = tags.get("test.data_digest")
    code = recorded.get("code") or [{}]
    lineage = {
        "model": {
            "name": version.name,
            "version": str(version.version),
            "uri": f"models:/{version.name}/{version.version}",
            "aliases": list(version.aliases or []),
            "decision": tags.get("gate.decision"),
            "reason": tags.get("gate.reason"),
            "last_decision": tags.get("gate.last_decision"),
            "last_reason": tags.get("gate.last_reason"),
            "fingerprint": tags.get("model.fingerprint"),
            "url": version_link(version.name, version.version),
        },
        "code": {
            "commit": tags.get("git.commit"),
            "dirty": tags.get("git.dirty"),
            "diff": f"runs:/{tags['lineage.run_id']}/code.diff"
            if tags.get("git.dirty") == "True" and tags.get("lineage.run_id")
            else None,
            "stages_on_other_code": len(code) > 1,
        },
        "data": data,
        "params": recorded.get("params", {}),
        "params_artifact": f"runs:/{pipeline_run}/params.yaml" if pipeline_run else None,
        "metrics": {"test_set": tags.get("test.data_digest"), **version_metrics(version)},
        "runs": runs,
    }
    lineage["reproduce"] = reproduce_command(lineage)
    return lineage


def _lineage_json(client: MlflowClient, run_id: str | None) -> dict[str, Any]:
    """The lineage.json the registration run logged ({} for versions registered without one)."""
    if not run_id:
        return {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):
        return json.loads(Path(client.download_artifacts(run_id, "lineage.json", tmp)).read_text())
    return {}


def _run_url(client: MlflowClient, run_id: str | None) -> str | None:
    with contextlib.suppress(Exception):
        if run_id:
            return run_link(client.get_run(run_id).info.experiment_id, run_id)
    return None


def _logged_output(client: MlflowClient, run_id: str | None, name: str) -> str | None:
    """The digest ``run_id`` logged for its output dataset ``name`` (None if it logged none)."""
    with contextlib.suppress(Exception):
        return str(datasets(client.get_run(str(run_id)), "output")[name].digest)
    return None


def reproduce_command(lineage: dict[str, Any]) -> str:
    """The shell command that re-runs the pipeline at the recorded code and params: the params
    that differ from params.yaml at that commit become -S overrides."""
    commit = lineage["code"].get("commit") or "HEAD"
    base = _params_at(commit)
    options = [f"-S {shlex.quote(o)}" for o in overrides(lineage["params"], base)]
    command = " ".join(["bash pipeline.sh", *options])
    if commit not in ("HEAD", "unknown"):
        command = f"git checkout {commit[:12]} && {command}"
    if lineage["code"].get("diff"):
        command += f"  # plus the uncommitted changes in {lineage['code']['diff']}"
    return command


def _params_at(commit: str) -> dict[str, Any]:
    """params.yaml as it was at ``commit`` (the checkout's own file if git cannot say)."""
    with contextlib.suppress(yaml.YAMLError):
        if (text := git("show", f"{commit}:params.yaml")) is not None:
            return dict(yaml.safe_load(text))
    if not PATHS.params.exists():  # e.g. a service image without the project's params
        return {}
    return dict(yaml.safe_load(PATHS.params.read_text()))


def overrides(params: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """``key=value`` (value as YAML, like `dvc exp run -S`) for every leaf of ``params`` that
    ``base`` does not have with the same value."""
    found = []
    flat_base = flatten(base)
    for key, value in flatten(params).items():
        if key not in flat_base or flat_base[key] != value:
            text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
            found.append(f"{key}={text.removesuffix('...').strip()}")
    return found
