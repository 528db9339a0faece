"""Bad input to a stage: one ERROR line naming the file/field/value, exit 1, nothing half-written.

Each case runs the real stage (its script's main, in this process) in a copy of the project
whose raw data was made by the real data_creation stage, then breaks one thing. One case runs
the stage as its own process, as a user would, to show the same line reaches a terminal.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SMALL, Project, copy_project, error_lines
from tests.project import param_change, reseal_raw, vouch_for


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Project:
    """A project copy after data_creation (small config)."""
    project = Project(copy_project(tmp_path_factory.mktemp("made") / "project"))
    done = project.run("data_creation", *SMALL)
    assert done.returncode == 0, done.stderr
    return project


@pytest.fixture
def broken(made, tmp_path) -> Project:
    """A private copy of ``made`` (project files + data/raw and its provenance record: the MLflow
    store) to break."""
    project = Project(copy_project(tmp_path / "project"))
    shutil.copytree(made.root / "data", project.root / "data")
    shutil.copytree(made.root / ".mlflow", project.root / ".mlflow")
    return project


def assert_clean_failure(
    done, *expected: str, untouched: Path | None = None, code: int = 1
) -> None:
    assert done.returncode == code, done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    assert "Traceback" not in done.stderr
    if untouched is not None:
        assert not untouched.exists(), f"{untouched} was written despite the error"
        leftovers = list(untouched.parent.glob(f".{untouched.name}.*"))
        assert not leftovers, leftovers


def assert_preprocessing_fails(project: Project, *expected: str) -> None:
    """Run data_preprocessing on the broken copy: a clean failure, nothing processed written."""
    done = project.run("data_preprocessing", *SMALL)
    assert_clean_failure(done, *expected, untouched=project.root / "data" / "processed")


def raw(project: Project, name: str) -> Path:
    return project.root / "data" / "raw" / name


def a_station(project: Project, split: str) -> str:
    """One station file of ``split`` as data_creation wrote it (which stations: params.yaml)."""
    return f"{split}/{min(p.name for p in raw(project, split).glob('*.csv'))}"


CHANGED_BY_HAND = "data/raw: not the output of a finished data_creation run"


def test_raw_data_changed_by_hand_is_refused(broken):
    train = a_station(broken, "train")
    raw(broken, train).unlink()
    done = broken.run("data_preprocessing", *SMALL)
    assert_clean_failure(done, CHANGED_BY_HAND, untouched=broken.root / "data" / "processed")
    runs = [r for r in broken.runs() if r.data.tags["mlflow.runName"] == "data_preprocessing"]
    assert [r.info.status for r in runs] == ["FAILED"]  # the refusal is on record, with why
    assert CHANGED_BY_HAND in runs[0].data.tags["mlops.error"]


def test_a_refusal_names_the_file_that_changed_with_both_digests(broken):
    train = a_station(broken, "train")
    test = a_station(broken, "test")
    from lab1.core.io import file_sha256

    edited, deleted = raw(broken, test), raw(broken, train)
    was_edited, was_deleted = file_sha256(edited), file_sha256(deleted)
    edited.write_text(edited.read_text() + "\n")
    done = broken.run("data_preprocessing", *SMALL)
    assert_clean_failure(
        done,
        CHANGED_BY_HAND,
        f"data/raw/{test} changed since its last run wrote it (sha256 {was_edited[:12]}, "
        f"now {file_sha256(edited)[:12]})",
        untouched=broken.root / "data" / "processed",
    )
    edited.write_text(edited.read_text()[:-1])  # back as it was; now a file goes missing
    deleted.unlink()
    done = broken.run("data_preprocessing", *SMALL)
    assert (
        f"data/raw/{train} changed since its last run wrote it "
        f"(sha256 {was_deleted[:12]}, now none)" in done.stderr
    ), done.stderr


def test_another_datasets_outputs_are_named_as_such_not_as_changed(broken):
    """After a pipeline of one dataset, a stage of another finds the first one's outputs in the
    workspace: nothing changed by hand, and the refusal says whose they are and what to run."""
    done = broken.run("data_preprocessing", *SMALL, "--dataset", "fashion_mnist")
    assert_clean_failure(
        done,
        "data/raw holds the temperature pipeline's output (from a finished temperature "
        "data_creation run), not fashion_mnist's: the fashion_mnist stages need their own; run "
        "bash pipeline.sh --dataset fashion_mnist first",
        untouched=broken.root / "data" / "processed",
    )
    assert "changed since" not in done.stderr


def test_missing_raw_file(broken):
    train = a_station(broken, "train")
    raw(broken, train).unlink()
    vouch_for(broken.root, "data_creation")  # as if data_creation had left it so
    done = broken.run("data_preprocessing", *SMALL)
    assert_clean_failure(
        done, f"data/raw/{train}: listed in", untouched=broken.root / "data" / "processed"
    )


def test_garbled_raw_file(broken):
    test = a_station(broken, "test")
    raw(broken, test).write_bytes(b"\x00\xff garbage")
    vouch_for(broken.root, "data_creation")
    assert_preprocessing_fails(broken, f"{test}: content changed since data_creation")


def edit_and_reseal(project: Project, name: str, edit) -> None:
    """Change a raw file and update its manifest digest, so the schema checks are reached."""
    reseal_raw(project.root, name, edit)


def test_missing_column(broken):
    train = a_station(broken, "train")
    edit_and_reseal(broken, train, lambda t: t.replace("temperature", "temp", 1))
    assert_preprocessing_fails(broken, f"{train}: column 'temperature' missing")


def test_non_numeric_reading(broken):
    train = a_station(broken, "train")

    def edit(text: str) -> str:
        lines = text.splitlines()
        fields = lines[5].split(",")
        fields[2] = "hot"
        lines[5] = ",".join(fields)
        return "\n".join(lines) + "\n"

    edit_and_reseal(broken, train, edit)
    assert_preprocessing_fails(broken, f"{train}: line 6: temperature='hot' is not a number")


def test_empty_train_folder(broken):
    import json

    manifest_path = raw(broken, "manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = [f for f in manifest["files"] if f["split"] != "train"]
    manifest_path.write_text(json.dumps(manifest))
    shutil.rmtree(raw(broken, "train"))
    vouch_for(broken.root, "data_creation")
    assert_preprocessing_fails(broken, "data/raw/train: no station files (empty train split)")


def test_test_set_with_one_class(broken):
    import json

    manifest = json.loads(raw(broken, "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["split"] == "test":
            edit_and_reseal(
                broken,
                entry["path"],
                lambda t: (
                    "\n".join(
                        line if i == 0 else ",".join([*line.split(",")[:3], "0", ""])
                        for i, line in enumerate(t.splitlines())
                    )
                    + "\n"
                ),
            )
    assert_preprocessing_fails(broken, "data/raw/test: is_faulty has only [0] class(es)")


def test_unknown_params_key_fails_before_any_work(project):
    done = project.run("data_creation", "-S", "data_creation.nope=1")
    assert_clean_failure(  # a command-line mistake: exit 2
        done, "no key 'data_creation.nope'", untouched=project.root / "data" / "raw", code=2
    )
    assert not (project.root / ".mlflow").exists()  # failed before even opening the store


def test_wrong_type_in_params_file(project):
    param_change("data_preprocessing.window", text="seven")(project.root)
    done = project.run("data_preprocessing")
    assert_clean_failure(done, "params.yaml: data_preprocessing.window: 'seven' must be int")


def test_malformed_user_csv(project, tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("date,station,temperature\n2024-01-01,a,oops\n")
    done = project.run("data_creation", "--csv", str(csv))
    assert_clean_failure(
        done,
        f"{csv}: line 2: temperature='oops' is not a number",
        untouched=project.root / "data" / "raw",
    )


def test_a_stage_process_fails_the_same_way(broken):
    train = a_station(broken, "train")
    raw(broken, train).unlink()
    done = broken.stage("data_preprocessing", *SMALL)
    assert_clean_failure(done, CHANGED_BY_HAND, untouched=broken.root / "data" / "processed")


def test_failed_stage_run_is_marked_failed(broken):
    train = a_station(broken, "train")
    edit_and_reseal(broken, train, lambda t: t.replace("temperature", "temp", 1))
    broken.run("data_preprocessing", *SMALL)
    runs = [r for r in broken.runs() if r.data.tags["mlflow.runName"] == "data_preprocessing"]
    assert [r.info.status for r in runs] == ["FAILED"]
    assert train in runs[0].data.tags["mlops.error"]
