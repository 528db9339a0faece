"""Stage 3/5: model preparation.

Trains the scikit-learn classifier named in model_preparation.estimator on the TRAIN stations'
features to tell faulty days from normal ones, then joins it with the fitted preprocessor into
one model that takes raw reading windows. Saves it locally and logs it to MLflow (signature,
input example, exact pip requirements, skops format).

Reads:  data/processed/train.parquet, data/processed/preprocessor.skops
Writes: models/model/ (MLflow model), models/model.json (run id, model URI)
"""

from __future__ import annotations

import logging
import time

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.io import atomic_dir, file_sha256, write_json
from lab1.core.paths import PATHS
from lab1.core.tracking import parent_run_id, stage_run

STAGE = "model_preparation"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__).parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        import numpy as np
        from sklearn.pipeline import Pipeline

        from lab1.core.model_io import log_and_save
        from lab1.core.models import build_estimator
        from lab1.core.processed import (
            LABEL,
            feature_columns,
            input_columns,
            load_preprocessor,
            read_split,
        )

        params = params_from_args(args)
        section = params.model_preparation
        with stage_run(STAGE, params) as run:
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
                with run.timed():
                    info = log_and_save(model, example, tmp / PATHS.model_dir.name)
                write_json(
                    tmp / PATHS.model_info.name,
                    {
                        "run_id": run.run_id,
                        "pipeline_run_id": parent_run_id(),
                        "model_uri": info.model_uri,
                        "model_id": info.model_id,
                        "estimator": section.estimator,
                        "train_digest": file_sha256(train_path),
                    },
                )
            run.add_output(PATHS.models)
            run.log(
                metrics={"fit_s": fit_seconds, "train_accuracy": train_accuracy},
                tags={"model_uri": info.model_uri},
            )
            logger.info(
                "%s trained in %.2f s (train accuracy %.3f); logged as %s",
                section.estimator,
                fit_seconds,
                train_accuracy,
                info.model_uri,
            )
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
