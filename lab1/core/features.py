"""Per-day features from a window of raw readings: pure functions, no files, no MLflow.

The model's input is one row per day: the raw readings of the ``window`` days before it, the day
itself and the ``window`` days after it (columns ``t_m7 .. t_0 .. t_p7``; NaN = missing reading).
``WindowFeatures`` turns such rows into features that do not depend on a station's climate
(deviations from the window, not absolute temperatures), so the model carries over to stations
it never saw. It sits inside the logged model, which therefore takes raw readings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

if TYPE_CHECKING:
    from lab1.core.params import DataPreprocessingParams

# A copy of params.MISSING_RULES: the logged model carries this one module (its code_paths) and
# must load where the project is not, so it imports nothing of lab1; test_features ties the two.
MISSING_RULES = ("interpolate", "window_median")

FEATURE_NAMES = (
    "day_missing",
    "n_missing",
    "dev_from_median",
    "abs_dev_from_median",
    "robust_z",
    "dev_from_neighbours",
    "abs_dev_from_neighbours",
    "step_in",
    "step_out",
    "same_as_prev",
    "same_as_next",
    "equal_run",
    "equal_pairs",
    "trend",
    "dev_from_left",
    "dev_from_right",
    "fit_residual",
    "window_std",
    "max_abs_step",
)


def window_columns(window: int) -> list[str]:
    """Names of the model's input columns for a half-width ``window``: t_m7 .. t_0 .. t_p7."""
    return [
        f"t_m{-k}" if k < 0 else f"t_p{k}" if k > 0 else "t_0" for k in range(-window, window + 1)
    ]


def extract_windows(readings: np.ndarray, window: int) -> np.ndarray:
    """One row per day that has ``window`` days on each side: shape (n - 2*window, 2*window + 1).

    Edge days without a full window are dropped (declared rule: they cannot be judged fairly).
    """
    width = 2 * window + 1
    if len(readings) < width:
        return np.empty((0, width))
    return np.lib.stride_tricks.sliding_window_view(np.asarray(readings, dtype=float), width).copy()


def fill_missing(windows: np.ndarray, rule: str) -> np.ndarray:
    """Replace NaN readings in each window by ``rule``; a window with no reading becomes zeros."""
    filled = windows.copy()
    rows = np.flatnonzero(np.isnan(filled).any(axis=1))
    positions = np.arange(filled.shape[1])
    for row in rows:
        values = filled[row]
        known = ~np.isnan(values)
        if not known.any():
            values[:] = 0.0
        elif rule == "interpolate":
            values[~known] = np.interp(positions[~known], positions[known], values[known])
        elif rule == "window_median":
            values[~known] = np.median(values[known])
        else:
            raise ValueError(f"missing_rule={rule!r} is not one of: {', '.join(MISSING_RULES)}")
    return filled


def window_features(windows: np.ndarray, missing_rule: str) -> np.ndarray:
    """Features (columns FEATURE_NAMES) of each row of raw readings, centre = the judged day."""
    raw = np.asarray(windows, dtype=float)
    n, width = raw.shape
    c = width // 2
    filled = fill_missing(raw, missing_rule)
    x = filled[:, c]
    others = np.delete(filled, c, axis=1)
    median = np.median(others, axis=1)
    mad = np.median(np.abs(others - median[:, None]), axis=1)
    neighbours = (filled[:, c - 1] + filled[:, c + 1]) / 2
    # Equality is judged on raw readings: a stuck sensor repeats the exact value; NaN never equals.
    equal = np.isclose(raw[:, 1:], raw[:, :-1], rtol=0.0, atol=1e-9)
    same_prev, same_next = equal[:, c - 1], equal[:, c]
    left_run = _run_length(equal[:, :c][:, ::-1])
    right_run = _run_length(equal[:, c:])
    left, right = filled[:, :c], filled[:, c + 1 :]
    t = np.arange(width) - c
    slope = (filled * t).sum(axis=1) / (t**2).sum()
    fit_at_centre = filled.mean(axis=1)  # a least-squares line through centred t passes here
    features = np.column_stack(
        [
            np.isnan(raw[:, c]),
            np.isnan(raw).sum(axis=1),
            x - median,
            np.abs(x - median),
            (x - median) / (1.4826 * mad + 0.5),
            x - neighbours,
            np.abs(x - neighbours),
            x - filled[:, c - 1],
            filled[:, c + 1] - x,
            same_prev,
            same_next,
            left_run + right_run,
            equal.sum(axis=1),
            slope * width,
            x - left.mean(axis=1),
            x - right.mean(axis=1),
            x - fit_at_centre,
            filled.std(axis=1),
            np.abs(np.diff(filled, axis=1)).max(axis=1),
        ]
    ).astype(float)
    assert features.shape == (n, len(FEATURE_NAMES))
    return features


def _run_length(equal: np.ndarray) -> np.ndarray:
    """Per row: how many leading True values (consecutive equal pairs starting at the day)."""
    return np.cumprod(equal, axis=1).sum(axis=1)


class WindowFeatures(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: raw reading windows -> FEATURE_NAMES. Stateless (fit learns
    nothing), so it cannot leak test statistics."""

    def __init__(self, window: int = 7, missing_rule: str = "interpolate"):
        self.window = window
        self.missing_rule = missing_rule

    def fit(self, X, y=None):
        self._check(X)
        return self

    def transform(self, X):
        return window_features(self._check(X), self.missing_rule)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(FEATURE_NAMES, dtype=object)

    def _check(self, X) -> np.ndarray:
        values = X.to_numpy(dtype=float) if isinstance(X, pd.DataFrame) else np.asarray(X, float)
        expected = 2 * self.window + 1
        if values.ndim != 2 or values.shape[1] != expected:
            raise ValueError(
                f"expected {expected} readings per row ({', '.join(window_columns(self.window))}),"
                f" got shape {values.shape}"
            )
        return values


def build_preprocessor(params: DataPreprocessingParams) -> Pipeline:
    """Raw windows -> features -> StandardScaler, as ``params`` (params.yaml's data_preprocessing)
    says: the one place that reads that section for the model, so a new option is read here
    only. Fit it on train only: fitting the scaler on test data would leak the test stations'
    statistics into training."""
    return Pipeline(
        [
            ("features", WindowFeatures(params.window, params.missing_rule)),
            ("scale", StandardScaler()),
        ]
    )
