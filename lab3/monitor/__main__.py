"""Watch the served model: its prediction log against its training data's profile.

Reads the rows the service answered in a time window (params.yaml monitoring.prediction_log),
finds the model version that answered them in the registry, and compares them with the profile
stored with that version at training time: drift of each of the model's features and of its
answers (Kolmogorov-Smirnov test and PSI), the share of missing readings, and, given labels,
accuracy, F1 and recall per fault kind. Thresholds: params.yaml `monitoring`, and the gate's
min_accuracy / min_f1.

    .venv/bin/python -m lab3.monitor                           # the last 7 days
    .venv/bin/python -m lab3.monitor --labels labels.csv --pushgateway http://127.0.0.1:9091
    .venv/bin/python -m lab3.monitor --retrain -- -S data_creation.seed=7

Writes reports/monitoring/<time>.html and an MLflow run in the experiment "<the pipeline's
experiment>-monitoring" (tag mlops.kind=monitoring), linked to the version. The last line on
stderr is the verdict: what moved, how much it matters (quality, given labels) and the next step.
Exit codes: 0 nothing to act on; 3 an alarm (drift or quality over a threshold); 1 an error;
2 a bad command line. With --retrain an alarm also runs `bash pipeline.sh` with the arguments
after --, which must give it other data (-S data_creation.temperature.csv_path=FILE, readings
from the conditions served; or -S data_creation.seed=N): without them it would train the same
model on the same data, and it is not run. The new model must pass the same quality gate to
become champion.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import EXIT_OK, UsageError
from lab1.core.io import atomic_path
from lab1.core.paths import PATHS
from lab3.monitor.traffic import parse_time
from lab3.service.settings import is_database

if TYPE_CHECKING:
    from lab3.monitor.checks import Result

logger = logging.getLogger("lab3.monitor")

EXIT_ALARM = 3
REPORTS = Path("reports/monitoring")


def parser() -> argparse.ArgumentParser:
    cli = stage_parser(__doc__)
    cli.prog = ".venv/bin/python -m lab3.monitor"
    cli.add_argument("--since", type=parse_time, help="ISO time (UTC); default: until - window")
    cli.add_argument("--until", type=parse_time, help="ISO time (UTC); default: now")
    cli.add_argument("--labels", type=Path, help="CSV: request_id, row, label[, fault_kind]")
    cli.add_argument(
        "--log",
        help="the prediction log: a folder or a postgresql:// URL (default: $PREDICTION_LOG, "
        "else params.yaml monitoring.prediction_log)",
    )
    cli.add_argument("--report", type=Path, help="the HTML page (default: reports/monitoring/)")
    cli.add_argument("--pushgateway", help="push the figures as gauges, e.g. http://127.0.0.1:9091")
    cli.add_argument(
        "--retrain", action="store_true", help="on an alarm, run bash pipeline.sh (with new data)"
    )
    cli.add_argument("pipeline_args", nargs="*", help="after --: passed to pipeline.sh")
    return cli


def monitor(args: argparse.Namespace) -> int:
    from lab1.core.mlflow_ui import ui_base
    from lab1.core.tracking import connect
    from lab3.monitor import checks, publish, report, traffic

    params = params_from_args(args)
    ui_base()  # MLFLOW_UI_URL, for the report's links: refused before any work
    if params.is_image:
        raise UsageError("monitoring covers the temperature model (the image models' log lines "
                         "keep only each image's shape and mean)")  # fmt: skip
    settings = params.monitoring
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(days=settings.window_days)
    ends = (f"{since:%Y-%m-%d %H:%M:%S}", f"{until:%Y-%m-%d %H:%M:%S} UTC")
    window = f"{ends[0]} to {ends[1]}"
    # PREDICTION_LOG: where the service writes its log (lab3/service/settings.py)
    log = args.log or os.environ.get("PREDICTION_LOG") or settings.prediction_log
    labels = traffic.read_labels(args.labels) if args.labels else None  # refused before any work
    served = traffic.read_log(log if is_database(log) else PATHS.root / log, since, until)
    client = connect()
    version, profile = publish.served_version(client, served.model, served.version)
    gate = params.model_registration[params.dataset]
    result = checks.run_checks(served, profile, settings, gate, labels, publish.tested(version))
    run = publish.start_run(client, params.experiment_name, version, ends, result)
    path = args.report or PATHS.root / REPORTS / f"{until:%Y%m%dT%H%M%S}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"Monitoring: {served.model} version {served.version}"
    about = (window, publish.lineage(version), publish.links(client, run, version))
    with atomic_path(path) as partial:  # never a half-written report
        partial.write_text(report.render(result, title, *about), encoding="utf-8")
    publish.finish_run(client, run, version, result, path)
    if args.pushgateway:
        publish.push_gauges(args.pushgateway, result)
    if result.alarms and args.retrain:
        retrain(args.pipeline_args, served.version)
    summary(result, path, run.run_id)  # the verdict last: what a reader of the job's log sees
    return EXIT_ALARM if result.alarms else EXIT_OK


def summary(result: Result, path: Path, run_id: str) -> None:
    for name, value in result.quality.items():
        logger.info("  served %s %.3f", name, value)
    logger.info("report %s; MLflow run %s", path, run_id)
    say = logger.warning if result.alarms else logger.info
    say("%d rows of version %s: %s", result.rows, result.traffic.version, result.verdict())


# What gives the pipeline other data than the version was trained on: without one of these it
# would make the same data, hence the same model, and the gate would judge it again for nothing.
NEW_DATA = ("data_creation.", "--dataset")


def retrain(pipeline_args: list[str], version: str) -> None:
    """Run the whole pipeline as a user would; its champion moves only through the gate."""
    given = [*pipeline_args, *os.environ.get("MLOPS_OVERRIDES", "").split()]
    if not any(marker in arg for arg in given for marker in NEW_DATA):
        logger.warning(
            "not retraining: `%s` would train on the data version %s was "
            "trained on and make the same model; give it data from the conditions served: "
            "--retrain -- -S data_creation.temperature.csv_path=FILE (columns date, station, "
            "temperature), or at least fresh synthetic data: -- -S data_creation.seed=N",
            shlex.join(["bash", "pipeline.sh", *pipeline_args]), version,
        )  # fmt: skip
        return
    command = ["bash", str(PATHS.root / "pipeline.sh"), *pipeline_args]
    logger.warning("retraining: %s", " ".join(command))
    # Its stdout (the accuracy line) goes to ours: this job's stdout carries nothing else.
    code = subprocess.call(command, cwd=PATHS.root)
    logger.warning("retraining finished with exit code %d", code)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_script("monitor", lambda: monitor(args))


if __name__ == "__main__":
    sys.exit(main())
