"""The dataset-versioning exercise: the three versions, push, a fresh clone pulling each version,
and the bad cases (unreachable remote, missing cache file, dirty workspace)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lab1.core.errors import PipelineError
from lab4 import dataset_versions as dv

DVC = str(Path(sys.executable).parent / "dvc")


def test_the_three_versions_are_what_the_course_asks():
    table = dv.base_table()
    assert table["temperature"].isna().any()  # missing readings exist, so v2 has work to do
    v1 = dv.version_1(table)
    assert list(v1.columns) == ["date", "station", "temperature", "is_faulty"]
    v2 = dv.version_2(v1)
    assert not v2.isna().any().any()
    filled = v1["temperature"].isna()
    assert np.allclose(v2.loc[filled, "temperature"], v1["temperature"].mean())
    assert v2.loc[~filled, "temperature"].equals(v1.loc[~filled, "temperature"])
    v3 = dv.version_3(v2)
    stations = sorted(v1["station"].unique())
    assert [c for c in v3.columns if c.startswith("station_")] == [f"station_{s}" for s in stations]
    assert "station" not in v3.columns and (v3.filter(like="station_").sum(axis=1) == 1).all()


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def exercise(tmp_path_factory):
    root = tmp_path_factory.mktemp("exercise")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab4.dataset_versions",
            "--repo",
            str(root / "repo"),
            "--remote",
            str(root / "remote"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = dict(line.split()[:2] for line in done.stdout.splitlines()[2:])
    assert list(table) == ["v1", "v2", "v3"] and len(set(table.values())) == 3
    assert all(line.endswith("ok") for line in done.stdout.splitlines()[2:])
    return root, table


@pytest.mark.e2e
def test_a_fresh_clone_pulls_every_version_with_the_pushed_hash(exercise, tmp_path):
    root, pushed = exercise
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root / "repo"), str(clone))
    for tag, md5 in pushed.items():
        git(clone, "checkout", "-q", tag)
        pulled = subprocess.run([DVC, "pull", "-q"], cwd=clone, capture_output=True, text=True)
        assert pulled.returncode == 0, pulled.stderr
        data = (clone / dv.DATASET).read_bytes()
        assert hashlib.md5(data).hexdigest() == md5  # the bytes are the ones that were pushed
        columns = pd.read_csv(clone / dv.DATASET, nrows=1).columns
        assert ("station" in columns) == (tag != "v3")


@pytest.mark.e2e
def test_dirty_workspace_and_missing_cache_are_clear_errors_and_lose_nothing(exercise, tmp_path):
    root, pushed = exercise
    repo = tmp_path / "repo"
    shutil.copytree(root / "repo", repo)
    target = repo / dv.DATASET
    target.write_text(target.read_text() + "2099-01-01,extra,1.0,0\n")
    edited = target.read_bytes()
    with pytest.raises(PipelineError, match="modified since the last `dvc add`"):
        dv.switch(repo, "v1")
    assert target.read_bytes() == edited  # the edit survives
    subprocess.run([DVC, "checkout", "-q", "--force"], cwd=repo, check=True)

    # v1's file is neither in the local cache nor reachable on a remote.
    md5 = pushed["v1"]
    cached = list((repo / ".dvc" / "cache").rglob(md5[2:]))
    assert cached
    for found in cached:
        found.unlink()
    gone = str(tmp_path / "gone")  # and no remote to fetch it from
    subprocess.run(
        [DVC, "remote", "modify", "--local", "storage", "url", gone], cwd=repo, check=True
    )
    with pytest.raises(PipelineError, match="dvc checkout"):
        dv.switch(repo, "v1")


@pytest.mark.e2e
def test_an_unreachable_remote_is_a_one_line_error(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the remote folder should be")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab4.dataset_versions",
            "--repo",
            str(tmp_path / "repo"),
            "--remote",
            str(blocked / "remote"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "dvc push" in errors[0], done.stderr[-2000:]


def test_dvc_files_record_the_dataset(exercise):
    root, pushed = exercise
    record = yaml.safe_load((root / "repo" / f"{dv.DATASET}.dvc").read_text())
    assert record["outs"][0]["path"] == dv.DATASET.name
    assert record["outs"][0]["md5"] == pushed["v3"]  # the branch ends on the last version
