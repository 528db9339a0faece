"""The Jenkinsfile: linted by npm-groovy-lint, its stages are the pipeline's stages, and its shell
steps, run in order in a fresh copy of the project, do what a Jenkins build would."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab1.core.stages import STAGES
from tests.conftest import REPO, Project, clean_env, tool
from tests.lab2.jenkinsfile import parse

JENKINSFILE = REPO / "Jenkinsfile"
MONITOR_JENKINSFILE = REPO / "lab2" / "monitor.Jenkinsfile"  # tests/lab3/test_monitor.py runs it
ACCURACY_LINE = re.compile(r"^Model test accuracy is: \d\.\d{3}$")


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("npm-groovy-lint"), "--noserver", "--failon", "warning", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.tools
@pytest.mark.parametrize("path", [JENKINSFILE, MONITOR_JENKINSFILE], ids=lambda p: p.name)
def test_jenkinsfile_passes_the_linter(path):
    done = lint(path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.tools
def test_the_linter_catches_a_syntax_error(tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text().replace("stage('Tests') {", "stage('Tests') ", 1))
    assert lint(broken).returncode != 0


def test_jenkins_stages_are_the_pipeline_stages():
    jenkinsfile = parse(JENKINSFILE)
    names = list(jenkinsfile.stages)
    # lab5's quality suite sits between testing and registration: a model that fails it is
    # never registered.
    assert names == ["Setup", *STAGES[:-1], "Model quality", STAGES[-1], "Tests"]
    assert jenkinsfile.when == {"Model quality": ("DATASET", "temperature")}
    for stage in STAGES:
        scripts = [step.script for step in jenkinsfile.stages[stage]]
        assert scripts == [f'bash pipeline.sh --stage {stage} --dataset "$DATASET"']


def run_step(project: Project, script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one step as Jenkins does: /bin/sh -xe in the workspace."""
    return subprocess.run(
        ["sh", "-xe", "-c", script],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def jenkins_env(project: Project, **extra: str) -> dict[str, str]:
    env = clean_env(
        WORKSPACE=str(project.root),
        BUILD_NUMBER="17",
        JOB_NAME="mlops-pipeline",
        BUILD_URL="http://jenkins.example/job/mlops-pipeline/17/",
        DATASET="temperature",
        PARAMS_OVERRIDES="data_creation.temperature.years=1\n",
        MLFLOW_TRACKING_URI="",  # an empty build parameter means the embedded store
        **extra,
    )
    env["MLOPS_OVERRIDES"] = env["PARAMS_OVERRIDES"]  # the Jenkinsfile's environment block
    # Jenkins builds use the workspace's own .venv: point it at the tests' environment.
    del env["MLOPS_VENV"]
    (project.root / ".venv").symlink_to(sys.prefix)
    return env


@pytest.mark.e2e
def test_shell_steps_run_in_order_like_a_build(project):
    jenkinsfile = parse(JENKINSFILE)
    env = jenkins_env(project)
    # The Tests stage's pytest runs exactly as written, on a slice of its selection: this test
    # suite itself runs every test that step selects, so running all of them again here (80 s)
    # would prove nothing more than that its command line works and writes the JUnit report.
    sliced = {**env, "PYTEST_ADDOPTS": "-k test_params"}
    outputs = {}
    for stage, steps in jenkinsfile.stages.items():
        assert jenkinsfile.runs(stage, env)  # DATASET=temperature: every stage runs
        for step in steps:
            done = run_step(project, step.script, sliced if stage == "Tests" else env)
            allowed = (0, 3) if step.return_status else (0,)  # 3: gate rejected -> UNSTABLE
            assert done.returncode in allowed, f"{stage}: {step.script}\n{done.stderr[-3000:]}"
            outputs[stage] = done
    assert ACCURACY_LINE.match(outputs[STAGES[-1]].stdout.splitlines()[-1])
    for report in ("junit.xml", "junit-lab5.xml"):  # for the junit step (reports/junit*.xml)
        assert (project.root / "reports" / report).exists()
    tests_report = (project.root / "reports" / "junit.xml").read_text()
    assert 'failures="0"' in tests_report and "test_params" in tests_report
    for condition in ("always", "success"):
        for step in jenkinsfile.post[condition]:
            done = run_step(project, step.script, env)
            assert done.returncode == 0, done.stderr
            if "lab1.core.report" in step.script:  # the build description
                assert ACCURACY_LINE.match(done.stdout.strip())
    runs = project.runs()
    parent = next(r for r in runs if r.data.tags.get("mlops.role") == "pipeline")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["ci.build_number"] == "17"
    assert parent.data.tags["ci.build_url"].endswith("/17/")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.data.tags["mlflow.runName"] for c in children) == sorted(STAGES)


@pytest.mark.e2e
def test_a_failing_stage_fails_the_build_there_and_marks_runs_failed(project):
    jenkinsfile = parse(JENKINSFILE)
    env = jenkins_env(project)
    failed_at = None
    for stage, steps in jenkinsfile.stages.items():
        for step in steps:
            if stage == "data_preprocessing":  # a raw file goes missing before this stage
                shutil.rmtree(project.root / "data" / "raw" / "test")
            done = run_step(project, step.script, env)
            if done.returncode != 0:
                failed_at = stage
                break
        if failed_at:
            break
    assert failed_at == "data_preprocessing"
    for step in jenkinsfile.post["failure"]:
        assert run_step(project, step.script, env).returncode == 0
    # What the archive step would keep: the earlier stage's outputs.
    assert (project.root / "data" / "raw" / "manifest.json").exists()
    statuses = {r.data.tags["mlflow.runName"].split("-")[0]: r.info.status for r in project.runs()}
    assert statuses == {
        "pipeline": "FAILED",
        "data_creation": "FINISHED",
        "data_preprocessing": "FAILED",
    }


def test_the_quality_stage_is_skipped_for_image_datasets():
    jenkinsfile = parse(JENKINSFILE)
    assert not jenkinsfile.runs("Model quality", {"DATASET": "fashion_mnist"})
    assert jenkinsfile.runs("model_registration", {"DATASET": "fashion_mnist"})


def test_the_reader_refuses_a_when_it_cannot_evaluate(tmp_path):
    odd = tmp_path / "Jenkinsfile"
    when = "when { expression { params.DATASET == 'temperature' } }"
    odd.write_text(JENKINSFILE.read_text().replace(when, "when { branch 'main' }"))
    with pytest.raises(ValueError, match="'Model quality': a `when` this reader cannot evaluate"):
        parse(odd)
