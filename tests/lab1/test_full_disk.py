"""A full disk, for real: small tmpfs mounts (root, as the container tests) under the embedded
MLflow store, under data/, and as models/ itself (a Docker volume is a mount point too). Each
failure is one ERROR line naming the store or the file, never a traceback; models/ as a mount
point works."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SMALL, Project, error_lines

pytestmark = pytest.mark.mounts


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(folder: Path) -> Path:
    """Fill the file system under ``folder`` to the last byte; return the filler to delete."""
    filler = folder / "filler"
    with open(filler, "wb") as sink, contextlib.suppress(OSError):
        while True:
            sink.write(b"\0" * 65536)
    return filler


@pytest.mark.e2e
def test_a_full_disk_under_the_store_is_one_line_naming_it_and_no_run_stays_running(
    project: Project, monkeypatch
):
    with tmpfs(project.root.parent / "store", "16m") as store:
        uri = f"sqlite:///{store / 'mlflow.db'}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        from lab1.core.tracking import connect

        connect()  # the store exists; then the disk fills up
        filler = fill(store)
        done = project.pipeline(*SMALL, MLFLOW_TRACKING_URI=uri)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr, done.stderr
        errors = error_lines(done.stderr)
        assert len(errors) == 1, errors
        assert f"MLflow store {store / 'mlflow.db'}" in errors[0] and "disk is full" in errors[0]

        filler.unlink()  # space again: the next pipeline works and leaves no run RUNNING
        done = project.pipeline(*SMALL, MLFLOW_TRACKING_URI=uri)
        assert done.returncode == 0, done.stderr
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("lab1-temperature").experiment_id])
        assert runs and all(run.info.status != "RUNNING" for run in runs)


def test_a_full_disk_under_data_names_the_folder_in_one_line(project: Project):
    with tmpfs(project.root / "data", "300k"):
        assert project.run("data_creation", *SMALL).returncode == 0  # raw data: ~100 KB
        done = project.run("data_preprocessing")  # the processed tables: ~540 KB
        assert done.returncode == 1
        errors = error_lines(done.stderr)
        assert len(errors) == 1, errors
        assert "data/" in errors[0] and "disk is full" in errors[0], errors
        assert not (project.root / "data" / "processed").exists()  # nothing half-written
        assert [p.name for p in (project.root / "data").iterdir()] == ["raw"]


def test_models_may_be_a_mount_point(project: Project):
    assert project.run("data_creation", *SMALL).returncode == 0
    assert project.run("data_preprocessing").returncode == 0
    with tmpfs(project.root / "models", "20m") as models:
        for _ in range(2):  # made, then replaced
            done = project.run("model_preparation")
            assert done.returncode == 0, done.stderr
            assert sorted(p.name for p in models.iterdir()) == ["model", "model.json"]
        assert project.run("model_testing").returncode == 0
