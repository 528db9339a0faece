"""Fixtures shared by every test: a fresh copy of the project to run the real scripts in.

End-to-end tests never touch the developer's own data/, models/ or MLflow store: they copy the
files git would clone into a temporary folder and run pipeline.sh or the stage scripts there,
with the Python environment that runs the tests (MLOPS_VENV).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.project import (  # noqa: F401  (re-exported: tests import them from here)
    NOT_COPIED,
    REPO,
    SMALL,
    Project,
    clean_env,
    copy_project,
    tracked_files,
)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(copy_project(tmp_path / "project"))


@pytest.fixture(scope="module")
def module_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(copy_project(tmp_path_factory.mktemp("module") / "project"))


def error_lines(stderr: str) -> list[str]:
    """The ERROR log lines of a run's stderr."""
    return [line for line in stderr.splitlines() if " ERROR " in line]


def tool(name: str) -> str:
    """Path of a validation tool that tests/run.sh installs; a clear failure if it is missing
    (never a skip: a missing tool must not pass for a passing test)."""
    candidates = {
        "npm-groovy-lint": REPO / "lab2" / "lint" / "node_modules" / ".bin" / "npm-groovy-lint",
        "jenkins-jobs": Path(sys.prefix) / "bin" / "jenkins-jobs",
    }
    path = candidates.get(name) or shutil.which(name)
    if path is None or not Path(path).exists():
        pytest.fail(f"{name} is not installed; run `bash tests/run.sh`, which installs it")
    return str(path)
