"""The five stages in this process, one after another, on a small config (the pattern of
Kedro's and fmind's job tests): what each writes, what its MLflow run records, and the file
contracts stage.run enforces. The same stages as processes are tested in test_pipeline_e2e."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab1.core.paths import project_at
from lab1.core.stage_io import STAGE_IO, StageIO, UndeclaredIO, check_declared
from lab1.core.stages import STAGES
from tests.conftest import SMALL, Project, copy_project

ACCURACY_LINE = re.compile(r"^Model test accuracy is: (\d\.\d{3})$")


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Project, dict]:
    """A project copy in which every stage ran in-process; each stage's result."""
    project = Project(copy_project(tmp_path_factory.mktemp("stages") / "project"))
    results = {stage: project.run(stage, *SMALL) for stage in STAGES}
    return project, results


def test_every_stage_succeeds_and_only_model_testing_prints(ran):
    _, results = ran
    for stage, result in results.items():
        assert result.returncode == 0, (stage, result.stderr)
        assert "Traceback" not in result.stderr
    assert ACCURACY_LINE.match(results["model_testing"].stdout.strip())
    assert all(r.stdout == "" for s, r in results.items() if s != "model_testing")


def test_each_stage_writes_its_declared_outputs(ran):
    project, _ = ran
    root = project.root
    for name in ("train", "test"):
        assert (root / "data" / "processed" / f"{name}.parquet").is_file()
    manifest = json.loads((root / "data" / "raw" / "manifest.json").read_text())
    assert {f["split"] for f in manifest["files"]} == {"train", "test"}
    assert (root / "models" / "model" / "MLmodel").is_file()
    model_info = json.loads((root / "models" / "model.json").read_text())
    report = json.loads((root / "reports" / "metrics.json").read_text())
    assert report["model_uri"] == model_info["model_uri"]
    assert report["training_run_id"] == model_info["run_id"]
    assert report["metrics"]["accuracy"] > report["metrics"]["baseline_accuracy"] + 0.1
    decision = json.loads((root / "reports" / "registration.json").read_text())
    assert decision["decision"] == "promoted" and str(decision["version"]) == "1"
    assert not [p for p in root.rglob(".*") if ".tmp-" in p.name or "handoff" in p.name]


def test_each_stage_records_one_run_with_params_inputs_and_outputs(ran):
    project, _ = ran
    runs = {r.data.tags["mlflow.runName"]: r for r in project.runs()}
    assert sorted(runs) == sorted(STAGES)  # run alone: no parent, one run per stage
    for stage, run in runs.items():
        assert run.info.status == "FINISHED"
        assert "mlflow.parentRunId" not in run.data.tags
        assert run.data.params["dataset"] == "temperature"
        assert run.data.metrics["duration_s"] > 0
        assert run.data.tags["mlops.role"] == "stage"
        assert run.data.tags["mlflow.source.name"] == f"lab1/{stage}.py"
        with project_at(project.root):
            for dataset_input in run.inputs.dataset_inputs:
                context = dataset_input.tags[0].value
                kind = "reads" if context == "input" else "writes"
                check_declared(stage, project.root / dataset_input.dataset.name, kind)
    assert runs["model_preparation"].data.metrics["log_model_s"] > 0
    assert runs["model_preparation"].data.tags["model_uri"].startswith("models:/")
    assert runs["model_testing"].data.metrics["accuracy"] > 0.8


def test_the_logged_model_is_the_local_one(ran):
    """The model in models/model/ is byte-identical to what the run logged (one save, one copy)."""
    project, _ = ran
    client = project.client()
    model_info = json.loads((project.root / "models" / "model.json").read_text())
    logged = client.get_logged_model(model_info["model_id"])
    assert logged.source_run_id == model_info["run_id"]
    # In the run's experiment (not MLflow's default one), with the store's artifacts.
    assert logged.experiment_id == client.get_run(model_info["run_id"]).info.experiment_id
    assert not (project.root / "mlruns").exists()
    artifacts = Path(logged.artifact_location.removeprefix("file://"))
    local = project.root / "models" / "model"
    for name in ("MLmodel", "model.skops", "input_example.json"):
        assert (local / name).read_bytes() == (artifacts / name).read_bytes(), name


