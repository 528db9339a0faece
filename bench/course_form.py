"""One stage of the course-form floor (bench/pipeline_bench.py runs the five, one process each).

  .venv/bin/python bench/course_form.py STAGE WORKDIR TRACKING_URI PARENT_RUN_ID

The course's own form with no project machinery: a bare script per stage that imports what it
needs, MLflow included, does the stage's work with the library's ML functions, hands files to the
next stage, and makes the MLflow calls a stage makes (set_experiment, a child run of the parent
with params, an input dataset, metrics; the model logged with skops and explicit requirements; a
registry version and the champion alias). What it leaves out: checks of params and inputs,
provenance, the gate's comparison, atomic writes, signals, one-line errors.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

started = time.perf_counter()
STAGE, WORK, URI, PARENT = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlflow  # noqa: E402
import mlflow.sklearn  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import skops.io  # noqa: E402
from mlflow.data.pandas_dataset import from_pandas  # noqa: E402

from lab1.core.model_io import TRUSTED_TYPES, load_skops  # noqa: E402  (exact names)
from lab1.core.params import load_params  # noqa: E402

params = load_params(ROOT / "params.yaml")
window = params.data_preprocessing.window
mlflow.set_tracking_uri(URI)
mlflow.set_experiment("course-form")


def windows(split: str) -> tuple[pd.DataFrame, np.ndarray]:
    from lab1.core.features import extract_windows, window_columns

    rows, labels = [], []
    for path in sorted((WORK / split).glob("*.csv")):
        frame = pd.read_csv(path, keep_default_na=False, na_values={"temperature": [""]})
        rows.append(extract_windows(frame["temperature"].to_numpy(float), window))
        labels.append(frame["is_faulty"].to_numpy()[window:-window])
    return pd.DataFrame(np.vstack(rows), columns=window_columns(window)), np.concatenate(labels)


with mlflow.start_run(run_name=STAGE, parent_run_id=PARENT):
    if STAGE == "data_creation":
        from lab1.core.datasets import temperature

        section = params.data_creation.temperature
        mlflow.log_params({"seed": params.data_creation.seed, "years": section.years})
        frames = temperature.generate(section, params.data_creation.seed)
        for split, named in temperature.split_by_station(frames, section.test_stations).items():
            (WORK / split).mkdir(parents=True, exist_ok=True)
            for name, frame in named.items():
                frame.to_csv(WORK / split / f"{name}.csv", index=False)
        mlflow.log_metrics({"stations": len(frames)})
    elif STAGE == "data_preprocessing":
        from lab1.core.features import build_preprocessor

        mlflow.log_params({"window": window})
        x_train, y_train = windows("train")
        mlflow.log_input(from_pandas(x_train, name="raw-train"), context="input")
        pre = build_preprocessor(params.data_preprocessing).fit(x_train)
        skops.io.dump(pre, WORK / "preprocessor.skops")
        x_train.assign(label=y_train).to_parquet(WORK / "train.parquet")
        x_test, y_test = windows("test")
        x_test.assign(label=y_test).to_parquet(WORK / "test.parquet")
        mlflow.log_metrics({"train_rows": len(x_train), "test_rows": len(x_test)})
    elif STAGE == "model_preparation":
        from sklearn.pipeline import Pipeline

        from lab1.core.models import build_estimator

        mlflow.log_params({"estimator": params.model_preparation.estimator})
        train = pd.read_parquet(WORK / "train.parquet")
        mlflow.log_input(from_pandas(train, name="train"), context="input")
        x, y = train.drop(columns="label"), train["label"]
        pre = load_skops(WORK / "preprocessor.skops")
        estimator = build_estimator(params.model_preparation).fit(pre.transform(x), y)
        model = Pipeline([("preprocess", pre), ("classify", estimator)])
        skops.io.dump(model, WORK / "model.skops")
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops", input_example=x.head(2),
            skops_trusted_types=sorted(TRUSTED_TYPES),
            pip_requirements=["mlflow", "scikit-learn", "skops"],
        )  # fmt: skip
        (WORK / "model_uri").write_text(info.model_uri)
        mlflow.log_metrics({"train_accuracy": float((model.predict(x) == y).mean())})
    elif STAGE == "model_testing":
        from lab1.core.evaluation import classification_metrics, plot_confusion_matrix

        test = pd.read_parquet(WORK / "test.parquet")
        mlflow.log_input(from_pandas(test, name="test"), context="input")
        model = load_skops(WORK / "model.skops")
        x, y = test.drop(columns="label"), test["label"].to_numpy()
        proba = model.predict_proba(x)[:, 1]
        threshold = params.model_testing.threshold
        metrics = classification_metrics(y, proba, threshold)
        plot_confusion_matrix(y, (proba >= threshold).astype(int), ["normal", "faulty"],
                              WORK / "cm.png")  # fmt: skip
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        mlflow.log_artifact(str(WORK / "cm.png"))
    elif STAGE == "model_registration":
        version = mlflow.register_model((WORK / "model_uri").read_text(), "course-form-model")
        mlflow.MlflowClient().set_registered_model_alias(
            "course-form-model", "champion", version.version
        )
        mlflow.set_tags({"gate.decision": "promoted", "registered_version": version.version})
    mlflow.log_metrics({"duration_s": time.perf_counter() - started})
