"""pipeline.sh end to end on a small config: the stdout contract, the MLflow run tree, the
registry and the gate. One project copy for the module; tests run in file order. The first run
and its checks are in the quick tier (the stdout contract); the further runs, marked `e2e`, in the
integration tier."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

from lab1.core.stages import STAGES
from tests.conftest import SMALL, Project

ACCURACY_LINE = re.compile(r"^Model test accuracy is: (\d\.\d{3})$")


@pytest.fixture(scope="module")
def first_run(module_project: Project):
    return module_project.pipeline(*SMALL)


def test_pipeline_prints_only_the_accuracy_line_on_stdout(first_run, module_project):
    assert first_run.returncode == 0, first_run.stderr
    lines = first_run.stdout.splitlines()
    assert len(lines) == 1, first_run.stdout  # everything else went to stderr
    match = ACCURACY_LINE.match(lines[-1])
    assert match, lines[-1]
    report = json.loads((module_project.root / "reports" / "metrics.json").read_text())
    assert match.group(1) == f"{report['metrics']['accuracy']:.3f}"
    assert report["metrics"]["accuracy"] > report["metrics"]["baseline_accuracy"] + 0.1
    # The terminal tells the story: numbered stages, the accuracy line once, a closing summary.
    err = first_run.stderr
    for k, stage in enumerate(STAGES, 1):
        assert re.search(rf"\[{k}/5\] stage {stage}: exit 0 after [\d.]+ s", err), stage
    assert "Model test accuracy is" not in err  # shown once: stdout's last line
    assert "decision  temperature-classifier version 1 is now champion (the first champion)" in err
    link = r"this run  http://127\.0\.0\.1:5000/#/experiments/\d+/runs/\w{32}\?workflowType="
    assert re.search(link + "machine_learning", err)
    assert "mlflow ui --backend-store-uri sqlite:///.mlflow/mlflow.db" in err
    stage_runs = re.findall(r"\w+ run (\w{32}) started \(pid", err)
    assert len(stage_runs) == 5 and all(err.count(r) == 1 for r in stage_runs)  # ids once


def test_one_parent_run_with_five_child_runs(first_run, module_project):
    runs = module_project.runs()
    parents = [r for r in runs if r.data.tags.get("mlops.role") == "pipeline"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", tags["git.commit"])
    assert tags["git.dirty"] in ("True", "False", "unknown")
    assert tags["dataset"] == "temperature" and len(tags["params.hash"]) == 12
    assert parent.data.metrics["accuracy"] > 0.8  # the final metrics are on the parent
    note = tags["mlflow.note.content"]  # the run's description in the UI
    assert "`hist_gradient_boosting`" in note and "Gate: **promoted** version 1" in note
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [c.data.tags["mlflow.runName"] for c in children] == list(STAGES)
    for child in children:
        assert child.info.status == "FINISHED"
        stage = child.data.tags["mlflow.runName"]
        assert child.data.params["dataset"] == "temperature"
        assert child.data.metrics["duration_s"] > 0
        # MLflow's start and end are the stage's own (not when the tracking service caught up):
        # the run's span in MLflow is the stage's duration, within 1 s.
        span = (child.info.end_time - child.info.start_time) / 1000
        assert abs(span - child.data.metrics["duration_s"]) < 1, (stage, span)
        contexts = {
            i.tags[0].value for i in child.inputs.dataset_inputs
        }  # "input" / "output", each with a content digest
        assert all(len(i.dataset.digest) == 16 for i in child.inputs.dataset_inputs)
        assert contexts == (
            {"output"}
            if stage == "data_creation"
            else {"input", "output"}
            if stage != "model_registration"
            else {"input"}
        )
    by_stage = {c.data.tags["mlflow.runName"]: c for c in children}
    assert by_stage["model_preparation"].data.params["estimator"] == "hist_gradient_boosting"
    # Only the params a stage uses for this dataset: no other estimator's, no CNN's, no CIFAR's.
    assert not [
        k for k in by_stage["model_preparation"].data.params if k.startswith(("cnn.", "logistic"))
    ]
    assert not [k for k in by_stage["data_creation"].data.params if k.startswith("cifar10.")]
    assert by_stage["data_creation"].data.params["temperature.years"] == "1"
    # The parent: every stage's resolved params under its name; the raw, training and test data
    # as its datasets; the model the pipeline made as its output (the runs table's columns).
    params = parent.data.params
    assert params["model_preparation.estimator"] == "hist_gradient_boosting"
    assert params["data_creation.temperature.years"] == "1" and params["dataset"] == "temperature"
    assert not [k for k in params if ".cnn." in k or "cifar10" in k]
    datasets = {i.dataset.name: i.tags[0].value for i in parent.inputs.dataset_inputs}
    assert datasets == {
        "data/raw": "raw",
        "data/processed/train.parquet": "training",
        "data/processed/test.parquet": "testing",
    }
    made = by_stage["model_preparation"].outputs.model_outputs
    assert [m.model_id for m in parent.outputs.model_outputs] == [m.model_id for m in made]


def test_registry_version_is_champion_with_lineage(first_run, module_project):
    client = module_project.client()
    version = client.get_model_version_by_alias("temperature-classifier", "champion")
    assert version.version in (1, "1")
    tags = version.tags
    for key in ("git.commit", "params.hash", "data.digest", "source_run_id", "pipeline_run_id"):
        assert tags[key], key
    assert tags["gate.decision"] == "promoted"
    assert float(tags["test.accuracy"]) > 0.8
    # One params.hash: the version's is its training run's (and the pipeline's).
    training = client.get_run(tags["source_run_id"])
    assert tags["params.hash"] == training.data.tags["params.hash"]
    assert f"(params hash {tags['params.hash']})" in version.description
    assert f"models:/temperature-classifier/{version.version}`" in version.description
    # Its model card, and what the registered model does, in the registry's descriptions.
    assert "Flags faulty days" in client.get_registered_model("temperature-classifier").description
    card = version.description
    assert "`hist_gradient_boosting`" in card and "Recall per fault kind**: drift" in card
    assert "**Gate**: promoted: accuracy" in card
    decision = json.loads((module_project.root / "reports" / "registration.json").read_text())
    assert decision["decision"] == "promoted" and decision["champion_after"] in (1, "1")
    # The test metrics are the logged model's too, measured on the named test set.
    root = module_project.root
    model_id = json.loads((root / "models" / "model.json").read_text())["model_id"]
    report = json.loads((root / "reports" / "metrics.json").read_text())
    logged = {m.key: m for m in client.get_logged_model(model_id).metrics}
    assert logged["accuracy"].value == pytest.approx(report["metrics"]["accuracy"])
    assert logged["accuracy"].dataset_digest == report["test_digest"]


@pytest.mark.e2e
def test_rejected_model_keeps_champion_and_exits_3(first_run, module_project):
    done = module_project.pipeline(
        *SMALL,
        "-S",
        "model_preparation.hist_gradient_boosting.max_iter=5",  # another model: a new gate
        "-S",
        "model_registration.temperature.min_accuracy=0.999",
    )
    assert done.returncode == 3, done.stderr
    assert ACCURACY_LINE.match(done.stdout.splitlines()[-1])  # still printed, still last
    client = module_project.client()
    assert (
        str(client.get_model_version_by_alias("temperature-classifier", "champion").version) == "1"
    )
    # A rejected model is not registered: the registry lists the models that served.
    versions = client.search_model_versions("name = 'temperature-classifier'")
    assert [str(v.version) for v in versions] == ["1"]
    decision = json.loads((module_project.root / "reports" / "registration.json").read_text())
    assert decision["decision"] == "rejected" and str(decision["champion_after"]) == "1"
    assert decision["version"] is None and "min_accuracy 0.999" in decision["reason"]
    parent = [r for r in module_project.runs() if r.data.tags.get("mlops.role") == "pipeline"][-1]
    assert parent.info.status == "FINISHED" and parent.data.tags["gate.decision"] == "rejected"
    registration = [
        r
        for r in module_project.runs()
        if r.data.tags.get("mlflow.runName") == "model_registration"
    ][-1]
    assert "min_accuracy 0.999" in registration.data.tags["gate.reason"]


@pytest.mark.e2e
def test_promotion_records_previous_champion_and_rollback_restores_it(first_run, module_project):
    done = module_project.pipeline(
        *SMALL,
        "-S",
        "model_preparation.seed=7",  # other params, the same scores: a tie passes the gate
    )
    assert done.returncode == 0, done.stderr
    client = module_project.client()
    champion = client.get_model_version_by_alias("temperature-classifier", "champion")
    assert str(champion.version) == "2"
    assert champion.tags["champion.previous_version"] == "1"
    done = module_project.stage("model_registration", "--rollback")
    assert done.returncode == 0, done.stderr
    champion = client.get_model_version_by_alias("temperature-classifier", "champion")
    assert str(champion.version) == "1"


@pytest.mark.e2e
def test_stage_mode_passes_the_accuracy_line_through(first_run, module_project):
    done = module_project.pipeline("--stage", "model_testing", *SMALL)
    assert done.returncode == 0, done.stderr
    assert ACCURACY_LINE.match(done.stdout.splitlines()[-1])
    bad = module_project.pipeline("--stage", "training")
    assert bad.returncode == 2 and "unknown stage 'training'" in bad.stderr


@pytest.mark.e2e
def test_stages_one_by_one_share_a_parent_run(first_run, module_project):
    """The way Jenkins runs them: --begin, one --stage per step, --end; overrides come from the
    environment (one per line), as Jenkins passes its text parameter."""
    overrides = "data_creation.temperature.years=1\n  \n"
    assert module_project.pipeline("--begin", MLOPS_OVERRIDES=overrides).returncode == 0
    crashed = json.loads((module_project.root / ".mlops" / "pipeline_run.json").read_text())
    # A build that crashed after --begin leaves its run; the next build's --begin ends it.
    assert module_project.pipeline("--begin", MLOPS_OVERRIDES=overrides).returncode == 0
    context = json.loads((module_project.root / ".mlops" / "pipeline_run.json").read_text())
    client = module_project.client()
    assert client.get_run(crashed["run_id"]).info.status == "KILLED"
    for stage in STAGES:
        done = module_project.pipeline("--stage", stage, MLOPS_OVERRIDES=overrides)
        assert done.returncode == 0, done.stderr
    assert ACCURACY_LINE.match(done.stdout.splitlines()[-1])  # the last stage ends with it
    assert module_project.pipeline("--end", "FINISHED").returncode == 0
    assert not (module_project.root / ".mlops" / "pipeline_run.json").exists()
    parent = client.get_run(context["run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{context['run_id']}'",
    )
    assert sorted(c.data.tags["mlflow.runName"] for c in children) == sorted(STAGES)
    assert all(
        c.data.params["temperature.years"] == "1"
        for c in children
        if c.data.tags["mlflow.runName"] == "data_creation"
    )
    # With no run open, --end says so and does not fail (a build that failed in Setup).
    done = module_project.pipeline("--end", "FAILED")
    assert done.returncode == 0 and "no pipeline run to end" in done.stderr


def mlflow_run(project, entry: str):
    """`mlflow run . -e ENTRY` as the README (and `make mlflow-run`) writes it: into the
    project's store and experiment, with the project's environment (--env-manager local)."""
    import subprocess

    from tests.conftest import clean_env

    return subprocess.run(
        [
            *(f"{sys.prefix}/bin/mlflow", "run", ".", "-e", entry),
            *("--env-manager", "local", "--experiment-name", "lab1-temperature"),
        ],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=300,
        # As after `source .venv/bin/activate`: MLproject's `python` is the project's.
        env=clean_env(
            PATH=f"{sys.prefix}/bin:{os.environ['PATH']}",
            MLFLOW_TRACKING_URI=f"sqlite:///{project.root}/.mlflow/mlflow.db",
        ),
    )


@pytest.mark.e2e
def test_mlflow_projects_entry_point(first_run, module_project):
    done = mlflow_run(module_project, "model_testing")
    assert done.returncode == 0, done.stderr
    assert ACCURACY_LINE.match(done.stdout.splitlines()[-1])
    # MLflow's project run is the stage's own run, in the project's store and experiment, with
    # the stage's params (and nothing left in MLflow's default ./mlflow.db).
    run = module_project.runs()[-1]
    assert run.data.tags["mlflow.project.entryPoint"] == "model_testing"
    assert "accuracy" in run.data.metrics and run.data.params["dataset"] == "temperature"
    assert not (module_project.root / "mlflow.db").exists()
    assert "not lab1-temperature" not in done.stderr


@pytest.mark.e2e
def test_make_mlflow_run_works_without_an_activated_environment(first_run, module_project):
    """`make mlflow-run ENTRY=model_testing` as the README writes it, from a shell whose PATH
    has no environment of the project's (it once failed: "No module named 'pandas'")."""
    import subprocess

    from tests.conftest import clean_env

    venv = module_project.root / ".venv"
    if not venv.exists():
        venv.symlink_to(sys.prefix)  # the environment the tests run in, where make expects it
    path = os.pathsep.join(
        part for part in os.environ["PATH"].split(os.pathsep) if not part.startswith(sys.prefix)
    )
    done = subprocess.run(
        ["make", "mlflow-run", "ENTRY=model_testing"],
        cwd=module_project.root,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(PATH=path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert ACCURACY_LINE.match(done.stdout.splitlines()[-1])


@pytest.mark.e2e
def test_mlflow_projects_main_entry_runs_the_pipeline_under_its_run(first_run, module_project):
    done = mlflow_run(module_project, "main")
    assert done.returncode == 0, done.stderr
    assert ACCURACY_LINE.match(done.stdout.splitlines()[-1])
    runs = module_project.runs()
    project_run = next(
        r for r in reversed(runs) if r.data.tags.get("mlflow.project.entryPoint") == "main"
    )
    # MLflow's run is the pipeline's parent run: five stage runs under it, each its own.
    assert project_run.data.tags["mlops.role"] == "pipeline"
    assert project_run.data.params["model_preparation.estimator"] == "hist_gradient_boosting"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == project_run.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(STAGES)
    assert len({r.info.run_id for r in children} | {project_run.info.run_id}) == 6


@pytest.mark.parametrize("script", ["pipeline.sh", *STAGES, "lineage"])
def test_every_entry_point_has_help(module_project, script):
    if script == "pipeline.sh":
        done = module_project.pipeline("--help")
        assert "python -m lab1.lineage" in done.stdout
    else:
        done = module_project.stage(script, "--help")
    assert done.returncode == 0 and "usage" in done.stdout.lower()
    assert "Reads:" in done.stdout or script in ("pipeline.sh", "lineage")


@pytest.mark.e2e
def test_clean_starts_afresh_and_keeps_the_environment(project):
    """`pipeline.sh --clean` removes what runs made (outputs, records, the embedded store)."""
    for stage in STAGES:
        assert project.run(stage, *SMALL).returncode == 0, stage
    made = ["data", "models", "reports", ".mlflow", ".mlops"]
    assert all((project.root / name).exists() for name in made)
    done = project.pipeline("--clean")
    assert done.returncode == 0, done.stderr
    assert not [name for name in made if (project.root / name).exists()]
    assert (project.root / "params.yaml").exists() and "removed data/" in done.stderr
