"""Errors the pipeline reports as one line, and the exit codes every script shares."""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import time
from collections.abc import Iterable

EXIT_OK = 0
EXIT_ERROR = 1  # bad input, bad params, a failed stage
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_GATE_REJECTED = 3  # model_registration: the model did not pass the quality gate


class PipelineError(Exception):
    """An expected failure with a one-line message naming the file, field and value."""


class ParamsError(PipelineError):
    """params.yaml is invalid."""


class UsageError(PipelineError):
    """A command-line mistake (a bad option or -S override): exit 2, as argparse's own."""


class DataError(PipelineError):
    """An input file is missing, garbled or has the wrong content."""


def one_line(exc: BaseException, whole: bool = False) -> str:
    """An exception's message as one line: its first line, or with ``whole`` every line joined
    (parsers such as YAML's spread one error over several lines). MLflow's REST errors carry
    JSON: their own message is used."""
    # A database error (SQLAlchemy's) says what the database said in ``orig``; its own text
    # leads with how it was raised and ends with the SQL.
    orig = getattr(exc, "orig", None)
    message = str(orig) if isinstance(orig, BaseException) else None
    message = message or getattr(exc, "message", None) or str(exc)
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(message).get("message", message)
    lines = [line for line in str(message).strip().splitlines() if not line.startswith("(raised")]
    if not lines:
        return type(exc).__name__
    return " ".join(" ".join(lines).split()) if whole else lines[0]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, or ""."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    # A part of the name ("mnist" for fashion_mnist) is too short for difflib's ratio.
    close = close or [choice for choice in choices if len(word) >= 3 and word in choice][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def error_line(who: str, message: str) -> str:
    """A one-line error written before logging is set up (a command-line mistake), in the same
    form as the logged ERROR lines: ``HH:MM:SS ERROR who: message``."""
    return f"{time.strftime('%H:%M:%S')} ERROR {who}: {message}\n"


def without_credentials(text: str, hidden: str = "***@") -> str:
    """``text`` with the credentials of any URI in it (scheme://user:password@host) replaced by
    ``hidden`` ("" for a link): the one scrubber for every message a user or client sees. Up to
    the last "@" before the path, as urllib and requests split a URI: a password may hold one."""
    return re.sub(r"(?<=://)[^/\s]+@", hidden, text)
