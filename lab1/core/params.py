"""Load params.yaml, apply ``-S section.key=value`` overrides, validate into frozen pydantic models.

params.yaml is the only home of parameters and of what each means (its comments): these models
declare names, types and limits but no defaults, so the code never disagrees with the file. Every
problem is found before any work and reported in one line naming the file, key and value.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from lab1.core.errors import ParamsError, one_line
from lab1.core.params_file import (
    DISTINCT,
    PROBABILITY,
    RANGE,
    above,
    apply_override,
    at_least,
    between,
    iso_date,
    key,
    one_error,
    one_of,
    problem,
    read_yaml,
    subset_of,
)

POSITIVE_INT = Annotated[int, at_least(1)]
SEED = Annotated[int, at_least(0)]
DATASETS = ("temperature", "cifar10", "fashion_mnist")
IMAGE_DATASETS = ("cifar10", "fashion_mnist")
FAULT_KINDS = ("spike", "stuck", "drift", "missing")  # the sensor faults data_creation injects
MISSING_RULES = ("interpolate", "window_median")  # how features.py fills missing readings


class Section(BaseModel):
    """Exactly the keys declared, of exactly their types (an int is fine for a float), frozen.
    params.yaml's comments say what each key means."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class FaultParams(Section):
    fraction: Annotated[float, between(0, 0.6, low_open=True, high_open=True)]
    kinds: Annotated[list[str], DISTINCT, subset_of(FAULT_KINDS)]
    spike_c: Annotated[list[float], RANGE]
    stuck_days: Annotated[list[int], RANGE]
    drift_days: Annotated[list[int], RANGE]
    drift_c: Annotated[list[float], RANGE]
    missing_days: Annotated[list[int], RANGE]


class TemperatureParams(Section):
    years: POSITIVE_INT
    start_date: Annotated[str, iso_date]
    stations: Annotated[list[str], DISTINCT]
    test_stations: Annotated[list[str], DISTINCT]
    csv_path: str | None
    faults: FaultParams


class ImageSourceParams(Section):
    data_dir: str | None
    classes: Annotated[list[str] | None, DISTINCT]
    verify: bool
    max_train: Annotated[int | None, at_least(1)]
    max_test: Annotated[int | None, at_least(1)]


class DataCreationParams(Section):
    seed: SEED
    temperature: TemperatureParams
    cifar10: ImageSourceParams
    fashion_mnist: ImageSourceParams


class AugmentationParams(Section):
    crop_padding: Annotated[int, at_least(0)]
    horizontal_flip: bool


class DataPreprocessingParams(Section):
    window: POSITIVE_INT
    missing_rule: Annotated[str, one_of(*MISSING_RULES)]
    augmentation: dict[str, AugmentationParams]


class LogisticRegressionParams(Section):
    C: Annotated[float, above(0)]
    max_iter: POSITIVE_INT


class RandomForestParams(Section):
    n_estimators: POSITIVE_INT
    max_depth: Annotated[int | None, at_least(1)]
    min_samples_leaf: POSITIVE_INT


class HistGradientBoostingParams(Section):
    max_iter: POSITIVE_INT
    learning_rate: Annotated[float, above(0)]
    max_leaf_nodes: Annotated[int, at_least(2)]
    l2_regularization: Annotated[float, at_least(0)]


class CnnParams(Section):
    epochs: POSITIVE_INT
    patience: POSITIVE_INT
    batch_size: POSITIVE_INT
    learning_rate: Annotated[float, above(0)]
    weight_decay: Annotated[float, at_least(0)]
    width: POSITIVE_INT
    dropout: Annotated[float, between(0, 1, high_open=True)]
    val_fraction: Annotated[float, between(0, 1, low_open=True, high_open=True)]


class CnnSection(Section):
    """model_preparation.cnn: the processes the CNN trains with, and one network per dataset."""

    processes: POSITIVE_INT
    cifar10: CnnParams
    fashion_mnist: CnnParams

    def __getitem__(self, dataset: str) -> CnnParams:
        section: CnnParams = getattr(self, dataset)
        return section


ESTIMATORS = ("logistic_regression", "random_forest", "hist_gradient_boosting")


class ModelPreparationParams(Section):
    estimator: Annotated[str, one_of(*ESTIMATORS)]
    seed: SEED
    logistic_regression: LogisticRegressionParams
    random_forest: RandomForestParams
    hist_gradient_boosting: HistGradientBoostingParams
    cnn: CnnSection

    def estimator_params(self) -> dict[str, Any]:
        """The hyper-parameters of the chosen estimator only."""
        return getattr(self, self.estimator).model_dump()


class ModelTestingParams(Section):
    threshold: Annotated[float, PROBABILITY]


class GateParams(Section):
    min_accuracy: Annotated[float, PROBABILITY]
    min_f1: Annotated[float, PROBABILITY]

    def settings(self) -> str:
        """The settings as one line, kept on every version the gate checked."""
        return ", ".join(f"{key} {value}" for key, value in sorted(self.model_dump().items()))


class RobustnessParams(Section):
    noise_c: Annotated[float, at_least(0)]
    max_accuracy_drop: Annotated[float, PROBABILITY]


class InvarianceParams(Section):
    noise_c: Annotated[float, at_least(0)]
    max_flipped_fraction: Annotated[float, PROBABILITY]


class DirectionParams(Section):
    spike_c: Annotated[float, above(0)]
    min_flagged_fraction: Annotated[float, PROBABILITY]


class DataCheckParams(Section):
    min_temperature_c: float
    max_temperature_c: float


