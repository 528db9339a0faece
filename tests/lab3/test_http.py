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
from tests.lab3.conftest import wait_answer, wait_for

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


# --- time limits and the connection cap (params.yaml's serving section) ---------------------

QUICK = {"max_connections": 1000, "head_timeout_s": 0.5, "body_timeout_s": 0.5}
CAPPED = {"max_connections": 20, "head_timeout_s": 60, "body_timeout_s": 60}


@pytest.fixture(scope="module")
def quick_port(models):
    """A server with short time limits, so that the tests need not wait 10 s for a timeout."""
    from lab3.service.http import Limits, limited

    with uvicorn_serving(models.folders["1"], limited(Limits(**QUICK))) as serving:
        yield serving


@pytest.fixture(scope="module")
def capped_port(models):
    """A server with a low cap, and time limits that never fire during a test."""
    from lab3.service.http import Limits, limited

    with uvicorn_serving(models.folders["1"], limited(Limits(**CAPPED))) as serving:
        yield serving


# How long a test waits for the server to close a connection: a failure guard only. The time
# limits' own tests check that it is not closed before its deadline, and that the deadline does
# not move, without an upper bound on how late a busy machine may be.
GUARD_S = 60


def test_a_head_sent_a_byte_at_a_time_gets_408_and_is_closed_at_the_deadline(quick_port):
    """A slow-loris client: one byte of its head every 0.1 s keeps an idle timer from ever
    firing; the head's deadline does not move: the server closes the connection while the
    client is still sending (for a minute, if let). It was held open forever."""
    trickle = b"X-Slow: " + b"a" * (10 * GUARD_S)
    sent = 0
    with socket.create_connection(("127.0.0.1", quick_port), timeout=GUARD_S) as sock:
        started = time.perf_counter()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in trickle:
                time.sleep(0.1)
                sock.sendall(bytes([byte]))
                sent += 1
        answer, _ = wait_answer(sock, timeout=GUARD_S)
        seconds = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"not complete within 0.5 s" in answer
    assert sent < len(trickle) and seconds > 0.4, (sent, seconds)


def test_a_connection_that_sends_nothing_is_closed_silently_after_the_head_timeout(quick_port):
    with socket.create_connection(("127.0.0.1", quick_port), timeout=GUARD_S) as sock:
        answer, seconds = wait_answer(sock, timeout=GUARD_S)
    assert answer == b"" and seconds > 0.4, (answer, seconds)


def test_a_body_that_never_ends_gets_408_and_the_application_no_traceback(quick_port, caplog):
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", quick_port), timeout=GUARD_S) as sock:
        sock.sendall(head + b'{"instances": [[1.0,')
        answer, seconds = wait_answer(sock, timeout=GUARD_S)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"body: not complete" in answer, answer
    assert seconds > 0.4, seconds
    assert status_of(quick_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == 200
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_past_the_cap_the_longest_waiting_half_sent_head_makes_room(capped_port):
    """40 half-sent heads against a cap of 20: a quick client is still served, because each new
    connection closes the one that has waited longest (test_abuse.py counts the process's open
    files with thousands)."""
    socks = []
    try:
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", capped_port), timeout=5)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        assert status_of(capped_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == 200
        closed = 0
        for sock in socks[:21]:  # the oldest: closed to make room, without an answer
            sock.settimeout(GUARD_S)
            with contextlib.suppress(ConnectionResetError):
                closed += sock.recv(64) == b""
        assert closed == 21, closed
    finally:
        for sock in socks:
            sock.close()


def test_past_the_cap_with_every_connection_busy_a_new_one_gets_503(capped_port):
    """Connections whose requests are in progress (head complete, body still coming) are never
    closed to make room: the newcomer is refused instead."""
    # "Expect: 100-continue": the server says "100 Continue" once the application waits for the
    # body, which tells the test that the request is in progress (no guess at how long it takes).
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    )
    socks = []
    try:
        for _ in range(CAPPED["max_connections"]):
            sock = socket.create_connection(("127.0.0.1", capped_port), timeout=GUARD_S)
            sock.sendall(head)
            socks.append(sock)
        for sock in socks:
            assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue")
        assert status_of(capped_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == 503
    finally:
        for sock in socks:
            sock.close()
    wait_for(lambda: status_of(capped_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == 200)
