"""Load params.yaml, apply ``-S section.key=value`` overrides, validate into frozen dataclasses.

params.yaml is the only home of parameters: these dataclasses declare names and types but no
default values, so the code can never disagree with the file. An unknown key, a missing key or a
wrong type fails at load time with one line naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from lab1.core.errors import ParamsError, one_line

DATASETS = ("temperature", "cifar10", "fashion_mnist")
IMAGE_DATASETS = ("cifar10", "fashion_mnist")


# --- data_creation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultParams:
    """Labelled sensor faults injected into the temperature series."""

    fraction: float  # target share of faulty days, so "always normal" scores ~1 - fraction
    kinds: list[str]  # any of: spike, stuck, drift, missing
    spike_c: list[float]  # [min, max] absolute jump of a spike, degrees C
    stuck_days: list[int]  # [min, max] length of a stuck-reading run
    drift_days: list[int]  # [min, max] length of a drift run
    drift_c: list[float]  # [min, max] offset reached at the end of a drift run, degrees C
    missing_days: list[int]  # [min, max] length of a missing-reading run


@dataclass(frozen=True)
class TemperatureParams:
    years: int
    start_date: str
    stations: list[str]  # station names from the built-in climate catalogue (or from csv_path)
    test_stations: list[str]  # stations held out for testing; never seen in training
    csv_path: str | None  # a CSV of real daily temperatures (date, station, temperature)
    faults: FaultParams


@dataclass(frozen=True)
class ImageSourceParams:
    """Where an image dataset comes from and which part of it to keep."""

    data_dir: str | None  # an existing copy; None = the data cache (data/cache), downloading once
    classes: list[str] | None  # class names to keep (relabelled 0..k-1 in this order); None = all
    verify: bool  # check torchvision's md5 sums (CIFAR-10); false only for a user-made folder
    max_train: int | None  # keep at most this many training images (quick runs, tests)
    max_test: int | None


@dataclass(frozen=True)
class DataCreationParams:
    seed: int
    temperature: TemperatureParams
    cifar10: ImageSourceParams
    fashion_mnist: ImageSourceParams


# --- later stages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentationParams:
    """Training-time augmentation of images (never applied to validation or test images)."""

    crop_padding: int  # pad by this many pixels, then crop randomly back to size; 0 = off
    horizontal_flip: bool


@dataclass(frozen=True)
class DataPreprocessingParams:
    window: int  # readings on each side of a day: the model sees 2 * window + 1 raw readings
    missing_rule: Literal["interpolate", "window_median"]
    augmentation: dict[str, AugmentationParams]  # per image dataset


@dataclass(frozen=True)
class LogisticRegressionParams:
    C: float
    max_iter: int


@dataclass(frozen=True)
class RandomForestParams:
    n_estimators: int
    max_depth: int | None
    min_samples_leaf: int


@dataclass(frozen=True)
class HistGradientBoostingParams:
    max_iter: int
    learning_rate: float
    max_leaf_nodes: int
    l2_regularization: float


@dataclass(frozen=True)
class CnnParams:
    """The convolutional network for the image datasets (lab1/core/cnn.py)."""

    epochs: int  # at most; training stops early when validation accuracy stalls
    patience: int  # epochs without a better validation accuracy before stopping
    batch_size: int
    learning_rate: float
    weight_decay: float
    width: int  # channels of the first conv block; later blocks double it
    dropout: float
    val_fraction: float  # share of the training images held out to pick the best epoch


@dataclass(frozen=True)
class ModelPreparationParams:
    estimator: Literal["logistic_regression", "random_forest", "hist_gradient_boosting"]
    seed: int
    logistic_regression: LogisticRegressionParams
    random_forest: RandomForestParams
    hist_gradient_boosting: HistGradientBoostingParams
    cnn: CnnParams  # used instead of `estimator` for the image datasets

    def estimator_params(self) -> dict[str, Any]:
        """The hyper-parameters of the chosen estimator only."""
        return dataclasses.asdict(getattr(self, self.estimator))


@dataclass(frozen=True)
class ModelTestingParams:
    threshold: float  # probability of "faulty" above which a day is flagged


@dataclass(frozen=True)
class GateParams:
    min_accuracy: float
    # F1 of the positive class (faulty day; the second of two image classes), or macro F1 for
    # more than two classes: a model that always answers the majority class fails it.
    min_f1: float
    max_drop_vs_best: float


@dataclass(frozen=True)
class RobustnessParams:
    noise_c: float  # sd of the extra sensor noise added to the test readings, degrees C
    max_accuracy_drop: float  # accuracy may fall by at most this much under that noise


@dataclass(frozen=True)
class InvarianceParams:
    noise_c: float  # sd of the small measurement noise a normal day's verdict must survive
    max_flipped_fraction: float  # share of normal days it may turn faulty


@dataclass(frozen=True)
class DirectionParams:
    spike_c: float  # size of the spike injected into a normal day, degrees C (both signs)
    min_flagged_fraction: float  # share of spiked days that must be flagged faulty


@dataclass(frozen=True)
class DataCheckParams:
    min_temperature_c: float  # a reading outside this range is a broken file, not weather
    max_temperature_c: float


@dataclass(frozen=True)
class ModelQualityParams:
    """lab5's quality suite of the temperature model (lab5/quality). Its minimum accuracy and
    F1 are the quality gate's (model_registration.temperature)."""

    seed: int
    robustness: RobustnessParams
    invariance: InvarianceParams
    direction: DirectionParams
    data: DataCheckParams


