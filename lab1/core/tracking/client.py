"""The stages' side of the tracking service: JSON lines over a Unix socket.

Standard library only, so that a stage recording through the service never imports MLflow.

  python -m lab1.core.tracking.client end --status FINISHED    (pipeline.sh, after the stages)

A request with ``reply=False`` returns at once (the service applies it in order, later); one
with ``reply=True`` waits for the service's answer. The service answers only those, in order.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from typing import Any, Protocol

from lab1.core.errors import EXIT_ERROR, PipelineError, TrackingStopped

SOCKET_ENV = "MLOPS_TRACKING_SOCKET"


class ServiceClient:
    """One connection to the tracking service (one per stage process)."""

    def __init__(self, path: str):
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._socket.connect(path)
        except OSError as exc:
            self._socket.close()
            raise PipelineError(
                f"{SOCKET_ENV}={path}: the pipeline's tracking service is not running "
                f"({exc.strerror}); see its error above"
            ) from None
        self._answers = self._socket.makefile("rb")
        self._next_id = 0

    def call(self, method: str, reply: bool = False, **args: Any) -> Any:
        """Send ``method(**args)``; with ``reply`` wait for and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "args": args, "reply": reply}
        try:
            self._socket.sendall(json.dumps(message).encode() + b"\n")
            if not reply:
                return None
            line = self._answers.readline()
        except OSError as exc:
            raise TrackingStopped(self._gone(exc.strerror or str(exc))) from None
        if not line:
            raise TrackingStopped(self._gone("connection closed"))
        answer = json.loads(line)
        if "error" in answer:
            raise PipelineError(f"tracking: {answer['error']}")
        return answer.get("result")

    def _gone(self, why: str) -> str:
        return f"the pipeline's tracking service stopped ({why}); see its error above"

    def close(self) -> None:
        self._answers.close()
        self._socket.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ask the pipeline's tracking service (MLOPS_TRACKING_SOCKET) to end the "
        "parent run with STATUS, after recording everything the stages reported."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    end = commands.add_parser("end", help="end the parent run and stop the service")
    end.add_argument("--status", choices=("FINISHED", "FAILED", "KILLED"), required=True)
    end.add_argument(
        "--if-running",
        action="store_true",
        help="a service that has already stopped (it got the same SIGTERM) is not an error",
    )
    args = parser.parse_args(argv)
    path = os.environ.get(SOCKET_ENV)
    if not path:
        sys.stderr.write(f"error: {SOCKET_ENV} is not set\n")
        return EXIT_ERROR
    try:
        client = ServiceClient(path)
        errors = client.call("end_pipeline", reply=True, status=args.status)
        client.close()
    except PipelineError as exc:
        if args.if_running:  # it stopped by itself (the same SIGTERM reached it)
            return 0
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    if errors:
        sys.stderr.write(f"error: tracking: {errors} request(s) failed (see the errors above)\n")
        return EXIT_ERROR
    return 0


class Channel(Protocol):
    """Where a stage's tracking calls go: the tracking service or a Recorder in-process."""

    def call(self, method: str, reply: bool = False, **args: Any) -> Any: ...

    def close(self) -> None: ...


class DirectChannel:
    """A Recorder in this process (no tracking service): connects to the store itself."""

    def __init__(self) -> None:
        from lab1.core.tracking.parent import parent_run_id
        from lab1.core.tracking.recorder import Recorder
        from lab1.core.tracking.store import connect

        self.client = connect()
        self.recorder = Recorder(self.client, parent_run_id())

    def call(self, method: str, reply: bool = False, **args: Any) -> Any:
        # Through JSON as over the socket, so both paths see exactly the same values.
        return getattr(self.recorder, method)(**json.loads(json.dumps(args)))

    def close(self) -> None:
        pass


def open_channel() -> Channel:
    path = os.environ.get(SOCKET_ENV)
    return ServiceClient(path) if path else DirectChannel()


if __name__ == "__main__":
    raise SystemExit(main())
