"""The prediction log: what the service saw and what it answered, for monitoring (issue 26).

Every answered request becomes one JSON line (a batch's rows stay together: one line per row cost
the service half its throughput on 1,000-row batches, measured with bench/serve_bench.py):

    {"time": "2026-12-01T03:20:00.123Z", "request_id": "week-1:42",
     "model": "temperature-classifier", "version": "3",
     "columns": ["t_lag_6", …], "inputs": [[12.5, null, …], …],
     "classes": ["normal", "faulty"], "probabilities": [[0.97, 0.03], …], "labels": ["normal", …]}

A missing reading is null. An image model's line holds each image's shape and per-channel mean
(`image_shape`, `image_means`) instead of its pixels.

The request path only appends to a queue: no I/O, no serialisation. A thread wakes twice a second
and hands what is queued, as raw array bytes, to a writer process, which turns it into JSON and
writes it. Serialising in the service's own process, even in a thread, took the interpreter
from the event loop: 1,000-row batches lost 17 % of their throughput (bench/serve_bench.py
--prediction-log). Files rotate at
``rotate_mb`` and only the newest ``keep_files`` are kept (params.yaml's `monitoring` section). A
full disk or a folder that vanished never fails a prediction: the rows are counted
(`service_prediction_log_rows{outcome="failed"}` in /metrics; "written" only once a write
holding them succeeded), said once per streak of failures, and never cost the log its history
(a failed write neither rotates nor prunes); a removed folder is made again. What waits for
the writer is held to ``max_pending_mb`` (its arrays' bytes, queued or being handed over): past
that (the writer is stopped, or slower than the traffic), rows are dropped, counted
(`outcome="dropped"`) and said once per streak.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from lab1.core.errors import without_credentials
from lab3.service.settings import LogSettings, is_database

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from lab3.service.model import ServedModel

logger = logging.getLogger(__name__)

REQUEST_BYTES = 1024  # what a queued request holds besides its arrays (its header, labels list)
HAND_OVER_EVERY_S = 0.5
BUFFER_BYTES = 2**20  # the writer's lines, written out at least this often
WRITTEN, FAILED = 0, 1  # the writer process's counts, in memory shared with the service


class PredictionLog:
    """The service's side: a queue, and a thread that hands it to the writer process."""

    def __init__(self, settings: LogSettings):
        self.destination = without_credentials(str(settings.destination))
        context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._counts = context.RawArray("q", 2)
        self._max_pending = int(settings.max_pending_mb * 2**20)
        self._lock = threading.Lock()  # the request path and the hand-over thread share these:
        self._pending_bytes = 0  # what waits for the writer: queued, or being handed over
        self._dropped = 0
        self._dropping = False  # in a streak of drops (said once)
        self._receiver, self._sender = context.Pipe(duplex=False)
        self._writer = context.Process(
            target=writer_process,
            args=(self._receiver, settings, self._counts),
            name="prediction-log-writer",
            daemon=True,
        )
        self._pending: deque[tuple[Any, ...]] = deque()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._hand_over_forever, name="prediction-log")

    @property
    def rows(self) -> dict[str, int]:
        return {
            "written": self._counts[WRITTEN],
            "dropped": self._dropped,
            "failed": self._counts[FAILED],
        }

    def start(self) -> None:
        self._writer.start()
        self._receiver.close()  # the writer's end now lives in the writer
        self._thread.start()

    def stop(self) -> None:
        """Hand over what is queued; the writer writes it, closes its file and exits."""
        self._stopping.set()
        self._thread.join(timeout=30)
        self._sender.close()
        self._writer.join(timeout=30)

    def record(
        self,
        request_id: str,
        model: ServedModel,
        batch: np.ndarray,
        probabilities: np.ndarray,
        labels: list[str],
    ) -> None:
        """Queue one answered request (the request path: O(1), never raises)."""
        size = batch.nbytes + probabilities.nbytes + 8 * len(labels) + REQUEST_BYTES
        with self._lock:
            if self._pending_bytes + size > self._max_pending:
                self._drop(len(batch), "writer behind (monitoring.max_pending_mb held)")
                return
            self._pending_bytes += size
        self._pending.append((time.time(), request_id, model, batch, probabilities, labels, size))

    def _drop(self, rows: int, why: str) -> None:
        """Count rows that will never be logged (under self._lock); say it once per streak."""
        if not self._dropping:
            logger.warning("prediction log %s: %s; dropping rows", self.destination, why)
            self._dropping = True
        self._dropped += rows

    def _hand_over_forever(self) -> None:
        while not self._stopping.wait(HAND_OVER_EVERY_S):
            self._hand_over()
        self._hand_over()

    def _hand_over(self) -> None:
        """Everything queued as two messages: the requests' headers, then their arrays' bytes
        (a copy, no per-value work; the pipe's write releases the GIL)."""
        requests = [self._pending.popleft() for _ in range(len(self._pending))]
        if not requests:
            return
        headers, blobs, size, rows = [], [], 0, 0
        for when, request_id, model, batch, probabilities, labels, nbytes in requests:
            width = probabilities.shape[1]
            classes = model.classes if len(model.classes) == width else list(map(str, range(width)))
            arrays = [np.ascontiguousarray(batch), np.ascontiguousarray(probabilities)]
            headers.append(
                {
                    "time": when,
                    "request_id": request_id,
                    "model": model.info.name,
                    "version": model.info.version,
                    "columns": model.columns if model.kind == "tabular" else None,
                    "classes": classes,
                    "labels": labels,
                    "arrays": [[a.dtype.str, a.shape] for a in arrays],
                }
            )
            blobs += [a.data for a in arrays]
            size, rows = size + nbytes, rows + len(batch)
        data = b"".join(blobs)  # the one copy; the arrays themselves go now
        del requests, blobs, arrays, batch, probabilities
        try:
            self._sender.send_bytes(orjson.dumps(headers))
            self._sender.send_bytes(data)
        except (OSError, ValueError) as exc:  # the writer died
            with self._lock:
                self._pending_bytes -= size
                self._drop(rows, f"writer gone ({exc})")
            return
        with self._lock:
            self._pending_bytes -= size
            self._dropping = False