class ModelQualityParams(Section):
    seed: SEED
    robustness: RobustnessParams
    invariance: InvarianceParams
    direction: DirectionParams
    data: DataCheckParams


class DriftParams(Section):
    ks_p_value: Annotated[float, PROBABILITY]
    psi: Annotated[float, above(0)]
    max_share: Annotated[float, PROBABILITY]


class ServingParams(Section):
    head_timeout_s: Annotated[float, above(0)]
    body_timeout_s: Annotated[float, above(0)]
    keep_alive_s: POSITIVE_INT
    max_connections: POSITIVE_INT


class MonitoringParams(Section):
    prediction_log: str
    rotate_mb: Annotated[float, above(0)]
    keep_files: POSITIVE_INT
    keep_days: Annotated[float, above(0)]
    max_pending_mb: Annotated[float, above(0)]
    window_days: Annotated[float, above(0)]
    min_rows: POSITIVE_INT
    drift: DriftParams
    max_missing_share: Annotated[float, PROBABILITY]


class TrackingParams(Section):
    experiment: str  # "{dataset}" is replaced by the dataset name
    registered_model: str  # likewise


class Params(Section):
    dataset: Annotated[str, one_of(*DATASETS)]
    data_creation: DataCreationParams
    data_preprocessing: DataPreprocessingParams
    model_preparation: ModelPreparationParams
    model_testing: ModelTestingParams
    model_registration: dict[str, GateParams]  # one quality gate per dataset
    model_quality: ModelQualityParams
    serving: ServingParams
    monitoring: MonitoringParams
    tracking: TrackingParams

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment.format(dataset=self.dataset)

    @property
    def registered_model_name(self) -> str:
        return self.tracking.registered_model.format(dataset=self.dataset)

    @property
    def logged_model_name(self) -> str:
        """model_preparation's logged model in MLflow: ``temperature-hist_gradient_boosting``."""
        return f"{self.dataset}-{'cnn' if self.is_image else self.model_preparation.estimator}"

    @property
    def is_image(self) -> bool:
        return self.dataset in IMAGE_DATASETS

    @property
    def cnn(self) -> CnnParams:  # model_preparation.cnn.<dataset>
        return self.model_preparation.cnn[self.dataset]

    @property
    def gate(self) -> GateParams:
        return self.model_registration[self.dataset]

    def resolved_yaml(self) -> str:
        """Every parameter as this run sees it (overrides applied, names filled in)."""
        tree = self.model_dump()
        names = {"experiment": self.experiment_name, "registered_model": self.registered_model_name}
        tree["tracking"].update(names)
        return yaml.safe_dump(tree, sort_keys=False)

    def digest(self) -> str:
        """A short, stable hash of all parameters (tags runs and model versions)."""
        canonical = json.dumps(self.model_dump(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _check_across(params: Params) -> list[tuple[str, str]]:
    """Problems that involve more than one key."""
    problems = []
    if params.dataset not in params.model_registration:
        problems.append(("model_registration", f"has no gate for dataset {params.dataset!r}"))
    if params.is_image and params.dataset not in params.data_preprocessing.augmentation:
        problems.append(("data_preprocessing.augmentation", f"has no entry for {params.dataset!r}"))
    if params.is_image:
        problems += _check_processes(params.model_preparation.cnn, params.dataset)
    temperature = params.data_creation.temperature
    outside = [s for s in temperature.test_stations if s not in temperature.stations]
    stations = "data_creation.temperature.test_stations"
    if outside:
        problems.append((stations, f"has {outside[0]!r}, which is not in stations"))
    elif len(temperature.test_stations) >= len(temperature.stations):
        problems.append((stations, "leaves no station to train on"))
    checks = params.model_quality.data
    if checks.min_temperature_c >= checks.max_temperature_c:
        problems.append(("model_quality.data", "min_temperature_c must be < max_temperature_c"))
    return problems


def _check_processes(cnn: CnnSection, dataset: str) -> list[tuple[str, str]]:
    """One training process per CPU at most (per GPU: lab1/core/distributed.py, which has torch
    at hand), and a batch that every process gets a share of."""
    cpus = len(os.sched_getaffinity(0))
    if cnn.processes > cpus:
        problem = f"{cnn.processes} is more than the {cpus} CPUs here"
        return [("model_preparation.cnn.processes", problem)]
    if cnn[dataset].batch_size < cnn.processes:
        batch = f"model_preparation.cnn.{dataset}.batch_size"
        return [
            (batch, f"{cnn[dataset].batch_size} cannot be split among {cnn.processes} processes")
        ]
    return []


def load_params(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read ``path``, apply ``section.key=value`` overrides, and validate types and meaning.
    All problems are reported in one ParamsError line naming the file (or the -S option), the
    key and the value; problems that only -S options caused are a UsageError (exit 2)."""
    try:
        raw = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({one_line(exc, whole=True)})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    overridden = {apply_override(raw, override, source=path) for override in overrides}
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        problems = [(key(e["loc"]), problem(e, _fields_at)) for e in exc.errors()]
    else:
        problems = _check_across(params)
    if problems:
        raise one_error(path, problems, overridden)
    return params


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` declares (in ``dict[str, Section]``, the dict's key)."""
    node: Any = Params
    parts = iter(loc)
    for part in parts:
        node = node.model_fields[part].annotation
        if getattr(node, "__origin__", None) is dict:
            node = node.__args__[1]
            next(parts, None)  # the dict's key (a dataset name): the section is the value
    return list(node.model_fields)
