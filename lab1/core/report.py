"""The accuracy line: the pipeline's stdout interface, rendered from reports/metrics.json.

``python -m lab1.core.report`` prints it (pipeline.sh's last stdout line); ``--summary`` prints
what the run decided and where to look, to stderr. Import-light on purpose (no MLflow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ACCURACY_LINE = "Model test accuracy is: {accuracy:.3f}"


def accuracy_line(metrics_path: Path) -> str:
    """``Model test accuracy is: 0.929`` from the metrics report (three decimals)."""
    report = json.loads(metrics_path.read_text())
    return ACCURACY_LINE.format(accuracy=float(report["metrics"]["accuracy"]))


def summary(root: Path) -> list[str]:
    """What a pipeline run decided and where everything is, for stderr: the gate's decision, the
    outputs, and how to look at the run in the MLflow UI (from reports/registration.json)."""
    from lab1.core.mlflow_ui import run_link, runs_link
    from lab1.core.tracking import is_embedded, tracking_uri

    decision = json.loads((root / "reports" / "registration.json").read_text())
    name, version = decision["registered_model"], decision.get("version")
    if decision["decision"] == "promoted":
        before = decision["champion_before"]
        was = f"was version {before}" if before is not None else "the first champion"
        verdict = f"{name} version {version} is now champion ({was})"
    elif decision["decision"] == "rejected":
        what = f"version {version} gated again" if version is not None else "not registered"
        before = decision["champion_before"]
        stays = f"champion stays version {before}" if before is not None else "no champion yet"
        verdict = f"rejected, {what}; {stays}"
    else:
        verdict = decision["reason"]
    lines = [
        f"decision  {verdict}",
        f"          {decision['reason']}" if decision["decision"] != "unchanged" else "",
        "outputs   data/raw, data/processed, models/model (the MLflow model), reports/ "
        "(metrics.json, confusion_matrix.png, registration.json, lineage.json)",
        "lineage   .venv/bin/python -m lab1.lineage",
    ]
    uri = tracking_uri()
    if is_embedded(uri):
        store = uri.removeprefix(f"sqlite:///{root}/").removeprefix("sqlite:///")
        lines.append(f"MLflow UI .venv/bin/mlflow ui --backend-store-uri sqlite:///{store}")
    run, experiment = decision.get("pipeline_run_id"), decision.get("experiment_id")
    if run and experiment:
        lines.append(f"this run  {run_link(experiment, run)}")
        lines.append(f"all runs  {runs_link(experiment)}")
    return [line for line in lines if line]


def main(argv: list[str] | None = None) -> int:
    from lab1.core.paths import PATHS

    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        sys.stderr.write(
            "usage: .venv/bin/python -m lab1.core.report [METRICS_JSON | --summary]\n"
            "Print the accuracy line from reports/metrics.json (or METRICS_JSON); with\n"
            "--summary, the last run's decision, outputs and links (to stderr).\n"
        )
        return 0
    if args == ["--summary"]:
        try:
            sys.stderr.write("".join(f"  {line}\n" for line in summary(PATHS.root)))
        except (OSError, ValueError, KeyError) as exc:
            sys.stderr.write(f"error: {PATHS.registration}: no decision to summarise ({exc})\n")
            return 1
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
