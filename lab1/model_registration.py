"""Stage 5/5: model registration.

Applies the quality gate from model_registration.<dataset> to the tested model: minimum
accuracy, minimum F1 of the faulty class, and test accuracy at least the current champion's on
the same test set (a tie passes, a loss never; the champion is re-scored on this test set when it
was tested on other data). Only a passing model is registered, as a new version that becomes
`champion`; a rejected one leaves the registry untouched and this script exits with code 3. The
same model (same code, data and params) is never registered twice: the version that holds it is
gated again (promoted back, or rejected with its tags updated); when it is the champion already
and the gate's settings have not changed: "unchanged", exit 0.

`--rollback` moves `champion` back to the version it pointed at before (no training involved).

Reads:  reports/metrics.json, models/ (both checked: outputs of finished runs of one execution)
Writes: reports/registration.json (decision, reason, version), reports/lineage.json (what made
        the model), a registry version + alias when promoted
Exit:   0 promoted or unchanged, 3 rejected by the gate, 1 error
"""

from __future__ import annotations

from lab1.core import lineage as lineages
from lab1.core import registration, stage
from lab1.core.cli import signals_deferred
from lab1.core.errors import EXIT_GATE_REJECTED, EXIT_OK
from lab1.core.io import read_json, staging_folder
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.registration import registry_lock


def register_model(params: Params) -> int:
    import mlflow  # imported for the work, not for --help

    from lab1.core import registry

    name = params.registered_model_name
    with stage.run("model_registration", params) as run:
        mlflow.log_params(run.params)
        client = mlflow.MlflowClient()  # the store stage.run connected to
        report = read_json(PATHS.metrics)
        model_info = read_json(PATHS.model_info)
        # Its inputs, reports/metrics.json and models/, were checked and logged by stage.run.
        # What made this model: the finished runs behind it, from their records.
        lineage = lineages.model_lineage(run.ancestry)
        tags = registration.version_tags(lineage, report, run.run_id)
        with registry_lock(name):  # no other gate between reading the champion and moving it
            state = registry.gate_state(
                client, name, lineage["fingerprint"], report["test_digest"], params.gate
            )
            if state["unchanged"] is not None:  # the champion already, under these settings
                decision = registration.unchanged(state["unchanged"])
            else:
                here, incomparable = registration.champion_here(
                    params, state["champion"], report["test_digest"]
                )
                # The gate: a passing model becomes a version tagged pending (a version that
                # holds it already is gated again instead); no alias moves yet.
                decision = registry.register_gated(
                    client, name, model_info["model_uri"], report["metrics"], tags, params.gate,
                    state["champion_version"], here, incomparable,
                    registration.model_card(params, report, lineage), state["existing"],
                )  # fmt: skip
            promoting = decision["decision"] == "promoted"
            # Everything the registration records is written before the alias moves (reports in
            # a staging folder, the run's artifacts and tags): a failure or a signal up to the
            # move leaves the champion where it was and the version pending (then abandoned).
            with staging_folder(PATHS.registration_staging) as staged:
                files = registration.write_records(
                    staged, params, run.pipeline_run_id, run.experiment_id,
                    decision, report, model_info, lineage, tags,
                )  # fmt: skip
                for path in files:
                    mlflow.log_artifact(str(path))
                mlflow.set_tags({
                    "gate.decision": "pending" if promoting else decision["decision"],
                    "gate.reason": decision["reason"], "registered_version": decision["version"]
                    or "", "model.fingerprint": lineage["fingerprint"],
                })  # fmt: skip
                # The move, then the renames: Ctrl-C and SIGTERM wait until both are done; a
                # SIGKILL between them leaves a state that the next gate reconciles.
                with signals_deferred():
                    if promoting:
                        registry.promote(
                            client, name, decision["version"], decision["champion_before"],
                            run.run_id,
                        )  # fmt: skip
                    registration.publish(files)
    registration.log_decision(name, decision)
    return EXIT_OK if decision["passed"] else EXIT_GATE_REJECTED


def rollback(params: Params) -> int:
    """--rollback: `champion` back to its previous version; the registry alone, no stage run."""
    from lab1.core import registry
    from lab1.core.tracking import connect

    with registry_lock(params.registered_model_name):
        registry.rollback(connect(), params.registered_model_name)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    parser = stage.parser(__doc__)
    parser.add_argument(
        "--rollback", action="store_true", help="move `champion` back to its previous version"
    )
    args = parser.parse_args(argv)
    return stage.exit_code(
        "model_registration", args, rollback if args.rollback else register_model
    )


if __name__ == "__main__":
    raise SystemExit(stage.process(main))
