"""Lab 1: the five-stage pipeline (stage scripts) and the small library they share (lab1.core)."""

import sys
from types import TracebackType


def _quiet_interrupt(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    """Ctrl-C is not a bug: no traceback, whenever it lands (even while modules still import).
    The process still ends as killed by SIGINT, which a shell reports as exit 130."""
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        return
    sys.__excepthook__(kind, value, traceback)


sys.excepthook = _quiet_interrupt
