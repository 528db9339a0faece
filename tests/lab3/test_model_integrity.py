"""Valid but altered model files are not served: a registry version's files must have the sha256
recorded when it was logged, a loaded model must answer its own input example, and a broken
MLmodel file is a line that names it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab1.core.errors import DataError
from lab3.service.model import ModelInfo, load
from lab3.service.watcher import ModelWatcher
from tests.lab3.conftest import windows
from tests.project import preprocessing

NAME = "integrity-classifier"


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """A fresh store with version 1 of NAME (a real model, logged by model_io); yields the
    logged model's folder in the artifact store, where its files live."""
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from lab1.core import registry
    from lab1.core.features import build_preprocessor
    from lab1.core.mlflow_ui import experiment_id
    from lab1.core.model_io import keep_copy, sklearn_options
    from lab1.core.tracking import connect

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    x, y = windows(200, seed=3)
    model = Pipeline(
        [
            ("preprocess", build_preprocessor(preprocessing(window=7))),
            ("classify", LogisticRegression()),
        ]
    ).fit(x, y)
    client = connect()
    experiment = experiment_id(client, "integrity-tests")
    with mlflow.start_run(experiment_id=experiment):  # as model_preparation does
        with sklearn_options(model, x.head(3), ["normal", "faulty"]) as options:
            info = mlflow.sklearn.log_model(model, name="model", **options)
        keep_copy(info, tmp_path / "local")
    registry.register(info.model_uri, NAME, {})
    location = client.get_logged_model(info.model_id).artifact_location
    return Path(location.removeprefix("file://")), model


def served_or_why(uri: str) -> tuple[object, str | None]:
    watcher = ModelWatcher(uri, 0.1)
    watcher.check()
    return watcher.current, watcher.last_error


def test_a_registry_model_with_a_changed_file_is_refused_naming_the_file(registered):
    import skops.io

    from lab1.core.model_io import load_model

    stored, model = registered
    served, error = served_or_why(f"models:/{NAME}/1")
    assert served is not None and error is None, error  # as logged: served
    # Altered values in a file that is still valid (a model the trust list admits): the
    # classifier's weights flipped. It loads, and would answer every request wrongly.
    model.named_steps["classify"].coef_ *= -1
    skops.io.dump(model, stored / "model.skops")
    served, error = served_or_why(f"models:/{NAME}/1")
    assert served is None
    assert f"models:/{NAME}/1: file model.skops was changed since the model was logged" in (
        error or ""
    ), error
    # Every other loader of registry models checks the same (lab5's quality suites use this).
    with pytest.raises(DataError, match=r"file model\.skops was changed"):
        load_model(f"models:/{NAME}/1")


def test_a_model_that_fails_on_its_own_input_example_is_not_served(models, tmp_path):
    """A file whose classifier was swapped for another trusted class (a regressor: no
    predict_proba) loads; the service refuses it rather than answer every request with 500."""
    import skops.io
    from sklearn.linear_model import LinearRegression

    from lab1.core.model_io import load_model

    folder = tmp_path / "swapped"
    shutil.copytree(models.folders["1"], folder)
    model = load_model(folder)
    x, y = windows(50, seed=4)
    regressor = LinearRegression().fit(model.named_steps["preprocess"].transform(x), y)
    model.steps[-1] = ("classify", regressor)
    skops.io.dump(model, folder / "model.skops")
    with pytest.raises(DataError, match=r"fails on its own input example \(AttributeError"):
        load(str(folder), ModelInfo(uri="swapped"))


@pytest.mark.parametrize(("content", "said"), [("", "empty"), ("- a\n- b\n", "a YAML list")])
def test_a_broken_mlmodel_file_is_a_line_that_names_it(models, tmp_path, content, said):
    folder = tmp_path / "model"
    shutil.copytree(models.folders["1"], folder)
    (folder / "MLmodel").write_text(content)
    with pytest.raises(DataError) as refused:
        load(str(folder), ModelInfo(uri=str(folder)))
    assert str(refused.value) == f"{folder}/MLmodel: {said}, not an MLflow model description"