@dataclass(frozen=True)
class TrackingParams:
    experiment: str  # "{dataset}" is replaced by the dataset name
    registered_model: str  # likewise


@dataclass(frozen=True)
class Params:
    dataset: Literal["temperature", "cifar10", "fashion_mnist"]
    data_creation: DataCreationParams
    data_preprocessing: DataPreprocessingParams
    model_preparation: ModelPreparationParams
    model_testing: ModelTestingParams
    model_registration: dict[str, GateParams]  # one quality gate per dataset
    model_quality: ModelQualityParams
    tracking: TrackingParams

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment.format(dataset=self.dataset)

    @property
    def registered_model_name(self) -> str:
        return self.tracking.registered_model.format(dataset=self.dataset)

    @property
    def is_image(self) -> bool:
        return self.dataset in IMAGE_DATASETS

    @property
    def gate(self) -> GateParams:
        return self.model_registration[self.dataset]

    def section(self, name: str) -> dict[str, Any]:
        """One section as a plain dict (what a stage logs as its MLflow params)."""
        value = getattr(self, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return {name: value}

    def resolved_yaml(self) -> str:
        """Every parameter as this run sees it (overrides applied), as params.yaml text."""
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)

    def digest(self) -> str:
        """A short, stable hash of all parameters (tags runs and model versions)."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# --- loading ---------------------------------------------------------------------------------


def load_params(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read ``path``, apply ``section.key=value`` overrides, and validate.

    Raises ParamsError (one line, naming the file and key) on any problem.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({one_line(exc, whole=True)})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    for override in overrides:
        apply_override(raw, override, source=path)
    params = _build(Params, raw, path=str(path), where="")
    if params.dataset not in params.model_registration:
        raise ParamsError(f"{path}: model_registration has no gate for dataset {params.dataset!r}")
    if params.is_image and params.dataset not in params.data_preprocessing.augmentation:
        raise ParamsError(
            f"{path}: data_preprocessing.augmentation has no entry for {params.dataset!r}"
        )
    return params


def apply_override(raw: dict[str, Any], override: str, source: Path) -> None:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML (like DVC)."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ParamsError(f"-S {override!r}: expected section.key=value")
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
            where = ".".join(parts[: depth + 1])
            raise ParamsError(f"-S {override!r}: {source} has no key {where!r} (known: {known})")
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
        raise ParamsError(f"-S {override!r}: {source} has no key {key!r} (known: {known})")
    try:
        node[parts[-1]] = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        reason = one_line(exc, whole=True)
        raise ParamsError(f"-S {override!r}: value is not valid YAML ({reason})") from None


def _build(cls: type, data: Any, path: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: {where or 'top level'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ParamsError(
            f"{path}: unknown key {_join(where, unknown[0])!r} (known: {', '.join(names)})"
        )
    missing = [n for n in names if n not in data]
    if missing:
        raise ParamsError(f"{path}: missing key {_join(where, missing[0])!r}")
    values = {n: _coerce(hints[n], data[n], path, _join(where, n)) for n in names}
    return cls(**values)


def _coerce(hint: Any, value: Any, path: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, path, key)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(map(str, args))
            raise ParamsError(f"{path}: {key}={value!r} is not one of: {choices}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{path}: {key}={value!r} must be a mapping")
        return {name: _coerce(args[1], item, path, f"{key}.{name}") for name, item in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{path}: {key}={value!r} must be a list")
        return [_coerce(args[0], item, path, f"{key}[{i}]") for i, item in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        type(value) is not hint  # bool is an int subclass: reject True where an int is due
    ):
        raise ParamsError(f"{path}: {key}={value!r} must be {hint.__name__}")
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
