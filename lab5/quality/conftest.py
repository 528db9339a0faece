"""Fixtures of lab5's quality suite: the model under test, the held-out data, the settings.

    pytest lab5/quality                          the registry's champion (default dataset)
    pytest lab5/quality --model-uri models/model  a local model folder (the fresh candidate)
    pytest lab5/quality -m data_quality           only the data checks (no model needed)

The suite reads data/raw and data/processed of this project (lab1.core.paths) and its settings
from params.yaml (model_quality, and the gate's minimum accuracy and F1). If the model or the
data cannot be used, the session stops with one line naming the problem and exit code 4.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from lab1.core.params import ModelQualityParams, Params, load_params
from lab1.core.paths import PATHS
from lab5.quality import subject
from lab5.quality.subject import or_exit

Flagger = Callable[[Any], np.ndarray]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lab5", "lab5 model quality")
    group.addoption(
        "--model-uri",
        default=None,
        help="the model to test: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/NAME (NAME: "
        "the logged model's, e.g. temperature-hist_gradient_boosting) or a "
        "local model folder (default: models:/<params.yaml's registered model>@champion)",
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    from lab1.core.cli import store_name
    from lab1.core.tracking import tracking_uri

    return [
        f"lab5 quality: model {config.getoption('--model-uri') or 'the champion'}; "
        f"data {PATHS.raw}, {PATHS.processed}; registry {store_name(tracking_uri())}"
    ]


@pytest.fixture(scope="session")
def params() -> Params:
    return or_exit(lambda: load_params(PATHS.params))


@pytest.fixture(scope="session")
def quality(params: Params) -> ModelQualityParams:
    return params.model_quality


@pytest.fixture(scope="session")
def window(params: Params) -> int:
    return params.data_preprocessing.window


@pytest.fixture(scope="session")
def test_frames(params: Params):
    return or_exit(lambda: subject.read_test_frames(params.dataset))


@pytest.fixture(scope="session")
def held_out(test_frames, window: int) -> subject.HeldOut:
    return or_exit(lambda: subject.held_out(test_frames, window))


@pytest.fixture(scope="session")
def model_uri(request: pytest.FixtureRequest, params: Params) -> str:
    return request.config.getoption("--model-uri") or subject.default_model_uri(params)


@pytest.fixture(scope="session")
def model(model_uri: str, window: int, held_out: subject.HeldOut) -> Any:
    """The model under test, after checking it takes this data's reading windows."""
    from lab1.core.features import window_columns

    def load() -> Any:
        location = subject.model_location(model_uri)
        subject.use_project_store(location)
        subject.check_inputs(location, window_columns(window))
        return subject.load_model(location)

    return or_exit(load)


@pytest.fixture(scope="session")
def flag(model: Any, params: Params) -> Flagger:
    """Reading windows -> True where the model flags the day faulty (model_testing.threshold,
    as stage 4 judges it)."""
    threshold = params.model_testing.threshold

    def flagged(windows: Any) -> np.ndarray:
        return model.predict_proba(windows)[:, 1] >= threshold

    return flagged


@pytest.fixture(scope="session")
def flagged(flag: Flagger, held_out: subject.HeldOut) -> np.ndarray:
    """The model's verdicts on the unperturbed test days."""
    return flag(held_out.inputs)


@pytest.fixture
def rng(quality: ModelQualityParams) -> np.random.Generator:
    """A fresh generator per test: each test's perturbation is the same whatever else ran."""
    return np.random.default_rng(quality.seed)
