"""Load params.yaml, apply ``-S section.key=value`` overrides, validate into frozen dataclasses.

params.yaml is the only home of parameters: these dataclasses declare names and types but no
default values, so the code can never disagree with the file. An unknown key, a missing key or a
wrong type fails at load time with one line naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from lab1.core.errors import ParamsError, UsageError, did_you_mean, one_line
from lab1.core.stages import STAGES

DATASETS = ("temperature", "cifar10", "fashion_mnist")
IMAGE_DATASETS = ("cifar10", "fashion_mnist")
FAULT_KINDS = ("spike", "stuck", "drift", "missing")  # the sensor faults data_creation injects


# --- checks of meaning, declared next to each field ------------------------------------------
# ``years: Annotated[int, at_least(1)]``: a check takes a field's value and returns what is wrong
# with it, or None. Types are checked first (_coerce), so a check sees a value of its field's
# type (or None where that is allowed).

Check = Callable[[Any], "str | None"]


def at_least(low: float) -> Check:
    return lambda v: None if v is None or v >= low else f"must be >= {low}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"must be > {low}"


def between(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Check:
    def check(v: float) -> str | None:
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return None if ok else f"must be in {left}{low}, {high}{right}"

    return check


PROBABILITY = between(0, 1)


def distinct(values: list[Any] | None) -> str | None:
    """A list that is not empty and names nothing twice."""
    if values is None:
        return None
    if not values:
        return "must not be empty"
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    return f"lists {', '.join(twice)} more than once" if twice else None


def subset_of(choices: tuple[str, ...]) -> Check:
    def check(values: list[str]) -> str | None:
        unknown = [v for v in values if v not in choices]
        if not unknown:
            return None
        hint = did_you_mean(unknown[0], choices)
        return f"has {unknown[0]!r}{hint} (choices: {', '.join(choices)})"

    return check


def min_max(pair: list[float]) -> str | None:
    """A [min, max] range with 0 < min <= max."""
    if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
        return "must be [min, max] with 0 < min <= max"
    return None


def iso_date(value: str) -> str | None:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return "is not a calendar date (YYYY-MM-DD)"
    return None


# --- data_creation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultParams:
    """Labelled sensor faults injected into the temperature series."""

    # target share of faulty days, so "always normal" scores ~1 - fraction
    fraction: Annotated[float, between(0, 0.6, low_open=True, high_open=True)]
    kinds: Annotated[list[str], distinct, subset_of(FAULT_KINDS)]
    spike_c: Annotated[list[float], min_max]  # [min, max] absolute jump of a spike, degrees C
    stuck_days: Annotated[list[int], min_max]  # [min, max] length of a stuck-reading run
    drift_days: Annotated[list[int], min_max]  # [min, max] length of a drift run
    # [min, max] offset reached at the end of a drift run, degrees C
    drift_c: Annotated[list[float], min_max]
    missing_days: Annotated[list[int], min_max]  # [min, max] length of a missing-reading run


@dataclass(frozen=True)
class TemperatureParams:
    years: Annotated[int, at_least(1)]
    start_date: Annotated[str, iso_date]
    # station names from the built-in climate catalogue (or from csv_path)
    stations: Annotated[list[str], distinct]
    # stations held out for testing; never seen in training
    test_stations: Annotated[list[str], distinct]
    csv_path: str | None  # a CSV of real daily temperatures (date, station, temperature)
    faults: FaultParams


@dataclass(frozen=True)
class ImageSourceParams:
    """Where an image dataset comes from and which part of it to keep."""

    data_dir: str | None  # an existing copy; None = the data cache (data/cache), downloading once
    # class names to keep (relabelled 0..k-1 in this order); None = all
    classes: Annotated[list[str] | None, distinct]
    verify: bool  # check torchvision's md5 sums (CIFAR-10); false only for a user-made folder
    # keep at most this many training images (quick runs, tests)
    max_train: Annotated[int | None, at_least(1)]
    max_test: Annotated[int | None, at_least(1)]


@dataclass(frozen=True)
class DataCreationParams:
    seed: Annotated[int, at_least(0)]
    temperature: TemperatureParams
    cifar10: ImageSourceParams
    fashion_mnist: ImageSourceParams


# --- later stages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentationParams:
    """Training-time augmentation of images (never applied to validation or test images)."""

    # pad by this many pixels, then crop randomly back to size; 0 = off
    crop_padding: Annotated[int, at_least(0)]
    horizontal_flip: bool


@dataclass(frozen=True)
class DataPreprocessingParams:
    # readings on each side of a day: the model sees 2 * window + 1 raw readings
    window: Annotated[int, at_least(1)]
    missing_rule: Literal["interpolate", "window_median"]
    augmentation: dict[str, AugmentationParams]  # per image dataset


@dataclass(frozen=True)
class LogisticRegressionParams:
    C: Annotated[float, above(0)]
    max_iter: Annotated[int, at_least(1)]


@dataclass(frozen=True)
class RandomForestParams:
    n_estimators: Annotated[int, at_least(1)]
    max_depth: Annotated[int | None, at_least(1)]
    min_samples_leaf: Annotated[int, at_least(1)]


@dataclass(frozen=True)
class HistGradientBoostingParams:
    max_iter: Annotated[int, at_least(1)]
    learning_rate: Annotated[float, above(0)]
    max_leaf_nodes: Annotated[int, at_least(2)]
    l2_regularization: Annotated[float, at_least(0)]


@dataclass(frozen=True)
class CnnParams:
    """The convolutional network for the image datasets (lab1/core/cnn.py)."""

    epochs: Annotated[int, at_least(1)]  # at most; stops early when validation accuracy stalls
    # epochs without a better validation accuracy before stopping
    patience: Annotated[int, at_least(1)]
    batch_size: Annotated[int, at_least(1)]
    learning_rate: Annotated[float, above(0)]
    weight_decay: Annotated[float, at_least(0)]
    width: Annotated[int, at_least(1)]  # channels of the first conv block; later blocks double it
    dropout: Annotated[float, between(0, 1, high_open=True)]
    # share of the training images held out to pick the best epoch
    val_fraction: Annotated[float, between(0, 1, low_open=True, high_open=True)]


@dataclass(frozen=True)
class ModelPreparationParams:
    estimator: Literal["logistic_regression", "random_forest", "hist_gradient_boosting"]
    seed: Annotated[int, at_least(0)]
    logistic_regression: LogisticRegressionParams
    random_forest: RandomForestParams
    hist_gradient_boosting: HistGradientBoostingParams
    cnn: dict[str, CnnParams]  # per image dataset, used instead of `estimator`

    def estimator_params(self) -> dict[str, Any]:
        """The hyper-parameters of the chosen estimator only."""
        return dataclasses.asdict(getattr(self, self.estimator))


@dataclass(frozen=True)
class ModelTestingParams:
    threshold: Annotated[float, PROBABILITY]  # probability of "faulty" above which a day is flagged


@dataclass(frozen=True)
class GateParams:
    min_accuracy: Annotated[float, PROBABILITY]
    # F1 of the positive class (faulty day; the second of two image classes), or macro F1 for
    # more than two classes: a model that always answers the majority class fails it.
    min_f1: Annotated[float, PROBABILITY]
    max_drop_vs_best: Annotated[float, PROBABILITY]


@dataclass(frozen=True)
class RobustnessParams:
    # sd of the extra sensor noise added to the test readings, degrees C
    noise_c: Annotated[float, at_least(0)]
    # accuracy may fall by at most this much under that noise
    max_accuracy_drop: Annotated[float, PROBABILITY]


@dataclass(frozen=True)
class InvarianceParams:
    # sd of the small measurement noise a normal day's verdict must survive
    noise_c: Annotated[float, at_least(0)]
    max_flipped_fraction: Annotated[float, PROBABILITY]  # share of normal days it may turn faulty


@dataclass(frozen=True)
class DirectionParams:
    # size of the spike injected into a normal day, degrees C (both signs)
    spike_c: Annotated[float, above(0)]
    # share of spiked days that must be flagged faulty
    min_flagged_fraction: Annotated[float, PROBABILITY]


@dataclass(frozen=True)
class DataCheckParams:
    min_temperature_c: float  # a reading outside this range is a broken file, not weather
    max_temperature_c: float


@dataclass(frozen=True)
class ModelQualityParams:
    """lab5's quality suite of the temperature model (lab5/quality). Its minimum accuracy and
    F1 are the quality gate's (model_registration.temperature)."""

    seed: Annotated[int, at_least(0)]
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
    def logged_model_name(self) -> str:
        """What model_preparation's logged model is called in MLflow (its Models page, and
        ``runs:/<run id>/<name>``): the dataset and the model, e.g.
        ``temperature-hist_gradient_boosting`` or ``cifar10-cnn``."""
        model = "cnn" if self.is_image else self.model_preparation.estimator
        return f"{self.dataset}-{model}"

    @property
    def is_image(self) -> bool:
        return self.dataset in IMAGE_DATASETS

    @property
    def cnn(self) -> CnnParams:
        """The CNN's settings for this (image) dataset: model_preparation.cnn.<dataset>."""
        return self.model_preparation.cnn[self.dataset]

    @property
    def gate(self) -> GateParams:
        return self.model_registration[self.dataset]

    def used_by(self, stage: str) -> dict[str, Any]:
        """The parameters ``stage``'s work reads for this dataset, as a plain dict: what its
        MLflow run shows (a gradient-boosting run lists no logistic-regression or CNN settings;
        a temperature run no CIFAR-10 source)."""
        data = dataclasses.asdict(self)
        section = data[stage]
        if stage == "data_creation":
            return {"seed": section["seed"], self.dataset: section[self.dataset]}
        if stage == "data_preprocessing":
            if self.is_image:
                return {"augmentation": {self.dataset: section["augmentation"][self.dataset]}}
            return {k: v for k, v in section.items() if k != "augmentation"}
        if stage == "model_preparation":
            if self.is_image:
                return {"cnn": {self.dataset: section["cnn"][self.dataset]}}
            chosen = section["estimator"]
            return {"estimator": chosen, "seed": section["seed"], chosen: section[chosen]}
        if stage == "model_registration":
            return {self.dataset: section[self.dataset], "tracking": data["tracking"]}
        return dict(section)

    def run_params(self, stage: str | None = None) -> dict[str, str]:
        """The MLflow params of ``stage``'s run: the dataset and what ``used_by(stage)`` lists,
        flattened (``hist_gradient_boosting.max_iter``). With no stage, the pipeline's (parent)
        run: every stage's, each under its stage's name (``model_preparation.estimator``)."""
        tree = self.used_by(stage) if stage else {name: self.used_by(name) for name in STAGES}
        return {"dataset": self.dataset} | {k: str(v) for k, v in flatten(tree).items()}

    def resolved_yaml(self) -> str:
        """Every parameter as this run sees it (overrides applied), as params.yaml text."""
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)

    def digest(self) -> str:
        """A short, stable hash of all parameters (tags runs and model versions)."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --- loading ---------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: ``2022-01-01`` stays the text it is, in the file and in
    -S alike, and the field's own check says whether it is a real date (PyYAML would turn it
    into a date object, and crash on an impossible one such as 2022-02-30)."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(text: str) -> Any:
    """Parse params YAML (safe, dates as text)."""
    return yaml.load(text, Loader=_Loader)


def load_params(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read ``path``, apply ``section.key=value`` overrides, and validate types and meaning.

    Every problem is found before any work starts, and all of them are reported together in one
    ParamsError line naming the file (or the -S option), the key and the value. A problem that
    only -S options caused is a command-line mistake: UsageError (exit 2).
    """
    try:
        raw = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({one_line(exc, whole=True)})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    overridden = {apply_override(raw, override, source=path) for override in overrides}
    problems = Problems()
    params = _build(Params, raw, problems, where="")
    if not problems:
        _check_across(params, problems)
    problems.raise_if_any(path, overridden)
    return params


