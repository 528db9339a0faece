"""The service rejects abuse cheaply, and stays responsive while it does: a huge header (431), a
body of millions of empty rows (413 before parsing, little memory and time), a decompression bomb
(413). Headers and bodies go to a real `python -m lab3.serve` process over a socket: uvicorn's
protocol and the process's memory are the point. Times and memory are asserted loosely (this
machine's speed varies 2-3x); bench/ holds the figures."""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from tests import loopback
from tests.lab3.conftest import wait_answer

pytestmark = pytest.mark.e2e
MIB = 2**20


@pytest.fixture(scope="module")
def service(models, tmp_path_factory):
    """The service on a local model folder: (host, port, pid)."""
    workdir = tmp_path_factory.mktemp("abuse")
    port = loopback.free_port()
    with loopback.model_service(workdir, {"MODEL_URI": str(models.folders["1"])}, port=port):
        pid = _pid_listening(port)
        yield "127.0.0.1", port, pid


def _pid_listening(port: int) -> int:
    """The pid of the process whose socket listens on ``port`` (the service; /proc only)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inode = fields[9]
    assert inode, f"nothing listens on {port}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if fd.readlink().as_posix() == f"socket:[{inode}]":
                    return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no process owns the socket on {port}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw_request(host: str, port: int, head: bytes, body: bytes = b"") -> tuple[int, float]:
    """Send a raw request; return (status, seconds until the status line came back). The server
    may close before it has read everything: that is the point, not an error."""
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        try:
            answer = sock.recv(64)
        except ConnectionResetError:
            answer = b""
    seconds = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split()[1]), seconds


def health_while(host: str, port: int, abuse) -> list[float]:
    """Run ``abuse`` in threads (a list of callables) and time /health calls meanwhile."""
    threads = [threading.Thread(target=job) for job in abuse]
    for thread in threads:
        thread.start()
    times = []
    while any(thread.is_alive() for thread in threads):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
        connection.close()
        times.append(time.perf_counter() - started)
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    return times


def test_a_huge_header_is_refused_with_431_and_health_keeps_answering(service):
    host, port, _pid = service
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 * MIB) + b"\r\n\r\n"
    status, seconds = raw_request(host, port, big)
    assert status == 431 and seconds < 5, (status, seconds)
    statuses: list[int] = []
    times = health_while(
        host, port, [lambda: statuses.append(raw_request(host, port, big)[0]) for _ in range(2)]
    )
    assert statuses == [431, 431]
    assert max(times, default=0) < 1.0, times
    # A normal request with ordinary headers is untouched.
    assert raw_request(host, port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def empty_rows_body(size: int) -> bytes:
    rows = b"[]," * ((size - 20) // 3)
    return b'{"instances": [' + rows.rstrip(b",") + b"]}"


def test_a_body_of_millions_of_empty_rows_is_refused_before_parsing(service):
    host, port, pid = service
    body = empty_rows_body(16 * MIB - 1024)  # just under the body limit (MAX_BODY_BYTES)
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    before = rss_mib(pid)
    status, seconds = raw_request(host, port, head, body)
    assert status == 413 and seconds < 1.0, (status, seconds)
    assert rss_mib(pid) - before < 50, (before, rss_mib(pid))
    # Four at once: /health still answers promptly.
    statuses: list[int] = []
    times = health_while(
        host,
        port,
        [lambda: statuses.append(raw_request(host, port, head, body)[0]) for _ in range(4)],
    )
    assert statuses == [413] * 4
    assert max(times, default=0) < 1.0, times
    assert rss_mib(pid) - before < 50, (before, rss_mib(pid))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` 1-bit pixels (875 KB would hold them all
    compressed); PIL reads the size from this header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_gets_413_with_one_line(image_model):
    from fastapi.testclient import TestClient

    from lab3.service.app import create_app
    from lab3.service.settings import Settings
    from tests.lab3.conftest import wait_for

    settings = Settings(
        model_uri=str(image_model.folder),
        poll_interval_s=60,
        max_batch_rows=10,
        max_body_bytes=MIB,
    )
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        answer = client.post(
            "/predict/image",
            content=png_header_only(30000, 30000),
            headers={"Content-Type": "image/png"},
        )
        assert answer.status_code == 413, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("body: too many pixels") and "\n" not in detail


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def health_seconds(host: str, port: int) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200
    connection.close()
    return time.perf_counter() - started


@pytest.mark.integration
def test_thousands_of_half_sent_heads_never_hold_more_than_the_cap_and_time_out(service):
    """Three times params.yaml's serving.max_connections of connections that each send half a
    head and then nothing: the process never holds more than the cap (about 21,000 of them ran
    it out of file descriptors, and /health stopped answering), /health answers throughout, and
    each one still open is answered 408 and closed at serving.head_timeout_s."""
    from lab1.core.params import load_params
    from lab1.core.paths import PATHS
    from lab3.serve import RESERVED_FILES

    host, port, pid = service
    serving = load_params(PATHS.params).serving
    slowest, most_files, socks = 0.0, 0, []
    try:
        started = time.monotonic()
        for index in range(3 * serving.max_connections):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Half: ")
            socks.append(sock)
            if index % 250 == 0:
                slowest = max(slowest, health_seconds(host, port))
                most_files = max(most_files, open_files(pid))
        assert time.monotonic() - started < serving.head_timeout_s, "too slow to test this"
        most_files = max(most_files, open_files(pid))
        assert most_files <= serving.max_connections + RESERVED_FILES, most_files
        assert slowest < 1.0, slowest
        answers = []
        for sock in socks:  # at most head_timeout_s after each was opened
            answer, _ = wait_answer(sock, timeout=serving.head_timeout_s + 5)
            answers.append(answer[:13])
        assert time.monotonic() - started < 2 * serving.head_timeout_s + 5
    finally:
        for sock in socks:
            sock.close()
    timed_out = answers.count(b"HTTP/1.1 408 ")
    made_room = answers.count(b"")
    assert timed_out + made_room == len(socks), set(answers)
    assert timed_out >= serving.max_connections // 2, (timed_out, made_room)
    assert health_seconds(host, port) < 1.0
