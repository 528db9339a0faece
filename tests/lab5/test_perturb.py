"""The quality suite's perturbations and its reading of the test data: pure functions on tiny
frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab1.core.features import window_columns
from lab5.quality.perturb import with_sensor_noise, with_spike
from lab5.quality.subject import QualityInputError, held_out, model_location


def station(kinds: list[str], name: str = "moscow") -> pd.DataFrame:
    readings = np.arange(len(kinds), dtype=float)
    readings[[i for i, k in enumerate(kinds) if k == "missing"]] = np.nan
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=len(kinds)).strftime("%Y-%m-%d"),
            "station": name,
            "temperature": readings,
            "is_faulty": [int(k != "") for k in kinds],
            "fault_kind": kinds,
        }
    )


def test_sensor_noise_spares_stuck_and_missing_days_and_the_labels():
    frame = station(["", "stuck", "stuck", "", "missing", ""])
    (noisy,) = with_sensor_noise([frame], 1.0, np.random.default_rng(0))
    before, after = frame["temperature"].to_numpy(), noisy["temperature"].to_numpy()
    assert np.array_equal(after[[1, 2]], before[[1, 2]])  # a stuck sensor repeats its number
    assert np.isnan(after[4])
    assert np.all(after[[0, 3, 5]] != before[[0, 3, 5]])
    pd.testing.assert_frame_equal(
        noisy.drop(columns="temperature"), frame.drop(columns="temperature")
    )
    assert frame["temperature"].iloc[0] == 0.0  # the input is not changed


def test_the_same_seed_gives_the_same_noise():
    frame = station([""] * 20)
    first = with_sensor_noise([frame], 0.5, np.random.default_rng(7))[0]
    again = with_sensor_noise([frame], 0.5, np.random.default_rng(7))[0]
    pd.testing.assert_frame_equal(first, again)


def test_a_spike_lands_on_the_judged_day_only():
    windows = np.zeros((2, 5))
    spiked = with_spike(windows, -15.0)
    assert np.array_equal(spiked[:, 2], [-15.0, -15.0])
    assert np.count_nonzero(spiked) == 2 and np.count_nonzero(windows) == 0


def test_held_out_marks_days_with_normal_neighbours():
    kinds = [""] * 5 + ["spike"] + [""] * 5
    data = held_out([station(kinds)], window=2)  # days 2..8 are judged
    assert list(data.inputs.columns) == window_columns(2)
    assert data.labels.tolist() == [0, 0, 0, 1, 0, 0, 0]
    # Days 4, 5 and 6 touch the spike on day 5.
    assert data.calm.tolist() == [True, True, False, False, False, True, True]


def test_held_out_refuses_an_empty_test_set():
    with pytest.raises(QualityInputError, match=r"empty test set .*5 readings"):
        held_out([station([""] * 4)], window=2)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("models:/temperature-classifier@champion", "models:/temperature-classifier@champion"),
        ("runs:/abc/model", "runs:/abc/model"),
        ("s3://bucket/model", "s3://bucket/model"),
        ("models/model", Path("models/model").resolve()),
    ],
)
def test_model_location(given, expected):
    assert model_location(given) == expected
