"""A Python other than the project's: a bare `python` without its libraries gets one line that
says which Python to use (exit 1, no traceback), whether the missing library is imported when
the program starts or later, by its work; and a missing module of the project's own stays a bug.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import lab1
from tests.project import REPO, clean_env

HOW = "or `source .venv/bin/activate` first; bash pipeline.sh --setup creates .venv"


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with none of the project's libraries: a new virtual environment (no pip)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def run(python: Path | str, *argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), *argv],
        cwd=REPO,  # nothing is written: each fails before any work
        env=clean_env(PYTHONDONTWRITEBYTECODE="1", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "module", ["lab1.lineage", "lab1.data_creation", "lab3.monitor", "lab4.dataset_versions"]
)
def test_a_python_without_the_libraries_is_told_which_to_use(bare_python, module):
    done = run(bare_python, "-m", module)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    said = re.fullmatch(
        rf"\d\d:\d\d:\d\d ERROR {module} needs the project's Python environment \(missing "
        rf"module '(\w+)'\): run it as \.venv/bin/python -m {module}, (.*)",
        lines[0],
    )
    assert said is not None, lines[0]
    assert said[1] in ("yaml", "pydantic", "pandas", "numpy") and said[2] == HOW


def test_a_library_imported_by_the_work_is_told_alike():
    """mlflow gone from the project's Python (None in sys.modules: importing it fails as if it
    were not installed): lineage imports it once its work starts, where run_script catches it."""
    gone = "import runpy, sys; sys.modules['mlflow'] = None; "
    main = "runpy.run_module('lab1.lineage', run_name='__main__', alter_sys=True)"
    done = run(sys.executable, "-c", gone + main, MLOPS_VENV=sys.prefix)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert " ERROR lab1.core.cli: lab1.lineage: the project's Python environment " in lines[0]
    assert "has no module 'mlflow': bash pipeline.sh --setup --dev adds" in lines[0]


def test_the_projects_own_environment_without_a_library_is_named_incomplete(bare_python):
    done = run(bare_python, "-m", "lab1.lineage", MLOPS_VENV=str(bare_python.parents[1]))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "lab1.lineage: the project's Python environment " in done.stderr
    assert "has no module 'yaml': bash pipeline.sh --setup --dev adds" in done.stderr


def test_a_missing_module_of_the_project_is_a_bug_not_the_environment():
    assert lab1.wrong_python(ModuleNotFoundError("x", name="lab1.nope")) is None
    assert lab1.wrong_python(ValueError("yaml")) is None
    found = lab1.wrong_python(ModuleNotFoundError("x", name="mlflow.store"))
    assert found is not None and "module 'mlflow'" in found


def test_a_python_too_old_is_told_which_to_use(monkeypatch):
    monkeypatch.setattr(lab1, "NEEDS", (3, 99))
    said = lab1.wrong_python()
    assert said is not None
    assert f"(this is Python 3.{sys.version_info[1]}; the project needs 3.99)" in said
