"""DVC benchmark: `dvc repro` of the project's pipeline when nothing has changed.

In a temporary copy of the project (made a git repository; the project ships .dvc/), runs
`dvc repro` once to build everything, then times `dvc repro` with nothing changed N times and
prints the median and the range. Target: <= 3 s on 2 cores.

    .venv/bin/python bench/dvc_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import clean_env, copy_project  # noqa: E402


def main() -> int:
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--repeat", type=int, default=5)
    args = cli.parse_args()
    dvc = str(Path(sys.executable).parent / "dvc")
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="dvc-bench-") as work:
        project = copy_project(Path(work) / "project")

        def run(*argv: str) -> None:
            subprocess.run(argv, cwd=project, env=env, check=True, capture_output=True)

        run("git", "init", "-q", "-b", "main")
        run("git", "add", "-A")
        run("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench")
        started = time.perf_counter()
        run(dvc, "repro")
        first = time.perf_counter() - started
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            run(dvc, "repro")
            times.append(time.perf_counter() - started)
    print(f"dvc repro, first run (five stages): {first:.1f} s")
    print(
        f"dvc repro, nothing changed: median {statistics.median(times):.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)}; "
        f"{os.cpu_count()} cores; target <= 3 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
