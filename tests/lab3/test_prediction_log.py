"""The prediction log: every answered request as one JSON line (what came in, what went out,
which model), rotated and pruned, and never the reason a prediction fails."""

from __future__ import annotations

import contextlib
import json
import shutil
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lab3.service.app import create_app
from lab3.service.prediction_log import write_forever
from lab3.service.settings import LogSettings, Settings
from tests.lab3.conftest import NAME, rows, wait_for


def served(models, folder, rotate_mb=16.0, keep_files=20, uri=None) -> TestClient:
    settings = Settings(
        model_uri=uri or str(models.folders["1"]),
        poll_interval_s=0.1,
        max_batch_rows=100,
        max_body_bytes=64 * 1024,
        prediction_log=LogSettings(folder, rotate_mb, keep_files),
    )
    return TestClient(create_app(settings))


def logged(folder) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("predictions-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_each_row_is_logged_with_its_inputs_answer_model_and_request_id(
    models, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", models.tracking_uri)
    sample = models.sample.head(4)
    columns, data = list(sample.columns), rows(sample)
    folder = tmp_path / "log"
    with served(models, folder, uri=f"models:/{NAME}/1") as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        answer = client.post(
            "/predict", json={"instances": data}, headers={"X-Request-ID": "week-1:42"}
        )
        unnamed = client.post("/predict", json={"instances": data[:1]})
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "week-1:42"
    minted = unnamed.headers["X-Request-ID"]
    assert len(minted) == 32  # none given: the service makes one and says it

    lines = logged(folder)  # the client has stopped: the writer flushed everything
    assert [line["request_id"] for line in lines] == ["week-1:42", minted]
    line, got = lines[0], answer.json()
    assert (line["model"], line["version"]) == (NAME, "1")
    assert line["columns"] == columns
    assert line["inputs"] == data  # as sent; a missing reading stays null
    assert any(value is None for row in data for value in row)
    assert line["classes"] == ["normal", "faulty"]
    np.testing.assert_allclose(line["probabilities"], got["probabilities"], rtol=0, atol=1e-15)
    assert line["labels"] == got["labels"]
    assert line["time"].endswith("Z") and len(lines[1]["inputs"]) == 1


def test_files_rotate_and_only_the_newest_are_kept(models, tmp_path):
    data = rows(models.sample.head(1))
    folder = tmp_path / "log"
    with served(models, folder, rotate_mb=2 / 1024, keep_files=3) as client:  # 2 KiB files
        wait_for(lambda: client.get("/ready").status_code == 200)
        for i in range(40):
            headers = {"X-Request-ID": f"r{i}"}
            assert client.post("/predict", json={"instances": data}, headers=headers).is_success
        wait_for(lambda: 'outcome="written"} 40.0' in client.get("/metrics").text)
    files = sorted(folder.glob("predictions-*.jsonl"))
    assert len(files) == 3
    assert all(path.stat().st_size < 2 * 1024 + 1024 for path in files)  # one line over at most
    kept = [line["request_id"] for line in logged(folder)]
    assert kept[-1] == "r39" and kept == sorted(kept, key=lambda r: int(r[1:]))  # the newest


def test_an_unwritable_log_never_fails_a_prediction_and_is_said_once(models, tmp_path, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("the log's folder cannot be made under a file")
    data = rows(models.sample.head(2))
    with served(models, blocker / "log") as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        for n in range(1, 6):  # each request handed over on its own: a streak of five failures
            assert client.post("/predict", json={"instances": data}).status_code == 200
            wait_for(lambda n=n: f'outcome="failed"}} {2.0 * n}' in client.get("/metrics").text)
    # The writer process logs to the service's stderr.
    said = [line for line in capfd.readouterr().err.splitlines() if "prediction log" in line]
    assert len(said) == 1 and str(blocker / "log") in said[0], said


def test_the_writer_turns_handed_over_bytes_into_lines_tables_and_images(tmp_path):
    """The writer's side of the hand-over, in this process: two requests (a table's rows and
    an image batch) sent as the service sends them become two lines with the same values."""
    import multiprocessing
    import threading

    import orjson

    from lab3.service.prediction_log import write_forever

    receiver, sender = multiprocessing.Pipe(duplex=False)
    counts = [0, 0]  # written, failed
    writer = threading.Thread(
        target=write_forever, args=(receiver, LogSettings(tmp_path / "log", 1.0, 5), counts)
    )
    writer.start()
    table = np.array([[1.5, np.nan], [2.0, 3.25]])
    images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    headers = [
        {
            "time": 0.0,
            "request_id": id_,
            "model": "m",
            "version": "2",
            "columns": columns,
            "classes": ["a", "b"],
            "labels": ["a", "b"],
            "arrays": [[x.dtype.str, x.shape], [probabilities.dtype.str, probabilities.shape]],
        }
        for id_, columns, x in (("t", ["c1", "c2"], table), ("i", None, images))
    ]
    sender.send_bytes(orjson.dumps(headers))
    # Each request's arrays in order: its inputs, then its probabilities.
    sender.send_bytes(b"".join(a.tobytes() for a in (table, probabilities, images, probabilities)))
    sender.close()
    writer.join(timeout=30)
    assert not writer.is_alive()
    lines = logged(tmp_path / "log")
    assert counts == [4, 0]
    assert lines[0]["time"] == "1970-01-01T00:00:00.000Z"
    assert lines[0]["inputs"] == [[1.5, None], [2.0, 3.25]] and lines[0]["columns"] == ["c1", "c2"]
    assert lines[0]["probabilities"] == probabilities.tolist()
    assert lines[1]["image_shape"] == [2, 2, 3]
    assert lines[1]["image_means"] == images.astype(float).mean(axis=(1, 2)).tolist()
    assert "inputs" not in lines[1]


def hand_over(sender, request_id: str, table: np.ndarray) -> None:
    """One tabular request, sent to a writer as the service's hand-over thread sends it."""
    import orjson

    probabilities = np.column_stack([1 - table[:, :1].clip(0, 1), table[:, :1].clip(0, 1)])
    header = {
        "time": time.time(),
        "request_id": request_id,
        "model": NAME,
        "version": "1",
        "columns": [f"c{i}" for i in range(table.shape[1])],
        "classes": ["normal", "faulty"],
        "labels": ["normal"] * len(table),
        "arrays": [[a.dtype.str, a.shape] for a in (table, probabilities)],
    }
    sender.send_bytes(orjson.dumps([header]))
    sender.send_bytes(table.tobytes() + probabilities.tobytes())


@pytest.mark.integration  # PostgreSQL
def test_the_log_goes_to_postgresql_and_a_dead_database_fails_no_prediction(
    models, tmp_path, monkeypatch, caplog
):
    import multiprocessing
    import threading
    from datetime import UTC, datetime, timedelta

    from lab3.monitor.traffic import read_log
    from tests.loopback import postgres

    monkeypatch.setenv("MLFLOW_TRACKING_URI", models.tracking_uri)
    data = rows(models.sample.head(3))
    since = datetime.now(UTC) - timedelta(seconds=1)
    receiver, sender = multiprocessing.Pipe(duplex=False)
    counts = [0, 0]  # written, failed
    with postgres("predictions", "logger", "s3cret-pw") as uri:
        url = uri.replace("postgresql+psycopg://", "postgresql://")
        settings = Settings.from_env({"PREDICTION_LOG": url, "MODEL_URI": f"models:/{NAME}/1"})
        assert settings.prediction_log.destination == url  # a URL, not a folder under the checkout
        # The service, its writer process and the table.
        with TestClient(create_app(settings)) as client:
            wait_for(lambda: client.get("/ready").status_code == 200)
            for i in range(4):
                headers = {"X-Request-ID": f"pg-{i}"}
                assert client.post("/predict", json={"instances": data}, headers=headers).is_success
            wait_for(lambda: 'outcome="written"} 12.0' in client.get("/metrics").text)
        served = read_log(url, since, datetime.now(UTC))  # what monitoring reads back
        assert [key[0] for key in served.keys] == [f"pg-{i}" for i in range(4) for _ in range(3)]
        assert served.version == "1" and served.inputs.shape == (12, 15)
        assert np.array_equal(np.isnan(served.inputs[:3]), np.isnan(np.array(data, dtype=float)))
        # The writer's side in this process: rows while the database is up...
        writer = threading.Thread(
            target=write_forever, args=(receiver, LogSettings(url, 16.0, 20, 30.0), counts)
        )
        writer.start()
        hand_over(sender, "up", np.ones((2, 15)))
        wait_for(lambda: sum(counts) == 2)  # counted once inserted (or lost)
        assert counts == [2, 0]
    # ...and after it stopped: the rows are counted as failed, said once, without the password.
    hand_over(sender, "down-1", np.ones((3, 15)))
    wait_for(lambda: sum(counts) == 5)
    assert counts == [2, 3]
    hand_over(sender, "down-2", np.ones((4, 15)))
    sender.close()
    writer.join(timeout=30)
    assert counts == [2, 7]
    said = [r.getMessage() for r in caplog.records if "prediction log" in r.getMessage()]
    assert len(said) == 1 and "//***@127.0.0.1" in said[0], said
    assert "s3cret-pw" not in caplog.text


def test_monitoring_leaves_out_cut_and_overlong_lines_without_reading_them_whole(
    tmp_path, monkeypatch, caplog
):
    from datetime import UTC, datetime

    from lab3.monitor import traffic

    monkeypatch.setattr(traffic, "MAX_LINE_BYTES", 400)
    good = json.dumps(
        {"time": "2026-12-01T00:00:00Z", "request_id": "r", "model": "m", "version": "1",
         "columns": ["c"], "inputs": [[1.0]], "classes": ["normal", "faulty"],
         "probabilities": [[0.9, 0.1]], "labels": ["normal"]}
    )  # fmt: skip
    # An overlong line whose tail, read on its own, would be a valid row: it must not count.
    overlong = '{"pad": "' + "x" * 500 + '", ' + good[1:]
    (tmp_path / "predictions-1.jsonl").write_text(f"{good}\n{overlong}\n{good}\n{good[:20]}")
    window = (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    read: list[bytes] = []
    real_open = traffic.open_regular

    def spying_open(path):  # every chunk read, to check none is over the limit
        file = real_open(path)
        readline = file.readline
        file.readline = lambda size=-1: read.append(readline(size)) or read[-1]  # type: ignore[method-assign]
        return file

    monkeypatch.setattr(traffic, "open_regular", spying_open)
    served = traffic.read_log(tmp_path, *window)
    assert len(served.keys) == 2 and served.skipped == 2
    assert max(map(len, read)) <= 400
    assert "2 log lines left out" in caplog.text


# A full disk, in a child process (its file-size limit is the full disk: a write past it fails
# with EFBIG, as one on a full disk fails with ENOSPC): the writer's files, flushed as the writer
# flushes them, while writes fail, after they work again, and after the folder was removed.
FULL_DISK_DRIVER = """
import json, logging, resource, shutil, signal, sys
from pathlib import Path
from lab3.service.prediction_log import _Files

logging.basicConfig(level=logging.WARNING, format="%(message)s")
folder = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
files = _Files(folder, rotate_bytes=6000, keep_files=3)
line = b'{"rows": "' + b"x" * 987 + b'"}\\n'  # 1,000 bytes
outcome = {}
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (4500, hard))  # room for 4 lines and half of one
lost = []
for _ in range(20):  # 20 hand-overs of 2 lines of 3 rows each
    files.write(line, 3)
    files.write(line, 3)
    lost.append(files.flush())
outcome["lost"] = lost
outcome["files"] = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
files.write(line, 3)
outcome["lost_after"] = files.flush()
shutil.rmtree(folder)  # the folder removed under the writer
files.write(line, 3)
outcome["lost_removed"] = files.flush()
outcome["files_removed"] = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
files.close()
print(json.dumps(outcome))
"""


def test_a_full_disk_loses_no_history_counts_what_never_reached_it_and_says_it_once(tmp_path):
    import subprocess
    import sys

    from tests.project import REPO, clean_env

    folder = tmp_path / "log"
    folder.mkdir()
    history = [f"predictions-202611{day}T000000000000Z.jsonl" for day in ("01", "02")]
    for name in history:
        (folder / name).write_bytes(b'{"old": 1}\n' * 10)
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_DRIVER, str(folder)],
        cwd=REPO,
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    # The first two hand-overs fit; each later one fails whole and its 6 rows are counted lost.
    assert outcome["lost"] == [0, 0] + [6] * 18
    # The history is all there, beside the one file written to (whole lines only: a failed
    # write is cut back off); no file opened per failure, none pruned.
    files = outcome["files"]
    assert len(files) == 3 and all(files[name] == 110 for name in history), files
    assert [size for name, size in files.items() if name not in history] == [4000]
    assert outcome["lost_after"] == 0
    # The removed folder is made again, with a new file holding the line.
    assert outcome["lost_removed"] == 0
    assert list(outcome["files_removed"].values()) == [1000]
    said = done.stderr.strip().splitlines()
    assert len(said) == 2, said  # one line for the streak of 18 failures, one when it ended
    assert "File too large" in said[0] and str(folder) in said[0]
    assert "writing again (108 rows were not logged)" in said[1]


def fake_model(columns: int):
    """What the log reads of a served model."""
    from types import SimpleNamespace

    return SimpleNamespace(
        classes=["normal", "faulty"],
        info=SimpleNamespace(name=NAME, version="1"),
        columns=[f"c{i}" for i in range(columns)],
        kind="tabular",
    )


@pytest.mark.integration
@pytest.mark.mounts
def test_a_really_full_disk_keeps_the_history_and_the_log_recovers(tmp_path, capfd):
    """The service's log on a small tmpfs (root, as tests/lab1/test_full_disk.py), filled."""
    from lab3.service.prediction_log import PredictionLog
    from tests.lab1.test_full_disk import tmpfs

    model, table = fake_model(15), np.ones((100, 15))
    probabilities, labels = np.full((100, 2), 0.5), ["normal"] * 100
    with tmpfs(tmp_path / "disk", "1m") as disk:
        folder = disk / "log"
        folder.mkdir()
        history = folder / "predictions-20261101T000000000000Z.jsonl"
        history.write_bytes(b'{"old": 1}\n' * 100)
        log = PredictionLog(LogSettings(folder, rotate_mb=0.01, keep_files=3))
        log.start()
        try:
            filler = disk / "filler"  # the disk filled to the last byte
            with open(filler, "wb", buffering=0) as sink, contextlib.suppress(OSError):
                while True:
                    sink.write(b"\0" * 4096)
            for i in range(8):  # each on its own hand-over: a streak of 8 failures
                log.record(f"full-{i}", model, table, probabilities, labels)
                wait_for(lambda i=i: log.rows["failed"] == 100 * (i + 1))
            assert log.rows == {"written": 0, "dropped": 0, "failed": 800}
            assert history.stat().st_size == 1100  # the history is kept
            others = [p for p in folder.iterdir() if p != history]
            assert len(others) <= 1 and all(p.stat().st_size == 0 for p in others), others
            filler.unlink()  # space again
            log.record("after", model, table, probabilities, labels)
            wait_for(lambda: log.rows["written"] == 100)
            shutil.rmtree(folder)  # the folder removed under the service
            log.record("removed", model, table, probabilities, labels)
            wait_for(lambda: log.rows["written"] == 200)
            assert [line["request_id"] for line in logged(folder)] == ["removed"]
        finally:
            log.stop()
    said = [line for line in capfd.readouterr().err.splitlines() if "prediction log" in line]
    assert len(said) == 2, said  # the streak, and its end
    assert "No space left on device" in said[0] and "800 rows were not logged" in said[1]


def test_what_waits_for_a_stopped_writer_is_held_to_its_bytes_then_dropped_and_counted(
    tmp_path, caplog
):
    import os
    import signal

    from lab3.service.prediction_log import PredictionLog

    model, table = fake_model(15), np.ones((1000, 15))  # 120 KB of inputs a request
    probabilities, labels = np.full((1000, 2), 0.5), ["normal"] * 1000
    log = PredictionLog(LogSettings(tmp_path / "log", 16.0, 20, max_pending_mb=2.0))
    log.start()
    os.kill(log._writer.pid, signal.SIGSTOP)  # a writer stuck on a dead disk
    try:
        for i in range(100):
            log.record(f"r{i}", model, table, probabilities, labels)
            time.sleep(0.01)  # hand-overs happen meanwhile: what they hold counts too
    finally:
        os.kill(log._writer.pid, signal.SIGCONT)
    dropped = log.rows["dropped"]
    log.stop()
    written = log.rows["written"]
    assert written + dropped == 100_000 and log.rows["failed"] == 0
    # At most 2 MiB waited: 14 requests of 1000 rows (146 KB each, with their answers).
    assert 1000 <= written <= 14_000, log.rows
    assert sum(len(line["inputs"]) for line in logged(tmp_path / "log")) == written
    said = [r.getMessage() for r in caplog.records if "dropping" in r.getMessage()]
    assert len(said) == 1 and "max_pending_mb" in said[0], said
