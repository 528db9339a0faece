"""The service's HTTP protocol (lab3/service/http.py) on a real socket: a uvicorn server started
here, in a thread, with uvloop, the project's protocol and the real application on a local model
folder, as `python -m lab3.serve` runs them. Raw sockets send what a client library would not (a
head in one write, a head that never ends)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tests import loopback
from tests.lab3.conftest import wait_for

KIB = 1024


@contextlib.contextmanager
def uvicorn_serving(model_folder, protocol=None):
    """A real uvicorn server on a free loopback port; yields the port."""
    import uvicorn

    from lab3.service.app import create_app
    from lab3.service.http import HeadLimitedProtocol
    from lab3.service.settings import Settings

    settings = Settings(
        model_uri=str(model_folder), poll_interval_s=60, max_batch_rows=100, max_body_bytes=KIB**2
    )
    port = loopback.free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=protocol or HeadLimitedProtocol,
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started)
        wait_for(lambda: status_of(port, b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n") == 200)
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def port(models):
    with uvicorn_serving(models.folders["1"]) as serving:
        yield serving


def status_of(port: int, data: bytes) -> int:
    """Send ``data`` in one write; the status of the answer (0: closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        try:
            answer = sock.recv(64)
        except ConnectionResetError:
            answer = b""
    return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def head(header_bytes: int, path: str = "/health") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % (
        path.encode(),
        b"a" * header_bytes,
    )


@pytest.mark.parametrize("size_kib", [65, 100, 120, 128, 1024])
def test_a_head_over_64_kib_sent_in_one_write_gets_431(port, size_kib):
    """100-120 KB in one write got 200: the parser completed the head within one read, before
    the count of bytes read was checked."""
    assert status_of(port, head(size_kib * KIB)) == 431


def test_a_head_over_the_limit_with_a_body_in_the_same_write_gets_431_and_no_prediction(port):
    body = b'{"instances": [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]}'
    request = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Big: %s\r\nContent-Length: %d\r\n\r\n%s" % (b"a" * 100 * KIB, len(body), body)
    )
    assert status_of(port, request) == 431


def test_a_head_over_the_limit_sent_in_pieces_gets_431(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = head(200 * KIB)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for start in range(0, len(data), 16 * KIB):
                sock.sendall(data[start : start + 16 * KIB])
                time.sleep(0.01)
        assert sock.recv(64).startswith(b"HTTP/1.1 431 ")


def test_a_head_under_the_limit_is_served_however_it_arrives(port):
    assert status_of(port, head(60 * KIB)) == 200
    # A pipelined head over the limit behind an ordinary request, in one write: refused too (the
    # connection closes at once, so the first answer may be lost, as uvicorn's own 400 for a
    # malformed pipelined request loses it).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head(10) + head(100 * KIB))
        answers = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answers += chunk
    assert b"HTTP/1.1 431 " in answers and answers.count(b"HTTP/1.1 200 ") < 2, answers[:300]
