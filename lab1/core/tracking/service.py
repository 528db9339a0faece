"""The tracking service: one process per pipeline.sh run that holds the MLflow client.

  python -m lab1.core.tracking.service serve --socket PATH --owner-pid PID [stage options]
  python -m lab1.core.tracking.service end --status FINISHED|FAILED|KILLED [--if-running]

pipeline.sh starts it before the first stage and exports ``MLOPS_TRACKING_SOCKET``. It binds the
socket at once, then connects to the store and begins the parent run while the first stages
already run (wandb's service process is the pattern): a stage sends JSON lines and goes on,
waiting only for the answers it needs. One worker applies the requests in arrival order, with
one ``Recorder`` per stage connection. A connection that closes before its run ended (a killed
stage) ends the run KILLED. ``end`` waits until every stage connection has closed, ends the
parent run and stops the service. On SIGTERM, or if pipeline.sh dies, stages get a few seconds
to report their end; then what is open ends KILLED.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab1.core.errors import EXIT_ERROR, PipelineError, TrackingStopped, one_line
from lab1.core.io import pid_alive

logger = logging.getLogger("lab1.tracking_service")

SOCKET_ENV = "MLOPS_TRACKING_SOCKET"
GRACE_S = 5.0  # after SIGTERM: how long stages get to report their own end
POLL_S = 0.25
SAY_WAIT_S = 5.0  # a stage that waits longer for an answer says what it waits for


class ServiceClient:
    """The stages' side: one connection (one per stage process); standard library only."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise PipelineError(
                f"{SOCKET_ENV}={path}: the pipeline's tracking service is not running "
                f"({exc.strerror}); see its error above"
            ) from None
        self.answers = self.sock.makefile("rb")
        self.sent = 0

    def call(self, method: str, reply: bool = False, **args: Any) -> Any:
        """Send ``method(**args)``; with ``reply``, wait for its result (answers come in order)."""
        self.sent += 1
        message = {"id": self.sent, "method": method, "args": args, "reply": reply}
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
            if reply and not select.select([self.sock], [], [], SAY_WAIT_S)[0]:
                logger.info("waiting for the tracking service to record what this stage sent")
            line = self.answers.readline() if reply else b"{}"
            why = "connection closed"
        except OSError as exc:
            line, why = b"", exc.strerror or str(exc)
        if not line:
            raise TrackingStopped(f"the pipeline's tracking service stopped ({why}); see above")
        answer = json.loads(line)
        if "error" in answer:
            raise PipelineError(f"tracking: {answer['error']}")
        return answer.get("result")

    def close(self) -> None:
        self.answers.close()
        self.sock.close()


@dataclass
class Connection:
    """One stage process's connection and the run it records."""

    sock: socket.socket
    recorder: Any = None  # the Recorder, from the first request on
    ended: bool = False
    failed: str = ""  # the first of its requests that failed


