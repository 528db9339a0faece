"""Stage 5/5: model registration.

Applies the quality gate from model_registration.<dataset> to the tested model: minimum
accuracy, minimum F1 of the faulty class, and no worse than the best champion so far on the same
test set by more than max_drop_vs_best (the current champion is re-scored on this test set when
it was tested on other data). Only a passing model is registered, as a new version that becomes
`champion`; a rejected one leaves the registry untouched and this script exits with code 3. The
same model (same code, data and params) is never registered twice: "unchanged", exit 0.

`--rollback` moves `champion` back to the version it pointed at before (no training involved).

Reads:  reports/metrics.json, models/ (both checked: outputs of finished runs of one execution)
Writes: reports/registration.json (decision, reason, version), reports/lineage.json (what made
        the model), a registry version + alias when promoted
Exit:   0 promoted or unchanged, 3 rejected by the gate, 1 error
"""

from lab1.core import runner
from lab1.core.stages.model_registration import (
    STAGE,  # the stage's work: go-to-definition lands there
)


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    return runner.main(STAGE, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(runner.main_process(STAGE, __doc__))
