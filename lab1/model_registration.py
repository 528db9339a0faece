"""Stage 5/5: model registration.

Registers the tested model as a new version in the MLflow Model Registry (tagged with its
lineage and test metrics) and applies the quality gate from model_registration: minimum
accuracy, minimum F1 of the faulty class, and no worse than the current `champion` by more
than max_drop_vs_champion. Only a passing version gets the `champion` alias; a rejected one
leaves the champion untouched and this script exits with code 3.

`--rollback` moves `champion` back to the version it pointed at before (no training involved).

Reads:  reports/metrics.json, models/model.json, data/raw/manifest.json
Writes: reports/registration.json (decision, reason, version), registry version + alias
Exit:   0 promoted, 3 rejected by the gate, 1 error
"""

from lab1.core import runner


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    return runner.main("model_registration", __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(runner.main_process("model_registration", __doc__))
