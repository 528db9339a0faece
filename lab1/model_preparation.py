"""Stage 3/5: model preparation.

temperature: trains the scikit-learn classifier named in model_preparation.estimator on the TRAIN
stations' features to tell faulty days from normal ones, then joins it with the fitted
preprocessor into one model that takes raw reading windows (skops format: no unpickling).

Images: trains the CNN (model_preparation.cnn.<dataset>) on the train images, keeping the epoch
with the best validation accuracy; per-epoch losses and accuracies are MLflow step metrics. The
normalisation is the model's first layer, so it takes raw uint8 images (pt2 format).

Both are logged to MLflow with signature, input example and exact pip requirements.

Reads:  data/processed/train.parquet + preprocessor.skops, or train.npz + normalization.json
Writes: models/model/ (MLflow model; temperature: + reference_profile.json, the training data's
        profile for monitoring), models/model.json (run id, model URI)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lab1.core import distributed, stage
from lab1.core.io import atomic_contents, file_sha256, read_json, write_json
from lab1.core.kinds import tables
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.tracking.stage_run import StageRun

logger = logging.getLogger(__name__)


def prepare_model(params: Params) -> int:
    if distributed.is_follower():  # torchrun's ranks 1..N-1: train their share, record nothing
        return distributed.follow(params)
    with stage.run("model_preparation", params) as run:
        # models/ may be a mount point (a Docker volume): replaced entry by entry, model.json last.
        with atomic_contents(PATHS.models, last=PATHS.model_info.name) as tmp:
            if params.is_image:
                info = train_cnn(params, run, tmp / PATHS.model_dir.name)
            else:
                info = train_estimator(params, run, tmp / PATHS.model_dir.name)
            # models/model.json: which run logged the model and where it is (stages 4-5 read it).
            ids = {"run_id": run.run_id, "pipeline_run_id": run.pipeline_run_id}
            write_json(tmp / PATHS.model_info.name, {**ids, **info})
        run.log_output(PATHS.models)
    return 0


def train_estimator(params: Params, run: StageRun, model_dir: Path) -> dict[str, Any]:
    from lab1.core.processed import CLASS_NAMES, load_preprocessor, read_split

    section = params.model_preparation
    train_path = PATHS.processed_table("train")
    run.log_input(train_path)
    run.log_input(PATHS.preprocessor)
    train = read_split(train_path)
    started = time.perf_counter()
    # The estimator learns from the features stage 2 computed; the model it returns is the
    # preprocessor and the estimator in one Pipeline, which takes raw reading windows.
    model = tables.train(train, load_preprocessor(PATHS.preprocessor), section)
    fit_seconds = time.perf_counter() - started
    # What the model learned from, kept with it: monitoring compares served traffic with this.
    profile = tables.reference_profile(model, train, params.data_preprocessing)
    example, name = tables.input_example(train), params.logged_model_name
    info = run.log_sklearn_model(model, example, model_dir, list(CLASS_NAMES), name, profile)
    train_accuracy = tables.accuracy(model, train)
    run.log_metrics({"fit_s": fit_seconds, "train_accuracy": train_accuracy})
    run.set_tags({"model_uri": info["model_uri"]})
    logger.info(
        "%s trained in %.2f s, train accuracy %.3f", section.estimator, fit_seconds, train_accuracy
    )
    return {**info, "estimator": section.estimator, "train_digest": file_sha256(train_path)}


def train_cnn(params: Params, run: StageRun, model_dir: Path) -> dict[str, Any]:
    from lab1.core import cnn  # imports torch: only for images
    from lab1.core.datasets.images import load_split

    train_path = PATHS.processed_images("train")
    run.log_input(train_path)
    run.log_input(PATHS.normalization)
    run.log_params(distributed.run_params(params.cnn.batch_size))  # world_size, backend, ...
    images, labels = load_split(train_path)
    norm = read_json(PATHS.normalization)

    def log_epoch(epoch: cnn.EpochResult) -> None:  # one request per epoch, not one per metric
        run.log_metrics(epoch.metrics(), step=epoch.epoch)

    started = time.perf_counter()
    model, history = cnn.train(
        images,
        labels,
        len(norm["classes"]),
        (norm["mean"], norm["std"]),
        params.cnn,
        params.data_preprocessing.augmentation[params.dataset],
        params.model_preparation.seed,
        on_epoch=log_epoch,
    )
    fit_seconds = time.perf_counter() - started
    best = max(history, key=lambda r: r.val_accuracy)
    info = run.log_pytorch_model(
        cnn.Probabilities(model), images[:2], model_dir, norm["classes"], params.logged_model_name
    )
    run.log_metrics({"fit_s": fit_seconds, "epochs_run": len(history)})
    run.log_metrics({"best_epoch": best.epoch, "best_val_accuracy": best.val_accuracy})
    run.set_tags({"model_uri": info["model_uri"], "device": cnn.device()})
    logger.info("CNN trained in %.0f s; best: epoch %d (%s)", fit_seconds, best.epoch, best)
    digest = file_sha256(train_path)
    return {**info, "estimator": "cnn", "train_digest": digest, "classes": norm["classes"]}


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    args = stage.parser(__doc__).parse_args(argv)
    return stage.exit_code("model_preparation", args, prepare_model)


if __name__ == "__main__":
    raise SystemExit(stage.process(main))
