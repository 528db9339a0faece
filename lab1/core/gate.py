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
    """The current champion's accuracy on the candidate's own test set (re-scored there when it
    was tested on other data), and which version that is."""

    accuracy: float
    what: str  # e.g. "champion version 4, re-scored on this test set"


# Accuracies are compared at the precision the registry keeps them in (test.* tags): a tie read
# back from a tag is a tie, not a loss in the seventh decimal.
PRECISION = 6


def decide(
    candidate: dict[str, float],
    reference: Reference | None,
    rules: GateParams,
    unopposed: str = "no champion yet",
) -> GateDecision:
    """Check ``candidate`` test metrics against the fixed minimums and the current champion.

    A candidate must score at least as well as the champion on the same test set: a tie passes,
    a loss never does, however small. (A tolerance for losses lets a series of slightly worse
    models each replace the last, and lets a worse model replace a better one.) ``reference``
    is None when nothing opposes the candidate (``unopposed`` says why). Every failed check is
    named, with its numbers and the setting it applied: a rejection says all that must improve.
    """
    failures = []
    accuracy, f1 = candidate["accuracy"], candidate["f1"]
    if accuracy < rules.min_accuracy:
        failures.append(f"accuracy {accuracy:.3f} < min_accuracy {rules.min_accuracy:.3f}")
    if f1 < rules.min_f1:
        failures.append(f"f1 {f1:.3f} < min_f1 {rules.min_f1:.3f}")
    if reference is not None and round(accuracy, PRECISION) < round(reference.accuracy, PRECISION):
        failures.append(
            f"accuracy {accuracy:.3f} < {reference.accuracy:.3f} of {reference.what} "
            "(a candidate must score at least as well as the champion)"
        )
    if failures:
        return GateDecision(False, "; ".join(failures))
    against = (
        f"at least as good as {reference.what}: {reference.accuracy:.3f}"
        if reference is not None
        else unopposed
    )
    return GateDecision(
        True,
        f"accuracy {accuracy:.3f}, f1 {f1:.3f} pass min_accuracy {rules.min_accuracy:.3f}, "
        f"min_f1 {rules.min_f1:.3f} ({against})",
    )
