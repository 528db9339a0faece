"""What the service saw in a time window (its prediction log), and the labels that came later."""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import orjson

from lab1.core.errors import DataError, without_credentials

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 2**20  # the service's body limit is far below this
MAX_LABEL_FILE_BYTES = 256 * 2**20
FAULT_KIND = re.compile(r"[A-Za-z0-9_-]{0,64}")


@dataclass
class Traffic:
    """The rows one model version answered in the window, in the order they were answered."""

    model: str
    version: str
    columns: list[str]
    keys: list[tuple[str, int]]  # (request id, row within the request)
    inputs: np.ndarray  # rows x readings, NaN = missing
    probabilities: np.ndarray  # the model's probability of "faulty"
    predicted: np.ndarray  # 1 = answered "faulty"
    left_out: int  # rows answered by other versions in the window
    skipped: int = 0  # log lines left out: cut short, not JSON, or not of the log's form


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_log(source: Path | str, since: datetime, until: datetime) -> Traffic:
    """The log's rows answered in [since, until), of the version that answered most of them.
    ``source``: the log's folder, or a postgresql:// URL. Read line by line, keeping only the
    window's rows, as arrays: memory goes with the window, not the log. A line that is not a
    prediction line of the log's form (cut, not JSON, a field of the wrong type) is left out
    and counted (``Traffic.skipped``)."""
    window = _Window(since, until)
    if isinstance(source, str):
        from lab3.service.prediction_table import read_window

        for line in read_window(source, since, until):
            window.add(line)
        shown_source: object = without_credentials(source)
    else:
        _read_folder(source, window)
        shown_source = source
    skipped = f"{window.skipped} log lines left out (cut short, not JSON, or not of the log's form)"
    if not window.versions:  # one line: the lines left out are part of the reason
        raise DataError(
            f"{shown_source}: no logged predictions between {since:%Y-%m-%d %H:%M:%S} and "
            f"{until:%Y-%m-%d %H:%M:%S} UTC "
            + (f"({skipped})" if window.skipped else "(is the service's prediction log on? "
               "params.yaml monitoring.prediction_log)")
        )  # fmt: skip
    if window.skipped:
        logger.warning("%s: %s", shown_source, skipped)
    return window.traffic()


LINE_TIME = re.compile(rb'^\{"time":"([^"]{1,40})"')  # how the service's writer starts a line


def _read_folder(folder: Path, window: _Window) -> None:
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(
            f"{folder}: the prediction log's folder {what} (PREDICTION_LOG or params.yaml "
            "monitoring.prediction_log; the service makes it when it first logs)"
        )
    for path in sorted(folder.glob("predictions-*.jsonl")):
        with open_regular(path) as file:
            cut = False  # in the middle of a line over the limit: never held whole in memory
            for raw in iter(lambda: file.readline(MAX_LINE_BYTES), b""):
                if cut or not raw.endswith(b"\n"):
                    window.skipped += not cut  # a line cut short by a killed writer, or not ours
                    cut = not raw.endswith(b"\n")
                    continue
                stamp = LINE_TIME.match(raw)  # out of the window: not parsed at all
                if stamp and not window.holds(stamp.group(1).decode(errors="replace")):
                    continue
                try:
                    line = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    window.skipped += 1
                    continue
                window.add(line)


