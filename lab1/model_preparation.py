"""Stage 3/5: model preparation.

temperature: trains the scikit-learn classifier named in model_preparation.estimator on the TRAIN
stations' features to tell faulty days from normal ones, then joins it with the fitted
preprocessor into one model that takes raw reading windows (skops format: no unpickling).

Images: trains the CNN (model_preparation.cnn) on the train images, keeping the epoch with the
best validation accuracy; per-epoch losses and accuracies are MLflow step metrics. The
normalisation is the model's first layer, so it takes raw uint8 images (pt2 format).

Both are logged to MLflow with signature, input example and exact pip requirements.

Reads:  data/processed/train.parquet + preprocessor.skops, or train.npz + normalization.json
Writes: models/model/ (MLflow model), models/model.json (run id, model URI)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.io import atomic_dir, file_sha256, read_json, write_json
from lab1.core.paths import PATHS
from lab1.core.tracking.stage_run import StageRun, stage_run

STAGE = "model_preparation"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def write_model_info(
    target: Path,
    run: StageRun,
    info: dict,
    estimator: str,
    train_path: Path,
    extra: dict | None = None,
) -> None:
    """models/model.json: which run logged the model and where it is (stages 4-5 read it)."""
    write_json(
        target,
        {
            "run_id": run.run_id,
            "pipeline_run_id": run.pipeline_run_id,
            "model_uri": info["model_uri"],
            "model_id": info["model_id"],
            "estimator": estimator,
            "train_digest": file_sha256(train_path),
            **(extra or {}),
        },
    )


def prepare_stations(params, run) -> None:
    import numpy as np
    from sklearn.pipeline import Pipeline

    from lab1.core.model_io import save_skops
    from lab1.core.models import build_estimator
    from lab1.core.processed import (
        CLASS_NAMES,
        LABEL,
        feature_columns,
        input_columns,
        load_preprocessor,
        read_split,
    )

    section = params.model_preparation
    train_path = PATHS.processed / "train.parquet"
    run.add_input(train_path)
    run.add_input(PATHS.preprocessor)
    train = read_split(train_path)
    preprocessor = load_preprocessor(PATHS.preprocessor)
    started = time.perf_counter()
    estimator = build_estimator(section)
    # Fit on the features stage 2 computed (scaled with train statistics).
    estimator.fit(train[feature_columns(train)].to_numpy(), train[LABEL].to_numpy())
    fit_seconds = time.perf_counter() - started
    model = Pipeline([("preprocess", preprocessor), ("classify", estimator)])
    inputs = input_columns(train)
    complete = train[inputs].notna().all(axis=1)
    example = train.loc[complete, inputs].head(5).reset_index(drop=True)
    train_accuracy = float(np.mean(model.predict(train[inputs]) == train[LABEL]))
    with atomic_dir(PATHS.models) as tmp:
        # The tracking service (or the in-process recorder) logs it from a skops file: the model
        # crosses the process boundary as the same safe format it is stored in.
        handoff = tmp / ".model-handoff.skops"
        save_skops(model, handoff)
        info = run.log_sklearn_model(
            handoff, example, tmp / PATHS.model_dir.name, list(CLASS_NAMES)
        )
        handoff.unlink()
        write_model_info(tmp / PATHS.model_info.name, run, info, section.estimator, train_path)
    run.add_output(PATHS.models)
    run.log(
        metrics={"fit_s": fit_seconds, "train_accuracy": train_accuracy},
        tags={"model_uri": info["model_uri"]},
    )
    logger.info(
        "%s trained in %.2f s (train accuracy %.3f); logged as %s",
        section.estimator,
        fit_seconds,
        train_accuracy,
        info["model_uri"],
    )


def prepare_images(params, run) -> None:
    from lab1.core import cnn
    from lab1.core.datasets.images import load_split
    from lab1.core.model_io import log_and_save_torch

    train_path = PATHS.processed / "train.npz"
    run.add_input(train_path)
    run.add_input(PATHS.normalization)
    images, labels = load_split(train_path)
    norm = read_json(PATHS.normalization)
    section = params.model_preparation.cnn
    augmentation = params.data_preprocessing.augmentation[params.dataset]

    def log_epoch(result) -> None:  # one request per epoch, not one per metric
        run.log(
            metrics={
                "train_loss": result.train_loss,
                "train_accuracy": result.train_accuracy,
                "val_loss": result.val_loss,
                "val_accuracy": result.val_accuracy,
                "images_per_second": result.images_per_second,
            },
            step=result.epoch,
        )

    started = time.perf_counter()
    model, history = cnn.train(
        images,
        labels,
        len(norm["classes"]),
        (norm["mean"], norm["std"]),
        section,
        augmentation,
        params.model_preparation.seed,
        on_epoch=log_epoch,
    )
    fit_seconds = time.perf_counter() - started
    best = max(history, key=lambda r: r.val_accuracy)
    with atomic_dir(PATHS.models) as tmp:
        # Logged from this process (the service does not import torch): the minutes of
        # training dwarf the few seconds of connecting to the store here.
        from lab1.core.tracking.store import connect

        connect()
        logged = log_and_save_torch(
            cnn.Probabilities(model),
            images[:2],
            tmp / PATHS.model_dir.name,
            norm["classes"],
            run.run_id,
            run.experiment_id,
        )
        info = {"model_uri": logged.model_uri, "model_id": logged.model_id}
        write_model_info(
            tmp / PATHS.model_info.name, run, info, "cnn", train_path, {"classes": norm["classes"]}
        )
    run.add_output(PATHS.models)
    run.log(
        metrics={
            "fit_s": fit_seconds,
            "best_epoch": best.epoch,
            "best_val_accuracy": best.val_accuracy,
            "epochs_run": len(history),
        },
        tags={"model_uri": info["model_uri"], "device": str(cnn.device())},
    )
    logger.info(
        "CNN trained in %.0f s; best epoch %d (val accuracy %.3f); logged as %s",
        fit_seconds,
        best.epoch,
        best.val_accuracy,
        info["model_uri"],
    )


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__).parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        params = params_from_args(args)
        with stage_run(STAGE, params) as run:
            if params.is_image:
                prepare_images(params, run)
            else:
                prepare_stations(params, run)
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
