"""The tracking service: one process per pipeline.sh run that holds the MLflow client.

  python -m lab1.core.tracking.service --socket PATH --owner-pid PID [stage options]

pipeline.sh starts it before the first stage and exports ``MLOPS_TRACKING_SOCKET``. It binds the
socket at once (pipeline.sh waits only for that), then connects to the store, begins the parent
run and imports what logging a model needs, while the first stages already run: a stage sends
what it records and goes on (wandb's service process is the pattern). Only the answers a stage
needs (its run id, the logged model's URI, the registry decision) make it wait.

Requests are applied strictly in arrival order by one worker thread, one ``Recorder`` per stage
connection. A connection that closes before its stage ended the run (the stage was killed) ends
that run KILLED. ``end_pipeline`` waits until every stage connection has closed, ends the parent
run and stops the service. SIGTERM: stages get a few seconds to report their end, then open runs
and the parent end KILLED. If the owner (pipeline.sh) dies, the same happens. Ctrl-C reaches
pipeline.sh, which stops the stage and then asks the service to end the runs KILLED.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab1.core.errors import EXIT_ERROR, PipelineError, one_line
from lab1.core.io import pid_alive

logger = logging.getLogger("lab1.tracking_service")

GRACE_S = 5.0  # after SIGTERM: how long stages get to report their own end
POLL_S = 0.25


@dataclass
class Connection:
    """One stage process's connection and the run it records."""

    sock: socket.socket
    recorder: Any = None  # a Recorder once the stage sent "start"
    ended: bool = False
    pid: int = 0
    failed: str = ""  # the first request of this stage that failed


@dataclass
class EndRequest:
    connection: Connection
    message_id: int
    status: str


@dataclass
class Service:
    params: Any
    owner_pid: int
    inbox: queue.Queue = field(default_factory=queue.Queue)
    connections: dict[int, Connection] = field(default_factory=dict)  # open, by id
    client: Any = None
    parent: str | None = None
    errors: int = 0
    pending_end: EndRequest | None = None
    stop_deadline: float | None = None  # set by SIGTERM or a dead owner

    # --- threads that feed the inbox ------------------------------------------------------

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

    # --- the worker: everything MLflow happens here, in order ----------------------------

    def work(self) -> int:
        from lab1.core.tracking.parent import begin_pipeline
        from lab1.core.tracking.store import connect

        try:
            self.client = connect()
            self.parent = begin_pipeline(self.params, self.owner_pid, self.client)
        except Exception as exc:  # the store or server is unusable: stages will say so too
            logger.error("tracking service: cannot begin the pipeline run: %s", _line(exc))
            return EXIT_ERROR
        _warm_up()
        while True:
            try:
                kind, connection, message = self.inbox.get(timeout=POLL_S)
            except queue.Empty:
                kind = None
            if kind == "open":
                self.connections[id(connection)] = connection
            elif kind == "message":
                self.handle(connection, message)
            elif kind == "closed":
                self.closed(connection)
            if not pid_alive(self.owner_pid) and self.stop_deadline is None:
                logger.warning("tracking service: pipeline.sh (pid %d) died", self.owner_pid)
                self.stop_deadline = time.monotonic()
            if self.finished():
                return EXIT_ERROR if self.errors else 0

    def handle(self, connection: Connection, message: dict) -> None:
        from lab1.core.tracking.recorder import METHODS, Recorder

        method, args = message["method"], message.get("args", {})
        if method == "end_pipeline":
            # The stages' connections are closed before pipeline.sh asks (it waits for each
            # stage), but their last messages may still be in the inbox: end after them.
            self.connections.pop(id(connection), None)
            self.pending_end = EndRequest(connection, message["id"], args["status"])
            return
        if message.get("reply") and connection.failed:
            # A request the stage did not wait for failed: what it waits on now (a model URI, a
            # registry move) must not go ahead as if that write had happened.
            _send(connection.sock, {"id": message["id"], "error": connection.failed})
            return
        try:
            if method not in METHODS:
                raise PipelineError(f"unknown request {method!r}")
            if connection.recorder is None:
                connection.recorder = Recorder(self.client, self.parent)
            if method == "start":
                connection.pid = int(args.get("pid", 0))
            result = getattr(connection.recorder, method)(**args)
            connection.ended = connection.ended or method == "end"
            answer: dict[str, Any] = {"result": result}
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
        recorder = connection.recorder
        if recorder is not None and recorder.run_id and not connection.ended:
            connection.ended = True
            self._end_killed(recorder, f"process {connection.pid} died")
        connection.sock.close()

    def finished(self) -> bool:
        """End the parent run once asked to and every stage has gone (or the grace is over)."""
        stopping = self.stop_deadline is not None
        if self.pending_end is None and not stopping:
            return False
        grace_over = self.stop_deadline is not None and time.monotonic() > self.stop_deadline
        if self.connections and not grace_over:
            return False
        if not self.inbox.empty():  # what the stages sent is recorded, even after the grace
            return False
        for connection in self.connections.values():  # stages that did not report their end
            if (
                connection.recorder is not None
                and connection.recorder.run_id
                and not connection.ended
            ):
                connection.ended = True
                self._end_killed(connection.recorder, "the tracking service was stopped")
        status = self.pending_end.status if self.pending_end else "KILLED"
        self._end_parent(status)
        if self.pending_end is not None:
            _send(
                self.pending_end.connection.sock,
                {"id": self.pending_end.message_id, "result": self.errors},
            )
        return True

    def _end_killed(self, recorder: Any, reason: str) -> None:
        try:
            recorder.end("KILLED", reason=reason)
        except Exception as exc:
            self.errors += 1
            logger.error("tracking service: cannot end run %s: %s", recorder.run_id, one_line(exc))

    def _end_parent(self, status: str) -> None:
        from lab1.core.tracking.parent import end_pipeline

        if self.parent is None:
            return
        try:
            end_pipeline(self.parent, status, self.client)
        except Exception as exc:
            self.errors += 1
            logger.error("tracking service: cannot end run %s: %s", self.parent, one_line(exc))

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
    """Save a tiny model the way model_io logs ours, into a folder that is thrown away, while
    the first stages work: the imports and first-call costs of MLflow's save path (signature,
    input example, serving-input check) are then paid before model_preparation asks to log."""
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from lab1.core.cli import stage_parser

    parser = stage_parser(__doc__)
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    parser.add_argument("--owner-pid", type=int, required=True, help="pipeline.sh's PID")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import gc

    from lab1.core.cli import params_from_args, setup_logging

    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        params = params_from_args(args)
    except PipelineError as exc:
        logger.error("tracking service: %s", exc)
        return EXIT_ERROR
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.socket)
    server.listen()
    service = Service(params, args.owner_pid)
    # SIGTERM (Jenkins' abort, kill): end what is open. SIGINT stays ignored as bash leaves it
    # for background jobs: on Ctrl-C, pipeline.sh stops the stage and then ends the run here.
    signal.signal(signal.SIGTERM, service.on_signal)
    threading.Thread(target=service.accept, args=(server,), daemon=True).start()
    try:
        return service.work()
    finally:
        server.close()
        # pipeline.sh removes the socket's folder when it exits; if it was killed, the folder
        # goes here (rmdir: only if nothing else is in it).
        with contextlib.suppress(OSError):
            os.unlink(args.socket)
            os.rmdir(os.path.dirname(args.socket))
        # Interpreter shutdown would garbage-collect MLflow's whole module graph (about 1 s);
        # the runs are ended, so skip it.
        gc.freeze()


if __name__ == "__main__":
    raise SystemExit(main())