@dataclass
class Service:
    params: Any
    owner_pid: int
    inbox: queue.Queue = field(default_factory=queue.Queue)
    connections: dict[int, Connection] = field(default_factory=dict)  # open, by id
    client: Any = None
    parent: str | None = None
    errors: int = 0
    end: tuple[Connection, int, str] | None = None  # who asked to end, their request, status
    stop_deadline: float | None = None  # set by SIGTERM or a dead owner

    def accept(self, server: socket.socket) -> None:
        while True:
            try:
                sock, _ = server.accept()
            except OSError:  # the server socket was closed: the service is stopping
                return
            connection = Connection(sock)
            self.inbox.put(("open", connection, None))
            threading.Thread(target=self.read, args=(connection,), daemon=True).start()

    def read(self, connection: Connection) -> None:
        with connection.sock.makefile("rb") as lines:
            for line in lines:
                self.inbox.put(("message", connection, json.loads(line)))
        self.inbox.put(("closed", connection, None))

    def work(self) -> int:
        """The worker: everything MLflow happens here, in order."""
        from lab1.core.tracking.parent import begin_pipeline
        from lab1.core.tracking.store import connect

        try:
            self.client = connect()
            self.parent = begin_pipeline(self.params, self.owner_pid, self.client)
        except Exception as exc:  # the store or server is unusable: stages will say so too
            logger.error("tracking service: cannot begin the pipeline run: %s", _line(exc))
            return EXIT_ERROR
        _warm_up()
        while not self.finished():
            with contextlib.suppress(queue.Empty):
                kind, connection, message = self.inbox.get(timeout=POLL_S)
                if kind == "open":
                    self.connections[id(connection)] = connection
                elif kind == "message":
                    self.handle(connection, message)
                else:
                    self.closed(connection)
            if not pid_alive(self.owner_pid) and self.stop_deadline is None:
                logger.warning("tracking service: pipeline.sh (pid %d) died", self.owner_pid)
                self.stop_deadline = time.monotonic()
        return EXIT_ERROR if self.errors else 0

    def handle(self, connection: Connection, message: dict) -> None:
        from lab1.core.tracking.recorder import METHODS, Recorder

        method, args = message["method"], message.get("args", {})
        if method == "end_pipeline":
            # The stages' connections have closed (pipeline.sh waits for each stage), but their
            # last messages may still be in the inbox: the end comes after them.
            self.connections.pop(id(connection), None)
            self.end = (connection, message["id"], args["status"])
            return
        if connection.failed and message.get("reply"):
            # A write this stage did not wait for failed: what it waits on now (a model URI, a
            # registry move) must not go ahead as if that write had happened.
            _send(connection.sock, {"id": message["id"], "error": connection.failed})
            return
        try:
            if method not in METHODS:
                raise PipelineError(f"unknown request {method!r}")
            connection.recorder = connection.recorder or Recorder(self.client, self.parent)
            answer: dict[str, Any] = {"result": getattr(connection.recorder, method)(**args)}
            connection.ended = connection.ended or method == "end"
        except Exception as exc:
            self.errors += 1
            stage = getattr(connection.recorder, "stage", "") or "a stage"
            logger.error("tracking service: %s of %s failed: %s", method, stage, _line(exc))
            answer = {"error": f"{method} failed: {_line(exc)}"}
            connection.failed = connection.failed or answer["error"]
        if message.get("reply"):
            _send(connection.sock, {"id": message["id"], **answer})

    def closed(self, connection: Connection) -> None:
        """A stage process is gone; if it never ended its run, it was killed."""
        self.connections.pop(id(connection), None)
        self._end_killed(connection, f"process {getattr(connection.recorder, 'pid', 0)} died")
        connection.sock.close()

    def _end_killed(self, connection: Connection, reason: str) -> None:
        recorder = connection.recorder
        if recorder is None or not recorder.run_id or connection.ended:
            return
        connection.ended = True
        try:
            recorder.end("KILLED", reason=reason)
        except Exception as exc:
            self.errors += 1
            logger.error("tracking service: cannot end run %s: %s", recorder.run_id, _line(exc))

    def finished(self) -> bool:
        """End the parent run once asked to and every stage has gone (or the grace is over);
        what the stages sent is recorded first, even after the grace."""
        if self.end is None and self.stop_deadline is None:
            return False
        grace_over = self.stop_deadline is not None and time.monotonic() > self.stop_deadline
        if (self.connections and not grace_over) or not self.inbox.empty():
            return False
        for connection in self.connections.values():  # stages that did not report their end
            self._end_killed(connection, "the tracking service was stopped")
        from lab1.core.tracking.parent import end_pipeline

        try:
            assert self.parent is not None  # work() returned early without one
            end_pipeline(self.parent, self.end[2] if self.end else "KILLED", self.client)
        except Exception as exc:
            self.errors += 1
            logger.error("tracking service: cannot end run %s: %s", self.parent, _line(exc))
        if self.end is not None:
            _send(self.end[0].sock, {"id": self.end[1], "result": self.errors})
        return True

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_deadline is None:
            logger.warning("tracking service: signal %d; ending the runs", signum)
            self.stop_deadline = time.monotonic() + GRACE_S


