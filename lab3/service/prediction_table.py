"""The prediction log in PostgreSQL (PREDICTION_LOG=postgresql://...): the stack's database.

The writer process (prediction_log.py) gives it the same JSON lines it would write to a file;
each becomes a row of table ``predictions`` (the line as jsonb, with its time, request id, model
and version as columns, indexed by time for monitoring's windows). Rows older than ``keep_days``
are deleted once an hour. A database that is down or refuses never fails a prediction: the rows
are counted as failed, the problem is said once, and a new connection is tried every few
seconds, so the writer never falls behind waiting on a dead server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

from lab1.core.errors import one_line, without_credentials

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    time timestamptz NOT NULL,
    request_id text NOT NULL,
    model text,
    version text,
    line jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_time ON predictions (time);
"""
INSERT = (
    "INSERT INTO predictions (time, request_id, model, version, line) VALUES (%s, %s, %s, %s, %s)"
)
RETRY_EVERY_S = 5.0
PRUNE_EVERY_S = 3600.0


class Table:
    """What _Files is for a folder: ``write(line, rows)``, ``flush()``, ``close()``."""

    def __init__(self, url: str, keep_days: float):
        self.url, self.keep_days = url, keep_days
        self.shown = without_credentials(url)
        self._connection: Any = None
        self._rows: list[tuple[Any, ...]] = []  # one per line: a table row per request
        self._answers = 0  # the predicted rows those lines hold
        self._next_try = 0.0
        self._next_prune = 0.0
        self._failing = False

    def write(self, line: bytes, rows: int) -> bool:
        """Buffer one line of ``rows`` predicted rows; flush() inserts them. False when the
        database is known to be down."""
        if self._connection is None and time.monotonic() < self._next_try:
            return False
        record = orjson.loads(line)
        fields = (record["time"], record["request_id"], record["model"], str(record["version"]))
        self._rows.append((*fields, line.decode()))
        self._answers += rows
        return True

    def flush(self) -> int:
        """Insert the buffered lines in one transaction; returns how many predicted rows (a
        line holds a request's rows) were lost."""
        rows, self._rows = self._rows, []
        answers, self._answers = self._answers, 0
        if not rows:
            return 0
        import psycopg

        try:
            connection = self._connect()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(INSERT, rows)
            self._prune(connection)
        except (psycopg.Error, OSError) as exc:
            self._lost(exc)
            return answers
        self._failing = False
        return 0

    def close(self) -> None:
        self.flush()
        if self._connection is not None:
            self._connection.close()

    def _connect(self) -> Any:
        import psycopg

        if self._connection is None:
            self._connection = psycopg.connect(self.url, connect_timeout=5, autocommit=True)
            self._connection.execute(SCHEMA)
        return self._connection

    def _prune(self, connection: Any) -> None:
        if time.monotonic() >= self._next_prune:
            connection.execute(
                "DELETE FROM predictions WHERE time < now() - make_interval(secs => %s)",
                (self.keep_days * 86400,),
            )
            self._next_prune = time.monotonic() + PRUNE_EVERY_S

    def _lost(self, exc: Exception) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self._next_try = time.monotonic() + RETRY_EVERY_S
        if not self._failing:
            logger.warning(
                "prediction log %s: %s; predictions go on, unlogged rows are counted in /metrics",
                self.shown,
                one_line(exc),
            )
            self._failing = True


def read_window(url: str, since: Any, until: Any) -> Iterator[Any]:
    """The logged lines answered in [since, until), oldest first (monitoring's reader), a few
    thousand at a time (a server-side cursor): never the whole window's JSON at once."""
    import psycopg

    with (
        psycopg.connect(url, connect_timeout=5) as connection,
        connection.cursor(name="window") as cursor,
    ):
        cursor.itersize = 2000
        cursor.execute(
            "SELECT line FROM predictions WHERE time >= %s AND time < %s ORDER BY time",
            (since, until),
        )
        yield from (row[0] for row in cursor)
