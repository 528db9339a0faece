"""Stage 4/5: model testing.

Evaluates the saved model on the test split: for temperature, the TEST stations (never seen in
training) with accuracy, precision, recall, F1 and ROC AUC of the faulty class, accuracy per
station and per fault kind; for images, the test images with accuracy, (macro) F1, ROC AUC,
accuracy per class and a grid of misclassified images. Always the majority-class baseline beside
the model's accuracy and a confusion-matrix plot. Prints the accuracy line on stdout.

Reads:  models/model/, models/model.json, data/processed/test.parquet or test.npz
Writes: reports/metrics.json, reports/confusion_matrix.png (images: reports/misclassified.png)
"""

from __future__ import annotations

import logging
import sys

from lab1.core import stage
from lab1.core.io import read_json, write_json
from lab1.core.kinds import images, tables
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.report import accuracy_line

logger = logging.getLogger(__name__)


def test_model(params: Params) -> int:
    import mlflow  # imported for the work, not for --help
    from mlflow.entities import LoggedModelInput

    from lab1.core.model_io import load_model, load_torch_model  # never unpickles: model_io.py

    with stage.run("model_testing", params) as run:
        mlflow.log_params(run.params)
        model_info = read_json(PATHS.model_info)
        mlflow.log_input(run.dataset(PATHS.model_dir), context="input")
        mlflow.log_input(run.dataset(PATHS.model_info), context="input")
        PATHS.reports.mkdir(parents=True, exist_ok=True)
        if params.is_image:
            test_path = PATHS.processed_images("test")
            report, extra = images.evaluate(load_torch_model(PATHS.model_dir), test_path)
        else:
            test_path = PATHS.processed_table("test")
            threshold = params.model_testing.threshold
            report, extra = tables.evaluate(load_model(PATHS.model_dir), test_path, threshold)
        test_set = run.dataset(test_path)
        mlflow.log_input(test_set, context="input")
        report |= {
            "test_digest": test_set.digest,
            "model_uri": model_info["model_uri"],
            "training_run_id": model_info["run_id"],
            "testing_run_id": run.run_id,
            "pipeline_run_id": run.pipeline_run_id,
        }
        write_json(PATHS.metrics, report)
        # The test metrics are the logged model's too (its page in the MLflow UI), on this test
        # set: MLflow links metrics to a model and a dataset.
        metrics, model_id = report["metrics"], model_info.get("model_id")
        mlflow.log_metrics({**metrics, **extra}, model_id=model_id, dataset=test_set)
        if model_id:  # the runs table's Models column: the model this run tested
            mlflow.log_input(model=LoggedModelInput(model_id))
        for output in (PATHS.metrics, PATHS.confusion_matrix_plot, PATHS.misclassified_plot):
            if output.exists():
                mlflow.log_artifact(str(output))
                mlflow.log_input(run.dataset(output, "output"), context="output")
    logger.info(
        "accuracy %.3f (baseline %.3f), F1 %.3f, ROC AUC %.3f on %d test rows",
        metrics["accuracy"],
        metrics["baseline_accuracy"],
        metrics["f1"],
        metrics["roc_auc"],
        report["test_rows"],
    )
    # After the run ended: the accuracy line, the stage's stdout interface.
    sys.stdout.write(accuracy_line(PATHS.metrics) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    args = stage.parser(__doc__).parse_args(argv)
    return stage.exit_code("model_testing", args, test_model)


if __name__ == "__main__":
    raise SystemExit(stage.process(main))
