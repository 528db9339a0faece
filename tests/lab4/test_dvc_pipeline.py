"""dvc.yaml: generated from the stage list, and DVC reproducing the pipeline with it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab1.core.stages import STAGES
from lab4 import dvc_pipeline
from tests.conftest import Project, clean_env, copy_project

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


@pytest.mark.e2e
def test_repro_runs_once_skips_when_unchanged_and_reruns_only_what_a_param_affects(tmp_path):
    project = Project(copy_project(tmp_path / "project"))
    params = project.root / "params.yaml"
    params.write_text(params.read_text().replace("    years: 3", "    years: 1"))
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project"],
    ):
        subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True)
    assert (project.root / ".dvc" / "config").exists()  # the project ships DVC initialised

    assert ran(dvc(project, "repro").stdout) == list(STAGES)
    started = time.perf_counter()
    second = dvc(project, "repro").stdout
    assert ran(second) == [] and "Data and pipelines are up to date" in second
    assert time.perf_counter() - started < 30  # the figure is in bench/, this only bounds it
    assert "up to date" in dvc(project, "status").stdout

    change = "model_preparation.hist_gradient_boosting.learning_rate=0.1"
    experiment = dvc(project, "exp", "run", "-S", change).stdout
    assert ran(experiment) == ["model_preparation", "model_testing", "model_registration"]
    shown = dvc(project, "exp", "show", "--json").stdout
    assert '"learning_rate": 0.1' in shown and '"learning_rate": 0.08' in shown
    dvc(project, "metrics", "diff")
    dvc(project, "plots", "diff", "-o", str(tmp_path / "plots"))

    # The registered versions lead back to DVC's hash of the data they were trained on.
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    raw_md5 = next(
        out["md5"] for out in lock["stages"]["data_creation"]["outs"] if out["path"] == "data/raw"
    )
    client = project.client()
    versions = client.search_model_versions("name='temperature-classifier'")
    assert len(versions) == 2
    assert {v.tags["dvc.data_md5"] for v in versions} == {raw_md5}
    assert {v.tags["dvc.stage"] for v in versions} == {"model_registration"}
