"""MLflow's telemetry is off in every process the project starts: importing lab1 (which every
program of lab1-lab5 does first) switches it off, and MLflow's own check agrees. Run outside
pytest's environment, since MLflow also switches it off when it sees a test or CI running."""

from __future__ import annotations

import subprocess
import sys

from tests.project import REPO, clean_env

ASK_MLFLOW = "import mlflow.telemetry.utils as t; print(t.is_telemetry_disabled())"
ASK_AGAIN = "print(t.is_telemetry_disabled())"
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


def test_the_project_switches_it_off():
    """MLflow alone would send it here (the control, so that the test can fail), and importing
    lab1, as every program of lab1-lab5 does first, switches it off. One process: MLflow's
    import is most of the cost."""
    asked = telemetry_disabled(f"{ASK_MLFLOW}; import lab1; {ASK_AGAIN}")
    assert asked.split() == ["False", "True"]


def test_a_user_may_switch_it_on():
    on = telemetry_disabled(f"import lab1; {ASK_MLFLOW}", MLFLOW_DISABLE_TELEMETRY="false")
    assert on == "False"
