"""What the registry may take: only finished outputs of one lineage, each model once, compared
fairly (the stages in this process, against a project copy)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from lab1.core.errors import DataError
from lab1.core.io import read_json
from lab1.core.paths import project_at
from lab1.core.stages import STAGES
from tests.conftest import SMALL, Project, copy_project


def run_all(project: Project, *args: str) -> dict[str, int]:
    return {stage: project.run(stage, *SMALL, *args).returncode for stage in STAGES}


def champion_version(project: Project) -> str:
    return str(
        project.client().get_model_version_by_alias("temperature-classifier", "champion").version
    )


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> Project:
    """A project copy whose pipeline ran once (in-process): version 1 is champion."""
    project = Project(copy_project(tmp_path_factory.mktemp("provenance") / "project"))
    assert run_all(project) == dict.fromkeys(STAGES, 0)
    return project


def test_an_identical_rerun_registers_nothing_new(registered):
    project = registered
    assert project.run("model_registration", *SMALL).returncode == 0  # the same model again
    decision = read_json(project.root / "reports" / "registration.json")
    assert decision["decision"] == "unchanged"
    assert decision["reason"] == (
        "unchanged: version 1 already is champion: same code, data, params and gate settings"
    )
    versions = project.client().search_model_versions("name = 'temperature-classifier'")
    assert [str(v.version) for v in versions] == ["1"] and champion_version(project) == "1"


def test_only_a_change_in_the_code_the_stages_run_makes_another_model(tmp_path):
    """lab4's remote steps once dirtied .dvc/config and the same model became version 3: a change
    the pipeline does not read (a README here) gates the champion again; lab1's code, another."""
    import subprocess

    project = Project(copy_project(tmp_path / "project"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(project.root)]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run([*git, *argv], check=True)
    assert run_all(project) == dict.fromkeys(STAGES, 0)
    with (project.root / "README.md").open("a") as readme:
        readme.write("\nA note of mine.\n")
    assert run_all(project) == dict.fromkeys(STAGES, 0)
    assert read_json(project.root / "reports" / "registration.json")["decision"] == "unchanged"
    with (project.root / "lab1" / "core" / "features.py").open("a") as code:
        code.write("\n# a comment is a change of the code the stages run\n")
    assert run_all(project) == dict.fromkeys(STAGES, 0)
    versions = project.client().search_model_versions("name = 'temperature-classifier'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]


def test_a_stage_run_again_on_the_same_data_leaves_the_later_stages_valid(tmp_path):
    """The preprocessor is written byte for byte the same (skops named its arrays by id() and
    dated its zip): data_preprocessing again, then model_testing on the existing model, passes."""
    from lab1.core.io import tree_sha256

    project = Project(copy_project(tmp_path / "project"))
    assert run_all(project) == dict.fromkeys(STAGES, 0)
    processed = project.root / "data" / "processed"
    before = tree_sha256(processed)
    assert project.run("data_preprocessing", *SMALL).returncode == 0
    assert tree_sha256(processed) == before
    done = project.run("model_testing", *SMALL)
    assert done.returncode == 0, done.stderr


def test_a_failed_stage_leaves_nothing_the_next_stage_can_take(registered, monkeypatch):
    import mlflow

    project = registered
    real_log = mlflow.log_metrics

    def log_then_fail(metrics, **kwargs):  # model_testing's, after metrics.json was written
        if "accuracy" in metrics:
            raise DataError("simulated: MLflow refused a metric key")
        return real_log(metrics, **kwargs)

    monkeypatch.setattr(mlflow, "log_metrics", log_then_fail)
    testing = project.run("model_testing", *SMALL)
    monkeypatch.undo()
    assert testing.returncode == 1 and "simulated" in testing.stderr
    assert (project.root / "reports" / "metrics.json").exists()  # left behind, but not vouched for
    registration = project.run("model_registration", *SMALL)
    assert registration.returncode == 1
    errors = [line for line in registration.stderr.splitlines() if "ERROR" in line]
    assert (
        len(errors) == 1
        and "reports/metrics.json: not the output of a finished model_testing" in errors[0]
    )
    assert "Traceback" not in registration.stderr
    assert champion_version(project) == "1"
    assert project.run("model_testing", *SMALL).returncode == 0  # a finished run vouches again
    assert project.run("model_registration", *SMALL).returncode == 0


def test_outputs_of_different_executions_are_refused_even_run_by_hand(tmp_path):
    project = Project(copy_project(tmp_path / "project"))
    assert run_all(project) == dict.fromkeys(STAGES, 0)
    # Another model replaces models/; reports/metrics.json still describes the first one.
    other = "model_preparation.estimator=logistic_regression"
    assert project.run("model_preparation", *SMALL, "-S", other).returncode == 0
    registration = project.run("model_registration", *SMALL)
    assert registration.returncode == 1
    assert "reports/metrics.json: made by a model_testing run from another models" in (
        registration.stderr
    )
    # data/processed re-made with another window: the model was trained on the old one.
    window = "data_preprocessing.window=5"
    assert project.run("data_preprocessing", *SMALL, "-S", window).returncode == 0
    testing = project.run("model_testing", *SMALL)
    assert testing.returncode == 1
    assert "models: made by a model_preparation run from another data/processed" in testing.stderr
    assert champion_version(project) == "1"


def test_a_model_trained_on_another_data_seed_is_compared_on_its_own_test_set(tmp_path):
    project = Project(copy_project(tmp_path / "project"))
    assert run_all(project) == dict.fromkeys(STAGES, 0)
    first = read_json(project.root / "reports" / "metrics.json")
    assert set(run_all(project, "-S", "data_creation.seed=7").values()) <= {0, 3}
    second = read_json(project.root / "reports" / "metrics.json")
    decision = read_json(project.root / "reports" / "registration.json")
    assert second["test_digest"] != first["test_digest"]
    assert decision["reference"] == "champion version 1, re-scored here"
    # The champion, scored here independently on the seed-7 test set, has the reference's score.
    import mlflow.artifacts

    from lab1.core.kinds import tables
    from lab1.core.params import load_params

    with project_at(project.root) as paths:
        local = mlflow.artifacts.download_artifacts(
            project.client().get_model_version_download_uri("temperature-classifier", "1"),
            dst_path=str(tmp_path / "champion"),
            tracking_uri=f"sqlite:///{paths.mlflow_db}",
        )
        rescored = tables.score(load_params(paths.params), Path(local))
    assert decision["reference_accuracy"] == pytest.approx(rescored["accuracy"])
    assert rescored["accuracy"] != pytest.approx(first["metrics"]["accuracy"])  # another test set


def test_a_second_pipeline_in_the_workspace_waits_for_the_first(registered):
    """A stage run by hand while the workspace is held waits, saying for whom, and goes on when
    the holder lets go. The holder keeps the lock until the stage has said that it waits: each
    step waits for an event, never for a time (a stage starts in 3 s here, in 30 on a slow
    laptop beside another test run)."""
    from lab1.core.workspace import workspace_held

    project = registered
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with project_at(project.root), workspace_held("pipeline.sh (test)"):
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=600)  # (a failure guard only)
    stage = project.start_stage("model_registration", *SMALL)
    lines: list[str] = []
    waiting = threading.Event()  # the stage said that it waits, or ended without saying it

    def read() -> None:
        for line in stage.stderr:
            lines.append(line)
            if "another pipeline is running in this workspace" in line:
                waiting.set()
        waiting.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        waiting.wait(timeout=600)  # a failure guard only: the stage says it long before that
        still_waiting = stage.poll() is None
    finally:
        release.set()
        holder.join()
    try:
        returncode = stage.wait(timeout=600)
    finally:
        stage.kill()  # (a no-op once it has ended)
        reader.join()
    stderr = "".join(lines)
    assert returncode == 0 and still_waiting, stderr  # it had not ended when it said it waits
    waits = stderr.find("another pipeline is running in this workspace: pipeline.sh (test) (pid")
    assert 0 <= waits < stderr.find("workspace free after"), stderr
    assert json.loads((project.root / "reports" / "registration.json").read_text())["version"]
