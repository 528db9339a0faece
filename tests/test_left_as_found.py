"""The guard that fails a test run which wrote into the checkout (tests/conftest.py) can fail:
a pytest run of its own, in a temporary folder, whose tests write what ours once left."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.project import REPO, checkout_files, clean_env, written

CONFTEST = """
import pytest
from tests.conftest import left_as_found

@pytest.fixture(scope="session", autouse=True)
def guard(request):
    yield from left_as_found(request.config.rootpath, request)
"""

TESTS = """
from pathlib import Path

def test_in_tmp_path(tmp_path):
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "model.pkl").write_bytes(b"kept out of the checkout")

def test_a_prediction_log():
    Path("reports/predictions").mkdir(parents=True)
    Path("reports/predictions/predictions-1.jsonl").write_text("{}\\n")

def test_a_cache_and_a_file_changed_and_an_empty_folder():
    Path(".pytest_cache/v").mkdir(parents=True)
    Path(".pytest_cache/v/lastfailed").write_text("{}")
    with open("data/raw/a.csv", "a") as raw:
        raw.write("1,2\\n")
    Path("mlruns").mkdir()

def test_a_tracked_file_edited():  # git status shows that one
    Path("params.yaml").write_text("seed: 2\\n")
"""


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, str(folder)],
        cwd=folder,
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_run_that_writes_into_its_checkout_fails_naming_each_path(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "data" / "raw").mkdir(parents=True)
    (checkout / "data" / "raw" / "a.csv").write_text("x,y\n")
    (checkout / "params.yaml").write_text("seed: 1\n")
    subprocess.run(["git", "init", "-q"], cwd=checkout, check=True)
    subprocess.run(["git", "add", "params.yaml"], cwd=checkout, check=True)
    (checkout / "conftest.py").write_text(CONFTEST)
    (checkout / "test_writes.py").write_text(textwrap.dedent(TESTS))
    done = run_pytest(checkout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "4 passed, 1 error" in done.stdout, done.stdout
    report = done.stdout[done.stdout.index("the tests wrote into the checkout") :]
    named = [line.strip() for line in report.splitlines()[1:5]]
    assert named == [
        ".pytest_cache/v/lastfailed (new)",  # -p no:cacheprovider: nothing may write one
        "data/raw/a.csv (changed)",
        "mlruns/ (new)",
        "reports/predictions/predictions-1.jsonl (new)",
    ], report
    assert "__pycache__" not in report  # Python's own (conftest.py's bytecode) is not counted
    assert "params.yaml" not in report


def test_a_run_that_writes_nothing_passes(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "conftest.py").write_text(CONFTEST)
    (checkout / "test_writes.py").write_text(textwrap.dedent(TESTS))
    done = run_pytest(checkout, "-k", "tmp_path")
    assert done.returncode == 0, done.stdout + done.stderr


def test_what_changed_names_new_changed_and_removed_files(tmp_path):
    (tmp_path / "kept.txt").write_text("a")
    (tmp_path / "edited.txt").write_text("a")
    (tmp_path / "gone.txt").write_text("a")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "lab1").mkdir()
    before = checkout_files(tmp_path)
    (tmp_path / "edited.txt").write_text("ab")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "models" / "model").mkdir(parents=True)
    (tmp_path / "models" / "model" / "MLmodel").write_text("")
    (tmp_path / ".venv" / "bin" / "python").write_text("")  # the environment: not counted
    (tmp_path / "lab1" / "__pycache__").mkdir(parents=True)  # bytecode: not counted
    (tmp_path / ".coverage").write_text("")  # the test command's own coverage data
    (tmp_path / "mlruns").mkdir()
    assert written(before, checkout_files(tmp_path)) == [
        "edited.txt (changed)",
        "gone.txt (removed)",
        "mlruns/ (new)",  # a new folder: named itself only when empty
        "models/model/MLmodel (new)",
    ]
