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

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import DataError
from lab1.core.io import atomic_path, read_json, write_json
from lab1.core.paths import PATHS
from lab1.core.report import accuracy_line
from lab1.core.tracking.stage_run import stage_run

STAGE = "model_testing"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def evaluate_stations(params, run) -> tuple[dict, dict[str, float]]:
    """The fault detector on the test stations: (report, extra MLflow metrics)."""
    import numpy as np

    from lab1.core.datasets.temperature import FAULT_KINDS
    from lab1.core.evaluation import classification_metrics, grouped_accuracy, plot_confusion_matrix
    from lab1.core.model_io import load_model
    from lab1.core.processed import LABEL, input_columns, read_split

    test_path = PATHS.processed / "test.parquet"
    test = read_split(test_path)
    model = load_model(PATHS.model_dir)
    run.add_input(test_path)
    y_true = test[LABEL].to_numpy()
    if len(np.unique(y_true)) < 2:
        raise DataError(
            f"{test_path}: {LABEL} has only one class; accuracy alone "
            "would not show whether faults are found"
        )
    proba = model.predict_proba(test[input_columns(test)])[:, 1]
    threshold = params.model_testing.threshold
    y_pred = (proba >= threshold).astype(int)
    faulty = y_true == 1
    by_kind = grouped_accuracy(y_true[faulty], y_pred[faulty], test["fault_kind"][faulty])
    per_station = grouped_accuracy(y_true, y_pred, test["station"])
    per_kind = {k: v for k, v in by_kind.items() if k in FAULT_KINDS}
    report = {
        "metrics": classification_metrics(y_true, proba, threshold),
        "per_station_accuracy": per_station,
        "per_fault_kind_recall": per_kind,
        "test_rows": len(test),
    }
    with atomic_path(PATHS.confusion_matrix_plot) as tmp:
        plot_confusion_matrix(y_true, y_pred, ["normal", "faulty"], tmp)
    extra = {f"accuracy.{k}": v for k, v in per_station.items()}
    extra |= {f"recall.{k}": v for k, v in per_kind.items()}
    return report, extra


def evaluate_images(params, run) -> tuple[dict, dict[str, float]]:
    """The CNN on the test images: (report, extra MLflow metrics); also draws the misclassified
    images."""
    from lab1.core.cnn import predict_proba
    from lab1.core.datasets.images import load_split
    from lab1.core.evaluation import (
        grouped_accuracy,
        misclassified_grid,
        multiclass_metrics,
        plot_confusion_matrix,
    )
    from lab1.core.model_io import load_torch_model

    test_path = PATHS.processed / "test.npz"
    images, labels = load_split(test_path)
    classes = read_json(PATHS.normalization)["classes"]
    model = load_torch_model(PATHS.model_dir)
    run.add_input(test_path)
    proba = predict_proba(model, images)
    y_pred = proba.argmax(axis=1)
    names = [classes[i] for i in labels]
    report = {
        "metrics": multiclass_metrics(labels, proba),
        "per_class_accuracy": grouped_accuracy(labels, y_pred, names),
        "test_rows": len(labels),
        "classes": classes,
    }
    with atomic_path(PATHS.confusion_matrix_plot) as tmp:
        plot_confusion_matrix(labels, y_pred, classes, tmp)
    with atomic_path(PATHS.misclassified_plot) as tmp:
        misclassified_grid(images, labels, y_pred, classes, tmp)
    return report, {f"accuracy.{k}": v for k, v in report["per_class_accuracy"].items()}


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__).parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        params = params_from_args(args)
        with stage_run(STAGE, params) as run:
            model_info = read_json(PATHS.model_info)
            for path in (PATHS.model_dir, PATHS.model_info):
                run.add_input(path)
            PATHS.reports.mkdir(parents=True, exist_ok=True)
            evaluate = evaluate_images if params.is_image else evaluate_stations
            report, extra_metrics = evaluate(params, run)
            report |= {
                "model_uri": model_info["model_uri"],
                "training_run_id": model_info["run_id"],
                "testing_run_id": run.run_id,
                "pipeline_run_id": run.pipeline_run_id,
            }
            write_json(PATHS.metrics, report)
            metrics = report["metrics"]
            run.log(metrics={**metrics, **extra_metrics})
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
        sys.stdout.write(accuracy_line(PATHS.metrics) + "\n")
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
