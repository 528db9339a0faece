"""What the quality suite tests: the model under test (by URI) and the held-out test stations.

Whatever can be wrong with the suite's inputs (a model URI that does not exist, a model that
takes other inputs, an empty test set, missing data) raises QualityInputError with one line;
``or_exit`` turns it into one error line and exit code 4 instead of a traceback per test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from lab1.core.errors import PipelineError, one_line
from lab1.core.features import extract_windows, window_columns
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.processed import LABEL

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # models:/, runs:/, file:, s3:, ...


class QualityInputError(PipelineError):
    """The suite cannot start: its model or its data is unusable (one line)."""


def stop(message: str) -> NoReturn:
    """End the pytest session with one line and exit code 4 (pytest's usage error)."""
    import pytest

    pytest.exit(f"lab5 quality: {message}", returncode=pytest.ExitCode.USAGE_ERROR)


def or_exit(load: Callable[[], Any]) -> Any:
    """Run ``load``; a PipelineError (bad model or data) ends the session via ``stop``."""
    try:
        return load()
    except PipelineError as exc:
        stop(str(exc))


def default_model_uri(params: Params) -> str:
    """The champion of params.yaml's dataset, e.g. models:/temperature-classifier@champion."""
    from lab1.core.registry import CHAMPION

    return f"models:/{params.registered_model_name}@{CHAMPION}"


def model_location(uri: str) -> str | Path:
    """``uri`` as MLflow takes it: a URI stays a string; anything else is a local model folder."""
    return uri if SCHEME.match(uri) else Path(uri).resolve()


def use_project_store(location: str | Path) -> None:
    """Point MLflow at MLFLOW_TRACKING_URI or the project's SQLite store (read only: a missing
    embedded store is an error here, never created)."""
    import mlflow

    from lab1.core.tracking import is_embedded, tracking_uri

    uri = tracking_uri()
    needs_store = isinstance(location, str) and location.startswith(("models:", "runs:"))
    if needs_store and is_embedded(uri) and not Path(uri.removeprefix("sqlite:///")).exists():
        raise QualityInputError(
            f"{location}: no MLflow store at {uri.removeprefix('sqlite:///')} "
            "(run `bash pipeline.sh` first, or set MLFLOW_TRACKING_URI)"
        )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def check_inputs(location: str | Path, expected: list[str]) -> None:
    """Refuse a model whose input signature is not the reading windows ``expected``."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        # Model.load reads only the MLmodel file; get_model_info would also look the model up
        # in the tracking store, which a folder copied from another project is not in.
        signature = Model.load(str(location)).signature
    except (MlflowException, OSError) as exc:
        raise QualityInputError(f"{location}: cannot load the model ({one_line(exc)})") from None
    if signature is None:
        raise QualityInputError(f"{location}: the model has no input signature to check")
    names = signature.inputs.input_names() if signature.inputs.has_input_names() else []
    if names != expected:
        if signature.inputs.is_tensor_spec():
            found = "a tensor (an image model?)"
        else:
            shown = ", ".join(map(str, names[:3])) + (" ..." if len(names) > 3 else "")
            found = f"{len(names)} columns ({shown})"
        raise QualityInputError(
            f"{location}: the model takes {found}, but the test data has {len(expected)} readings "
            f"per row ({expected[0]} .. {expected[-1]}; params.yaml data_preprocessing.window)"
        )


def load_model(location: str | Path) -> Any:
    """The model's scikit-learn Pipeline (raw reading windows in)."""
    from lab1.core.model_io import load_model as load

    model = load(location)  # DataError (a PipelineError) names the location
    if not hasattr(model, "predict_proba"):
        raise QualityInputError(f"{location}: the model has no predict_proba")
    return model


@dataclass(frozen=True)
class HeldOut:
    """The test stations as the model sees them: one row per judged day."""

    inputs: pd.DataFrame  # reading windows, columns t_m7 .. t_p7
    labels: np.ndarray  # 1 = faulty day
    stations: np.ndarray
    # True where the day and both its neighbours are normal: a spike injected there is the only
    # fault nearby (whole fault-free windows are too rare to test on, ~1% of days).
    calm: np.ndarray


def read_test_frames(dataset: str) -> list[pd.DataFrame]:
    """The raw test station frames, after checking the manifest and each file's schema
    (DataError, a PipelineError, names the file)."""
    from lab1.core.kinds import checked_manifest
    from lab1.core.kinds.tables import read_raw

    if dataset != "temperature":
        raise QualityInputError(
            f"params.yaml: dataset={dataset!r}; the quality suite tests the temperature model"
        )
    return read_raw(PATHS.raw, checked_manifest(PATHS.raw, dataset))["test"]


def held_out(frames: list[pd.DataFrame], window: int) -> HeldOut:
    """Window the raw frames exactly as data_preprocessing does (its own function)."""
    from lab1.core.kinds.tables import to_windows

    rows = to_windows(frames, window)
    if rows.empty:
        raise QualityInputError(
            f"{PATHS.raw / 'test'}: empty test set (no day has the {2 * window + 1} readings "
            "its window needs)"
        )
    centre = slice(window - 1, window + 2)
    calm = [
        extract_windows(frame[LABEL].to_numpy(dtype=float), window)[:, centre].sum(axis=1) == 0
        for frame in frames
    ]
    return HeldOut(
        inputs=rows[window_columns(window)],
        labels=rows[LABEL].to_numpy(dtype=int),
        stations=rows["station"].to_numpy(),
        calm=np.concatenate(calm),
    )