# --- the writer process ------------------------------------------------------------------------


def writer_process(*args: Any) -> None:
    """The writer process's entry point: its log lines go to stderr, as the service's do."""
    from lab1.core.cli import setup_logging

    setup_logging()
    write_forever(*args)


def write_forever(receiver: Connection, settings: LogSettings, counts) -> None:
    """One JSON line per request handed over, until the service closes its end."""
    if is_database(settings.destination):
        from lab3.service.prediction_table import Table

        files: _Files | Table = Table(str(settings.destination), settings.keep_days)
    else:
        rotate_bytes = int(settings.rotate_mb * 2**20)
        files = _Files(Path(settings.destination), rotate_bytes, settings.keep_files)
    while True:
        try:
            headers = orjson.loads(receiver.recv_bytes())
            data = memoryview(receiver.recv_bytes())
        except (EOFError, OSError):
            files.close()
            return
        start, accepted, failed = 0, 0, 0
        for header in headers:
            arrays = []
            for dtype, shape in header.pop("arrays"):
                size = int(np.prod(shape)) * np.dtype(dtype).itemsize
                arrays.append(np.frombuffer(data[start : start + size], dtype).reshape(shape))
                start += size
            rows = len(arrays[0])
            if files.write(_line(header, *arrays), rows):
                accepted += rows
            else:
                failed += rows
        lost = files.flush()  # what was handed over is on disk (or in the table) now
        # Counted once written: a row is buffered first, and its write or insert can fail.
        counts[WRITTEN] += accepted - lost
        counts[FAILED] += failed + lost


