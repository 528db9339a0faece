"""MLflow's telemetry is off in every process the project starts: importing lab1 (which every
program of lab1-lab5 does first) switches it off, and MLflow's own check agrees. Run outside
pytest's environment, since MLflow also switches it off when it sees a test or CI running."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.project import REPO, clean_env

ASK_MLFLOW = "import mlflow.telemetry.utils as t; print(t.is_telemetry_disabled())"
CI_MARKERS = ("PYTEST_CURRENT_TEST", "CI", "JENKINS_URL", "GITHUB_ACTIONS", "BUILD_ID")


def telemetry_disabled(code: str, **env: str) -> str:
    """MLflow's answer in a user's shell (clean_env drops every MLFLOW_ setting)."""
    shell = {name: value for name, value in clean_env().items() if name not in CI_MARKERS}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=shell | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_mlflow_alone_would_send_telemetry():
    """The control: without the project, MLflow's telemetry is on here (so the next test can
    fail)."""
    assert telemetry_disabled(ASK_MLFLOW) == "False"


@pytest.mark.parametrize("first", ["lab1", "lab3", "lab5"])
def test_the_project_switches_it_off(first):
    assert telemetry_disabled(f"import {first}; {ASK_MLFLOW}") == "True"


def test_a_user_may_switch_it_on():
    on = telemetry_disabled(f"import lab1; {ASK_MLFLOW}", MLFLOW_DISABLE_TELEMETRY="false")
    assert on == "False"
