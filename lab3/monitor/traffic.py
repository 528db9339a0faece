"""What the service saw in a time window (its prediction log), and the labels that came later."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

from lab1.core.errors import DataError

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 2**20  # the service's body limit is far below this
MAX_LABEL_FILE_BYTES = 256 * 2**20


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


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    from datetime import UTC

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_log(source: Path | str, since: datetime, until: datetime) -> Traffic:
    """The log's rows answered in [since, until), of the version that answered most of them.
    ``source``: the log's folder, or a postgresql:// URL."""
    if isinstance(source, str):
        from lab3.service.prediction_table import read_window
        from lab3.service.settings import shown

        lines = [line for line in read_window(source, since, until) if "inputs" in line]
        return _traffic_of_one_version(_some(lines, shown(source), since, until))
    return _traffic_of_one_version(_some(_read_folder(source, since, until), source, since, until))


def _some(lines: list[dict], source: object, since: datetime, until: datetime) -> list[dict]:
    if not lines:
        raise DataError(
            f"{source}: no logged predictions between {since:%Y-%m-%d %H:%M:%S} and "
            f"{until:%Y-%m-%d %H:%M:%S} UTC (is the service's prediction log on? "
            "params.yaml monitoring.prediction_log)"
        )
    return lines


def _read_folder(folder: Path, since: datetime, until: datetime) -> list[dict]:
    lines, unreadable = [], 0
    for path in sorted(folder.glob("predictions-*.jsonl")):
        with path.open("rb") as file:
            cut = False  # in the middle of a line over the limit: never held whole in memory
            for raw in iter(lambda: file.readline(MAX_LINE_BYTES), b""):
                if cut or not raw.endswith(b"\n"):
                    unreadable += not cut  # a line cut short by a killed writer, or not ours
                    cut = not raw.endswith(b"\n")
                    continue
                try:
                    line = orjson.loads(raw)
                    moment = parse_time(line["time"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    unreadable += 1
                    continue
                if since <= moment < until and "inputs" in line:
                    lines.append(line)
    if unreadable:
        logger.warning("%s: %d unreadable log lines left out", folder, unreadable)
    return lines


def _traffic_of_one_version(lines: list[dict]) -> Traffic:
    served = Counter(
        (line["model"], str(line["version"])) for line in lines for _ in line["inputs"]
    )
    (model, version), _count = served.most_common(1)[0]
    mine = [line for line in lines if (line["model"], str(line["version"])) == (model, version)]
    faulty = mine[0]["classes"].index("faulty")
    inputs = [row for line in mine for row in line["inputs"]]
    return Traffic(
        model=model,
        version=version,
        columns=list(mine[0]["columns"]),
        keys=[(line["request_id"], i) for line in mine for i in range(len(line["inputs"]))],
        inputs=np.array([[np.nan if v is None else v for v in row] for row in inputs], float),
        probabilities=np.array([p[faulty] for line in mine for p in line["probabilities"]]),
        predicted=np.array([label == "faulty" for line in mine for label in line["labels"]], int),
        left_out=sum(served.values()) - served[(model, version)],
    )


def read_labels(path: Path) -> dict[tuple[str, int], tuple[int, str]]:
    """A labels file: CSV with columns request_id, row (the row within the request; 0 if
    absent), label (faulty/normal or 1/0) and optionally fault_kind. Returns
    ``{(request_id, row): (label, fault_kind)}``. A bad value is a DataError naming its line."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read the labels file ({exc.strerror})") from None
    if size > MAX_LABEL_FILE_BYTES:
        raise DataError(
            f"{path}: {size} bytes, over the {MAX_LABEL_FILE_BYTES} a labels file may be"
        )
    labels = {}
    with path.open(newline="", encoding="utf-8", errors="replace") as file:
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
            labels[(record["request_id"], int(row))] = (label, kind)
    return labels
