"""lab5's quality suite run as a user or Jenkins runs it (pytest lab5/quality in a subprocess)
on a freshly trained model: it passes on a good model, fails on a bad model or bad data, and
stops with one clear line when its model or data cannot be used."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from lab1.core.io import file_sha256, read_json, write_json
from tests.conftest import SMALL, Project, clean_env
from tests.lab5.readme import Step, block_commands, git_clone, run_as_written

pytestmark = pytest.mark.e2e
SUITE_SIZE = 15  # 9 data checks + 6 model checks
EXIT_USAGE = 4  # pytest's usage error: the suite's model or data cannot be used


def run_suite(root: Path, *args: str, junit: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m pytest lab5/quality ARGS`` in the project at ``root``, as Jenkins runs it."""
    command = [sys.executable, "-m", "pytest", "lab5/quality", "-p", "no:cacheprovider", *args]
    if junit:
        command.append(f"--junitxml={junit}")
    # The suite needs no third-party pytest plugins; not loading them saves ~4 s per run.
    env = clean_env(PYTHONPATH=str(root), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def outcomes(junit: Path) -> dict[str, str]:
    """Test name -> passed / failed / error / skipped, from a JUnit report."""
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name")] = kinds[0] if kinds else "passed"
    return found


def properties(junit: Path) -> dict[str, dict[str, str]]:
    return {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(junit).getroot().iter("testcase")
    }


def fails_with_one_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    """The suite stopped with exit 4 and one 'lab5 quality:' line holding ``expected``."""
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if "lab5 quality:" in line and "!" in line]
    assert done.returncode == EXIT_USAGE, output[-3000:]
    assert len(lines) == 1, output[-3000:]
    assert "Traceback" not in output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


JENKINS_COMMAND = ".venv/bin/python -m pytest lab5/quality --model-uri models/model "
JENKINS_COMMAND += "--junitxml=reports/junit-lab5.xml"
QUALITY_STEPS = {
    # The README's "2. The quality suite of the pipeline's model" block, in its order: what
    # each command must print (exit 0 for all).
    "bash pipeline.sh": "Model test accuracy is: ",
    ".venv/bin/python -m pytest lab5/quality": f"{SUITE_SIZE} passed",
    ".venv/bin/python -m pytest lab5/quality --model-uri models:/temperature-classifier/1": (
        f"{SUITE_SIZE} passed"
    ),
    ".venv/bin/python -m pytest lab5/quality -m data_quality": "9 passed, 6 deselected",
    JENKINS_COMMAND: f"{SUITE_SIZE} passed",
}


@dataclass(frozen=True)
class Walk:
    project: Project
    steps: dict[str, Step]


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Walk:
    """lab5/README.md's suite commands typed one after the other in a fresh clone. Its
    `bash pipeline.sh` runs on one year of data (MLOPS_OVERRIDES, as a Jenkins build's
    PARAMS_OVERRIDES): SMALL, as every other test here."""
    commands = block_commands("## 2. The quality suite of the pipeline's model")
    assert commands == list(QUALITY_STEPS), "the README's suite block changed: update this"
    root = git_clone(tmp_path_factory.mktemp("quality") / "project")
    years = SMALL[1]
    steps = {c: run_as_written(root, c, MLOPS_OVERRIDES=years) for c in commands}
    return Walk(Project(root), steps)


@pytest.fixture(scope="module")
def trained(walked: Walk) -> Project:
    """The walked clone: data, a model and its champion from a 1-year pipeline."""
    step = walked.steps["bash pipeline.sh"]
    assert step.done.returncode == 0, step.output[-3000:]
    return walked.project


def variant(trained: Project, tmp_path: Path) -> Project:
    """A copy of the trained project (data, models, MLflow store) to change freely."""
    root = tmp_path / "variant"
    shutil.copytree(trained.root, root, symlinks=True)
    return Project(root)


def retrain(project: Project, *stages: str, overrides: tuple[str, ...]) -> None:
    """Re-run stages in-process (set-up, not what is under test: the suite runs as a process)."""
    for stage in stages:
        done = project.run(stage, *SMALL, *(a for o in overrides for a in ("-S", o)))
        assert done.returncode == 0, f"{stage}: {done.stderr[-3000:]}"


# --- a good model passes --------------------------------------------------------------------


def test_the_readme_commands_work_in_order_on_a_fresh_clone(walked):
    for command, said in QUALITY_STEPS.items():
        step = walked.steps[command]
        assert step.done.returncode == 0, f"{command}: {step.output[-3000:]}"
        assert said in step.output, f"{command}: no {said!r} in {step.output[-3000:]}"
        assert step.status == "", f"{command} left the checkout dirty:\n{step.status}"