def test_each_stage_run_lists_only_the_params_it_used(ran):
    """A gradient-boosting run lists no random-forest, logistic-regression or CNN settings; a
    temperature run no CIFAR-10 or Fashion-MNIST ones; the values are this run's."""
    project, _ = ran
    runs = {r.data.tags["mlflow.runName"]: r for r in project.runs()}
    foreign = ("random_forest", "logistic_regression", "cnn", "cifar10", "fashion_mnist")
    for stage, run in runs.items():
        keys = set(run.data.params)
        assert not [k for k in keys if any(part in foreign for part in k.split("."))], stage
    training = runs["model_preparation"].data.params
    assert training["estimator"] == "hist_gradient_boosting"
    assert "hist_gradient_boosting.max_iter" in training
    assert runs["data_creation"].data.params["temperature.years"] == "1"  # SMALL's override


def test_the_logged_model_is_named_for_what_it_is_and_carries_its_test_metrics(ran):
    project, _ = ran
    client = project.client()
    model_info = json.loads((project.root / "models" / "model.json").read_text())
    logged = client.get_logged_model(model_info["model_id"])
    assert logged.name == "temperature-hist_gradient_boosting"
    report = json.loads((project.root / "reports" / "metrics.json").read_text())
    measured = {m.key: m for m in logged.metrics}
    for key in ("accuracy", "f1", "recall.spike", "recall.stuck"):
        assert measured[key].value == pytest.approx(report["metrics"].get(key, measured[key].value))
        assert measured[key].dataset_digest == report["test_digest"]
    assert measured["accuracy"].value == pytest.approx(report["metrics"]["accuracy"])
    # The testing run names the model it tested (the runs table's Models column).
    testing = client.get_run(report["testing_run_id"])
    assert [m.model_id for m in testing.inputs.model_inputs] == [logged.model_id]


def test_an_undeclared_output_is_a_bug_that_fails_the_stage(tmp_path, monkeypatch):
    project = Project(copy_project(tmp_path / "project"))
    declared = STAGE_IO["data_creation"]
    monkeypatch.setitem(STAGE_IO, "data_creation", StageIO(params=declared.params, reads=()))
    done = project.run("data_creation", *SMALL)  # a bug: one line that says so, exit 1
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert re.search(r"unexpected UndeclaredIO: data_creation writes .*data/raw", done.stderr)
    (run,) = project.runs()
    assert run.info.status == "FAILED"


def test_check_declared_allows_only_the_contract(tmp_path):
    from lab1.core.paths import PATHS

    check_declared("model_testing", PATHS.processed_table("test"), "reads")
    check_declared("model_testing", PATHS.metrics, "writes")
    check_declared("model_testing", PATHS.metrics, "reads")  # a stage may read its own output
    with pytest.raises(UndeclaredIO):
        check_declared("model_testing", PATHS.processed_table("test"), "writes")
    with pytest.raises(UndeclaredIO):
        check_declared("data_creation", PATHS.registration, "writes")
    with pytest.raises(UndeclaredIO):
        check_declared("data_creation", tmp_path / "elsewhere.csv", "reads")


def test_the_logged_model_loads_without_the_project(ran, tmp_path):
    """MLflow's own loader, in a process that cannot import the project: the model carries the
    one module it needs (features.py, its code_paths), and that module imports nothing of lab1."""
    project, _ = ran
    model_dir = project.root / "models" / "model"
    script = f"""
import os, sys
sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "lab1"))]
import mlflow.sklearn, pandas as pd
model = mlflow.sklearn.load_model({str(model_dir)!r})
example = pd.read_json({str(model_dir / "input_example.json")!r}, orient="split")
print(model.predict_proba(example).shape, sorted(m for m in sys.modules if m.startswith("lab1")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split(")")[1].strip() == "['lab1', 'lab1.core', 'lab1.core.features']"
