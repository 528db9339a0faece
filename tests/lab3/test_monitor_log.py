"""What the monitoring job reads: the prediction log's lines of the wrong form are left out and
counted (the report says how many), files that are not regular files and hostile labels are
refused before any work, a missing folder is not an empty window, and statistics that are not
computable are never "the same"."""

from __future__ import annotations

import json
import os
import subprocess
import tracemalloc
from datetime import UTC, datetime

import numpy as np
import pytest

from lab1.core import profile as profiles
from lab1.core.errors import DataError
from lab1.core.params import load_params
from lab3.monitor import checks, report, traffic
from tests.lab3.conftest import run_monitor
from tests.project import REPO

WINDOW = (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
COLUMNS = [f"t_{i}" for i in range(15)]


def line(request_id: str = "r", rows: int = 1, **changed) -> dict:
    """A prediction line as the service's writer makes it."""
    found = {
        "time": "2026-12-01T03:20:00.123Z",
        "request_id": request_id,
        "model": "temperature-classifier",
        "version": "3",
        "columns": COLUMNS,
        "inputs": [[10.0 + i] * 14 + [None] for i in range(rows)],
        "classes": ["normal", "faulty"],
        "probabilities": [[0.9, 0.1]] * rows,
        "labels": ["normal"] * rows,
    }
    found.update(changed)
    return {k: v for k, v in found.items() if v is not ...}  # ...: the field left out


def write_log(folder, lines: list) -> None:
    folder.mkdir(exist_ok=True)
    text = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines)
    (folder / "predictions-20261201T000000000000Z.jsonl").write_text(text)


def test_lines_of_the_wrong_form_are_left_out_and_counted(tmp_path, caplog):
    bad = [
        line(inputs="abc"),
        line(time=12345),
        line(model=...),
        line(version=[3]),
        line(inputs=[[1.0] * 14]),  # a row one reading short
        line(inputs=[[True] * 15]),
        line(inputs=[["1.5"] * 15]),
        line(probabilities=[[0.9, "x"]]),
        line(labels=["normal", "faulty"]),  # more labels than rows
        line(classes=["normal", "broken"]),  # no "faulty" class
        line(request_id=None),
        line(rows=0),
        [1, 2],
        "a string",
    ]
    image = line(inputs=..., columns=..., image_shape=[2, 2, 3], image_means=[[1, 2, 3]])
    outside = line(time="2026-11-01T00:00:00Z", inputs="abc")  # out of the window: not looked at
    write_log(tmp_path / "log", [line("a", 2), *bad, image, outside, line("b", 3)])
    got = traffic.read_log(tmp_path / "log", *WINDOW)
    assert got.keys == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2)]
    assert got.skipped == len(bad)
    assert got.inputs.shape == (5, 15) and np.isnan(got.inputs[:, 14]).all()
    assert got.inputs[1, 0] == 11.0 and got.probabilities.tolist() == [0.1] * 5
    assert f"{len(bad)} log lines left out" in caplog.text

    # The report says it too.
    result = checks.run_checks(got, profile(), load_params(REPO / "params.yaml").monitoring, gate())
    assert result.metrics()["log_lines_left_out"] == len(bad)
    page = report.render(result, "t", "w", "l", {})
    assert f"<b>{len(bad)} log lines were left out</b>" in page


def profile() -> dict:
    rng = np.random.default_rng(0)
    windows = rng.normal(10, 3, (500, 15)).cumsum(axis=1) / 4
    settings = {"missing_rule": "interpolate", "columns": COLUMNS}
    return profiles.build(windows, rng.integers(0, 2, 500), rng.random(500), settings)


def gate():
    return load_params(REPO / "params.yaml").model_registration["temperature"]


def test_measures_that_cannot_be_computed_are_never_the_same():
    rng = np.random.default_rng(1)
    inputs = rng.normal(10, 3, (300, 15)).cumsum(axis=1) / 4
    inputs[::3] = [[1e308, -1e308] * 7 + [1e308]]  # a third of the rows: finite, extreme
    keys = [(str(i), 0) for i in range(300)]
    served = traffic.Traffic("m", "1", COLUMNS, keys, inputs, np.full(300, 0.1), np.zeros(300), 0)
    result = checks.run_checks(
        served, profile(), load_params(REPO / "params.yaml").monitoring, gate()
    )
    nan = [d for d in result.drift if not d.computable]
    assert nan, "1e308 readings overflow some measure into NaN"
    assert all(d.drifted for d in nan)
    with np.errstate(all="ignore"):
        measured = profiles.measures(inputs, "interpolate")
    assert all(np.isnan(v).any() == (name in {d.name for d in nan}) for name, v in measured.items())
    page = report.render(result, "t", "w", "l", {})
    assert page.count("not computable (NaN from extreme inputs)") == len(nan)
    assert result.alarms and "(not computable)" in result.alarms[0]


def test_a_window_is_read_as_arrays_not_held_as_json(tmp_path):
    """Memory goes with the window's rows: a log of 2,000 lines of 20 rows, all in the window,
    is read within 4 times its size (3.5: the rows as arrays, their keys, and the arrays joined
    at the end); the JSON objects held took 11 times it."""
    write_log(tmp_path / "log", [line(str(i), 20) for i in range(2000)])
    size = (tmp_path / "log" / "predictions-20261201T000000000000Z.jsonl").stat().st_size
    tracemalloc.start()
    try:
        got = traffic.read_log(tmp_path / "log", *WINDOW)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(got.keys) == 40_000
    assert peak < 4 * size, (peak, size)


def one_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_fifo_or_a_device_named_like_a_log_file_is_refused(tmp_path):
    window = ["--since", "2026-11-30", "--until", "2026-12-02"]
    write_log(tmp_path / "fifo", [line()])
    os.mkfifo(tmp_path / "fifo" / "predictions-20261201T100000000000Z.jsonl")
    write_log(tmp_path / "device", [line()])
    (tmp_path / "device" / "predictions-20261201T100000000000Z.jsonl").symlink_to("/dev/zero")
    for kind in ("fifo", "device"):
        said = one_error(run_monitor("--log", str(tmp_path / kind), *window))
        assert f"{tmp_path / kind}/predictions-20261201T100000000000Z.jsonl" in said
        assert "not a regular file" in said
    labels = tmp_path / "labels.csv"
    os.mkfifo(labels)
    said = one_error(run_monitor("--labels", str(labels), *window))
    assert str(labels) in said and "not a regular file" in said


def test_a_missing_folder_is_not_an_empty_window(tmp_path):
    said = one_error(run_monitor("--log", str(tmp_path / "nowhere")))
    assert f"{tmp_path / 'nowhere'}: the prediction log's folder does not exist" in said
    with pytest.raises(DataError, match="no logged predictions between"):
        traffic.read_log(tmp_path, *WINDOW)  # there, but nothing in the window
    write_log(tmp_path / "bad", [line(inputs="abc")])
    with pytest.raises(DataError, match=r"UTC \(1 log lines left out \(cut short"):
        traffic.read_log(tmp_path / "bad", *WINDOW)  # nothing but a bad line: said in one line


def test_a_fault_kind_that_is_not_a_name_is_refused_before_any_work(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,row,label,fault_kind\nr1,0,faulty,spike\nr2,0,faulty,../../x\n")
    # The log's folder does not exist either: the labels are checked first.
    said = one_error(run_monitor("--labels", str(labels), "--log", str(tmp_path / "nowhere")))
    assert f"{labels}:3: fault_kind '../../x'" in said
