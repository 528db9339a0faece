"""Stage 3/5: model preparation.

temperature: trains the scikit-learn classifier named in model_preparation.estimator on the TRAIN
stations' features to tell faulty days from normal ones, then joins it with the fitted
preprocessor into one model that takes raw reading windows (skops format: no unpickling).

Images: trains the CNN (model_preparation.cnn.<dataset>) on the train images, keeping the epoch
with the best validation accuracy; per-epoch losses and accuracies are MLflow step metrics. The
normalisation is the model's first layer, so it takes raw uint8 images (pt2 format).

Both are logged to MLflow with signature, input example and exact pip requirements.

Reads:  data/processed/train.parquet + preprocessor.skops, or train.npz + normalization.json
Writes: models/model/ (MLflow model), models/model.json (run id, model URI)
"""

from lab1.core import runner
from lab1.core.stages.model_preparation import (
    STAGE,  # the stage's work: go-to-definition lands there
)


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    return runner.main(STAGE, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(runner.main_process(STAGE, __doc__))
