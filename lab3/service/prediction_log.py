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
and writes what is queued, so it rarely takes the interpreter from the event loop. Files rotate at
``rotate_mb`` and only the newest ``keep_files`` are kept (params.yaml's `monitoring` section). A
full disk or a folder that vanished never fails a prediction: the rows are counted
(`service_prediction_log_rows{outcome="failed"}` in /metrics) and said once per streak of
failures. When the queue is full (the disk is slower than the traffic), rows are dropped and
counted the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from lab3.service.model import ServedModel

logger = logging.getLogger(__name__)

MAX_PENDING_REQUESTS = 10_000  # past this, the writer is too slow: drop, count, say once
WRITE_EVERY_S = 0.5


class PredictionLog:
    def __init__(self, folder: Path, rotate_mb: float, keep_files: int):
        self.folder, self.keep_files = folder, keep_files
        self.rotate_bytes = int(rotate_mb * 2**20)
        self.rows = {"written": 0, "dropped": 0, "failed": 0}
        self._pending: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._file: IO[bytes] | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._write_forever, name="prediction-log")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then close the file."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)

    def record(
        self,
        request_id: str,
        model: ServedModel,
        batch: np.ndarray,
        probabilities: np.ndarray,
        labels: list[str],
    ) -> None:
        """Queue one answered request (the request path: O(1), never raises)."""
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            if self.rows["dropped"] == 0:
                logger.warning(
                    "prediction log %s: the writer is behind; dropping rows", self.folder
                )
            self.rows["dropped"] += len(batch)
            return
        self._pending.append((time.time(), request_id, model, batch, probabilities, labels))

    # --- the writer thread -------------------------------------------------------------------

    def _write_forever(self) -> None:
        while True:
            self._wake.wait(WRITE_EVERY_S)  # set only to stop
            while self._pending:
                self._write(self._pending.popleft())
            self._flush()
            if self._stopping and not self._pending:
                if self._file is not None:
                    self._file.close()
                return

    def _write(self, request: tuple[Any, ...]) -> None:
        line = _line(*request)
        try:
            self._current_file().write(line)
        except OSError as exc:
            self._failed(len(request[3]), exc)
            return
        self.rows["written"] += len(request[3])
        self._failing = False

    def _flush(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as exc:
            self._file = None  # the next request opens a new file
            self._failed(0, exc)

    def _failed(self, rows: int, exc: OSError) -> None:
        self.rows["failed"] += rows
        if not self._failing:  # once per streak of failures, not once per request
            logger.warning(
                "prediction log %s: %s; predictions go on, unlogged rows are counted in /metrics",
                self.folder,
                exc.strerror or exc,
            )
            self._failing = True

    def _current_file(self) -> IO[bytes]:
        if self._file is not None and self._file.tell() < self.rotate_bytes:
            return self._file
        if self._file is not None:
            self._file.close()
            self._file = None
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._file = open(self.folder / f"predictions-{stamp}.jsonl", "ab")  # noqa: SIM115
        for old in sorted(self.folder.glob("predictions-*.jsonl"))[: -self.keep_files]:
            old.unlink(missing_ok=True)
        return self._file


def _line(when, request_id, model: ServedModel, batch, probabilities, labels) -> bytes:
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    width = probabilities.shape[1]
    classes = model.classes if len(model.classes) == width else [str(i) for i in range(width)]
    record: dict[str, Any] = {
        "time": stamp,
        "request_id": request_id,
        "model": model.info.name,
        "version": model.info.version,
    }
    if model.kind == "tabular":
        record.update(columns=model.columns, inputs=batch)
    else:
        image_means = np.asarray(batch, dtype=np.float64).mean(axis=(1, 2))
        record.update(image_shape=list(batch.shape[1:]), image_means=image_means)
    record.update(classes=classes, probabilities=probabilities, labels=labels)
    # orjson writes numpy arrays natively (NaN as null), without a Python loop over the rows.
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
