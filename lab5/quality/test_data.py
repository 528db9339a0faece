"""Checks of the pipeline's data: data/raw (stage 1's output) and data/processed (stage 2's).

Schema, value ranges, the train/test split by station, and no label leakage. The raw files are
read here as plain text and checked independently of lab1's own reader, so a bug in that reader
cannot hide a bad file; only the facts (column names, fault kinds) come from lab1.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from lab1.core.datasets.temperature import RAW_COLUMNS
from lab1.core.errors import PipelineError
from lab1.core.features import FEATURE_NAMES, window_columns
from lab1.core.io import read_json
from lab1.core.params import FAULT_KINDS
from lab1.core.paths import PATHS
from lab1.core.processed import LABEL, META_COLUMNS, input_columns, load_preprocessor, read_split
from lab5.quality.subject import or_exit, stop

pytestmark = pytest.mark.data_quality
SPLITS = ("train", "test")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return or_exit(lambda: read_json(PATHS.raw_manifest))


@pytest.fixture(scope="module")
def raw_text(manifest) -> dict[str, dict[Path, pd.DataFrame]]:
    """Every raw station file the manifest lists, as text (split -> path -> frame)."""
    files: dict[str, dict[Path, pd.DataFrame]] = {split: {} for split in SPLITS}
    for entry in manifest.get("files", []):
        path = PATHS.raw / entry["path"]
        if not path.exists():
            stop(f"{path}: listed in {PATHS.raw_manifest} but missing")
        files[entry["split"]][path] = pd.read_csv(path, dtype=str, keep_default_na=False)
    for split in SPLITS:
        if not files[split]:
            stop(f"{PATHS.raw / split}: no station files (empty {split} set)")
    return files


@pytest.fixture(scope="module")
def preprocessor():
    return or_exit(lambda: load_preprocessor(PATHS.preprocessor))


@pytest.fixture(scope="module")
def processed() -> dict[str, pd.DataFrame]:
    return {s: or_exit(functools.partial(read_split, PATHS.processed_table(s))) for s in SPLITS}


def all_raw(raw_text) -> list[tuple[Path, pd.DataFrame]]:
    return [(path, frame) for split in SPLITS for path, frame in raw_text[split].items()]


def first_bad(mask: pd.Series, frame: pd.DataFrame, column: str) -> str:
    """Where the first True of ``mask`` is: file line (the header is line 1) and value."""
    row = int(np.argmax(mask.to_numpy()))
    return f"line {row + 2}: {column}={frame[column].iloc[row]!r}"


def test_raw_files_match_the_manifest(params):
    from lab1.core.kinds import checked_manifest

    try:
        checked_manifest(PATHS.raw, params.dataset)
    except PipelineError as exc:
        pytest.fail(str(exc))


def test_raw_schema(raw_text):
    for path, frame in all_raw(raw_text):
        assert list(frame.columns) == RAW_COLUMNS, f"{path}: columns {list(frame.columns)}"
        assert len(frame), f"{path}: no rows"
        dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
        assert dates.notna().all(), f"{path}: {first_bad(dates.isna(), frame, 'date')}"
        gaps = dates.diff().dt.days.fillna(1) != 1
        assert not gaps.any(), f"{path}: not one row per day, {first_bad(gaps, frame, 'date')}"
        assert (frame["station"] == path.stem).all(), (
            f"{path}: {first_bad(frame['station'] != path.stem, frame, 'station')} "
            f"(the file is named after station {path.stem!r})"
        )
        numeric = pd.to_numeric(frame["temperature"], errors="coerce")
        not_number = numeric.isna() & (frame["temperature"] != "")
        assert not not_number.any(), f"{path}: {first_bad(not_number, frame, 'temperature')}"
        bad_label = ~frame[LABEL].isin(["0", "1"])
        assert not bad_label.any(), f"{path}: {first_bad(bad_label, frame, LABEL)}"


def test_raw_values_are_in_range_and_labels_agree(raw_text, quality):
    low, high = quality.data.min_temperature_c, quality.data.max_temperature_c
    for path, frame in all_raw(raw_text):
        temperature = pd.to_numeric(frame["temperature"], errors="coerce")
        outside = (temperature < low) | (temperature > high)
        assert not outside.any(), (
            f"{path}: {first_bad(outside, frame, 'temperature')} outside "
            f"[{low}, {high}] (model_quality.data)"
        )
        unknown = ~frame["fault_kind"].isin(["", *FAULT_KINDS])
        assert not unknown.any(), f"{path}: {first_bad(unknown, frame, 'fault_kind')}"
        disagree = (frame[LABEL] == "1") != (frame["fault_kind"] != "")
        assert not disagree.any(), (
            f"{path}: {first_bad(disagree, frame, LABEL)} but fault_kind="
            f"{frame['fault_kind'].iloc[int(np.argmax(disagree.to_numpy()))]!r}"
        )
        unexplained_gap = (frame["temperature"] == "") & (frame["fault_kind"] != "missing")
        assert not unexplained_gap.any(), (
            f"{path}: {first_bad(unexplained_gap, frame, 'temperature')} is missing but the "
            "day is not labelled 'missing'"
        )


def test_no_station_in_both_train_and_test(raw_text, processed):
    raw = {s: set().union(*(set(f["station"]) for f in raw_text[s].values())) for s in SPLITS}
    both = raw["train"] & raw["test"]
    assert not both, f"{PATHS.raw}: stations in both train and test: {sorted(both)}"
    done = {s: set(processed[s]["station"]) for s in SPLITS}
    both = done["train"] & done["test"]
    assert not both, f"{PATHS.processed}: stations in both train and test: {sorted(both)}"
    assert done == raw, f"{PATHS.processed}: stations {done} differ from {PATHS.raw}'s {raw}"


def test_test_stations_are_the_declared_ones(raw_text, params):
    declared = set(params.data_creation.temperature.test_stations)
    found = {path.stem for path in raw_text["test"]}
    assert found == declared, (
        f"{PATHS.raw / 'test'}: stations {sorted(found)}, but params.yaml "
        f"data_creation.temperature.test_stations is {sorted(declared)}"
    )


def test_processed_schema(processed, window):
    expected = [*META_COLUMNS, *window_columns(window), *(f"f_{n}" for n in FEATURE_NAMES)]
    for split, frame in processed.items():
        where = PATHS.processed_table(split)
        assert list(frame.columns) == expected, f"{where}: columns {list(frame.columns)}"
        labels = set(frame[LABEL].unique().tolist())
        assert labels == {0, 1}, f"{where}: {LABEL} values {sorted(labels)}; need both 0 and 1"
        features = frame[[f"f_{n}" for n in FEATURE_NAMES]].to_numpy(dtype=float)
        assert np.isfinite(features).all(), f"{where}: a feature is NaN or infinite"


def test_processed_rows_are_the_raw_windows(processed, window, manifest):
    from lab1.core.kinds.tables import read_raw, to_windows

    try:  # the digests are test_raw_files_match_the_manifest's business
        raw = read_raw(PATHS.raw, manifest)
    except PipelineError as exc:
        pytest.fail(f"cannot window the raw files: {exc}")
    for split in SPLITS:
        expected = to_windows(raw[split], window)
        found = processed[split][expected.columns]
        where = PATHS.processed_table(split)
        assert len(found) == len(expected), f"{where}: {len(found)} rows, raw gives {len(expected)}"
        pd.testing.assert_frame_equal(found, expected, check_dtype=False, obj=str(where))


def test_no_label_leakage_into_the_features(processed, preprocessor):
    # The model sees only the readings window; the stored features must be exactly the saved
    # preprocessor applied to it, so nothing else (the label, the fault kind) can enter them.
    for split, frame in processed.items():
        inputs = input_columns(frame)
        assert LABEL not in inputs and "fault_kind" not in inputs
        recomputed = preprocessor.transform(frame[inputs])
        stored = frame[[f"f_{n}" for n in FEATURE_NAMES]].to_numpy(dtype=float)
        assert np.allclose(recomputed, stored, atol=1e-9), (
            f"{PATHS.processed_table(split)}: stored features differ from "
            f"{PATHS.preprocessor.name} applied to the readings"
        )


def test_the_scaler_was_fitted_on_train_only(processed, preprocessor):
    """Whatever its steps (any scaler): refitted on the train split alone, the preprocessor
    answers as the stored one does on the test split; refitted on train + test, it does not
    (test statistics would have leaked into the features)."""
    train, test = (processed[split][input_columns(processed[split])] for split in SPLITS)
    stored = preprocessor.transform(test)
    on_train = clone(preprocessor).fit(train).transform(test)
    on_both = clone(preprocessor).fit(pd.concat([train, test])).transform(test)
    assert np.allclose(stored, on_train), (
        f"{PATHS.preprocessor}: not the preprocessor fitted on the train split"
    )
    assert not np.allclose(stored, on_both), (
        f"{PATHS.preprocessor}: fitted on train + test: test statistics leaked"
    )
