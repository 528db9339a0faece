"""Stage 5/5: model registration. The quality gate, fair and serialised: the tested model is
compared with the champion on the same test set, and registered (as the new champion) only when
it passes. reports/registration.json records the decision, reports/lineage.json what made the
model. Exit 3 when the gate rejects the model (`champion` does not move).

``--rollback`` moves `champion` back to the version it pointed at before, without a run."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from lab1.core import provenance
from lab1.core.cli import signals_deferred
from lab1.core.errors import EXIT_GATE_REJECTED, EXIT_OK, DataError, one_line
from lab1.core.io import read_json, staging_folder, write_json
from lab1.core.kinds import Kind
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.runner import Stage
from lab1.core.tracking.lineage import CI_ENV_TAGS, dvc_state, git_diff
from lab1.core.tracking.stage_run import StageRun
from lab1.core.tracking.store import registry_lock

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

    with registry_lock(params.registered_model_name):
        registry.rollback(connect(), params.registered_model_name)
    return EXIT_OK


def version_tags(lineage: dict[str, Any], report: dict[str, Any], run: StageRun) -> dict[str, str]:
    """The lineage a registered version carries, from the provenance records of the runs that
    made it (not from today's params.yaml, which may have changed since)."""
    from lab1.core.registry import FINGERPRINT, TEST_DIGEST

    training = lineage["stages"].get("model_preparation", {})
    tags = {
        **{k: str(v) for k, v in training.get("git", {}).items()},
        "dataset": str(lineage["params"].get("dataset", "")),
        "params.hash": lineage["params_hash"],
        FINGERPRINT: lineage["fingerprint"],
        TEST_DIGEST: report["test_digest"],
        "data.digest": lineage["data"]["raw_digest"],
        **{k: str(v) for k, v in lineage["data"].items() if k.startswith("data.")},
        "source_run_id": report["training_run_id"],
        "testing_run_id": report["testing_run_id"],
        "pipeline_run_id": training.get("pipeline_run_id") or "",
        "lineage.run_id": run.run_id,
    }
    tags.update(dvc_state())  # under `dvc repro`: DVC's own hash of data/raw
    tags.update({tag: os.environ[env] for env, tag in CI_ENV_TAGS.items() if os.environ.get(env)})
    return tags


WHAT_IT_DOES = {
    "temperature": "Flags faulty days in a weather station's daily temperature readings (sensor "
    "faults: spikes, stuck readings, drift, missing days) from the readings around each day.",
    "fashion_mnist": "Tells ten kinds of clothing apart in 28x28 grey images (Fashion-MNIST).",
    "cifar10": "Tells cats from dogs in 32x32 colour photos (CIFAR-10).",
}


def model_card(params: Params, report: dict[str, Any], lineage: dict[str, Any]) -> dict[str, str]:
    """The registry's descriptions (Markdown): the registered model's (what it does) and a
    version's model card (what it does, the model, data, test metrics per kind, lineage)."""
    what = WHAT_IT_DOES[params.dataset]
    metrics = report["metrics"]
    per_kind = report.get("per_fault_kind_recall") or report.get("per_class_accuracy") or {}
    label = "recall per fault kind" if "per_fault_kind_recall" in report else "accuracy per class"
    model = lineage["params"].get("model_preparation", {}).get("estimator", "cnn")
    version = "\n".join(
        [
            what,
            "",
            f"- **Model**: `{model}` (params hash {lineage['params_hash']})",
            f"- **Data**: raw {lineage['data']['raw_digest']}, verified: "
            f"{lineage['data'].get('data.verified', 'unknown')}; test set {report['test_digest']} "
            f"({report['test_rows']} rows)",
            f"- **Test**: accuracy {metrics['accuracy']:.3f}, F1 {metrics['f1']:.3f}, "
            f"ROC AUC {metrics.get('roc_auc', float('nan')):.3f}",
            f"- **{label.capitalize()}**: "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(per_kind.items())),
            f"- **Lineage**: `python -m lab1.lineage models:/{params.registered_model_name}/<this "
            "version>`",
        ]
    )
    return {"model": what, "version": version}


