"""The training data's profile, and how far served traffic has drifted from it (issue 26).

model_preparation stores a profile of what the model learned from next to the logged model
(``reference_profile.json``), so monitoring never needs the raw training files. It describes the
model's own features (``lab1.core.features``: deviations within a window, not temperatures, so a
January week and a July week look alike) and the model's answer on the training rows:

- ``quantiles``: QUANTILE_LEVELS values per measure, a fixed-size stand-in for the training
  sample. The two-sample Kolmogorov-Smirnov statistic against them is the one against the full
  sample to within 1/QUANTILE_LEVELS; the p-value uses the real number of training rows.
- ``edges`` and ``shares``: the training deciles as bins and the share of rows in each, for the
  population stability index (PSI). A measure with at most MAX_BINS distinct values (a flag, a
  count) gets one bin per value; the answer, a probability, gets ANSWER_EDGES.
- the share of missing readings and the class balance.

Pure functions on numbers: no files, no MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from lab1.core.features import FEATURE_NAMES, window_features

PROFILE_FILE = "reference_profile.json"  # among the logged model's artifacts
QUANTILE_LEVELS = 200
MAX_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin counts as this share: log(0) would make any PSI infinite
PREDICTION = "fault_probability"  # the model's answer, profiled like a feature
# The answer's bins: sure normal, leaning normal, leaning faulty, sure faulty. Deciles put bins
# a hundredth apart near 0, and tenths left bins holding 0.5 % of the rows: in both, a few rows
# of new weather were "drift" (PSI up to 0.49 on normal weeks; with these, at most 0.10).
ANSWER_EDGES = np.array([0.1, 0.5, 0.9])


def measures(windows: np.ndarray, missing_rule: str) -> dict[str, np.ndarray]:
    """The monitored measures of raw reading windows (rows x readings, NaN = missing)."""
    features = window_features(np.asarray(windows, dtype=float), missing_rule)
    return {name: features[:, i] for i, name in enumerate(FEATURE_NAMES)}


def describe(values: np.ndarray, edges: np.ndarray | None = None) -> dict[str, Any]:
    """One measure's profile: its quantiles, its bins (``edges``, or its deciles) and their
    shares, its count."""
    values = np.asarray(values, dtype=float)
    levels = (np.arange(QUANTILE_LEVELS) + 0.5) / QUANTILE_LEVELS
    distinct = np.unique(values)
    if edges is not None:
        inner = np.asarray(edges, dtype=float)
    elif distinct.size <= MAX_BINS:  # a flag or a count: one bin per value, split halfway
        inner = (distinct[1:] + distinct[:-1]) / 2
    else:  # deciles; repeated ones (a value that fills a tenth of the rows) merge
        inner = np.unique(np.quantile(values, np.linspace(0.1, 0.9, MAX_BINS - 1)))
    counts = np.histogram(values, bins=[-np.inf, *inner, np.inf])[0]
    return {
        "n": int(values.size),
        "quantiles": np.quantile(values, levels).round(6).tolist(),
        "edges": [float(e) for e in inner],  # the infinite ends are implied (JSON has no inf)
        "shares": (counts / values.size).round(6).tolist(),
    }


def build(
    windows: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, settings: dict[str, Any]
) -> dict[str, Any]:
    """The profile of the training rows: raw windows, true classes (0/1), and the model's
    probability of class 1 on each. ``settings``: the window and missing rule it was built with."""
    raw = np.asarray(windows, dtype=float)
    described = {name: describe(v) for name, v in measures(raw, settings["missing_rule"]).items()}
    described[PREDICTION] = describe(probabilities, edges=ANSWER_EDGES)
    return {
        "settings": settings,
        "rows": int(raw.shape[0]),
        "missing_share": float(np.isnan(raw).mean()),
        "class_shares": (np.bincount(labels.astype(int), minlength=2) / labels.size)
        .round(6)
        .tolist(),
        "measures": described,
    }


def ks(reference: dict[str, Any], values: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value of ``values`` against a
    profiled measure."""
    statistic = float(stats.ks_2samp(reference["quantiles"], values).statistic)
    n, m = reference["n"], values.size
    p_value = float(stats.kstwobign.sf(statistic * np.sqrt(n * m / (n + m))))
    return statistic, p_value


def psi(reference: dict[str, Any], values: np.ndarray) -> float:
    """Population stability index of ``values`` against a profiled measure's bins:
    sum over bins of (current - reference share) x ln(current / reference share)."""
    counts = np.histogram(values, bins=[-np.inf, *reference["edges"], np.inf])[0]
    current = np.maximum(counts / values.size, PSI_FLOOR)
    expected = np.maximum(np.asarray(reference["shares"]), PSI_FLOOR)
    return float(np.sum((current - expected) * np.log(current / expected)))
