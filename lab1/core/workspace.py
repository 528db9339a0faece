"""One pipeline per checkout: an exclusive ``flock`` on ``.mlops/workspace.lock``.

Two pipelines in one checkout would overwrite each other's data/, models/ and reports/ between
stages and register one pipeline's model under the other's params. pipeline.sh takes the lock
with util-linux ``flock`` on its fd 9, which it and every stage it starts keep open (the stages
find it in ``MLOPS_WORKSPACE_LOCK_FD`` and do not lock again); a stage run alone (by hand,
Jenkins' steps, ``dvc repro``) or torchrun's launcher run alone (for its ranks) takes it here. A
second one waits, and says whom for. The kernel drops the lock when its last holder exits, even
on SIGKILL: no stale lock files.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)
LOCK_FD_ENV = "MLOPS_WORKSPACE_LOCK_FD"  # the lock's fd, held by a parent (pipeline.sh: 9)


def inherited_fd() -> int | None:
    """The fd of this workspace's lock that pipeline.sh passed down, if any."""
    with contextlib.suppress(ValueError, OSError):
        fd = int(os.environ.get(LOCK_FD_ENV, ""))
        held, ours = os.fstat(fd), PATHS.workspace_lock.stat()
        if (held.st_dev, held.st_ino) == (ours.st_dev, ours.st_ino):
            return fd
    return None


@contextlib.contextmanager
def workspace_held(what: str) -> Iterator[int]:
    """Hold the workspace lock while a stage runs: already held when pipeline.sh passed its fd
    down, otherwise taken here (waiting for a running pipeline) and released on exit. Yields the
    lock's fd (torchrun's launcher passes it on to its ranks)."""
    fd = inherited_fd()
    if fd is not None:
        yield fd
        return
    PATHS.workspace_lock.parent.mkdir(parents=True, exist_ok=True)
    with open(PATHS.workspace_lock, "a+") as lock:  # closing it releases the lock
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            logger.warning(
                "another pipeline is running in this workspace: %s; waiting for it to finish "
                "(one pipeline per checkout: they share data/, models/ and reports/)",
                lock.read().strip() or "another process",  # what its holder wrote (best effort)
            )
            started = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            logger.info("workspace free after %.1f s; going on", time.monotonic() - started)
        lock.truncate(0)
        lock.write(f"{what} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})")
        lock.flush()
        yield lock.fileno()


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


def _lineage(pid: int) -> list[int]:
    """``pid``, its parent, theirs... up to init (a process gone ends the chain)."""
    chain = []
    while pid > 1:
        chain.append(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return chain


def users_of(folder: Path) -> list[str]:
    """Other processes with a file under ``folder`` open (an MLflow UI or a model service on
    the embedded store), each as "pid N (command), listening on port P" (Linux /proc)."""
    listening = _listening()
    # This process and those that run it (pipeline.sh, a test, a notebook).
    ours = set(_lineage(os.getpid()))
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
        top = ([above for above in _lineage(pid) if above in users] or [pid])[-1]  # pid 1: itself
        tops.setdefault(top, set()).update(ports)
    return [
        f"pid {pid} ({users[pid][0]})" + (f", listening on {', '.join(sorted(p))}" if p else "")
        for pid, p in sorted(tops.items())
    ]


IN_USE = 3  # pipeline.sh --clean's exit code when it refuses: a refusal, not a failure (1)


def main(argv: list[str] | None = None) -> int:
    """pipeline.sh --clean: list what still uses the embedded store (exit 3 if anything does)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--users-of", type=Path, required=True, help="a folder")
    args = parser.parse_args(argv)
    users = users_of(args.users_of.resolve())
    for user in users:
        sys.stderr.write(f"{args.users_of} is in use by {user}\n")
    return IN_USE if users else 0


if __name__ == "__main__":
    raise SystemExit(main())
