"""Stage 4/5: model testing. The dataset's kind scores the saved model on the test split and
draws the plots; reports/metrics.json records it with the runs involved. Prints the accuracy
line on stdout."""

from __future__ import annotations

import logging
import sys

from lab1.core.io import read_json, write_json
from lab1.core.kinds import Kind
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.report import accuracy_line
from lab1.core.runner import Stage
from lab1.core.tracking.stage_run import StageRun

logger = logging.getLogger(__name__)


def run(params: Params, kind: Kind, run: StageRun) -> int:
    model_info = read_json(PATHS.model_info)
    for path in (PATHS.model_dir, PATHS.model_info):
        run.add_input(path)
    PATHS.reports.mkdir(parents=True, exist_ok=True)
    report, extra_metrics = kind.evaluate(params, run)
    report |= {
        "model_uri": model_info["model_uri"],
        "training_run_id": model_info["run_id"],
        "testing_run_id": run.run_id,
        "pipeline_run_id": run.pipeline_run_id,
    }
    write_json(PATHS.metrics, report)
    metrics = report["metrics"]
    # The test metrics are the logged model's too (its page in the MLflow UI), on this test set.
    test_set = (PATHS.processed.relative_to(PATHS.root).as_posix() + ":test", report["test_digest"])
    run.log(
        metrics={**metrics, **extra_metrics}, model_id=model_info.get("model_id"), dataset=test_set
    )
    if model_info.get("model_id"):
        run.add_model_input(model_info["model_id"])
    for output in (PATHS.metrics, PATHS.confusion_matrix_plot, PATHS.misclassified_plot):
        if output.exists():
            run.log_artifact(output)
            run.add_output(output)
    logger.info(
        "accuracy %.3f (baseline %.3f), F1 %.3f, ROC AUC %.3f on %d test rows",
        metrics["accuracy"],
        metrics["baseline_accuracy"],
        metrics["f1"],
        metrics["roc_auc"],
        report["test_rows"],
    )
    return 0


def print_accuracy_line(_params: Params) -> None:
    """After the run ended: the accuracy line, the stage's stdout interface."""
    sys.stdout.write(accuracy_line(PATHS.metrics) + "\n")


STAGE = Stage("model_testing", run, after_run=print_accuracy_line)
