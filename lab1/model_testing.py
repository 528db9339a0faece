"""Stage 4/5: model testing.

Evaluates the saved model on the test split: for temperature, the TEST stations (never seen in
training) with accuracy, precision, recall, F1 and ROC AUC of the faulty class, accuracy per
station and per fault kind; for images, the test images with accuracy, (macro) F1, ROC AUC,
accuracy per class and a grid of misclassified images. Always the majority-class baseline beside
the model's accuracy and a confusion-matrix plot. Prints the accuracy line on stdout.

Reads:  models/model/, models/model.json, data/processed/test.parquet or test.npz
Writes: reports/metrics.json, reports/confusion_matrix.png (images: reports/misclassified.png)
"""

from lab1.core import runner
from lab1.core.stages.model_testing import STAGE  # the stage's work: go-to-definition lands there


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    return runner.main(STAGE, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(runner.main_process(STAGE, __doc__))
