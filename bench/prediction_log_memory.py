"""Prediction log benchmark: the service's memory while the log's writer is stopped (issue 32).

For each checkout given (e.g. an older commit's tree, then this one), a fresh process builds
that checkout's PredictionLog with its params.yaml settings, stops the writer process
(SIGSTOP: a disk that hangs), and records REQUESTS answered requests of ROWS rows x 15 readings,
as the service does. Prints per checkout the process's RSS before and after, its peak, and the
rows dropped; then the ratio of the last checkout's RSS growth to the first's.

    mkdir /tmp/before && git archive <older commit> | tar -x -C /tmp/before
    .venv/bin/python bench/prediction_log_memory.py /tmp/before .
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, os, signal, sys, time
from types import SimpleNamespace
import numpy as np
from lab3.service.prediction_log import PredictionLog
from lab3.service.settings import Settings

def rss(field="VmRSS"):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
requests, rows, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
settings = Settings.from_env({"PREDICTION_LOG": folder, "MODEL_URI": "unused"}).prediction_log
model = SimpleNamespace(classes=["normal", "faulty"], info=SimpleNamespace(name="m", version="1"),
                        columns=[f"c{i}" for i in range(15)], kind="tabular")
rng = np.random.default_rng(0)
log = PredictionLog(settings)
log.start()
time.sleep(1.0)
os.kill(log._writer.pid, signal.SIGSTOP)
before = rss()
for i in range(requests):  # each request its own arrays, as parsed from its body
    batch = rng.random((rows, 15))
    log.record(f"r{i}", model, batch, np.column_stack([batch[:, 0], 1 - batch[:, 0]]),
               ["normal"] * rows)
time.sleep(2.0)  # the hand-over thread has run (and is stuck on the full pipe)
after, peak, dropped = rss(), rss("VmHWM"), log.rows["dropped"]
os.kill(log._writer.pid, signal.SIGCONT)
log.stop()
print(json.dumps({"before": before, "after": after, "peak": peak, "dropped": dropped,
                  "written": log.rows["written"]}))
"""


def measure(checkout: Path, requests: int, rows: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(requests), str(rows), folder],
            cwd=checkout,
            env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("checkouts", nargs="+", type=Path)
    cli.add_argument("--requests", type=int, default=200)
    cli.add_argument("--rows", type=int, default=10_000)
    args = cli.parse_args()
    growth = []
    for checkout in args.checkouts:
        got = measure(checkout.resolve(), args.requests, args.rows)
        growth.append(got["after"] - got["before"])
        mb = {k: got[k] / 2**20 for k in ("before", "after", "peak")}
        print(
            f"{checkout}: RSS {mb['before']:.0f} -> {mb['after']:.0f} MiB (peak {mb['peak']:.0f}),"
            f" {got['dropped']} rows dropped, {got['written']} written of "
            f"{args.requests * args.rows}"
        )
    if len(growth) > 1:
        print(f"RSS growth, last/first: {growth[-1] / max(growth[0], 1):.3f}")


if __name__ == "__main__":
    main()
