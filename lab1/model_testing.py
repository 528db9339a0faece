"""Stage 4/5: model testing.

Evaluates the saved model on the TEST stations (never seen in training): accuracy, precision,
recall, F1 and ROC AUC of the faulty class, the majority-class baseline beside the model's
accuracy, accuracy per station and per fault kind, and a confusion-matrix plot. Prints the
accuracy line on stdout.

Reads:  models/model/, models/model.json, data/processed/test.parquet
Writes: reports/metrics.json, reports/confusion_matrix.png
"""

from __future__ import annotations

import logging
import sys

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.io import atomic_path, read_json, write_json
from lab1.core.paths import PATHS
from lab1.core.report import accuracy_line
from lab1.core.tracking import parent_run_id, stage_run

STAGE = "model_testing"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__).parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        import numpy as np

        from lab1.core.datasets.temperature import FAULT_KINDS
        from lab1.core.errors import DataError
        from lab1.core.evaluation import (
            classification_metrics,
            grouped_accuracy,
            plot_confusion_matrix,
        )
        from lab1.core.model_io import load_model
        from lab1.core.processed import LABEL, input_columns, read_split

        params = params_from_args(args)
        with stage_run(STAGE, params) as run:
            test_path = PATHS.processed / "test.parquet"
            model_info = read_json(PATHS.model_info)
            test = read_split(test_path)
            model = load_model(PATHS.model_dir)
            for path in (PATHS.model_dir, PATHS.model_info, test_path):
                run.add_input(path)
            y_true = test[LABEL].to_numpy()
            if len(np.unique(y_true)) < 2:
                raise DataError(
                    f"{test_path}: {LABEL} has only one class; accuracy alone "
                    "would not show whether faults are found"
                )
            proba = model.predict_proba(test[input_columns(test)])[:, 1]
            threshold = params.model_testing.threshold
            y_pred = (proba >= threshold).astype(int)
            metrics = classification_metrics(y_true, proba, threshold)
            faulty = test[LABEL].to_numpy() == 1
            report = {
                "metrics": metrics,
                "per_station_accuracy": grouped_accuracy(y_true, y_pred, test["station"]),
                "per_fault_kind_recall": {
                    kind: value
                    for kind, value in grouped_accuracy(
                        y_true[faulty], y_pred[faulty], test["fault_kind"][faulty]
                    ).items()
                    if kind in FAULT_KINDS
                },
                "test_rows": len(test),
                "model_uri": model_info["model_uri"],
                "training_run_id": model_info["run_id"],
                "testing_run_id": run.run_id,
                "pipeline_run_id": parent_run_id(),
            }
            PATHS.reports.mkdir(parents=True, exist_ok=True)
            with atomic_path(PATHS.confusion_matrix_plot) as tmp:
                plot_confusion_matrix(y_true, y_pred, ["normal", "faulty"], tmp)
            write_json(PATHS.metrics, report)
            station_metrics = {
                f"accuracy.{k}": v for k, v in report["per_station_accuracy"].items()
            }
            kind_metrics = {f"recall.{k}": v for k, v in report["per_fault_kind_recall"].items()}
            run.log(metrics={**metrics, **station_metrics, **kind_metrics})
            run.log_artifact(PATHS.metrics)
            run.log_artifact(PATHS.confusion_matrix_plot)
            run.add_output(PATHS.metrics)
            logger.info(
                "accuracy %.3f (baseline %.3f), F1 %.3f, ROC AUC %.3f on %d test days",
                metrics["accuracy"],
                metrics["baseline_accuracy"],
                metrics["f1"],
                metrics["roc_auc"],
                len(test),
            )
        sys.stdout.write(accuracy_line(PATHS.metrics) + "\n")
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