class Problems(list[tuple[str, str]]):
    """(key, what is wrong) pairs found while loading one params file."""

    def add(self, key: str, problem: str) -> None:
        self.append((key, problem))

    def raise_if_any(self, path: Path, overridden: set[str]) -> None:
        if not self:
            return
        from_options = all(_key_in(key, overridden) for key, _ in self)
        texts = [
            f"-S {key}: {problem}" if _key_in(key, overridden) else f"{key}: {problem}"
            for key, problem in self
        ]
        count = f"{len(texts)} problems: " if len(texts) > 1 else ""
        message = f"{'' if from_options else f'{path}: '}{count}{'; '.join(texts)}"
        raise (UsageError if from_options else ParamsError)(message)


def _key_in(key: str, overridden: set[str]) -> bool:
    """Whether ``key`` (e.g. ``a.b[0]``) is, or lies under, a key set by an -S option."""
    return any(key == o or key.startswith((f"{o}.", f"{o}[")) for o in overridden)


def _check_across(params: Params, problems: Problems) -> None:
    """Checks that involve more than one field."""
    if params.dataset not in params.model_registration:
        problems.add("model_registration", f"has no gate for dataset {params.dataset!r}")
    if params.is_image and params.dataset not in params.data_preprocessing.augmentation:
        problems.add("data_preprocessing.augmentation", f"has no entry for {params.dataset!r}")
    if params.is_image and params.dataset not in params.model_preparation.cnn:
        problems.add("model_preparation.cnn", f"has no entry for {params.dataset!r}")
    temperature = params.data_creation.temperature
    key = "data_creation.temperature.test_stations"
    outside = [s for s in temperature.test_stations if s not in temperature.stations]
    if outside:
        problems.add(key, f"has {outside[0]!r}, which is not in stations")
    elif len(temperature.test_stations) >= len(temperature.stations):
        problems.add(key, "leaves no station to train on")
    checks = params.model_quality.data
    if checks.min_temperature_c >= checks.max_temperature_c:
        problems.add("model_quality.data", "min_temperature_c must be < max_temperature_c")


