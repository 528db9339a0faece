"""Stage 2/5: data preprocessing.

temperature: turns each station's daily series into one row per day holding the raw readings of
a window around it (the model's input), builds features from that window (missing readings
handled by data_preprocessing.missing_rule), fits a StandardScaler on the TRAIN stations only and
applies it to both splits. The fitted preprocessor is saved so that the logged model takes raw
readings.

Images: per-channel mean/std of the TRAIN images only (saved; the model normalises with them)
and the training-time augmentation declared in data_preprocessing.augmentation.

Reads:  data/raw/manifest.json, data/raw/{train,test}/*.csv or data/raw/{train,test}.npz
Writes: data/processed/{train,test}.parquet + preprocessor.skops, or for images
        data/processed/{train,test}.npz + normalization.json
"""

from lab1.core import runner
from lab1.core.stages.data_preprocessing import (
    STAGE,  # the stage's work: go-to-definition lands there
)


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    return runner.main(STAGE, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(runner.main_process(STAGE, __doc__))
