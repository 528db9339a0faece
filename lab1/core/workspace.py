"""One pipeline per workspace: an exclusive lock on ``.mlops/workspace.lock``.

Two pipelines in one checkout would overwrite each other's data/, models/ and reports/ between
stages and register one pipeline's model under the other's params. So whatever runs stages
holds this lock while they run: pipeline.sh for the whole pipeline, a stage run alone (by hand,
by Jenkins' steps, by ``dvc repro``) for that stage. A second one waits, and says whom for.

The lock is a BSD ``flock`` on an open file description, so it lives as long as any process
holds that description: pipeline.sh opens the file as fd 9, this module locks that inherited fd
(``python -m lab1.core.workspace --fd 9``) and exits, and the shell, the tracking service and
every stage it starts keep it held. Stages find the held fd in ``MLOPS_WORKSPACE_LOCK_FD`` and do
not lock again. The kernel drops the lock when the last holder exits, even on SIGKILL: no stale
lock files to clean up.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)

LOCK_FD_ENV = "MLOPS_WORKSPACE_LOCK_FD"


def _holder() -> str:
    """Who holds the lock, as its holder wrote it (best effort: it may be mid-write)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        record = json.loads(PATHS.workspace_lock.read_text())
        return f"{record['what']} (pid {record['pid']}, since {record['since']})"
    return "another process"


def lock_fd(fd: int, what: str, pid: int) -> None:
    """Take the workspace lock on the open file ``fd``, waiting (and saying so) while another
    pipeline holds it; then record ``what`` and ``pid`` in the file for the next one to read."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        started = time.monotonic()
        logger.warning(
            "another pipeline is running in this workspace: %s; waiting for it to finish "
            "(one pipeline per checkout: they share data/, models/ and reports/)",
            _holder(),
        )
        # pipeline.sh starts this check with Ctrl-C ignored (an interpreter interrupted while
        # it starts up prints a traceback no code can catch); the wait must stay interruptible.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        fcntl.flock(fd, fcntl.LOCK_EX)
        logger.info("workspace free after %.1f s; going on", time.monotonic() - started)
    record = {"what": what, "pid": pid, "since": time.strftime("%H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


def _inherited_fd() -> int | None:
    """The fd of this workspace's lock file that a pipeline passed down, if any."""
    value = os.environ.get(LOCK_FD_ENV)
    if not value or not PATHS.workspace_lock.exists():
        return None
    with contextlib.suppress(ValueError, OSError):
        fd = int(value)
        held, ours = os.fstat(fd), PATHS.workspace_lock.stat()
        if (held.st_dev, held.st_ino) == (ours.st_dev, ours.st_ino):
            return fd
    return None


@contextlib.contextmanager
def workspace_held(what: str) -> Iterator[None]:
    """Hold the workspace lock for a stage: already held when a pipeline passed its fd down,
    otherwise taken here (waiting for a running pipeline) and released on exit."""
    if _inherited_fd() is not None:
        yield
        return
    PATHS.workspace_lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(PATHS.workspace_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        lock_fd(fd, what, os.getpid())
        yield
    finally:
        os.close(fd)  # releases the lock


def _listening() -> dict[str, str]:
    """Listening TCP sockets: their fd link name ("socket:[inode]") -> "port N"."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()  # sl, local address, remote address, state, ..., inode
                if len(fields) > 9 and fields[3] == "0A":  # LISTEN
                    found[f"socket:[{fields[9]}]"] = f"port {int(fields[1].rsplit(':')[1], 16)}"
    return found


def _parent(pid: int) -> int:
    """The parent's pid (0 when the process is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def users_of(folder: Path) -> list[str]:
    """Other processes with a file under ``folder`` open (an MLflow UI or a model service on
    the embedded store), each as "pid N (command), listening on port P" (Linux /proc)."""
    listening = _listening()
    ours, pid = set(), os.getpid()
    while pid > 1:  # this process and those that run it (pipeline.sh, a test, a notebook)
        ours.add(pid)
        pid = _parent(pid)
    users: dict[int, tuple[str, set[str]]] = {}  # pid -> (command, ports)
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) in ours:
            continue
        with contextlib.suppress(OSError):
            targets = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            if any(t.startswith(f"{folder}/") for t in targets):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                users[int(proc.name)] = (
                    command[:120],
                    {listening[t] for t in targets if t in listening},
                )
    # A UI is a tree of processes (server, workers, job runners): name its top one, once.
    tops: dict[int, set[str]] = {}
    for pid, (_, ports) in users.items():
        top, parent = pid, _parent(pid)
        while parent > 1:
            top = parent if parent in users else top
            parent = _parent(parent)
        tops.setdefault(top, set()).update(ports)
    return [
        f"pid {pid} ({users[pid][0]})" + (f", listening on {', '.join(sorted(p))}" if p else "")
        for pid, p in sorted(tops.items())
    ]


def main(argv: list[str] | None = None) -> int:
    """pipeline.sh: lock the workspace on an fd it opened (and keeps open); or, before --clean,
    list what still uses the embedded store (exit 1 if anything does)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fd", type=int, help="open fd of .mlops/workspace.lock")
    parser.add_argument("--owner-pid", type=int, help="pipeline.sh's pid")
    parser.add_argument("--users-of", type=Path, help="list processes using files in this folder")
    args = parser.parse_args(argv)
    if args.users_of is not None:
        users = users_of(args.users_of.resolve())
        for user in users:
            sys.stderr.write(f"{args.users_of} is in use by {user}\n")
        return 1 if users else 0
    if args.fd is None or args.owner_pid is None:
        parser.error("--fd and --owner-pid are required")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        lock_fd(args.fd, "pipeline.sh", args.owner_pid)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
