"""Model Registry operations: the state a gate needs, register a promoted version, reconcile what
a killed registration left, roll `champion` back.

A version is created only for a model the gate promotes; a rejected candidate stays a logged
model of its training run (its decision is on the registration run and in
reports/registration.json), so the registry lists exactly the models that have served.

Crash consistency: a promotion is the version created tagged ``gate.decision=pending``, then
everything the registration records (its reports, artifacts and run tags), and only then the
alias move, after which the version and the registration run are tagged ``promoted``. A
registration that fails or is killed before the move leaves the champion where it was and a
``pending`` version; one killed after it leaves a ``pending`` version the alias reached.
``reconcile`` (run under the registry lock before every gate) settles both: ``promoted`` if the
alias reached it, ``abandoned`` otherwise, on the version and on its registration run, so that
"the alias moved" and "the run says promoted" always agree. Every alias move is recorded on the
version it lands on (``champion.previous_version``, ``champion.promoted_at``), so the chain can
be audited and rolled back one step at a time.

Callers hold ``store.registry_lock`` around a whole gate (state, re-scoring, registration), and
``register_gated`` checks that the champion is still the one the gate compared against.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
import time
from typing import TYPE_CHECKING, Any

from lab1.core.errors import PipelineError
from lab1.core.gate import GateDecision, Reference, decide
from lab1.core.model_files import download_checked

if TYPE_CHECKING:  # MLflow is imported where it is used: a stage reads the tag names below
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from lab1.core.params import GateParams

logger = logging.getLogger(__name__)

CHAMPION = "champion"
DECISION = "gate.decision"  # pending -> promoted | abandoned
FINGERPRINT = "model.fingerprint"  # code + data + params: the same one is never registered twice
TEST_DIGEST = "test.data_digest"  # the test set the version's test.* metrics were measured on
SETTINGS = "gate.settings"  # the gate's settings when it last checked the version

ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def resolve(client: MlflowClient, uri: str) -> ModelVersion:
    """The registry version ``uri`` names: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    from mlflow.exceptions import MlflowException

    from lab1.core.cli import store_name
    from lab1.core.tracking import tracking_uri

    alias, version = ALIAS_URI.match(uri), VERSION_URI.match(uri)
    try:
        if alias:
            return client.get_model_version_by_alias(alias["name"], alias["alias"])
        if version:
            return client.get_model_version(version["name"], version["version"])
    except MlflowException as exc:
        raise PipelineError(
            f"{uri}: not in the registry at {store_name(tracking_uri())} ({exc.message})"
        ) from None
    raise PipelineError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version the `champion` alias points at, or None (no model or no alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first (none if the model does not exist yet)."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda v: int(v.version))


def version_metrics(version: ModelVersion) -> dict[str, float]:
    """The test metrics recorded on a version's ``test.*`` tags."""
    return {
        key.removeprefix("test."): float(value)
        for key, value in version.tags.items()
        if key.startswith("test.") and key != TEST_DIGEST
    }


def reconcile(client: MlflowClient, name: str) -> list[str]:
    """Settle the versions a killed registration left ``pending``; return their numbers."""
    current = champion(client, name)
    settled = []
    for version in versions(client, name):
        if version.tags.get(DECISION) != "pending":
            continue
        promoted = current is not None and current.version == version.version
        outcome = "promoted" if promoted else "abandoned"
        run_id = version.tags.get("lineage.run_id")
        if run_id:  # the registration run says what happened, as the version does
            with contextlib.suppress(Exception):  # a run deleted since: the version still settles
                client.set_tag(run_id, DECISION, outcome)
        settle = {DECISION: outcome}
        if not promoted:
            settle["gate.reason"] = (
                f"registration interrupted before the {CHAMPION} alias moved; never served"
            )
        _set_tags(client, name, version.version, settle)
        logger.warning(
            "%s version %s: registration was interrupted %s the alias moved; %s",
            name,
            version.version,
            "after" if promoted else "before",
            "now marked promoted" if promoted else "marked abandoned",
        )
        settled.append(version.version)
    return settled


def gate_state(
    client: MlflowClient, name: str, fingerprint: str, test_digest: str, gate: GateParams
) -> dict[str, Any]:
    """What a gate needs to know, after reconciling.

    ``existing``: the version that already holds this model (same fingerprint: code, data and
    params), which is gated again instead of registered twice. ``unchanged``: that version is
    champion and was gated under these same settings, so there is nothing to decide
    (``{version, champion}``), else None. ``champion``: the current champion when it is another
    version (``{version, metrics, test_digest, model_dir}``), else None; ``model_dir`` is a
    local copy of its model, downloaded only when it was tested on another test set (the
    caller re-scores it)."""
    reconcile(client, name)
    current = champion(client, name)
    same = [v for v in versions(client, name) if v.tags.get(FINGERPRINT) == fingerprint]
    existing = same[-1] if same else None
    state: dict[str, Any] = {
        "existing": existing.version if existing else None,
        "champion_version": current.version if current else None,
        "unchanged": None,
        "champion": None,
    }
    if existing is not None and current is not None and existing.version == current.version:
        passed = existing.tags.get("gate.last_decision") != "rejected"
        if passed and existing.tags.get(SETTINGS) == gate.settings():  # nothing to decide
            state["unchanged"] = {"version": existing.version, "champion": existing.version}
    elif current is not None:
        model_dir = None
        if current.tags.get(TEST_DIGEST) != test_digest:
            model_dir = download_checked(
                client, current, tempfile.mkdtemp(prefix="mlops-champion-")
            )
        state["champion"] = {
            "version": current.version,
            "metrics": version_metrics(current),
            "test_digest": current.tags.get(TEST_DIGEST),
            "model_dir": model_dir,
        }
    return state


def register_gated(
    client: MlflowClient,
    name: str,
    model_uri: str,
    metrics: dict[str, float],
    tags: dict[str, str],
    gate: GateParams,
    champion_seen: str | None,
    champion_here: dict[str, float] | None,
    incomparable: str | None = None,
    card: dict[str, str] | None = None,
    existing: str | None = None,
) -> dict[str, Any]:
    """Gate ``metrics`` (on the test set ``tags[TEST_DIGEST]``) against the minimums and the
    champion (``champion_here``: its metrics on this test set; ``incomparable``: why it could
    not be scored here: rejected). ``champion_seen``: the champion gate_state saw (moved since:
    refused). A passing model becomes a version tagged pending (promote moves the alias later);
    ``existing``, a version holding it already, is gated again instead. Returns ``{version,
    passed, decision, reason, reference, reference_accuracy, champion_before, champion_after}``."""
    current = champion(client, name)
    before = current.version if current else None
    if before != champion_seen:
        raise PipelineError(
            f"registered model {name!r}: {CHAMPION} moved from {_named(champion_seen)} to "
            f"{_named(before)} while this gate ran; run model_registration again"
        )
    reference = None
    if champion_here is not None and current is not None and current.version != existing:
        how = "" if current.tags.get(TEST_DIGEST) == tags[TEST_DIGEST] else ", re-scored here"
        reference = Reference(champion_here["accuracy"], f"champion version {before}{how}")
    unopposed = "it is the champion" if existing and existing == before else "no champion yet"
    decide_here = decide(metrics, reference, gate, unopposed)
    decision = GateDecision(False, incomparable) if incomparable else decide_here
    passed, reason = decision.passed, decision.reason
    result: dict[str, Any] = {
        "version": None,
        "passed": passed,
        "decision": decision.label,
        "reason": reason,
        "reference": reference.what if reference else None,
        "reference_accuracy": reference.accuracy if reference else None,
        "champion_before": before,
        "champion_after": before,
    }
    checked = {"gate.reason": reason, SETTINGS: gate.settings()}
    if existing is not None:
        return _gated_again(client, name, existing, checked, result)
    if passed:
        pending = {
            **tags,
            **{f"test.{k}": f"{v:.6f}" for k, v in metrics.items()},
            **checked,
            DECISION: "pending",
        }
        version = register(model_uri, name, pending).version
        if card:  # descriptions are not part of the decision: before the alias, like the tags
            describe(client, name, version, card, reason)
        # The alias moves later (promote), after everything the registration records.
        result |= {"version": version, "champion_after": version}
    return result


def _named(version: str | None) -> str:
    """A champion's version in a message: "version 3", or "no version" when there was none."""
    return f"version {version}" if version is not None else "no version"


def _gated_again(
    client: MlflowClient, name: str, version: str, checked: dict[str, str], result: dict[str, Any]
) -> dict[str, Any]:
    """The decision for a version that already holds the candidate model: its tags say what
    this gate decided (``gate.last_decision``, ``gate.last_reason``); a passing one is promoted
    back (by the caller), and the champion itself, gated under new settings, stays champion
    either way. A rejection leaves ``gate.reason`` as it was: the reason of the decision the
    version still carries (``promoted``), which a later gate's reason would contradict."""
    last = {"gate.last_decision": result["decision"], "gate.last_reason": checked["gate.reason"]}
    if not result["passed"]:
        checked = {SETTINGS: checked[SETTINGS]}
    _set_tags(client, name, version, {**checked, **last})
    before = result["champion_before"]
    if version == before:
        result["decision"] = "unchanged" if result["passed"] else "rejected"
        result["reason"] = f"champion version {before} gated under new settings: {result['reason']}"
    return result | {"version": version, "champion_after": version if result["passed"] else before}


def describe(
    client: MlflowClient, name: str, version: str, card: dict[str, str], reason: str
) -> None:
    """The registry's descriptions: the registered model's, and the version's model card."""
    client.update_registered_model(name, description=card["model"])
    card_text = card["version"].replace("<this version>", str(version))
    client.update_model_version(
        name, version, description=f"{card_text}\n- **Gate**: promoted: {reason}"
    )


def register(model_uri: str, name: str, tags: dict[str, str]) -> ModelVersion:
    """Create a new version of ``name`` from ``model_uri`` carrying ``tags``.

    register_model creates the registered model on first use (tolerating a concurrent creation)
    and sends the tags in the same create request as the version.
    """
    import mlflow

    # MLflow prints "Successfully registered model ..." with print(); our log says it once.
    with contextlib.redirect_stderr(io.StringIO()):
        return mlflow.register_model(model_uri, name, tags=tags)


def promote(
    client: MlflowClient, name: str, version: str, previous: str | None, run_id: str | None = None
) -> None:
    """Point `champion` at ``version``, recording where it came from, then mark the version and
    the registration run ``run_id`` promoted (in this order: see the module's note on crash
    consistency)."""
    moved = {"champion.previous_version": previous or "", "champion.promoted_at": _now()}
    _set_tags(client, name, version, moved)
    client.set_registered_model_alias(name, CHAMPION, version)
    if run_id:
        client.set_tag(run_id, DECISION, "promoted")
    _set_tags(client, name, version, {DECISION: "promoted"})
    logger.info("%s: alias %s -> version %s (was %s)", name, CHAMPION, version, previous or "none")


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Move `champion` back to the version it pointed at before; return (from, to) versions."""
    reconcile(client, name)
    current = champion(client, name)
    if current is None:
        raise PipelineError(f"registered model {name!r}: no {CHAMPION} alias to roll back")
    previous = current.tags.get("champion.previous_version", "")
    if not previous:
        raise PipelineError(
            f"registered model {name!r}: version {current.version} was the first {CHAMPION}; "
            "nothing to roll back to"
        )
    client.set_model_version_tag(name, current.version, "champion.rolled_back_at", _now())
    client.set_registered_model_alias(name, CHAMPION, previous)
    logger.info("%s: alias %s rolled back %s -> %s", name, CHAMPION, current.version, previous)
    return current.version, previous


def _set_tags(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
