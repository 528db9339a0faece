"""dvc.yaml: generated from the stage list, and DVC reproducing the pipeline with it."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab1.core.stages import STAGES
from lab4 import dvc_pipeline
from tests.conftest import Project, clean_env, copy_project
from tests.lab4.conftest import BUCKET, env_without_aws
from tests.project import param_change

DVC = str(Path(sys.executable).parent / "dvc")


def test_committed_dvc_yaml_is_the_rendered_one():
    assert dvc_pipeline.main(["--check"]) == 0, "run: python -m lab4.dvc_pipeline"
    stages = yaml.safe_load(dvc_pipeline.render())["stages"]
    assert list(stages) == list(STAGES)
    for name, stage in stages.items():
        assert stage["cmd"].startswith(f"bash pipeline.sh --stage {name}")


def dvc(project: Project, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [DVC, *args], cwd=project.root, env=clean_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, (
        f"dvc {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    )
    return done


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Project:
    """A git clone-like copy of the project on which `dvc repro` ran all five stages."""
    project = Project(copy_project(tmp_path_factory.mktemp("dvc") / "project"))
    param_change("data_creation.temperature.years", 1)(project.root)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project"],
    ):
        subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True)
    assert (project.root / ".dvc" / "config").exists()  # the project ships DVC initialised
    assert ran(dvc(project, "repro").stdout) == list(STAGES)
    return project


@pytest.mark.e2e
def test_repro_skips_every_stage_when_nothing_changed(reproduced):
    """(The first run, the experiment and the comparisons: tests/lab4/test_readme_steps.py.)"""
    project = reproduced
    started = time.perf_counter()
    second = dvc(project, "repro").stdout
    assert ran(second) == [] and "Data and pipelines are up to date" in second
    assert time.perf_counter() - started < 30  # the figure is in bench/, this only bounds it
    assert "up to date" in dvc(project, "status").stdout


def documented_remote_commands(config: Path) -> list[list[str]]:
    """The `dvc remote ...` commands that the project's .dvc/config documents in its comments."""
    found = re.findall(r"^#\s+dvc (remote [^#\n]*?)[ \t]*(?:#.*)?$", config.read_text(), re.M)
    return [line.split() for line in found]


def output_files(project: Project) -> dict[str, str]:
    """Every file of the outputs that dvc.yaml has DVC cache, with its sha256."""
    outs = []
    for stage in yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            if isinstance(entry, str):
                outs.append(entry)
            elif next(iter(entry.values())).get("cache", True):
                outs.append(next(iter(entry)))
    found = {}
    for out in outs:
        path = project.root / out
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            found[str(file.relative_to(project.root))] = hashlib.sha256(
                file.read_bytes()
            ).hexdigest()
    return found


@pytest.mark.e2e
def test_the_pipeline_outputs_go_to_s3_and_come_back_byte_for_byte(reproduced, s3):
    """The steps .dvc/config documents, run as written: an S3 remote with its keys in
    .dvc/config.local, then push, lose the cache and the outputs, pull."""
    project = reproduced
    endpoint, keys = s3
    commands = documented_remote_commands(project.root / ".dvc" / "config")
    assert [c[:2] for c in commands] == [["remote", "add"]] + [["remote", "modify"]] * 3
    values = {
        "s3://BUCKET/PATH": f"s3://{BUCKET}/pipeline",
        "http://127.0.0.1:9000": endpoint,
        "KEY_ID": keys["AWS_ACCESS_KEY_ID"],
        "SECRET_KEY": keys["AWS_SECRET_ACCESS_KEY"],
    }
    committed = (project.root / ".dvc" / "config").read_bytes()
    for command in commands:
        dvc(project, *(values.get(word, word) for word in command))
    # Every setting went to .dvc/config.local: the tracked file, and so the checkout, unchanged.
    assert (project.root / ".dvc" / "config").read_bytes() == committed
    # The keys are in .dvc/config.local, which git ignores, and nowhere in .dvc/config.
    assert keys["AWS_SECRET_ACCESS_KEY"] in (project.root / ".dvc" / "config.local").read_text()
    assert keys["AWS_SECRET_ACCESS_KEY"] not in (project.root / ".dvc" / "config").read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=project.root)
    assert ignored.returncode == 0

    before = output_files(project)
    assert any(name.startswith("models/") for name in before) and len(before) > 5
    # The machine's own AWS settings, if any, play no part: the keys come from config.local.
    env = env_without_aws(AWS_DEFAULT_REGION="us-east-1", HOME=str(project.root))
    run = dict(cwd=project.root, capture_output=True, text=True, timeout=300, env=env)
    pushed = subprocess.run([DVC, "push"], **run)
    assert pushed.returncode == 0, pushed.stderr
    status = subprocess.run([DVC, "status", "--cloud"], **run)
    assert status.returncode == 0 and "in sync" in status.stdout, status.stdout + status.stderr

    shutil.rmtree(project.root / ".dvc" / "cache")
    for name in before:
        (project.root / name).unlink()
    pulled = subprocess.run([DVC, "pull"], **run)
    assert pulled.returncode == 0, pulled.stderr
    assert output_files(project) == before
    assert "up to date" in dvc(project, "status").stdout  # the pipeline needs no stage re-run