def _line(exc: BaseException) -> str:
    """One line for an error; one of the store's names the store."""
    from lab1.core.cli import is_store_error, store_error_line

    return store_error_line(exc) if is_store_error(exc) else one_line(exc)


def _send(sock: socket.socket, payload: dict) -> None:
    # The stage may be gone; its run is ended when its connection closes.
    with contextlib.suppress(OSError):
        sock.sendall(json.dumps(payload).encode() + b"\n")


def _warm_up() -> None:
    """Save a tiny model the way model_io logs ours, into a folder thrown away, while the first
    stages work: MLflow's first-call costs on its save path (signature, input example, serving
    check) are paid before model_preparation asks to log."""
    import tempfile
    from pathlib import Path

    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from lab1.core.model_io import pip_requirements, trusted_types

    example = pd.DataFrame({"x": [0.0, 1.0]})
    model = LogisticRegression().fit(example, [0.0, 1.0])  # float labels: no int-schema hint
    with tempfile.TemporaryDirectory() as scratch:
        mlflow.sklearn.save_model(
            model,
            Path(scratch) / "model",
            serialization_format="skops",
            skops_trusted_types=trusted_types(model),
            input_example=example,
            pip_requirements=pip_requirements(),
        )


def serve(args: argparse.Namespace) -> int:
    from lab1.core.cli import params_from_args

    try:
        params = params_from_args(args)
    except PipelineError as exc:
        logger.error("tracking service: %s", exc)
        return EXIT_ERROR
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.socket)
    server.listen()
    service = Service(params, args.owner_pid)
    # SIGTERM (Jenkins' abort, kill): end what is open. SIGINT stays ignored, as bash leaves it
    # for background jobs: on Ctrl-C, pipeline.sh stops the stage and then asks for the end.
    signal.signal(signal.SIGTERM, service.on_signal)
    threading.Thread(target=service.accept, args=(server,), daemon=True).start()
    try:
        return service.work()
    finally:
        server.close()
        # If pipeline.sh was killed, its socket's folder goes here (rmdir: only if empty).
        with contextlib.suppress(OSError):
            os.unlink(args.socket)
            os.rmdir(os.path.dirname(args.socket))


def end(args: argparse.Namespace) -> int:
    """Ask the service to end the parent run, after recording everything the stages sent."""
    try:
        client = ServiceClient(os.environ.get(SOCKET_ENV) or "")
        errors = client.call("end_pipeline", reply=True, status=args.status)
        client.close()
    except PipelineError as exc:
        if args.if_running:  # it stopped by itself (the same SIGTERM reached it)
            return 0
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    if errors:
        sys.stderr.write(f"error: tracking: {errors} request(s) failed (see the errors above)\n")
    return EXIT_ERROR if errors else 0


def main(argv: list[str] | None = None) -> int:
    import gc

    from lab1.core.cli import setup_logging, stage_parser

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve", parents=[stage_parser(None)], add_help=False)
    server.add_argument("--socket", required=True, help="Unix socket path to listen on")
    server.add_argument("--owner-pid", type=int, required=True, help="pipeline.sh's PID")
    ending = commands.add_parser("end", help=f"end the parent run (socket: ${SOCKET_ENV})")
    ending.add_argument("--status", choices=("FINISHED", "FAILED", "KILLED"), required=True)
    ending.add_argument(
        "--if-running", action="store_true", help="a service already stopped is not an error"
    )
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    code = serve(args) if args.command == "serve" else end(args)
    gc.freeze()  # skip collecting MLflow's module graph at exit (about 1 s): the runs are ended
    return code


if __name__ == "__main__":
    raise SystemExit(main())
