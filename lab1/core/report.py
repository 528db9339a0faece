"""The accuracy line: the pipeline's stdout interface, rendered from reports/metrics.json.

``python -m lab1.core.report`` prints it (pipeline.sh's last stdout line). Import-light on purpose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ACCURACY_LINE = "Model test accuracy is: {accuracy:.3f}"


def accuracy_line(metrics_path: Path) -> str:
    """``Model test accuracy is: 0.947`` from the metrics report (three decimals)."""
    report = json.loads(metrics_path.read_text())
    return ACCURACY_LINE.format(accuracy=float(report["metrics"]["accuracy"]))


def main(argv: list[str] | None = None) -> int:
    from lab1.core.paths import PATHS

    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        sys.stderr.write(
            "usage: python -m lab1.core.report [METRICS_JSON]\n"
            "Print the accuracy line from reports/metrics.json (or METRICS_JSON).\n"
        )
        return 0
    path = Path(args[0]) if args else PATHS.metrics
    try:
        line = accuracy_line(path)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"error: {path}: cannot read the test accuracy ({exc})\n")
        return 1
    sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
