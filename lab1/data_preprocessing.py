"""Stage 2/5: data preprocessing.

temperature: turns each station's daily series into one row per day holding the raw readings of
a window around it (the model's input), builds features from that window (missing readings
handled by data_preprocessing.missing_rule), fits the scaler on the TRAIN stations only and
applies it to both splits. The fitted preprocessor is saved so that the logged model takes raw
readings.

Images: per-channel mean/std of the TRAIN images only (saved; the model normalises with them)
and the training-time augmentation declared in data_preprocessing.augmentation.

Reads:  data/raw/manifest.json, data/raw/{train,test}/*.csv or data/raw/{train,test}.npz
Writes: data/processed/{train,test}.parquet + preprocessor.skops, or for images
        data/processed/{train,test}.npz + normalization.json
"""

from __future__ import annotations

import logging

from lab1.core import stage
from lab1.core.kinds import checked_manifest, images, tables
from lab1.core.params import Params
from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)


def preprocess(params: Params) -> int:
    import mlflow  # imported for the work, not for --help

    with stage.run("data_preprocessing", params) as run:
        mlflow.log_params(run.params)  # its input, data/raw, was checked and logged by stage.run
        manifest = checked_manifest(PATHS.raw, params.dataset)
        if params.is_image:
            preprocess_images(params, manifest)
        else:
            preprocess_stations(params, manifest)
        mlflow.log_input(run.dataset(PATHS.processed, "output"), context="output")
    return 0


def preprocess_stations(params: Params, manifest: dict) -> None:
    import mlflow

    window = params.data_preprocessing.window
    splits = tables.read_raw(PATHS.raw, manifest)
    train = tables.to_windows(splits["train"], window)
    test = tables.to_windows(splits["test"], window)
    for split, frame in (("train", train), ("test", test)):
        tables.check_both_classes(frame, PATHS.raw / split)  # faulty and normal days in each
    # Fit on train only: fitting the scaler on test would leak its statistics.
    preprocessor = tables.fit_preprocessor(train, params.data_preprocessing)
    train = tables.add_features(train, preprocessor)
    test = tables.add_features(test, preprocessor)
    tables.write_processed(train, test, preprocessor, PATHS.processed)  # atomically
    mlflow.log_metrics(
        {
            "train_rows": len(train),
            "test_rows": len(test),
            "train_faulty_fraction": tables.faulty_fraction(train),
            "test_faulty_fraction": tables.faulty_fraction(test),
        }
    )
    logger.info(
        "train %d rows, test %d rows, %d features -> %s",
        len(train),
        len(test),
        preprocessor[-1].n_features_in_,
        PATHS.processed,
    )


def preprocess_images(params: Params, manifest: dict) -> None:
    import mlflow

    from lab1.core import cnn  # imports torch: only for images

    splits = images.read_raw(manifest["classes"])  # checks that the labels cover the classes
    train_images, train_labels = splits["train"]
    # Per-channel statistics of the TRAIN images: the model's first layer normalises with them.
    mean, std = cnn.channel_stats(train_images)
    augmentation = params.data_preprocessing.augmentation[params.dataset]
    images.write_processed(splits, mean, std, manifest, augmentation, PATHS.processed)
    mlflow.log_metrics(
        {
            "train_rows": len(train_labels),
            "test_rows": len(splits["test"][1]),
            **{f"channel_mean.{i}": m for i, m in enumerate(mean)},
            **{f"channel_std.{i}": v for i, v in enumerate(std)},
        }
    )
    logger.info(
        "images: train %d, test %d; channel mean %s std %s -> %s",
        len(train_labels),
        len(splits["test"][1]),
        [round(m, 3) for m in mean],
        [round(v, 3) for v in std],
        PATHS.processed,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    args = stage.parser(__doc__).parse_args(argv)
    return stage.exit_code("data_preprocessing", args, preprocess)


if __name__ == "__main__":
    raise SystemExit(stage.process(main))
