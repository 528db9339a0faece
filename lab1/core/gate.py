"""The quality gate: may a newly trained model replace the champion? Pure, no MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab1.core.params import GateParams


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str

    @property
    def label(self) -> str:
        return "promoted" if self.passed else "rejected"


@dataclass(frozen=True)
class Reference:
    """The best accuracy measured on the candidate's own test set by a model that has been
    champion (the current champion, re-scored when it was tested on other data, or an earlier
    promoted version tested on the same data), and which model that was."""

    accuracy: float
    what: str  # e.g. "champion version 4, re-scored on this test set"


def decide(
    candidate: dict[str, float], reference: Reference | None, rules: GateParams
) -> GateDecision:
    """Check ``candidate`` test metrics against the fixed minimums and ``reference``.

    The floor is the best champion's accuracy on the same test set minus the margin, not the
    current champion's: a series of models each slightly worse than the last cannot walk the
    champion down. ``reference`` is None when there is no champion yet. Every failed check is
    named in the reason, so a rejection says everything that has to improve.
    """
    failures = []
    accuracy, f1 = candidate["accuracy"], candidate["f1"]
    if accuracy < rules.min_accuracy:
        failures.append(f"accuracy {accuracy:.3f} < min_accuracy {rules.min_accuracy:.3f}")
    if f1 < rules.min_f1:
        failures.append(f"f1 {f1:.3f} < min_f1 {rules.min_f1:.3f}")
    if reference is not None and accuracy < reference.accuracy - rules.max_drop_vs_best:
        failures.append(
            f"accuracy {accuracy:.3f} < {reference.accuracy:.3f} ({reference.what}) - "
            f"max_drop_vs_best {rules.max_drop_vs_best:.3f}"
        )
    if failures:
        return GateDecision(False, "; ".join(failures))
    against = (
        f"{reference.what}: {reference.accuracy:.3f}"
        if reference is not None
        else "no champion yet"
    )
    return GateDecision(
        True, f"accuracy {accuracy:.3f}, f1 {f1:.3f} pass the thresholds ({against})"
    )
