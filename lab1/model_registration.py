"""Stage 5/5: model registration.

Registers the tested model as a new version in the MLflow Model Registry (tagged with its
lineage and test metrics) and applies the quality gate from model_registration: minimum
accuracy, minimum F1 of the faulty class, and no worse than the current `champion` by more
than max_drop_vs_champion. Only a passing version gets the `champion` alias; a rejected one
leaves the champion untouched and this script exits with code 3.

`--rollback` moves `champion` back to the version it pointed at before (no training involved).

Reads:  reports/metrics.json, models/model.json, data/raw/manifest.json
Writes: reports/registration.json (decision, reason, version), registry version + alias
Exit:   0 promoted, 3 rejected by the gate, 1 error
"""

from __future__ import annotations

import logging

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import EXIT_GATE_REJECTED, EXIT_OK, DataError
from lab1.core.io import file_sha256, read_json, write_json
from lab1.core.paths import PATHS
from lab1.core.tracking.stage_run import stage_run

STAGE = "model_registration"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="move `champion` back to its previous version and exit",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from lab1.core.tracking.lineage import lineage_tags

        params = params_from_args(args)
        name = params.registered_model_name
        if args.rollback:
            from lab1.core import registry
            from lab1.core.tracking.store import connect

            registry.rollback(connect(), name)
            return EXIT_OK
        with stage_run(STAGE, params) as run:
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
            decision = run.register(
                name, model_info["model_uri"], report["metrics"], tags, params.gate
            )
            payload = {
                "registered_model": name,
                "version": decision["version"],
                "decision": decision["decision"],
                "reason": decision["reason"],
                "champion_before": decision["champion_before"],
                "champion_after": decision["champion_after"],
                "model_uri": model_info["model_uri"],
                "pipeline_run_id": run.pipeline_run_id,
            }
            write_json(PATHS.registration, payload)
            run.log_artifact(PATHS.registration)
            run.log(
                tags={
                    "gate.decision": decision["decision"],
                    "gate.reason": decision["reason"],
                    "registered_version": decision["version"],
                }
            )
            log = logger.info if decision["passed"] else logger.warning
            log(
                "%s version %s %s: %s",
                name,
                decision["version"],
                decision["decision"],
                decision["reason"],
            )
        return EXIT_OK if decision["passed"] else EXIT_GATE_REJECTED

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
