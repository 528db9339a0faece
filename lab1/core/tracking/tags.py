"""The tags every run and model version carries: the code (git), the data (DVC), the params, the

Standard library only (plus yaml under DVC), so that a stage can compute them without MLflow.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import subprocess
from typing import TYPE_CHECKING

from lab1.core.paths import PATHS

if TYPE_CHECKING:
    from lab1.core.params import Params

PROJECT_RUN_ENV = "MLFLOW_RUN_ID"  # set by `mlflow run` (MLflow Projects): the run it made

# Environment variables Jenkins sets, recorded as run tags when present.
CI_ENV_TAGS = {
    "BUILD_NUMBER": "ci.build_number",
    "BUILD_URL": "ci.build_url",
    "JOB_NAME": "ci.job_name",
    "GIT_BRANCH": "ci.git_branch",
}


def git(*args: str, timeout: float = 10) -> str | None:
    """``git ARGS`` in the project checkout: its stdout, or None when git cannot say."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=PATHS.root, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> dict[str, str]:
    """Commit and dirty flag of the project checkout ("unknown" outside git)."""
    commit = (git("rev-parse", "HEAD") or "").strip() or os.environ.get("GIT_COMMIT") or "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git.commit": commit,
        "git.dirty": "unknown" if status is None else str(bool(status.strip())),
    }


def git_diff() -> str:
    """The uncommitted changes to tracked files (``git diff HEAD``); empty when clean."""
    return git("diff", "HEAD", timeout=30) or ""


def code_state() -> dict[str, str]:
    """git_state, plus the digest of the uncommitted diff when the checkout is dirty (two dirty
    runs of one commit are the same code only if their diffs are equal)."""
    state = git_state()
    if state["git.dirty"] == "True":
        state["git.diff_sha256"] = hashlib.sha256(git_diff().encode()).hexdigest()[:16]
    return state


def dvc_state() -> dict[str, str]:
    """Under `dvc repro` / `dvc exp run` (DVC sets DVC_STAGE for each stage's command): DVC's
    content hash of data/raw from dvc.lock, which DVC has just verified or written, and the
    stage. Empty otherwise: a dvc.lock left from an earlier repro may not describe this data."""
    stage = os.environ.get("DVC_STAGE")
    lock = PATHS.root / "dvc.lock"
    if not stage or not lock.exists():
        return {}
    import yaml

    raw = PATHS.raw.relative_to(PATHS.root).as_posix()
    entry = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get("data_creation", {})
    md5 = next((out.get("md5") for out in entry.get("outs", []) if out.get("path") == raw), None)
    tags = {"dvc.stage": stage}
    if md5:
        tags["dvc.data_md5"] = md5
    return tags


def lineage_tags(params: Params) -> dict[str, str]:
    """Tags every run and model version carries: code, data choice (and DVC's data hash under
    DVC), params, CI build."""
    tags = {**git_state(), **dvc_state(), "dataset": params.dataset, "params.hash": params.digest()}
    tags.update({tag: os.environ[env] for env, tag in CI_ENV_TAGS.items() if os.environ.get(env)})
    return tags


def owner_tags(pid: int) -> dict[str, str]:
    """Which process owns a run: the next pipeline marks it KILLED if that process is gone."""
    return {"mlops.host": socket.gethostname(), "mlops.pid": str(pid)}


def source_tags(script: str) -> dict[str, str]:
    """MLflow's own source and user tags (the UI's Source and User columns) for ``script``, the
    entry point a user runs (``lab1/<stage>.py``, ``pipeline.sh``): named explicitly, because
    the process recording it may be the tracking service or a test."""
    return {
        "mlflow.source.name": script,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": getpass.getuser(),
    }