def champion_here(
    params: Params, kind: Kind, champion: dict[str, Any] | None, test_digest: str
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's metrics on this test set: its own (tested on it) or re-scored here.
    Returns (metrics, None), or (None, why it cannot be compared) when it cannot score it."""
    if champion is None:
        return None, None
    if champion["test_digest"] == test_digest:
        return champion["metrics"], None
    model_dir = Path(champion["model_dir"])
    try:
        metrics = kind.score(params, model_dir)
        logger.info(
            "champion version %s was tested on another test set; re-scored on this one: "
            "accuracy %.3f (was %.3f there)",
            champion["version"],
            metrics["accuracy"],
            champion["metrics"].get("accuracy", float("nan")),
        )
        return metrics, None
    except DataError as exc:
        return None, (
            f"cannot compare with champion version {champion['version']} fairly: it was tested "
            f"on another test set and cannot score this one ({one_line(exc)}); the champion "
            "stays"
        )
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


def run(params: Params, kind: Kind, run: StageRun) -> int:
    name = params.registered_model_name
    report = read_json(PATHS.metrics)
    model_info = read_json(PATHS.model_info)
    for path in (PATHS.metrics, PATHS.models):
        run.add_input(path)
    provenance.fill_run_ids(run.ancestry, run.find_runs)
    lineage = provenance.model_lineage(run.ancestry)
    tags = version_tags(lineage, report, run)
    with registry_lock(name):  # no other gate between reading the champion and moving it
        state = run.gate_state(name, lineage["fingerprint"], report["test_digest"])
        if state["unchanged"] is not None:
            decision = unchanged(state["unchanged"])
        else:
            metrics_here, incomparable = champion_here(
                params, kind, state["champion"], report["test_digest"]
            )
            seen = state["champion"]["version"] if state["champion"] else None
            # A passing model becomes a version tagged pending; the alias has not moved yet.
            decision = run.register(
                name,
                model_info["model_uri"],
                report["metrics"],
                tags,
                params.gate,
                seen,
                metrics_here,
                incomparable,
                model_card(params, report, lineage),
            )
        promoting = decision["decision"] == "promoted"
        # Everything the registration records is written before the alias moves (reports in a
        # staging folder, the run's artifacts and tags): a failure or a signal up to the move
        # leaves the champion where it was and the version pending (reconciled as abandoned).
        with staging_folder(PATHS.registration_staging) as staged:
            files = write_records(staged, params, run, decision, report, model_info, lineage, tags)
            for path in files:
                run.log_artifact(path)
            run.log(
                tags={
                    "gate.decision": "pending" if promoting else decision["decision"],
                    "gate.reason": decision["reason"],
                    "registered_version": decision["version"] or "",
                    "model.fingerprint": lineage["fingerprint"],
                }
            )
            # The move, then the renames: neither Ctrl-C nor SIGTERM can fall between them (they
            # are handled right after); a SIGKILL there leaves the run KILLED and tagged promoted
            # (the tracking service applies the move whole), or pending for reconcile to settle.
            run.wait()  # every record above is in MLflow (or the stage fails here)
            with signals_deferred():
                if promoting:
                    run.promote(name, decision["version"], decision["champion_before"])
                if PATHS.code_diff.name not in {path.name for path in files}:
                    PATHS.code_diff.unlink(missing_ok=True)  # an older run's, now untrue
                for path in files:
                    os.replace(path, PATHS.reports / path.name)
    if decision["decision"] == "promoted":
        logger.info("%s version %s promoted: %s", name, decision["version"], decision["reason"])
    elif decision["decision"] == "rejected":
        logger.warning("%s: rejected, not registered: %s", name, decision["reason"])
    else:
        logger.info("%s: %s", name, decision["reason"])
    return EXIT_OK if decision["passed"] else EXIT_GATE_REJECTED


def write_records(
    folder: Path,
    params: Params,
    run: StageRun,
    decision: dict[str, Any],
    report: dict[str, Any],
    model_info: dict[str, Any],
    lineage: dict[str, Any],
    tags: dict[str, str],
) -> list[Path]:
    """Write registration.json, lineage.json (and code.diff for uncommitted code) into
    ``folder``; return their paths."""
    write_json(
        folder / PATHS.lineage.name, {"model_uri": model_info["model_uri"], **lineage, "tags": tags}
    )
    write_json(
        folder / PATHS.registration.name,
        {
            "registered_model": params.registered_model_name,
            **decision,
            "model_uri": model_info["model_uri"],
            "fingerprint": lineage["fingerprint"],
            "test_digest": report["test_digest"],
            "pipeline_run_id": run.pipeline_run_id,
            "experiment_id": run.experiment_id,
        },
    )
    files = [folder / PATHS.registration.name, folder / PATHS.lineage.name]
    if any(code.get("git.dirty") == "True" for code in lineage["code"]):
        files.append(folder / PATHS.code_diff.name)  # the uncommitted code, next to the lineage
        files[-1].write_text(git_diff())
    return files


def unchanged(same: dict[str, Any]) -> dict[str, Any]:
    """The decision when this exact model (same code, data and params) is already registered:
    no new version, the alias stays where it is."""
    where = (
        "is champion"
        if same["is_champion"]
        else f"holds this model (champion is version {same['champion']})"
    )
    return {
        "version": same["version"],
        "passed": True,
        "decision": "unchanged",
        "reason": f"unchanged: version {same['version']} already {where}: same code, data and "
        "params",
        "reference": None,
        "reference_accuracy": None,
        "champion_before": same["champion"],
        "champion_after": same["champion"],
    }


STAGE = Stage("model_registration", run, add_arguments=add_arguments, without_run=rollback)
