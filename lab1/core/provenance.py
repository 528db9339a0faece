"""Which finished stage run made each file a stage reads, and whether those files belong together.

When a stage finishes, the runner appends a record to ``.mlops/stages/<stage>.json``: its run
ids, git state, params section, the content digest of every declared input it read and every
output it wrote, and notes (the source CSV's digest, the test set's digest, ...). A stage that
fails or is killed writes no record.

Before a stage runs, ``check_inputs`` hashes each declared input and looks for the finished run
of the producing stage that wrote exactly that content, then follows that run's own inputs back
to data_creation. It refuses, with one line, when

- an input is not the output of any finished run (the run that wrote it failed or was killed,
  or the files were changed by hand): a failed stage leaves nothing a later stage can take for a
  result;
- two inputs come from different executions (a model trained on other data than the data it is
  now tested on; a metrics file of another model): the mix-up cannot reach the registry, even
  when stages are run by hand.

Records are keyed by content, not by "the last run", so outputs that DVC restores from its cache
(the output of an earlier finished run) still match. The chain of records found is the model's
lineage (``Ancestry``): model_registration tags versions with it and logs it as lineage.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab1.core.errors import DataError
from lab1.core.io import read_json, tree_sha256, write_json
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.stage_io import STAGE_IO, used_by
from lab1.core.stages import STAGES

logger = logging.getLogger(__name__)

KEEP = 20  # records kept per stage: enough for DVC restoring any recent output from its cache


def outputs_of(stage: str) -> tuple[str, ...]:
    """The outputs a stage's record vouches for (those DVC tracks; not plots or caches)."""
    io = STAGE_IO[stage]
    return io.writes + io.metrics + io.records


def producer_of(path: str) -> str:
    """The stage that writes ``path`` (a declared output, relative to the project root)."""
    for stage in STAGE_IO:
        if path in outputs_of(stage):
            return stage
    raise ValueError(f"no stage declares {path} as an output")  # a bug in stage_io.py


def digest(path: str) -> str | None:
    """The content digest of a project path (file or folder), or None if it does not exist."""
    full = PATHS.root / path
    return tree_sha256(full) if full.exists() else None


def _records_file(stage: str) -> Path:
    return PATHS.stage_records / f"{stage}.json"


def records(stage: str) -> list[dict[str, Any]]:
    """The finished runs of ``stage`` in this workspace, oldest first."""
    path = _records_file(stage)
    if not path.exists():
        return []
    return list(read_json(path).get("runs", []))


def find(stage: str, path: str, content: str) -> dict[str, Any] | None:
    """The newest finished run of ``stage`` that wrote ``content`` to ``path``."""
    for record in reversed(records(stage)):
        if record["outputs"].get(path) == content:
            return record
    return None


@dataclass
class Ancestry:
    """The finished runs behind a stage's inputs: ``runs[stage]`` is the record of the run of
    ``stage`` whose output this lineage uses; ``digests[path]`` what it contains."""

    digests: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_inputs(stage: str) -> Ancestry:
    """Check that ``stage``'s declared inputs are outputs of finished runs of one lineage;
    return that lineage. Raises DataError (one line) otherwise."""
    ancestry = Ancestry()
    pending: list[tuple[str, str]] = []  # (path, digest) whose producing run is still to find
    for path in STAGE_IO[stage].reads:
        content = digest(path)
        if content is None:
            raise DataError(f"{path}: missing; run {producer_of(path)} first")
        ancestry.digests[path] = content
        pending.append((path, content))
    while pending:
        path, content = pending.pop(0)
        producer = producer_of(path)
        if producer in ancestry.runs:
            continue
        record = find(producer, path, content)
        if record is None:
            if os.environ.get("DVC_STAGE"):
                # Restored by DVC from a cache filled elsewhere: dvc.lock vouches for it.
                logger.info("%s: no %s record here; DVC's lock vouches for it", path, producer)
                continue
            raise DataError(
                f"{path}: not the output of a finished {producer} run (its last run failed or "
                f"was interrupted, or the files were changed since); run {producer} again"
            )
        ancestry.runs[producer] = record
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


def record_finished(
    stage: str,
    ancestry: Ancestry,
    run_key: str,
    run_id: str | None,
    pipeline_run_id: str | None,
    git: dict[str, str],
    params: dict[str, Any],
    notes: dict[str, str],
) -> dict[str, Any]:
    """Append the record of a finished run of ``stage`` (its inputs as checked before it ran,
    its outputs as they are now); keep the newest KEEP. Returns the record. ``run_id`` may be
    None when the stage never waited for it: ``run_key`` (the run's ``mlops.run_key`` tag)
    finds it later (fill_run_ids)."""
    record = {
        "stage": stage,
        "run_key": run_key,
        "run_id": run_id,
        "pipeline_run_id": pipeline_run_id,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": git,
        "params": params,
        "inputs": {p: ancestry.digests[p] for p in STAGE_IO[stage].reads},
        "outputs": {p: d for p in outputs_of(stage) if (d := digest(p)) is not None},
        "notes": notes,
    }
    write_json(_records_file(stage), {"runs": [*records(stage), record][-KEEP:]})
    return record


def fill_run_ids(ancestry: Ancestry, find_runs: Callable[[list[str]], dict[str, Any]]) -> None:
    """Fill the run ids a record was written without, by their run keys (``find_runs``: keys ->
    ``{key: {run_id, pipeline_run_id}}``, StageRun.find_runs)."""
    missing = {r["run_key"]: r for r in ancestry.runs.values() if not r.get("run_id")}
    if missing:
        for key, ids in find_runs(list(missing)).items():
            missing[key].update(ids)


def stage_params(params: Params, stage: str) -> dict[str, Any]:
    """The resolved params ``stage`` used (stage_io.used_by) and the dataset: what its record,
    and so the model's fingerprint, holds. A setting the stage does not read for this dataset
    (the CNN's epochs for a temperature model) does not make another model."""
    return {"dataset": params.dataset, stage: used_by(params, stage)}


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
    identity = {"code": code, "data": data["raw_digest"], "params": params}
    canonical = json.dumps(identity, sort_keys=True).encode()
    return {
        "fingerprint": hashlib.sha256(canonical).hexdigest()[:16],
        "params_hash": hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12],
        "params": params,
        "code": [json.loads(c) for c in code],
        "data": data,
        "runs": {
            stage: {k: r.get(k) for k in ("run_id", "pipeline_run_id", "finished_at")}
            for stage, r in runs.items()
        },
        "stages": runs,
    }
