"""Atomic writes: a failure, even SIGKILL in the middle of writing, never leaves half an output."""

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from lab1.core.errors import DataError
from lab1.core.io import atomic_dir, read_json, tree_sha256, write_json
from tests.conftest import REPO


def test_write_json_round_trip_and_errors(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json(path, {"x": 1})
    assert read_json(path) == {"x": 1}
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # normal permissions, not mkstemp's
    path.write_text("{broken")
    with pytest.raises(DataError, match=rf"{path}: not valid JSON"):
        read_json(path)
    with pytest.raises(DataError, match="file not found"):
        read_json(tmp_path / "nope.json")


def test_atomic_dir_exception_keeps_the_old_folder(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("good")
    before = tree_sha256(target)
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("half")
        raise RuntimeError("boom")
    assert tree_sha256(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folder left behind


def _killed_writer(target, stage: str) -> None:
    """Run a process that SIGKILLs itself inside atomic_dir: before or between the renames."""
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        import lab1.core.io as io
        target = Path({str(target)!r})
        if {stage!r} == "between":
            real = io.os.replace
            calls = []
            def replace(a, b):
                real(a, b)
                calls.append(1)
                if len(calls) == 1:  # the old folder has stepped aside, the new not yet in
                    os.kill(os.getpid(), signal.SIGKILL)
            io.os.replace = replace
        with io.atomic_dir(target) as tmp:
            (tmp / "f.txt").write_text("half")
            if {stage!r} == "writing":
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60)
    assert done.returncode == -signal.SIGKILL


@pytest.mark.faults
@pytest.mark.parametrize("stage", ["writing", "between"])
def test_sigkill_never_leaves_a_mixed_folder(tmp_path, stage):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("good")
    _killed_writer(target, stage)
    # The next writer cleans up after the dead one; the good content is there in full.
    with atomic_dir(tmp_path / "other") as tmp:
        (tmp / "g.txt").write_text("x")
    with pytest.raises(RuntimeError), atomic_dir(target):
        raise RuntimeError("only to trigger the clean-up, writing nothing")
    assert (target / "f.txt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "out"]


def test_tree_digest_sees_names_and_content(tmp_path):
    (tmp_path / "a").write_text("1")
    first = tree_sha256(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")
    assert tree_sha256(tmp_path) != first
    assert json.dumps(first)  # a plain string