def test_the_suite_passes_on_the_freshly_trained_model(walked, trained):
    step = walked.steps[JENKINS_COMMAND]
    assert step.done.returncode == 0, step.output[-3000:]
    junit = trained.root / "reports" / "junit-lab5.xml"
    found = outcomes(junit)
    assert len(found) == SUITE_SIZE and set(found.values()) == {"passed"}, found
    figures = properties(junit)
    stage4 = read_json(trained.root / "reports" / "metrics.json")["metrics"]
    # The suite windows data/raw itself: its accuracy must be stage 4's on the same model.
    measured = float(figures["test_minimum_accuracy_on_the_test_stations"]["accuracy"])
    assert measured == pytest.approx(stage4["accuracy"], abs=1e-4)
    assert (
        float(figures["test_small_noise_does_not_turn_normal_days_faulty"]["flipped_fraction"])
        <= 0.01
    )


def test_by_default_it_tests_the_registry_champion(walked, trained):
    registration = read_json(trained.root / "reports" / "registration.json")
    assert registration["decision"] == "promoted", registration  # the first model
    step = walked.steps[".venv/bin/python -m pytest lab5/quality"]
    assert step.done.returncode == 0, step.output[-3000:]
    assert "lab5 quality: model the champion" in step.done.stdout
    assert f"{SUITE_SIZE} passed" in step.done.stdout and "failed" not in step.done.stdout


def test_the_data_checks_run_without_any_model(trained, tmp_path):
    project = variant(trained, tmp_path)
    shutil.rmtree(project.root / ".mlflow")
    shutil.rmtree(project.root / "models")
    junit = tmp_path / "data.xml"
    done = run_suite(project.root, "-m", "data_quality", junit=junit)
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(outcomes(junit)) == 9 and set(outcomes(junit).values()) == {"passed"}


# --- a bad model fails ----------------------------------------------------------------------


def test_a_model_that_never_saw_a_spike_fails_the_direction_checks(trained, tmp_path):
    other = variant(trained, tmp_path)
    kinds = "data_creation.temperature.faults.kinds=[stuck, drift, missing]"
    retrain(other, "data_creation", "data_preprocessing", "model_preparation", overrides=(kinds,))
    junit = tmp_path / "quality.xml"
    done = run_suite(trained.root, "--model-uri", str(other.root / "models" / "model"), junit=junit)
    assert done.returncode == 1, done.stdout[-3000:]
    found = outcomes(junit)
    assert found["test_an_injected_spike_is_flagged[up]"] == "failure"
    assert found["test_an_injected_spike_is_flagged[down]"] == "failure"
    assert "spike on" in done.stdout and "was flagged on 0.00%" in done.stdout
    data_checks = {name: kind for name, kind in found.items() if "spike" not in name}
    assert all(kind == "passed" for name, kind in data_checks.items() if "raw" in name)


# --- bad data fails -------------------------------------------------------------------------


def data_checks(project: Project, tmp_path: Path) -> dict[str, str]:
    junit = tmp_path / "data.xml"
    done = run_suite(project.root, "-m", "data_quality", junit=junit)
    assert done.returncode == 1, done.stdout[-3000:]
    return {name: kind for name, kind in outcomes(junit).items() if kind != "passed"}


def rewrite_raw(project: Project, relative: str, change) -> None:
    """Change one raw station file and record its new digest in the manifest, as a tampered
    or buggy data_creation would."""
    path = project.root / "data" / "raw" / relative
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame).to_csv(path, index=False)
    manifest_path = project.root / "data" / "raw" / "manifest.json"
    manifest = read_json(manifest_path)
    entries = [e for e in manifest["files"] if e["path"] != relative]
    split = relative.split("/")[0]
    entries.append({"path": relative, "split": split, "sha256": file_sha256(path)})
    write_json(manifest_path, manifest | {"files": entries})


def test_an_impossible_reading_fails_the_range_check(trained, tmp_path):
    project = variant(trained, tmp_path)
    rewrite_raw(
        project,
        "test/moscow.csv",
        lambda f: f.assign(temperature=f["temperature"].where(f.index != 100, "150.0")),
    )
    assert data_checks(project, tmp_path) == {
        "test_raw_values_are_in_range_and_labels_agree": "failure",
        "test_processed_rows_are_the_raw_windows": "failure",  # data/processed is stale now
    }


def test_a_raw_file_edited_after_data_creation_fails_the_digest_check(trained, tmp_path):
    project = variant(trained, tmp_path)
    path = project.root / "data" / "raw" / "test" / "phoenix.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[100, "temperature"] = "21.5"  # plausible, but not what stage 1 wrote
    frame.to_csv(path, index=False)
    assert data_checks(project, tmp_path) == {
        "test_raw_files_match_the_manifest": "failure",
        "test_processed_rows_are_the_raw_windows": "failure",
    }


