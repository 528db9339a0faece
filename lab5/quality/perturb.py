"""Perturbations of the test data for the model-quality suite: pure functions, no files.

Each returns a new array or frame and leaves its input unchanged; randomness comes only from the
``rng`` passed in, so a failing check can be replayed exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def with_sensor_noise(
    frames: list[pd.DataFrame], noise_c: float, rng: np.random.Generator
) -> list[pd.DataFrame]:
    """The station frames as a noisier sensor would have reported them: N(0, noise_c) added to
    every reading, except on stuck days (a stuck sensor repeats one number however noisy it
    was) and missing days (nothing was reported). Labels are unchanged."""
    noisy = []
    for frame in frames:
        readings = frame["temperature"].to_numpy(dtype=float)
        working = (frame["fault_kind"] != "stuck").to_numpy() & ~np.isnan(readings)
        jittered = readings.copy()
        jittered[working] += rng.normal(0.0, noise_c, int(working.sum()))
        noisy.append(frame.assign(temperature=np.round(jittered, 2)))
    return noisy


def with_spike(windows: np.ndarray, spike_c: float) -> np.ndarray:
    """Reading windows with ``spike_c`` degrees added to the judged day (the centre column);
    a negative ``spike_c`` is a downward spike."""
    spiked = np.array(windows, dtype=float)
    spiked[:, spiked.shape[1] // 2] += spike_c
    return spiked
