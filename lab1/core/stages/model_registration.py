"""Stage 5/5: model registration. Registers the tested model as a new version (tagged with its
lineage and test metrics) and applies the quality gate; reports/registration.json records the
decision. Exit 3 when the gate rejects the model (`champion` does not move).

``--rollback`` moves `champion` back to the version it pointed at before, without a run."""

from __future__ import annotations

import argparse
import logging

from lab1.core.errors import EXIT_GATE_REJECTED, EXIT_OK, DataError
from lab1.core.io import file_sha256, read_json, write_json
from lab1.core.kinds import Kind
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.runner import Stage
from lab1.core.tracking.lineage import lineage_tags
from lab1.core.tracking.stage_run import StageRun

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="move `champion` back to its previous version and exit",
    )


def rollback(args: argparse.Namespace, params: Params) -> int | None:
    """--rollback: the registry alone, no stage run. None: run the stage."""
    if not args.rollback:
        return None
    from lab1.core import registry
    from lab1.core.tracking.store import connect

    registry.rollback(connect(), params.registered_model_name)
    return EXIT_OK


def run(params: Params, kind: Kind, run: StageRun) -> int:
    name = params.registered_model_name
    report = read_json(PATHS.metrics)
    model_info = read_json(PATHS.model_info)
    if report.get("model_uri") != model_info.get("model_uri"):
        raise DataError(
            f"{PATHS.metrics}: model_uri={report.get('model_uri')!r} is not the model in "
            f"{PATHS.model_info} ({model_info.get('model_uri')!r}); re-run model_testing"
        )
    for path in (PATHS.metrics, PATHS.model_info, PATHS.raw_manifest):
        run.add_input(path)
    tags = {
        **lineage_tags(params),
        "source_run_id": model_info["run_id"],
        "pipeline_run_id": run.pipeline_run_id or "",
        "data.digest": file_sha256(PATHS.raw_manifest)[:16],
    }
    decision = run.register(name, model_info["model_uri"], report["metrics"], tags, params.gate)
    write_json(
        PATHS.registration,
        {
            "registered_model": name,
            "version": decision["version"],
            "decision": decision["decision"],
            "reason": decision["reason"],
            "champion_before": decision["champion_before"],
            "champion_after": decision["champion_after"],
            "model_uri": model_info["model_uri"],
            "pipeline_run_id": run.pipeline_run_id,
        },
    )
    run.log_artifact(PATHS.registration)
    run.log(
        tags={
            "gate.decision": decision["decision"],
            "gate.reason": decision["reason"],
            "registered_version": decision["version"],
        }
    )
    log = logger.info if decision["passed"] else logger.warning
    log("%s version %s %s: %s", name, decision["version"], decision["decision"], decision["reason"])
    return EXIT_OK if decision["passed"] else EXIT_GATE_REJECTED


STAGE = Stage("model_registration", run, add_arguments=add_arguments, without_run=rollback)
