"""The quality gate: may a newly trained model replace the champion? Pure, no MLflow."""

from __future__ import annotations

from dataclasses import dataclass

from lab1.core.params import GateParams


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str

    @property
    def label(self) -> str:
        return "promoted" if self.passed else "rejected"


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    rules: GateParams,
) -> GateDecision:
    """Check ``candidate`` test metrics against the thresholds and the current champion.

    ``champion`` is None when there is no champion yet. All failed checks are named in the
    reason, so a rejection says everything that has to improve.
    """
    failures = []
    accuracy, f1 = candidate["accuracy"], candidate["f1"]
    if accuracy < rules.min_accuracy:
        failures.append(f"accuracy {accuracy:.3f} < min_accuracy {rules.min_accuracy:.3f}")
    if f1 < rules.min_f1:
        failures.append(f"f1 {f1:.3f} < min_f1 {rules.min_f1:.3f}")
    if champion is not None:
        floor = champion["accuracy"] - rules.max_drop_vs_champion
        if accuracy < floor:
            failures.append(
                f"accuracy {accuracy:.3f} < champion's {champion['accuracy']:.3f} - "
                f"max_drop_vs_champion {rules.max_drop_vs_champion:.3f}"
            )
    if failures:
        return GateDecision(False, "; ".join(failures))
    against = (
        f"champion's {champion['accuracy']:.3f}" if champion is not None else "no champion yet"
    )
    return GateDecision(
        True, f"accuracy {accuracy:.3f}, f1 {f1:.3f} pass the thresholds ({against})"
    )