def apply_override(raw: dict[str, Any], override: str, source: Path) -> str:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML, as `dvc exp run
    -S` does. Returns the key. UsageError (a command-line mistake) for a bad option."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise UsageError(f"-S {override!r}: expected section.key=value")
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            where = ".".join(parts[: depth + 1])
            raise UsageError(
                f"-S {override!r}: {source} has no key {where!r}{did_you_mean(part, known)} "
                f"(known: {', '.join(known) or 'none'})"
            )
        if depth < len(parts) - 1:
            node = node[part]
    try:
        node[parts[-1]] = read_yaml(text) if text else ""
    except yaml.YAMLError as exc:
        reason = one_line(exc, whole=True)
        raise UsageError(f"-S {override!r}: value is not valid YAML ({reason})") from None
    return key


def _build(cls: type, data: Any, problems: Problems, where: str) -> Any:
    """``cls`` from ``data``, or None when ``data`` has problems (added to ``problems``)."""
    if not isinstance(data, dict):
        problems.add(where or "top level", f"must be a mapping, got {data!r}")
        return None
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in sorted(set(data) - set(fields)):
        problems.add(
            _join(where, name),
            f"unknown key{did_you_mean(name, fields)} (known: {', '.join(fields)})",
        )
    values = {}
    for name in fields:
        key = _join(where, name)
        if name not in data:
            problems.add(key, "missing")
            continue
        hint, checks = hints[name], list[Check]()
        if typing.get_origin(hint) is Annotated:
            hint, *checks = typing.get_args(hint)
        before = len(problems)
        values[name] = _coerce(hint, data[name], problems, key)
        if len(problems) == before:
            for check in checks:
                if (problem := check(values[name])) is not None:
                    problems.add(key, f"{values[name]!r} {problem}")
                    break
    if len(values) < len(fields) or any(v is _BAD for v in values.values()):
        return _BAD
    return cls(**values)


