"""Loading a model never runs code from its file: crafted skops files (a gadget named exactly, a
gadget under the sklearn. prefix), a cloudpickle payload and a pickled PyTorch model are each
refused, in-process and in the service, and the command they carry never runs (its marker file
is never created). Each gadget is first shown to be real: given the trust it asks for, it runs.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io

from lab1.core import model_io
from lab1.core.errors import DataError
from tests.project import changed, preprocessing

GADGETS = {
    # subprocess.check_output under its own name, and under scikit-learn's (the name a
    # "starts with sklearn." rule let through).
    "exact name": ("subprocess", "check_output"),
    "sklearn prefix": ("sklearn.utils._testing", "check_output"),
}


def gadget_file(module: str, name: str, marker: Path) -> bytes:
    """A skops file whose top object is ``module.name(["touch", marker])``: skops' constructor
    node calls the named type with the stored arguments."""
    stored = skops.io.dumps((["touch", str(marker)],))
    schema = json.loads(zipfile.ZipFile(io.BytesIO(stored)).read("schema.json"))
    top = {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "__id__": 1,
        "content": {k: v for k, v in schema.items() if k not in ("protocol", "_skops_version")},
        "protocol": schema["protocol"],
        "_skops_version": schema["_skops_version"],
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps(top))
    return out.getvalue()


class Payload:
    """Unpickling this runs `touch marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.check_output, (["touch", str(self.marker)],))


def sklearn_model_folder(folder: Path, serialization_format: str) -> Path:
    """A real MLflow sklearn model folder (MLmodel, requirements) in ``serialization_format``."""
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    mlflow.sklearn.save_model(
        model,
        folder,
        serialization_format=serialization_format,
        pip_requirements=["scikit-learn"],
        input_example=pd.DataFrame({"x": [0.5]}),
        **({"skops_trusted_types": []} if serialization_format == "skops" else {}),
    )
    return folder


def crafted_skops_model(folder: Path, gadget: bytes) -> Path:
    """An MLflow sklearn (skops) model folder whose model file is ``gadget``."""
    sklearn_model_folder(folder, "skops")
    (folder / "model.skops").write_bytes(gadget)
    return folder


def cloudpickle_model(folder: Path, marker: Path) -> Path:
    """An MLflow sklearn model folder stored with cloudpickle, its pickle replaced by a payload."""
    sklearn_model_folder(folder, "cloudpickle")
    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return folder


@pytest.mark.parametrize("kind", sorted(GADGETS))
def test_a_skops_gadget_is_real_and_is_refused_before_it_runs(kind, tmp_path):
    module, name = GADGETS[kind]
    marker = tmp_path / "ran"
    gadget = gadget_file(module, name, marker)
    skops.io.loads(gadget, trusted=[f"{module}.{name}"])  # trusted, it runs: the gadget is real
    assert marker.exists()
    marker.unlink()

    (tmp_path / "gadget.skops").write_bytes(gadget)
    with pytest.raises(DataError, match=f"outside the trust list: {module}.{name}"):
        model_io.load_skops(tmp_path / "gadget.skops")
    with pytest.raises(DataError, match="outside the trust list"):
        model_io.load_model(crafted_skops_model(tmp_path / "model", gadget))
    assert not marker.exists()


def test_a_cloudpickle_model_is_refused_unopened(tmp_path):
    marker = tmp_path / "ran"
    folder = cloudpickle_model(tmp_path / "model", marker)
    with pytest.raises(DataError, match="a pickled model; this project loads only skops or torch"):
        model_io.load_model(folder)
    assert not marker.exists()
    pickle.loads((folder / "model.pkl").read_bytes())  # the payload is real: unpickled, it runs
    assert marker.exists()


def test_a_registered_pickled_model_is_refused_through_its_uri(tmp_path, monkeypatch):
    """models:/ URIs no longer go through mlflow.sklearn.load_model (which unpickles)."""
    import mlflow

    from lab1.core.mlflow_ui import experiment_id
    from lab1.core.tracking import connect

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    marker = tmp_path / "ran"
    folder = cloudpickle_model(tmp_path / "model", marker)
    # The project's experiment keeps its artifacts beside the store (MLflow's default one, in
    # ./mlruns: this crafted model was once left in the checkout).
    with mlflow.start_run(experiment_id=experiment_id(connect(), "model-safety")) as run:
        mlflow.log_artifacts(str(folder), "model")
    with pytest.raises(DataError, match="a pickled model"):
        model_io.load_model(f"runs:/{run.info.run_id}/model")
    assert not marker.exists()


@pytest.mark.images  # torch: the integration tier installs it
def test_a_pickled_torch_model_is_refused_unopened(tmp_path):
    import mlflow.pytorch
    import torch

    folder = tmp_path / "model"
    mlflow.pytorch.save_model(
        torch.nn.Linear(2, 1), folder, serialization_format="pickle", pip_requirements=["torch"]
    )
    with pytest.raises(DataError, match="a pickled model"):
        model_io.load_torch_model(folder)


def test_every_model_the_project_trains_needs_only_the_trusted_types():
    """The exact-name list is complete: each estimator, binary and multi-class, with the
    preprocessor, asks skops for nothing beyond it."""
    from sklearn.pipeline import Pipeline

    from lab1.core.features import build_preprocessor, window_columns
    from lab1.core.models import build_estimator
    from lab1.core.params import ESTIMATORS, load_params
    from lab1.core.paths import PATHS

    rng = np.random.default_rng(0)
    columns = window_columns(7)
    x = pd.DataFrame(rng.normal(size=(200, len(columns))), columns=columns)
    params = load_params(PATHS.params).model_preparation
    found: set[str] = set()
    assert len(ESTIMATORS) == 3
    for estimator in ESTIMATORS:
        for classes in (2, 3):
            model = Pipeline(
                [
                    ("pre", build_preprocessor(preprocessing(window=7))),
                    ("est", build_estimator(changed(params, estimator=estimator))),
                ]
            ).fit(x, rng.integers(0, classes, len(x)))
            found |= set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    assert found <= model_io.TRUSTED_TYPES, found - model_io.TRUSTED_TYPES
    assert "lab1.core.features.WindowFeatures" in found


@pytest.mark.parametrize("kind", ["sklearn prefix", "cloudpickle"])
def test_the_service_refuses_a_crafted_model_and_nothing_runs(kind, tmp_path):
    from fastapi.testclient import TestClient

    from lab3.service.app import create_app
    from lab3.service.settings import Settings
    from tests.lab3.conftest import wait_for

    marker = tmp_path / "ran"
    if kind == "cloudpickle":
        folder = cloudpickle_model(tmp_path / "model", marker)
    else:
        folder = crafted_skops_model(tmp_path / "model", gadget_file(*GADGETS[kind], marker))
    settings = Settings(
        model_uri=str(folder), poll_interval_s=0.1, max_batch_rows=10, max_body_bytes=4096
    )
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/ready").json()["last_error"])
        ready = client.get("/ready")
        assert ready.status_code == 503
        reason = ready.json()["last_error"]
        assert "outside the trust list" in reason or "a pickled model" in reason, reason
        assert client.post("/predict", json={"instances": [[0.0]]}).status_code == 503
    assert not marker.exists()
