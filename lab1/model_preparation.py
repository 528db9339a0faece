"""Stage 3/5: model preparation.

temperature: the classifier model_preparation.estimator names, trained on the TRAIN stations'
features (faulty day or normal) and joined with the fitted preprocessor: one model that takes raw
reading windows (skops). Images: the CNN (model_preparation.cnn.<dataset>) at its best epoch on
validation (per-epoch MLflow step metrics), normalising in its first layer: it takes raw uint8
images (pt2). Both logged with mlflow.<flavour>.log_model: signature, example, pinned requirements.

Reads:  data/processed/train.parquet + preprocessor.skops, or train.npz + normalization.json
Writes: models/model/ (the MLflow model; temperature: + reference_profile.json, for monitoring),
        models/model.json (run id, model URI)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lab1.core import distributed, stage
from lab1.core.io import atomic_contents, file_sha256, read_json, write_json
from lab1.core.kinds import images, tables
from lab1.core.params import Params
from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)


def prepare_model(params: Params) -> int:
    if distributed.is_follower():  # torchrun's ranks 1..N-1: train their share, record nothing
        return images.follow_rank0(params)
    import mlflow  # imported for the work, not for --help

    with stage.run("model_preparation", params) as run:
        mlflow.log_params(run.params)
        # models/ may be a mount point (a Docker volume): replaced entry by entry, model.json last.
        with atomic_contents(PATHS.models, last=PATHS.model_info.name) as tmp:
            train = train_cnn if params.is_image else train_estimator
            info = train(params, run, tmp / PATHS.model_dir.name)
            # models/model.json: which run logged the model and where it is (stages 4-5 read it).
            ids = {"run_id": run.run_id, "pipeline_run_id": run.pipeline_run_id, **info}
            write_json(tmp / PATHS.model_info.name, ids)
        mlflow.log_input(run.dataset(PATHS.models, "output"), context="output")
    return 0


def train_estimator(params: Params, run: stage.StageRun, model_dir: Path) -> dict[str, Any]:
    import mlflow

    from lab1.core.model_io import keep_copy, sklearn_options
    from lab1.core.processed import CLASS_NAMES, load_preprocessor, read_split

    section, train_path = params.model_preparation, PATHS.processed_table("train")
    mlflow.log_input(run.dataset(train_path), context="input")
    mlflow.log_input(run.dataset(PATHS.preprocessor), context="input")
    train = read_split(train_path)
    started = time.perf_counter()
    # One Pipeline (stage 2's preprocessor + the estimator), which takes raw reading windows.
    model = tables.train(train, load_preprocessor(PATHS.preprocessor), section)
    fit_seconds, train_accuracy = time.perf_counter() - started, tables.accuracy(model, train)
    # skops (no pickle); models/model/: a copy of what was logged + the training data's profile.
    started, example = time.perf_counter(), tables.input_example(train)
    with sklearn_options(model, example, list(CLASS_NAMES)) as options:
        logged = mlflow.sklearn.log_model(model, name=params.logged_model_name, **options)
    keep_copy(logged, model_dir)
    log_model_s = time.perf_counter() - started
    profile = tables.write_reference_profile(model, train, params.data_preprocessing, model_dir)
    mlflow.MlflowClient().log_model_artifact(logged.model_id, str(profile))
    info = {"model_uri": logged.model_uri, "model_id": logged.model_id}
    mlflow.log_metrics({"fit_s": fit_seconds, "log_model_s": log_model_s,
                        "train_accuracy": train_accuracy})  # fmt: skip
    mlflow.set_tag("model_uri", info["model_uri"])
    logger.info("%s trained in %.2f s, train accuracy %.3f", section.estimator, fit_seconds,
                train_accuracy)  # fmt: skip
    return {**info, "estimator": section.estimator, "train_digest": file_sha256(train_path)}


def train_cnn(params: Params, run: stage.StageRun, model_dir: Path) -> dict[str, Any]:
    import mlflow

    from lab1.core import cnn  # imports torch: only for images
    from lab1.core.datasets.images import load_split
    from lab1.core.model_io import keep_copy, torch_options

    train_path = PATHS.processed_images("train")
    mlflow.log_input(run.dataset(train_path), context="input")
    mlflow.log_input(run.dataset(PATHS.normalization), context="input")
    mlflow.log_params(distributed.run_params(params.cnn.batch_size))  # world_size, backend, ...
    (images, labels), norm = load_split(train_path), read_json(PATHS.normalization)
    started = time.perf_counter()
    model, history = cnn.train(
        images, labels, len(norm["classes"]), (norm["mean"], norm["std"]), params.cnn,
        params.data_preprocessing.augmentation[params.dataset], params.model_preparation.seed,
        on_epoch=lambda epoch: mlflow.log_metrics(epoch.metrics(), step=epoch.epoch),  # one call
    )  # fmt: skip
    fit_seconds, best = time.perf_counter() - started, max(history, key=lambda r: r.val_accuracy)
    # In the pt2 format (torch.export: no pickle); models/model/ gets a copy of what was logged.
    served = cnn.Probabilities(model).cpu().eval()
    options = torch_options(served, images[:2], norm["classes"])
    logged = mlflow.pytorch.log_model(served, name=params.logged_model_name, **options)
    keep_copy(logged, model_dir)
    info = {"model_uri": logged.model_uri, "model_id": logged.model_id}
    mlflow.log_metrics({"fit_s": fit_seconds, "epochs_run": len(history), "best_epoch": best.epoch,
                        "best_val_accuracy": best.val_accuracy})  # fmt: skip
    mlflow.set_tags({"model_uri": info["model_uri"], "device": cnn.device()})
    logger.info("CNN trained in %.0f s; best: epoch %d (%s)", fit_seconds, best.epoch, best)
    return {**info, "estimator": "cnn", "train_digest": file_sha256(train_path),
            "classes": norm["classes"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    args = stage.parser(__doc__).parse_args(argv)
    return stage.exit_code("model_preparation", args, prepare_model)


if __name__ == "__main__":
    raise SystemExit(stage.process(main))