_BAD = object()  # stands for a value that had problems, so that loading can go on


def _coerce(hint: Any, value: Any, problems: Problems, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        built = _build(hint, value, problems, key)
        return _BAD if built is None else built
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, problems, key)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(map(str, args))
            hint_text = did_you_mean(str(value), map(str, args))
            problems.add(key, f"{value!r} is not one of: {choices}{hint_text}")
            return _BAD
        return value
    if origin is dict:
        if not isinstance(value, dict):
            problems.add(key, f"{value!r} must be a mapping")
            return _BAD
        return {
            name: _coerce(args[1], item, problems, f"{key}.{name}") for name, item in value.items()
        }
    if origin is list:
        if not isinstance(value, list):
            problems.add(key, f"{value!r} must be a list")
            return _BAD
        return [_coerce(args[0], item, problems, f"{key}[{i}]") for i, item in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        problems.add(key, f"{value!r} must be a finite number")
        return _BAD
    if hint in (int, float, str, bool) and (
        type(value) is not hint  # bool is an int subclass: reject True where an int is due
    ):
        problems.add(key, f"{value!r} must be {hint.__name__}")
        return _BAD
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def main(argv: list[str] | None = None) -> int:
    """``python -m lab1.core.params --experiment-name``: the MLflow experiment params.yaml's
    dataset records into (the Makefile's `mlflow-run` passes it to `mlflow run`)."""
    import argparse

    from lab1.core.paths import PATHS

    parser = argparse.ArgumentParser(prog="python -m lab1.core.params", description=main.__doc__)
    parser.add_argument("--experiment-name", action="store_true", required=True)
    parser.parse_args(argv)
    try:
        sys.stdout.write(load_params(PATHS.params).experiment_name + "\n")
    except ParamsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