def test_a_station_in_both_splits_fails_the_split_check(trained, tmp_path):
    project = variant(trained, tmp_path)
    raw = project.root / "data" / "raw"
    shutil.copy(raw / "train" / "bergen.csv", raw / "test" / "bergen.csv")
    rewrite_raw(project, "test/bergen.csv", lambda f: f)
    failed = data_checks(project, tmp_path)
    assert failed["test_no_station_in_both_train_and_test"] == "failure"
    assert failed["test_test_stations_are_the_declared_ones"] == "failure"


def test_a_scaler_fitted_on_train_and_test_is_caught(trained, tmp_path):
    import skops.io

    from lab1.core.processed import input_columns, load_preprocessor

    project = variant(trained, tmp_path)
    processed = project.root / "data" / "processed"
    train = pd.read_parquet(processed / "train.parquet")
    test = pd.read_parquet(processed / "test.parquet")
    leaky = load_preprocessor(processed / "preprocessor.skops")
    both = pd.concat([train, test])
    leaky.fit(both[input_columns(both)])  # the mistake: test statistics in the scaler
    skops.io.dump(leaky, processed / "preprocessor.skops")
    for name, frame in (("train", train), ("test", test)):
        features = [c for c in frame.columns if c.startswith("f_")]
        frame[features] = leaky.transform(frame[input_columns(frame)])
        frame.to_parquet(processed / f"{name}.parquet", index=False)
    assert data_checks(project, tmp_path) == {"test_the_scaler_was_fitted_on_train_only": "failure"}


def test_another_scaler_fitted_on_train_passes(trained, tmp_path):
    """The leakage check holds for any scaler, not only StandardScaler (it once read `mean_`)."""
    import skops.io
    from sklearn.preprocessing import MinMaxScaler

    from lab1.core.processed import input_columns, load_preprocessor

    project = variant(trained, tmp_path)
    processed = project.root / "data" / "processed"
    train = pd.read_parquet(processed / "train.parquet")
    test = pd.read_parquet(processed / "test.parquet")
    other = load_preprocessor(processed / "preprocessor.skops")
    other.steps[-1] = ("scale", MinMaxScaler())
    other.fit(train[input_columns(train)])
    skops.io.dump(other, processed / "preprocessor.skops")
    for name, frame in (("train", train), ("test", test)):
        features = [c for c in frame.columns if c.startswith("f_")]
        frame[features] = other.transform(frame[input_columns(frame)])
        frame.to_parquet(processed / f"{name}.parquet", index=False)
    junit = tmp_path / "data.xml"
    done = run_suite(project.root, "-m", "data_quality", junit=junit)
    assert done.returncode == 0, done.stdout[-3000:]
    assert set(outcomes(junit).values()) == {"passed"}


def test_a_label_copied_into_the_features_is_caught(trained, tmp_path):
    project = variant(trained, tmp_path)
    path = project.root / "data" / "processed" / "train.parquet"
    frame = pd.read_parquet(path)
    frame["f_day_missing"] = frame["is_faulty"].astype(float)
    frame.to_parquet(path, index=False)
    assert data_checks(project, tmp_path) == {"test_no_label_leakage_into_the_features": "failure"}


# --- inputs the suite cannot use: one line, exit 4 ------------------------------------------


def test_a_model_uri_that_does_not_exist(trained):
    done = run_suite(trained.root, "--model-uri", "models:/temperature-classifier/99")
    fails_with_one_line(
        done, "models:/temperature-classifier/99: cannot load the model", "not found"
    )
    done = run_suite(trained.root, "--model-uri", "no/such/folder")
    fails_with_one_line(done, "no/such/folder: cannot load the model")


def test_no_model_store_yet(trained, tmp_path):
    project = variant(trained, tmp_path)
    shutil.rmtree(project.root / ".mlflow")
    done = run_suite(project.root)
    fails_with_one_line(done, "models:/temperature-classifier@champion: no MLflow store at")
    assert not (project.root / ".mlflow").exists()  # a check never creates a store


def test_a_model_with_a_different_input_schema(trained, tmp_path):
    other = variant(trained, tmp_path)
    retrain(
        other, "data_preprocessing", "model_preparation", overrides=("data_preprocessing.window=3",)
    )
    done = run_suite(trained.root, "--model-uri", str(other.root / "models" / "model"))
    fails_with_one_line(
        done,
        "the model takes 7 columns (t_m3, t_m2, t_m1 ...)",
        "the test data has 15 readings per row (t_m7 .. t_p7",
    )


def test_an_empty_test_set(trained, tmp_path):
    project = variant(trained, tmp_path)
    for station in ("moscow", "phoenix", "singapore"):
        rewrite_raw(project, f"test/{station}.csv", lambda f: f.head(10))
    done = run_suite(project.root, "-m", "model_quality")
    fails_with_one_line(done, "empty test set (no day has the 15 readings its window needs)")
