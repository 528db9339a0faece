"""The datasets of lab5's notebook: a thermometer's Fahrenheit readings against the true
temperature in Celsius, F = 1.8 * C + 32 plus the sensor's error.

Three clean datasets (a good sensor, error sd 0.5 F, over three temperature ranges) and one
noisy dataset (a failing sensor: error sd 6 F and 10% wild readings). Written by the notebook
(lab5/regression_quality.ipynb) with %%writefile; edit the notebook, not this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"
SLOPE, INTERCEPT = 1.8, 32.0  # the true relation: F = 1.8 * C + 32


@dataclass(frozen=True)
class Spec:
    celsius: tuple[float, float]  # range of true temperatures
    rows: int
    error_sd_f: float  # the sensor's error, degrees F
    wild_share: float  # share of wild readings (off by up to +-40 F)
    seed: int


SPECS = {
    "clean_a": Spec(celsius=(-10, 10), rows=200, error_sd_f=0.5, wild_share=0.0, seed=1),
    "clean_b": Spec(celsius=(10, 35), rows=200, error_sd_f=0.5, wild_share=0.0, seed=2),
    "clean_c": Spec(celsius=(-35, -10), rows=200, error_sd_f=0.5, wild_share=0.0, seed=3),
    "noisy": Spec(celsius=(-10, 10), rows=200, error_sd_f=6.0, wild_share=0.1, seed=4),
}
CLEAN = ("clean_a", "clean_b", "clean_c")
TRAIN_ON = "clean_a"


def make(spec: Spec) -> pd.DataFrame:
    """One dataset: columns celsius (the true temperature) and fahrenheit (the reading)."""
    rng = np.random.default_rng(spec.seed)
    celsius = np.sort(rng.uniform(*spec.celsius, spec.rows))
    reading = SLOPE * celsius + INTERCEPT + rng.normal(0.0, spec.error_sd_f, spec.rows)
    wild = rng.random(spec.rows) < spec.wild_share
    reading[wild] += rng.uniform(-40.0, 40.0, int(wild.sum()))
    return pd.DataFrame({"celsius": celsius.round(2), "fahrenheit": reading.round(2)})


def save_all(data_dir: Path = DATA_DIR) -> dict[str, pd.DataFrame]:
    """Make every dataset and write it to ``data_dir``/<name>.csv; returns them by name."""
    data_dir.mkdir(parents=True, exist_ok=True)
    frames = {name: make(spec) for name, spec in SPECS.items()}
    for name, frame in frames.items():
        frame.to_csv(data_dir / f"{name}.csv", index=False)
    return frames


def load(name: str, data_dir: Path = DATA_DIR) -> pd.DataFrame:
    """Read one dataset the notebook wrote; a clear error if it has not been run."""
    path = data_dir / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run lab5/regression_quality.ipynb first")
    frame = pd.read_csv(path)
    if list(frame.columns) != ["celsius", "fahrenheit"] or frame.empty:
        raise ValueError(f"{path}: expected columns celsius, fahrenheit and at least one row")
    return frame
