"""What model_registration.py records besides the registry's own state: the tags a registered
version carries (its lineage), its model card, the champion's score on this test set (for a fair
gate), and the files reports/registration.json, reports/lineage.json (and code.diff)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab1.core.errors import DataError, one_line
from lab1.core.io import write_json
from lab1.core.kinds import images, tables
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.registry import FINGERPRINT, TEST_DIGEST
from lab1.core.tracking import CI_ENV_TAGS, dvc_state, git, is_embedded, sqlite_file, tracking_uri

logger = logging.getLogger(__name__)


def version_tags(lineage: dict[str, Any], report: dict[str, Any], run_id: str) -> dict[str, str]:
    """The lineage a registered version carries, from the records of the finished runs that
    made it (not from today's params.yaml, which may have changed since)."""
    training = lineage["stages"].get("model_preparation", {})
    return {
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
        "lineage.run_id": run_id,
        **dvc_state(),  # under `dvc repro`: DVC's own hash of data/raw
        **{tag: os.environ[env] for env, tag in CI_ENV_TAGS.items() if os.environ.get(env)},
    }


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
            "- **Lineage**: `.venv/bin/python -m lab1.lineage "
            f"models:/{params.registered_model_name}/<this version>` (in a checkout of the "
            "project, after `bash pipeline.sh --setup`)",
        ]
    )
    return {"model": what, "version": version}


def champion_here(
    params: Params, champion: dict[str, Any] | None, test_digest: str
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's metrics on this test set: its own (tested on it) or re-scored here.
    Returns (metrics, None), or (None, why it cannot be compared) when it cannot score it."""
    if champion is None:
        return None, None
    if champion["test_digest"] == test_digest:
        return champion["metrics"], None
    model_dir = Path(champion["model_dir"])
    try:
        score = images.score if params.is_image else tables.score
        metrics = score(params, model_dir)
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


def write_records(
    folder: Path,
    params: Params,
    pipeline_run_id: str | None,
    experiment_id: str,
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
            "pipeline_run_id": pipeline_run_id,
            "experiment_id": experiment_id,
        },
    )
    files = [folder / PATHS.registration.name, folder / PATHS.lineage.name]
    if any(code.get("git.dirty") == "True" for code in lineage["code"]):
        files.append(folder / PATHS.code_diff.name)  # the uncommitted code, next to the lineage
        files[-1].write_text(git("diff", "HEAD", timeout=30) or "")
    return files


def publish(files: list[Path]) -> None:
    """Move the staged records into reports/ (and drop an older run's code.diff, now untrue)."""
    if PATHS.code_diff.name not in {path.name for path in files}:
        PATHS.code_diff.unlink(missing_ok=True)
    for path in files:
        os.replace(path, PATHS.reports / path.name)


def unchanged(same: dict[str, Any]) -> dict[str, Any]:
    """The decision when this exact model (same code, data and params) is champion already and
    was gated under the same settings: no new version, the alias stays where it is."""
    return {
        "version": same["version"],
        "passed": True,
        "decision": "unchanged",
        "reason": f"unchanged: version {same['version']} already is champion: same code, data, "
        "params and gate settings",
        "reference": None,
        "reference_accuracy": None,
        "champion_before": same["champion"],
        "champion_after": same["champion"],
    }


def log_decision(name: str, decision: dict[str, Any]) -> None:
    """The gate's decision, one line on stderr (a rejection as a warning)."""
    if decision["decision"] == "promoted":
        logger.info("%s version %s promoted: %s", name, decision["version"], decision["reason"])
    elif decision["decision"] == "rejected":
        # A new model is not registered; a version gated again (a tighter gate) stays registered.
        version = decision.get("version")
        what = f"version {version} gated again and rejected" if version else "rejected"
        registered = "" if version else ", not registered"
        logger.warning("%s: %s%s: %s", name, what, registered, decision["reason"])
    else:
        logger.info("%s: %s", name, decision["reason"])


@contextlib.contextmanager
def registry_lock(name: str) -> Iterator[None]:
    """Serialise quality gates on registered model ``name`` in this store across processes on
    this machine: a gate reads the champion, may re-score it, then registers; a second gate in
    between would compare against a stale champion. (Across machines, registry.register_gated's
    champion check refuses a gate whose champion moved; Jenkins runs one build at a time.)"""
    uri = tracking_uri()
    # An embedded store is keyed on its database's resolved path, not the URI's text:
    # sqlite:////x/./a.db and sqlite:////x/a.db are one store and must share one lock.
    database = sqlite_file(uri).resolve() if is_embedded(uri) else None
    key = hashlib.sha256(f"{database or uri}\0{name}".encode()).hexdigest()[:16]
    # Beside an embedded store (it goes with the store); for a server, in the temp folder.
    folder = database.parent if database else Path(tempfile.gettempdir())
    path = folder / f"mlops-registry-{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("registered model %s: waiting for another registration to finish", name)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
