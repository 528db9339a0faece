"""Abuse benchmark: what a hostile request costs the service, before and after its limits.

For each checkout given (e.g. an older commit's worktree, then this one), starts its
`python -m lab3.serve` on the same local model folder and measures:
  - a 40 MB request header: seconds until the answer, and the slowest /health meanwhile;
  - a 16 MiB JSON body of empty rows: seconds until the answer, and the service's RSS growth;
  - four such bodies at once: the slowest /health meanwhile.
Prints one line per figure and checkout, and the ratios of the last checkout to the first.

    git worktree add /tmp/before <older commit>
    .venv/bin/python bench/abuse_bench.py /tmp/before .     # needs a trained models/model
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import loopback  # noqa: E402

MIB = 2**20


def send(port: int, data: bytes) -> tuple[str, float]:
    """Send raw bytes; return (status code, seconds until the status line)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        try:
            answer = sock.recv(64)
        except ConnectionResetError:
            answer = b""
    status = answer.split()[1].decode() if answer.startswith(b"HTTP/") else "none"
    return status, time.perf_counter() - started


def slowest_health(port: int, jobs: list) -> float:
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    slowest = 0.0
    while any(thread.is_alive() for thread in threads):
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.request("GET", "/health")
        connection.getresponse().read()
        connection.close()
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    return slowest


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(checkout: Path, model: Path) -> dict[str, float]:
    header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 * MIB) + b"\r\n\r\n"
    rows = b"[]," * ((16 * MIB - 1044) // 3)
    body = b'{"instances": [' + rows.rstrip(b",") + b"]}"
    post = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    port = loopback.free_port()
    argv = [sys.executable, "-m", "lab3.serve", "--port", str(port)]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        server = loopback.Process(
            "service",
            argv,
            Path(scratch) / "service.log",
            env={"PYTHONPATH": str(checkout), "MODEL_URI": str(model), "PATH": "/usr/bin:/bin"},
            cwd=checkout,
        )
        try:
            loopback.wait_http(server, f"http://127.0.0.1:{port}/ready")
            pid = server.popen.pid
            status, figures["header 40 MB: s"] = send(port, header)
            figures["header 40 MB: status"] = float(status) if status.isdigit() else 0
            figures["header 40 MB: slowest /health s"] = slowest_health(
                port, [lambda: send(port, header)]
            )
            before = rss_mib(pid)
            status, figures["empty rows 16 MiB: s"] = send(port, post)
            figures["empty rows 16 MiB: status"] = float(status) if status.isdigit() else 0
            figures["empty rows 16 MiB: RSS growth MiB"] = rss_mib(pid) - before
            figures["4 x empty rows: slowest /health s"] = slowest_health(
                port, [lambda: send(port, post) for _ in range(4)]
            )
        finally:
            server.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path, help="project checkouts to compare")
    parser.add_argument(
        "--model", type=Path, default=ROOT / "models" / "model", help="a local model folder"
    )
    args = parser.parse_args(argv)
    results = {}
    for checkout in args.checkouts:
        results[checkout] = measure(checkout.resolve(), args.model.resolve())
        for name, value in results[checkout].items():
            print(f"{checkout}: {name:<36} {value:10.3f}")
    first, last = results[args.checkouts[0]], results[args.checkouts[-1]]
    for name in first:
        if name.endswith((" s", "MiB")) and last[name] > 0:
            print(f"ratio first/last: {name:<36} {first[name] / last[name]:10.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
