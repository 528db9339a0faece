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


def side_by_side(*numbers: float, percent: bool = False) -> tuple[str, ...]:
    """``numbers`` as a message that compares them prints them: with the fewest decimals (at
    least 3; as percentages, at least 0) at which numbers that differ print differently. At a
    fixed 3, 0.8797 < 0.88 reads "0.880 < 0.880"; here it reads "0.8797 < 0.8800". Equal numbers
    print alike, and rounding keeps the order: a printed comparison is as true as the real one."""
    kind, least = ("%", 0) if percent else ("f", 3)
    for decimals in range(least, 18):  # 17 decimals tell any two different floats near 1 apart
        texts = tuple(f"{x:.{decimals}{kind}}" for x in numbers)
        if len(set(texts)) == len(set(numbers)):
            return texts
    return tuple(f"{x:.{least}{kind}}" for x in numbers)


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
    named, with its numbers (as many digits as tell them apart: side_by_side) and the setting it
    applied: a rejection says all that must improve.
    """
    failures = []
    accuracy, f1 = candidate["accuracy"], candidate["f1"]
    if accuracy < rules.min_accuracy:
        ours, least = side_by_side(accuracy, rules.min_accuracy)
        failures.append(f"accuracy {ours} < min_accuracy {least}")
    if f1 < rules.min_f1:
        ours, least = side_by_side(f1, rules.min_f1)
        failures.append(f"f1 {ours} < min_f1 {least}")
    if reference is not None and round(accuracy, PRECISION) < round(reference.accuracy, PRECISION):
        ours, theirs = side_by_side(
            round(accuracy, PRECISION), round(reference.accuracy, PRECISION)
        )
        failures.append(
            f"accuracy {ours} < {theirs} of {reference.what} "
            "(a candidate must score at least as well as the champion)"
        )
    if failures:
        return GateDecision(False, "; ".join(failures))
    # A pass (>=) reads true at 3 decimals: rounding keeps the order, and a tie prints alike.
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
