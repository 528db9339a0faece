"""Pipelines as a user runs them (processes): two at once in one checkout, and the lineage
command's answers checked against what the runs logged, then reproduced."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab1.core.io import tree_sha256
from tests.conftest import SMALL, Project, clean_env, copy_project

pytestmark = pytest.mark.e2e  # two pipeline.sh processes at once, then --reproduce

NAME = "temperature-classifier"
ESTIMATOR_CLASSES = {
    "logistic_regression": "LogisticRegression",
    "random_forest": "RandomForestClassifier",
    "hist_gradient_boosting": "HistGradientBoostingClassifier",
}


def git_checkout(root) -> str:
    """Make ``root`` a git checkout with one commit (lineage records the commit); its sha."""
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "test"],
    ):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def lineage(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab1.lineage", *args],
        cwd=project.root,
        env=clean_env(PYTHONPATH=str(project.root)),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory) -> Project:
    """One checkout, two pipelines started together with different estimators."""
    project = Project(copy_project(tmp_path_factory.mktemp("lineage") / "project"))
    git_checkout(project.root)
    started = [
        project.start_pipeline(*SMALL, "-S", f"model_preparation.estimator={estimator}")
        for estimator in ("logistic_regression", "random_forest")
    ]
    project.outputs = [p.communicate(timeout=900) for p in started]  # type: ignore[attr-defined]
    project.codes = [p.returncode for p in started]  # type: ignore[attr-defined]
    return project


def test_two_pipelines_in_one_checkout_take_turns_and_register_their_own_models(
    pipelines, tmp_path
):
    import mlflow.artifacts

    from lab1.core.model_io import load_model

    assert set(pipelines.codes) <= {0, 3}, pipelines.outputs
    waited = [err for _, err in pipelines.outputs if "another pipeline is running" in err]
    assert len(waited) == 1  # the second one waited for the first, and said so
    client = pipelines.client()
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert versions  # at least the first is champion
    for version in versions:
        local = mlflow.artifacts.download_artifacts(
            client.get_model_version_download_uri(NAME, version.version),
            dst_path=str(tmp_path / str(version.version)),
            tracking_uri=f"sqlite:///{pipelines.root / '.mlflow' / 'mlflow.db'}",
        )
        model = load_model(Path(local))
        estimator = lineage_params(client, version)["model_preparation"]["estimator"]
        assert type(model[-1]).__name__ == ESTIMATOR_CLASSES[estimator], version.version


def lineage_params(client, version) -> dict:
    """The params lineage.json (logged by the version's registration run) records."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(version.tags["lineage.run_id"], "lineage.json", tmp)
        return json.loads(Path(path).read_text())["params"]


def test_lineage_answers_equal_what_the_runs_logged(pipelines, tmp_path):
    project = pipelines
    done = lineage(project, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    client = project.client()
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert answer["model"]["uri"] == f"models:/{NAME}/{champion.version}"
    # Data: the digest data_creation logged as its output is the data's, as the answer says.
    data_run = client.get_run(answer["runs"]["data_creation"]["run_id"])
    logged = {
        d.dataset.name: d.dataset.digest
        for d in data_run.inputs.dataset_inputs
        if {t.key: t.value for t in d.tags}.get("mlflow.data.context") == "output"
    }
    assert answer["data"]["raw_digest"] == logged["data/raw"]
    assert answer["data"]["logged_by_data_creation"] == logged["data/raw"]
    # Both pipelines made the same data: it is what lies in data/raw.
    assert logged["data/raw"] == tree_sha256(project.root / "data" / "raw")[:16]
    # Code: the checkout's commit.
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project.root, capture_output=True, text=True
    ).stdout.strip()
    assert answer["code"]["commit"] == head
    # Params: the parent run's resolved params.yaml, section by section.
    parent = answer["runs"]["pipeline"]["run_id"]
    logged_params = yaml.safe_load(
        Path(client.download_artifacts(parent, "params.yaml", str(tmp_path))).read_text()
    )
    from lab1.core.lineage import overrides

    assert overrides(answer["params"], logged_params) == []  # every value the stages used
    assert answer["params"]["model_preparation"]["estimator"] in ESTIMATOR_CLASSES
    # Metrics and runs: the version's tags, the stage runs of that pipeline.
    assert answer["metrics"]["accuracy"] == pytest.approx(float(champion.tags["test.accuracy"]))
    children = client.search_runs(
        [data_run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    by_name = {r.data.tags["mlflow.runName"]: r.info.run_id for r in children}
    for stage in ("data_creation", "data_preprocessing", "model_preparation", "model_testing"):
        assert answer["runs"][stage]["run_id"] == by_name[stage]
        assert answer["runs"][stage]["url"].endswith(
            f"/runs/{by_name[stage]}?workflowType=machine_learning"  # the model-training view
        )
    # The registry's page too opens the model-training view (not the GenAI one).
    assert answer["model"]["url"].endswith(
        f"/versions/{champion.version}?workflowType=machine_learning"
    )
    # The version's model card names its own version.
    assert f"models:/{NAME}/{champion.version}`" in champion.description
    assert answer["reproduce"].startswith(f"git checkout {head[:12]} && bash pipeline.sh")
    text = lineage(project)
    assert text.returncode == 0 and answer["data"]["raw_digest"] in text.stdout
    links = re.findall(r"https?://\S+", text.stdout)  # every link it prints: the training view
    assert links and all(link.endswith("workflowType=machine_learning") for link in links), links


def test_reproduce_matches_and_refuses_another_commit(pipelines):
    project = pipelines
    done = lineage(project, "--reproduce")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DIFFERENT" not in done.stdout and " ok" in done.stdout
    assert "test set           the same" in done.stdout
    (project.root / "NOTES.txt").write_text("a new commit\n")
    subprocess.run(["git", "add", "-A"], cwd=project.root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "later"],
        cwd=project.root,
        check=True,
    )
    refused = lineage(project, "--reproduce")
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "this checkout is at" in errors[0], refused.stderr
