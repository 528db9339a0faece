"""Fixtures shared by every test: a fresh copy of the project to run the real scripts in.

End-to-end tests never touch the developer's own data/, models/ or MLflow store: they copy the
files git would clone into a temporary folder and run pipeline.sh or the stage scripts there,
with the Python environment that runs the tests (MLOPS_VENV).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.project import (  # noqa: F401  (re-exported: tests import them from here)
    CACHES,
    NOT_COPIED,
    REPO,
    SMALL,
    Project,
    checkout_files,
    clean_env,
    copy_project,
    git_tracked,
    tracked_files,
    written,
)


@pytest.fixture(scope="session", autouse=True)
def checkout_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test works in a temporary folder: the run fails if its tests left an untracked or
    git-ignored file new or changed in the checkout (an mlruns/, a prediction log: what git
    status does not show). Tracked files are left to git status: one may be edited meanwhile."""
    yield from left_as_found(REPO, request)


def left_as_found(root: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """The body of ``checkout_left_as_found`` for any ``root`` (its own test uses another).
    Torn down after the last test, before pytest writes what its options ask for (the cache,
    a --junitxml report, coverage data). With ``-p no:cacheprovider`` (CI) a .pytest_cache
    that a test made counts too."""
    skip = CACHES
    if not request.config.pluginmanager.has_plugin("cacheprovider"):
        skip = CACHES - {".pytest_cache"}
    tracked = git_tracked(root)
    before = checkout_files(root, skip, tracked)
    yield
    if request.session.shouldstop or request.session.shouldfail:
        return  # stopped early (-x, Ctrl-C): the run fails anyway, and fixtures are torn down late
    changes = written(before, checkout_files(root, skip, tracked))
    if changes:
        pytest.fail(
            f"the tests wrote into the checkout {root} (a test must work in tmp_path):\n  "
            + "\n  ".join(changes),
            pytrace=False,
        )


@pytest.fixture(scope="session", autouse=True)
def hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hypothesis (under schemathesis) keeps caches in ./.hypothesis: here, in a temporary one."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))


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


# The heavy tier (`bash tests/run.sh --integration`): tests that need what tests/tools.sh or the
# image lock installs, that run pipeline.sh again and again (e2e), or that start servers,
# containers, browsers or kill processes. A test carrying one of these markers is in that tier
# without saying so; anything else slow says `@pytest.mark.integration` itself. The README's test
# command runs the rest.
INTEGRATION_MARKERS = {
    *("integration", "e2e", "container", "browser", "tools", "mounts", "images", "faults"),
}


@pytest.hookimpl(tryfirst=True)  # before `-m` selects: the tier markers must be there
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the heavy tests in the integration tier; deselect the `gpu` tests where no CUDA
    device is present (never a skip: on a machine with an NVIDIA GPU they run); the run's
    summary says how many were deselected and why."""
    for item in items:
        if INTEGRATION_MARKERS & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.integration)
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu or _cuda_available():
        return
    config.hook.pytest_deselected(items=gpu)
    items[:] = [item for item in items if not item.get_closest_marker("gpu")]
    config.stash[_NO_CUDA] = len(gpu)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.stash.get(_NO_CUDA, 0):
        terminalreporter.write_line(
            f"{config.stash[_NO_CUDA]} gpu tests deselected: no CUDA device on this machine"
        )


_NO_CUDA = pytest.StashKey[int]()


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
