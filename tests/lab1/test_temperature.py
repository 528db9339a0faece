"""The synthetic station data and the CSV reader: pure functions, no files beyond tmp_path."""

import numpy as np
import pandas as pd
import pytest

from lab1.core.datasets.temperature import (
    CLIMATES,
    generate,
    inject_faults,
    read_raw_station_file,
    read_station_csv,
    split_by_station,
)
from lab1.core.errors import DataError
from lab1.core.params import FAULT_KINDS, load_params
from lab1.core.paths import PATHS


@pytest.fixture(scope="module")
def params():
    return load_params(PATHS.params)


@pytest.fixture(scope="module")
def frames(params):
    return generate(params.data_creation.temperature, params.data_creation.seed)


def test_catalogue_has_six_climates_and_one_much_noisier():
    assert len(CLIMATES) >= 6
    noise = sorted(c.noise_c for c in CLIMATES.values())
    assert noise[-1] >= 2 * noise[-2]


def test_every_station_has_three_years_and_all_fault_kinds(frames, params):
    assert set(frames) == set(params.data_creation.temperature.stations)
    for frame in frames.values():
        assert len(frame) >= 3 * 365
        assert set(frame["fault_kind"]) - {""} == set(FAULT_KINDS)
        # The label and the kind agree, and missing readings are exactly the "missing" days.
        assert ((frame["fault_kind"] != "") == (frame["is_faulty"] == 1)).all()
        assert (frame["temperature"].isna() == (frame["fault_kind"] == "missing")).all()


def test_faults_frequent_enough_that_always_normal_fails_the_gate(frames, params):
    faulty = np.mean(np.concatenate([f["is_faulty"].to_numpy() for f in frames.values()]))
    always_normal_accuracy = 1 - faulty
    assert always_normal_accuracy < params.gate.min_accuracy - 0.1


def test_deterministic_from_seed(params):
    section = params.data_creation.temperature
    a, b = generate(section, 1), generate(section, 1)
    c = generate(section, 2)
    for station in a:
        pd.testing.assert_frame_equal(a[station], b[station])
    assert not a["moscow"]["temperature"].equals(c["moscow"]["temperature"])


def test_train_and_test_stations_are_disjoint(params):
    section = params.data_creation.temperature
    splits = split_by_station(generate(section, params.data_creation.seed), section.test_stations)
    assert set(splits["test"]) == set(params.data_creation.temperature.test_stations)
    assert not set(splits["train"]) & set(splits["test"])


def test_inject_faults_kinds_behave(params):
    rng = np.random.default_rng(0)
    clean = np.linspace(0, 10, 2000)
    readings, kind = inject_faults(clean, params.data_creation.temperature.faults, rng)
    stuck = np.flatnonzero(kind == "stuck")
    assert np.all(readings[stuck] == readings[stuck - 1])  # a stuck day repeats the day before
    spikes = np.flatnonzero(kind == "spike")
    assert np.all(np.abs(readings[spikes] - clean[spikes]) >= 6.0)
    assert np.all(np.isnan(readings[kind == "missing"]))
    normal = kind == ""
    np.testing.assert_allclose(readings[normal], np.round(clean[normal], 2))


def write_csv(tmp_path, text):
    path = tmp_path / "readings.csv"
    path.write_text(text)
    return path


def test_user_csv_becomes_daily_series_with_gaps_as_missing(tmp_path):
    path = write_csv(
        tmp_path,
        "date,station,temperature\n2024-01-01,a,1.5\n2024-01-03,a,2.0\n2024-01-01,b,-3\n",
    )
    series = read_station_csv(path)
    assert list(series) == ["a", "b"]
    assert len(series["a"]) == 3 and np.isnan(series["a"].iloc[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date,station,temp\n2024-01-01,a,1\n", r"column 'temperature' missing \(found: date"),
        ("date,station,temperature\n2024-01-01,a,warm\n", r"line 2: temperature='warm' is not"),
        ("date,station,temperature\n01/02/2024,a,1\n", r"line 2: date='01/02/2024' is not YYYY"),
        ("date,station,temperature\n", r"no rows"),
        (
            "date,station,temperature\n2024-01-01,a,1\n2024-01-01,a,2\n",
            r"line 3: station 'a' has date 2024-01-01 twice",
        ),
        ("", r"not a readable CSV"),
    ],
)
def test_malformed_user_csv_is_one_clear_error(tmp_path, text, message):
    path = write_csv(tmp_path, text)
    with pytest.raises(DataError, match=message) as caught:
        read_station_csv(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_generate_from_csv_injects_faults_and_checks_split(tmp_path, params):
    rows = ["date,station,temperature"]
    for station in ("north", "south", "east"):
        rows += [
            f"{d.date()},{station},{10 + i % 7}"
            for i, d in enumerate(pd.date_range("2022-01-01", periods=400))
        ]
    path = write_csv(tmp_path, "\n".join(rows) + "\n")
    section = params.data_creation.temperature
    from tests.project import changed

    custom = changed(
        section, csv_path=str(path), stations=["north", "south", "east"], test_stations=["east"]
    )
    frames = generate(custom, 3)
    assert set(frames) == {"north", "south", "east"}
    assert all(f["is_faulty"].mean() > 0.2 for f in frames.values())
    with pytest.raises(DataError, match=r"no station 'moscow' \(found: east, north, south\)"):
        generate(changed(custom, stations=["moscow", "east"]), 3)


def test_raw_station_file_rejects_bad_labels(tmp_path):
    path = write_csv(
        tmp_path,
        "date,station,temperature,is_faulty,fault_kind\n2024-01-01,a,1.0,2,\n",
    )
    with pytest.raises(DataError, match=r"'is_faulty' must hold only 0 and 1 \(found: \['2'\]\)"):
        read_raw_station_file(path)
