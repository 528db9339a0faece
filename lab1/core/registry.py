"""Model Registry operations: register a version, find, move and roll back the `champion` alias.

Every alias move is recorded on the version it lands on (``champion.previous_version``,
``champion.promoted_at``), so the chain can be audited and rolled back one step at a time.
"""

from __future__ import annotations

import logging
import time

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lab1.core.errors import PipelineError
from lab1.core.gate import decide
from lab1.core.params import GateParams

logger = logging.getLogger(__name__)

CHAMPION = "champion"


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version the `champion` alias points at, or None (no model or no alias yet)."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def version_metrics(version: ModelVersion) -> dict[str, float]:
    """The test metrics recorded on a version's ``test.*`` tags."""
    return {
        key.removeprefix("test."): float(value)
        for key, value in version.tags.items()
        if key.startswith("test.")
    }


def register(model_uri: str, name: str, tags: dict[str, str]) -> ModelVersion:
    """Create a new version of ``name`` from ``model_uri`` carrying ``tags``.

    register_model creates the registered model on first use and tolerates a concurrent
    pipeline creating it at the same moment.
    """
    import mlflow

    return mlflow.register_model(model_uri, name, tags=tags)


def register_gated(
    client: MlflowClient,
    name: str,
    model_uri: str,
    metrics: dict[str, float],
    tags: dict[str, str],
    gate: GateParams,
) -> dict:
    """Register ``model_uri`` as a new version of ``name`` and move `champion` to it only if the
    quality gate passes against the current champion's metrics.

    ``tags`` (lineage) go on the version together with the test metrics and the decision.
    Returns ``{version, passed, decision, reason, champion_before, champion_after}``.
    """
    current = champion(client, name)
    before = current.version if current else None
    decision = decide(metrics, version_metrics(current) if current else None, gate)
    version = register(
        model_uri,
        name,
        {
            **tags,
            "gate.decision": decision.label,
            "gate.reason": decision.reason,
            **{f"test.{k}": f"{v:.6f}" for k, v in metrics.items()},
        },
    )
    if decision.passed:
        promote(client, name, version.version, before)
    return {
        "version": version.version,
        "passed": decision.passed,
        "decision": decision.label,
        "reason": decision.reason,
        "champion_before": before,
        "champion_after": version.version if decision.passed else before,
    }


def promote(client: MlflowClient, name: str, version: str, previous: str | None) -> None:
    """Point `champion` at ``version``, recording where it came from."""
    client.set_model_version_tag(name, version, "champion.previous_version", previous or "")
    client.set_model_version_tag(name, version, "champion.promoted_at", _now())
    client.set_registered_model_alias(name, CHAMPION, version)
    logger.info("%s: alias %s -> version %s (was %s)", name, CHAMPION, version, previous or "none")


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Move `champion` back to the version it pointed at before; return (from, to) versions."""
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
