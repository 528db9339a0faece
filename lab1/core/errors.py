"""Errors the pipeline reports as one line, and the exit codes every script shares."""

from __future__ import annotations

import contextlib
import json

EXIT_OK = 0
EXIT_ERROR = 1  # bad input, bad params, a failed stage
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_GATE_REJECTED = 3  # model_registration: the model did not pass the quality gate


class PipelineError(Exception):
    """An expected failure with a one-line message naming the file, field and value."""


class ParamsError(PipelineError):
    """params.yaml or a -S override is invalid."""


class DataError(PipelineError):
    """An input file is missing, garbled or has the wrong content."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (MLflow's own message for its REST errors)."""
    message = getattr(exc, "message", None) or str(exc)
    with contextlib.suppress(ValueError, AttributeError):  # MLflow REST errors carry JSON
        message = json.loads(message).get("message", message)
    message = str(message).strip()
    return message.splitlines()[0] if message else type(exc).__name__