def _line(header: dict[str, Any], batch: np.ndarray, probabilities: np.ndarray) -> bytes:
    stamp = datetime.fromtimestamp(header["time"], UTC).isoformat(timespec="milliseconds")
    record: dict[str, Any] = {
        "time": stamp[:-6] + "Z",
        "request_id": header["request_id"],
        "model": header["model"],
        "version": header["version"],
    }
    if header["columns"] is not None:
        record.update(columns=header["columns"], inputs=batch)
    else:
        image_means = batch.astype(np.float64).mean(axis=(1, 2))
        record.update(image_shape=list(batch.shape[1:]), image_means=image_means)
    record.update(classes=header["classes"], probabilities=probabilities, labels=header["labels"])
    # orjson writes numpy arrays natively (NaN as null), without a Python loop over the rows.
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


class _Files:
    """The log's files: rotated at ``rotate_bytes``, the newest ``keep_files`` kept.

    Lines are buffered and written out with plain ``os.write`` calls: a row counts as written
    only once the call that holds it returned. A write that fails (a full disk) is cut back
    off the file, so a file holds whole lines only, and it never opens a new file or prunes
    an old one: a full disk used to open a file per failure and prune the real history away.
    A file whose folder was removed is noticed (no links left) and a new one made. A failure
    is said once per streak, and the end of the streak once."""

    def __init__(self, folder: Path, rotate_bytes: int, keep_files: int):
        self.folder, self.rotate_bytes, self.keep_files = folder, rotate_bytes, keep_files
        self._fd: int | None = None
        self._size = 0  # of the current file
        self._prune_due = False  # a new file was opened: prune once a write into it succeeds
        self._lines: list[bytes] = []
        self._buffered = 0  # bytes
        self._rows = 0  # in the buffered lines
        self._lost = 0  # rows lost since the last flush()
        self._failing = 0  # rows lost in the current streak of failures

    def write(self, line: bytes, rows: int) -> bool:
        """Buffer one line of ``rows`` predicted rows; it is written out by flush(), or before
        once the current file or the buffer is full."""
        self._lines.append(line)
        self._buffered += len(line)
        self._rows += rows
        if self._size + self._buffered >= self.rotate_bytes or self._buffered >= BUFFER_BYTES:
            self._write_out()
        return True

    def flush(self) -> int:
        """Write out what is buffered; returns the rows lost since the last flush."""
        self._write_out()
        lost, self._lost = self._lost, 0
        return lost

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write_out(self) -> None:
        data, rows = b"".join(self._lines), self._rows
        self._lines, self._buffered, self._rows = [], 0, 0
        if not data:
            return
        try:
            fd = self._current()
            try:
                done = 0
                while done < len(data):  # a write may take only part of it
                    done += os.write(fd, data[done:])
            except OSError:
                with contextlib.suppress(OSError):  # no half line left in the file
                    os.ftruncate(fd, self._size)
                raise
        except OSError as exc:
            self._failed(exc, rows)
            return
        self._size += len(data)
        if self._prune_due:
            self._prune()
        if self._failing:
            logger.warning(
                "prediction log %s: writing again (%d rows were not logged)",
                self.folder,
                self._failing,
            )
            self._failing = 0

    def _failed(self, exc: OSError, rows: int) -> None:
        if not self._failing:
            logger.warning(
                "prediction log %s: %s; predictions go on, unlogged rows are counted in /metrics",
                self.folder,
                exc.strerror or exc,
            )
        self._failing += rows
        self._lost += rows

    def _current(self) -> int:
        """The file to write into: the current one, unless it is full or was removed."""
        if self._fd is not None:
            if self._size < self.rotate_bytes and os.fstat(self._fd).st_nlink > 0:
                return self._fd
            os.close(self._fd)
            self._fd = None
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"predictions-{stamp}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._prune_due = True
        return self._fd

    def _prune(self) -> None:
        self._prune_due = False
        for old in sorted(self.folder.glob("predictions-*.jsonl"))[: -self.keep_files]:
            old.unlink(missing_ok=True)
