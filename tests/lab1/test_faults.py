"""Crash safety: SIGKILL mid-pipeline, and two pipelines started at once on a fresh store."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from lab1.core.io import read_json
from lab1.core.stages import STAGES
from tests.conftest import SMALL, Project, clean_env, copy_project

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
ACCURACY_LINE = re.compile(r"^Model test accuracy is: \d\.\d{3}$")


def wait_for_line(process: subprocess.Popen, pattern: str, timeout: float = 300) -> str:
    """Read the process's stderr until a line matches; return it."""
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        if re.search(pattern, line):
            return line
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no line matching {pattern!r} (exit {process.poll()})")


def test_sigkill_mid_stage_leaves_no_output_and_next_start_marks_runs_killed(project: Project):
    # Its own process group, so that we kill all of it at once.
    process = project.start_pipeline(*SMALL, start_new_session=True)
    try:
        # The stage's line once its run exists in the store.
        wait_for_line(process, r"model_preparation run \w+ started")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # pipeline.sh and the stage, no chance to clean up
        process.wait()
    # No half-written model: models/ holds at most the killed writer's temporary folder.
    assert not list((project.root / "models").glob("model*"))
    stuck = [r for r in project.runs() if r.info.status == "RUNNING"]
    assert sorted(r.data.tags["mlflow.runName"].split("-")[0] for r in stuck) == [
        "model_preparation",
        "pipeline",
    ]

    again = project.pipeline(*SMALL)
    assert again.returncode == 0, again.stderr
    assert "marked 2 run(s) KILLED" in again.stderr
    client = project.client()
    for run in stuck:
        after = client.get_run(run.info.run_id)
        assert after.info.status == "KILLED"
        assert "died" in after.data.tags["mlops.end_reason"]
    assert not [r for r in project.runs() if r.info.status == "RUNNING"]
    everything = [*project.root.iterdir(), *(project.root / "models").iterdir()]
    leftovers = [p.name for p in everything if ".tmp-" in p.name or ".old-" in p.name]
    assert not leftovers


def test_sigterm_ends_runs_as_killed(project: Project):
    process = project.start_pipeline(*SMALL)
    # The stage's own line: the tracking service may record the run a little later.
    wait_for_line(process, r"data_preprocessing started \(pid")
    process.send_signal(signal.SIGTERM)  # what Jenkins' abort or `kill` sends
    process.wait(timeout=120)
    assert process.returncode == 143
    statuses = {r.data.tags["mlflow.runName"].split("-")[0]: r.info.status for r in project.runs()}
    assert statuses == {
        "pipeline": "KILLED",
        "data_creation": "FINISHED",
        "data_preprocessing": "KILLED",
    }


def test_sigterm_to_the_whole_group_exits_143_with_no_false_line(project: Project):
    """Jenkins' abort and `kill -- -PGID` signal every process of the pipeline at once: the
    stage ends its run KILLED by itself, pipeline.sh the parent run, and it says nothing untrue
    (it used to report "tracking service is not running" and exit 1)."""
    process = project.start_pipeline(*SMALL, start_new_session=True)
    wait_for_line(process, r"model_preparation started \(pid")
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "not running" not in stderr and "Traceback" not in stderr, stderr
    statuses = {r.data.tags["mlflow.runName"].split("-")[0]: r.info.status for r in project.runs()}
    assert statuses.get("pipeline") == "KILLED" and statuses.get("model_preparation") == "KILLED", (
        statuses,
        stderr,
    )


