"""Atomic writes and content digests.

Every output is written to a temporary sibling and renamed into place, so a crash (even SIGKILL)
leaves either the previous output or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of one file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def tree_sha256(path: Path) -> str:
    """Return one sha256 for a file or a whole folder (relative names and bytes, sorted)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for name, file_digest in file_digests(path).items():
        digest.update(f"{name}\0{file_digest}".encode())
    return digest.hexdigest()


def first_change(
    before: dict[str, str], after: dict[str, str]
) -> tuple[str, str | None, str | None] | None:
    """The first name (sorted) whose digest differs between two file_digests, with both."""
    for name in sorted(before.keys() | after.keys()):
        if before.get(name) != after.get(name):
            return name, before.get(name), after.get(name)
    return None


def file_digests(folder: Path) -> dict[str, str]:
    """The sha256 of every file under ``folder``, by relative name (in tree_sha256's order)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {item.relative_to(folder).as_posix(): file_sha256(item) for item in files}


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write ``target`` (file) into; rename it into place on success.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique sibling (same filesystem, so the rename is atomic) created with the usual umask
    # permissions, unlike mkstemp's 0600.
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise _naming(exc, target) from None
    finally:
        tmp.unlink(missing_ok=True)


def _naming(exc: OSError, target: Path) -> OSError:
    """``exc`` as is if it names a file; else (pyarrow's writers name none) naming ``target``."""
    if exc.filename is not None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(target))


def write_json(target: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; a missing or garbled file raises DataError naming the file."""
    from lab1.core.errors import DataError

    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run the stage that writes it first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(payload).__name__}")
    return payload


@contextlib.contextmanager
def atomic_contents(target: Path, last: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder inside ``target`` to fill; on success each entry in it
    replaces its namesake in ``target`` (a file by one rename, a folder as atomic_dir does; the
    entry named ``last`` goes last), and entries it did not make are removed. ``target`` itself
    is never renamed, so it may be a mount point (a Docker volume). A reader sees each entry
    whole, old or new; provenance (the folder's digest) refuses a mix of the two."""
    tmp = _fresh_tmp(target / ".contents")
    try:
        yield tmp
        made = sorted(tmp.iterdir(), key=lambda entry: entry.name == last)
        for entry in made:
            if entry.is_dir():
                with atomic_dir(target / entry.name) as into:
                    into.rmdir()
                    os.replace(entry, into)
            else:
                os.replace(entry, target / entry.name)
        names = {entry.name for entry in made}
        for stale in target.iterdir():
            if stale.name not in names and stale != tmp:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staging_folder(folder: Path) -> Iterator[Path]:
    """Yield ``folder``, emptied, to write files into before they are renamed into place (same
    filesystem: each rename is atomic); whatever is left in it is removed at the end."""
    shutil.rmtree(folder, ignore_errors=True)  # a killed run's leftovers
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; on success it replaces ``target`` whole.

    Folders cannot be renamed over non-empty folders, so the swap is two renames: the old folder
    steps aside, the new one steps in, the old one is deleted. A crash between the two renames
    leaves the old folder beside the target as ``.<name>.old-<pid>``, never a mixed folder; the
    next writer puts it back if the target is missing. Leftovers of crashed writers (whose
    process is gone) are cleaned up first.
    """
    tmp = _fresh_tmp(target)
    try:
        try:
            yield tmp
        except OSError as exc:
            raise _naming(exc, target) from None
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fresh_tmp(target: Path) -> Path:
    """An empty temporary folder ``.<name>.tmp-<pid>`` beside ``target``, made after cleaning up
    after writers that died: their temp folders are dropped, and a set-aside old folder is
    restored if the target is missing (the writer died between its two renames)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for kind in ("tmp", "old"):
        for leftover in target.parent.glob(f".{target.name}.{kind}-*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or pid_alive(int(pid)):
                continue
            if kind == "old" and not target.exists():
                os.replace(leftover, target)
            else:
                shutil.rmtree(leftover, ignore_errors=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
