"""The quality check of lab5's notebook: is the regression's prediction good on a dataset?

Written by the notebook (lab5/regression_quality.ipynb) with %%writefile; edit the notebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import skops.io
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

# Declared thresholds. A good sensor's error is sd 0.5 F, i.e. a mean absolute error of 0.4 F;
# 1 F leaves room for sampling, while a failing sensor's readings are off by several degrees.
MAX_MAE_F = 1.0
MIN_R2 = 0.95


@dataclass(frozen=True)
class Quality:
    """How well the model predicts one dataset, and whether that passes the thresholds."""

    r2: float
    mae: float
    mse: float

    @property
    def problems(self) -> list[str]:
        found = []
        if self.mae > MAX_MAE_F:
            found.append(f"MAE {self.mae:.2f} F > {MAX_MAE_F}")
        if self.r2 < MIN_R2:
            found.append(f"R2 {self.r2:.3f} < {MIN_R2}")
        return found

    @property
    def passed(self) -> bool:
        return not self.problems


# Beyond skops' own trusted types (LinearRegression is one), only what a nearest-neighbour
# regressor holds, by exact name as lab1.core.model_io does (tests/lab5 swaps one in).
TRUSTED_TYPES = frozenset(
    {"sklearn.metrics._dist_metrics.EuclideanDistance64", "sklearn.neighbors._kd_tree.KDTree"}
)


def assess(model, frame: pd.DataFrame) -> Quality:
    """Score ``model`` (celsius -> fahrenheit) on one dataset."""
    predicted = model.predict(frame[["celsius"]])
    actual = frame["fahrenheit"]
    return Quality(
        r2=float(r2_score(actual, predicted)),
        mae=float(mean_absolute_error(actual, predicted)),
        mse=float(mean_squared_error(actual, predicted)),
    )


def save_model(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    skops.io.dump(model, path)


def load_model(path: Path):
    """Load a model saved by save_model; skops rebuilds only the types in TRUSTED_TYPES, by
    exact name (a prefix such as "sklearn." would admit functions that run commands)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run lab5/regression_quality.ipynb first")
    untrusted = skops.io.get_untrusted_types(file=path)
    foreign = sorted(set(untrusted) - TRUSTED_TYPES)
    if foreign:
        raise ValueError(f"{path}: refusing to load types {foreign}")
    return skops.io.load(path, trusted=untrusted)