def open_regular(path: Path) -> IO[bytes]:
    """Open a file for reading, refusing anything but a regular file (after links): a FIFO
    named like a log file would be read forever, a device without end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{path}: not a regular file (a FIFO, device or folder); refused")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


NUMBER = (int, float)


class _Window:
    """The window's rows, per (model, version), as they are read."""

    def __init__(self, since: datetime, until: datetime):
        self.since, self.until = since, until
        self.skipped = 0
        # (model, version) -> its columns, and (request id, inputs, faulty, predicted) per line
        self.versions: dict[tuple[str, str], tuple[tuple[str, ...], list[list]]] = {}

    def holds(self, text: str) -> bool:
        """Whether a line's time is in the window (an unreadable time: to be parsed whole)."""
        try:
            return self.since <= parse_time(text) < self.until
        except ValueError:
            return True

    def add(self, line: object) -> None:
        """One logged line: kept if in the window, counted as skipped if not of the form."""
        try:  # the time first: a line out of the window is not looked at further
            if not isinstance(line, dict):
                raise TypeError("not an object")
            if not self.since <= parse_time(_typed(line["time"], str)) < self.until:
                return
            found = _checked(line)
        except (KeyError, TypeError, ValueError, IndexError):
            self.skipped += 1
            return
        if found is None:  # an image model's line: not monitored here
            return
        key, columns, *part = found
        known, parts = self.versions.setdefault(key, (columns, []))
        if columns != known:  # one version, one set of columns
            self.skipped += 1
            return
        parts.append(part)

    def traffic(self) -> Traffic:
        """The rows of the version that answered the most of them."""
        counts = {  # a line's inputs hold one row per predicted row
            key: sum(len(inputs) for _, inputs, _, _ in parts)
            for key, (_, parts) in self.versions.items()
        }
        model, version = max(counts, key=counts.__getitem__)
        columns, parts = self.versions[(model, version)]
        request_ids, inputs, faulty, predicted = zip(*parts, strict=True)
        return Traffic(
            model=model,
            version=version,
            columns=list(columns),
            keys=[
                (request_id, row)
                for request_id, rows in zip(request_ids, inputs, strict=True)
                for row in range(len(rows))  # (request id, row in the request)
            ],
            inputs=np.concatenate(inputs),
            probabilities=np.concatenate(faulty),
            predicted=np.concatenate(predicted),
            left_out=sum(counts.values()) - counts[(model, version)],
            skipped=self.skipped,
        )


def _checked(line: dict) -> tuple | None:
    """A line's fields, checked (a wrong type raises); None for an image model's line."""
    model, version = _typed(line["model"], str), line["version"]
    if not isinstance(version, str | int) or isinstance(version, bool):
        raise TypeError("version")
    if "inputs" not in line and "image_shape" in line:
        return None
    columns = tuple(_typed(c, str) for c in _typed(line["columns"], list))
    classes = [_typed(c, str) for c in _typed(line["classes"], list)]
    faulty = classes.index("faulty")
    inputs = _table(line["inputs"], len(columns), allow_null=True)
    probabilities = _table(line["probabilities"], len(classes), allow_null=False)
    labels = [_typed(label, str) for label in _typed(line["labels"], list)]
    if not len(inputs) == len(probabilities) == len(labels) or not len(inputs):
        raise ValueError("rows")
    predicted = np.array([label == "faulty" for label in labels], int)
    request_id = _typed(line["request_id"], str)
    return (model, str(version)), columns, request_id, inputs, probabilities[:, faulty], predicted


def _typed(value, kind):
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(kind.__name__)
    return value


def _table(rows: list, width: int, allow_null: bool) -> np.ndarray:
    """Rows of ``width`` numbers (null: missing, where allowed) as a float array."""
    allowed = (*NUMBER, type(None)) if allow_null else NUMBER
    rows = _typed(rows, list)
    for row in rows:
        if len(_typed(row, list)) != width:
            raise ValueError("width")
        for value in row:
            if not isinstance(value, allowed) or isinstance(value, bool):
                raise TypeError("value")
    return np.array(rows, dtype=float).reshape(len(rows), width)  # null becomes NaN


def read_labels(path: Path) -> dict[tuple[str, int], tuple[int, str]]:
    """A labels file: CSV with columns request_id, row (the row within the request; 0 if
    absent), label (faulty/normal or 1/0) and optionally fault_kind. Returns
    ``{(request_id, row): (label, fault_kind)}``. A bad value is a DataError naming its line."""
    labels = {}
    with io.TextIOWrapper(open_regular(path), "utf-8", "replace", newline="") as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_LABEL_FILE_BYTES:
            raise DataError(
                f"{path}: {size} bytes, over the {MAX_LABEL_FILE_BYTES} a labels file may be"
            )
        reader = csv.DictReader(file)
        missing = {"request_id", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: no column {sorted(missing)[0]!r} (need request_id, label)")
        for number, record in enumerate(reader, start=2):
            label = {"faulty": 1, "1": 1, "normal": 0, "0": 0}.get(record["label"].strip())
            row = record.get("row") or "0"
            if label is None or not row.isdigit():
                field, value = ("label", record["label"]) if label is None else ("row", row)
                raise DataError(f"{path}:{number}: {field} {value!r} (label: faulty/normal or 1/0)")
            kind = (record.get("fault_kind") or "").strip()
            if not FAULT_KIND.fullmatch(kind):  # it names metrics (recall_<kind>) and files
                raise DataError(
                    f"{path}:{number}: fault_kind {kind[:80]!r} (letters, digits, _ and -, "
                    "at most 64)"
                )
            labels[(record["request_id"], int(row))] = (label, kind)
    return labels