def test_ctrl_c_stops_the_stage_and_ends_the_runs_killed(project: Project):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground group: pipeline.sh and the
    stage. The stage ends its run KILLED, then pipeline.sh the parent run."""
    process = project.start_pipeline(
        *SMALL,
        start_new_session=True,
        # As a terminal's shell leaves it (this test process may have SIGINT ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_line(process, r"data_preprocessing started \(pid")
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    statuses = {r.data.tags["mlflow.runName"].split("-")[0]: r.info.status for r in project.runs()}
    assert statuses == {
        "pipeline": "KILLED",
        "data_creation": "FINISHED",
        "data_preprocessing": "KILLED",
    }


# Instants to interrupt at, by the line that marks them (None: 0.3 s in, while pipeline.sh still
# checks its options and Python modules import), and the exit codes allowed there.
INSTANTS = [
    (None, ()),
    (r"pipeline run \w+ started", ()),
    (r"model_testing started \(pid", ()),
    # The last stage has ended and the tracking records the rest: the pipeline may even finish.
    (r"model_registration FINISHED in", (0,)),
]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_at_any_instant_leaves_no_traceback_and_no_open_run(
    project: Project, sig: signal.Signals, code: int
):
    """Ctrl-C (SIGINT) or SIGTERM to the whole group, under pipeline.sh and to a stage alone:
    one "interrupted" line, no traceback, exit 130 or 143, no run left RUNNING, and the next
    run works."""
    for instant, also in INSTANTS:
        process = project.start_pipeline(
            *SMALL,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        if instant is None:
            time.sleep(0.3)
        else:
            wait_for_line(process, instant)
        with contextlib.suppress(ProcessLookupError):  # it may have finished
            os.killpg(process.pid, sig)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode in (code, *also), (instant, stderr)
        assert "Traceback" not in stderr, (instant, stderr)
    # A stage alone: while it imports (0.1 s in: no machine is done importing by then), and
    # while it works (its run exists: an event, not a time, for a fast machine may be done in 3 s).
    for working in (None, r"data_preprocessing started \(pid"):
        alone = subprocess.Popen(
            [sys.executable, "-m", "lab1.data_preprocessing", *SMALL],
            cwd=project.root,
            env=clean_env(PYTHONPATH=str(project.root)),
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        if working is None:
            time.sleep(0.1)
        else:
            wait_for_line(alone, working)
        os.killpg(alone.pid, sig)
        _, stderr = alone.communicate(timeout=120)
        # Killed by its own SIGINT while importing (a shell reports that as 130), else 130/143.
        assert alone.returncode in (code, -sig), (working, stderr)
        assert "Traceback" not in stderr, (working, stderr)
    assert [r.info.status for r in project.runs() if r.info.status == "RUNNING"] == []
    assert project.pipeline(*SMALL).returncode == 0


def test_a_stage_killed_alone_is_recorded_killed_when_the_pipeline_ends(project: Project):
    """What Jenkins does to a step it aborts, or the OOM killer to one process: the stage dies
    without a word; pipeline.sh, ending its parent run, reaps the stage's run KILLED (no need to
    wait for the next pipeline)."""
    process = project.start_pipeline(*SMALL)
    line = wait_for_line(process, r"model_preparation started \(pid \d+\)")
    pid = int(re.search(r"pid (\d+)", line).group(1))
    os.kill(pid, signal.SIGKILL)
    process.communicate(timeout=120)
    assert process.returncode == 1
    runs = {r.data.tags["mlflow.runName"].split("-")[0]: r for r in project.runs()}
    assert runs["model_preparation"].info.status == "KILLED"
    assert runs["model_preparation"].data.tags["mlops.end_reason"] == f"process {pid} died"
    assert runs["pipeline"].info.status == "FAILED"
    assert runs["data_preprocessing"].info.status == "FINISHED"
    assert not list((project.root / "models").glob("model*"))


def test_two_pipelines_at_once_on_a_fresh_store(tmp_path):
    """Two workspaces (as two Jenkins builds have) share one brand-new SQLite store."""
    store = tmp_path / "shared-store" / "mlflow.db"
    uri = f"sqlite:///{store}"
    projects = [Project(copy_project(tmp_path / name)) for name in ("a", "b")]
    processes = [p.start_pipeline(*SMALL, env=clean_env(MLFLOW_TRACKING_URI=uri)) for p in projects]
    outputs = [p.communicate(timeout=900) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert ACCURACY_LINE.match(stdout.splitlines()[-1])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    exp = client.get_experiment_by_name("lab1-temperature")
    assert exp.artifact_location.startswith((store.parent / "artifacts").as_uri())
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("mlops.role") == "pipeline"]
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
    for parent in parents:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(c.data.tags["mlflow.runName"] for c in children) == sorted(STAGES)
    # The same code, data and params in both: one version; the second gate says "unchanged".
    versions = client.search_model_versions("name = 'temperature-classifier'")
    assert [str(v.version) for v in versions] == ["1"]
    decisions = sorted(
        read_json(p.root / "reports" / "registration.json")["decision"] for p in projects
    )
    assert decisions == ["promoted", "unchanged"]


def test_clean_names_what_still_uses_the_store_and_removes_nothing(project: Project):
    """`--clean` under a running MLflow UI or model service: they would go on showing runs and
    serving a version that no longer exist. A stand-in holds the store open and listens."""
    store = project.root / ".mlflow"
    store.mkdir()
    (store / "mlflow.db").write_bytes(b"")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time; db = open(sys.argv[1]); s = socket.socket(); "
            "s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True); "
            "time.sleep(300)",
            str(store / "mlflow.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = holder.stdout.readline().strip()
        done = project.pipeline("--clean")
        assert done.returncode == 3, done.stderr  # a refusal, not a failure
        assert f"in use by pid {holder.pid} (" in done.stderr
        assert f"listening on port {port}" in done.stderr and "nothing was removed" in done.stderr
        assert (store / "mlflow.db").exists()
    finally:
        holder.kill()
        holder.wait()
    done = project.pipeline("--clean")
    assert done.returncode == 0, done.stderr
    assert not store.exists()
