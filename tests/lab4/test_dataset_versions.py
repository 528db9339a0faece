"""The dataset-versioning exercise: the three versions, push, a fresh clone pulling each version,
and the bad cases (unreachable remote, missing cache file, dirty workspace). The remote is a folder
and an S3 bucket (moto's server, checking credentials as AWS does)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lab1.core.errors import PipelineError
from lab4 import dataset_versions as dv
from tests import loopback
from tests.lab4.conftest import BUCKET, env_without_aws

pytestmark = pytest.mark.integration  # DVC on a folder and on S3 (moto)

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


def run_exercise(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab4.dataset_versions", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module", params=["folder", "s3"])
def exercise(request, tmp_path_factory):
    """The exercise run once per kind of remote: (root, {tag: md5}, the environment to use it,
    the remote)."""
    root = tmp_path_factory.mktemp(f"exercise-{request.param}")
    if request.param == "s3":
        endpoint, keys = request.getfixturevalue("s3")
        remote = ["--remote", f"s3://{BUCKET}/exercise", "--endpoint-url", endpoint]
        env = env_without_aws(**keys)
    else:
        remote, env = ["--remote", str(root / "remote")], env_without_aws()
    done = run_exercise("--repo", str(root / "repo"), *remote, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[1] == f"remote {remote[1]}"
    table = dict(line.split()[:2] for line in done.stdout.splitlines()[2:])
    assert list(table) == ["v1", "v2", "v3"] and len(set(table.values())) == 3
    assert all(line.endswith("ok") for line in done.stdout.splitlines()[2:])
    if request.param == "s3":  # the remote holds each version, named by its md5 (DVC 3 layout)
        listed = loopback.s3_client(endpoint, keys).list_objects_v2(Bucket=BUCKET)
        held = {item["Key"] for item in listed["Contents"]}
        assert {f"exercise/files/md5/{md5[:2]}/{md5[2:]}" for md5 in table.values()} <= held
    return root, table, env, remote[1]


@pytest.mark.e2e
def test_a_fresh_clone_pulls_every_version_with_the_pushed_hash(exercise, tmp_path):
    root, pushed, env, _ = exercise
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root / "repo"), str(clone))
    for tag, md5 in pushed.items():
        git(clone, "checkout", "-q", tag)
        pulled = subprocess.run(
            [DVC, "pull", "-q"], cwd=clone, capture_output=True, text=True, env=env
        )
        assert pulled.returncode == 0, pulled.stderr
        data = (clone / dv.DATASET).read_bytes()
        assert hashlib.md5(data).hexdigest() == md5  # the bytes are the ones that were pushed
        columns = pd.read_csv(clone / dv.DATASET, nrows=1).columns
        assert ("station" in columns) == (tag != "v3")


@pytest.mark.e2e
def test_dirty_workspace_and_missing_cache_are_clear_errors_and_lose_nothing(exercise, tmp_path):
    root, pushed, _, remote = exercise
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
    gone = f"{remote}-gone"  # and no remote to fetch it from
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
    root, pushed, *_ = exercise
    record = yaml.safe_load((root / "repo" / f"{dv.DATASET}.dvc").read_text())
    assert record["outs"][0]["path"] == dv.DATASET.name
    assert record["outs"][0]["md5"] == pushed["v3"]  # the branch ends on the last version


@pytest.mark.e2e
@pytest.mark.parametrize("exercise", ["s3"], indirect=True)
def test_a_version_the_bucket_lost_is_reported_not_on_the_remote(
    exercise, s3, tmp_path, monkeypatch
):
    root, pushed, env, remote = exercise
    repo = tmp_path / "repo"
    shutil.copytree(root / "repo", repo)
    for name, value in env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    client = loopback.s3_client(s3[0], s3[1])
    md5 = pushed["v1"]
    key = f"{remote.removeprefix(f's3://{BUCKET}/')}/files/md5/{md5[:2]}/{md5[2:]}"
    kept = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.delete_object(Bucket=BUCKET, Key=key)
    try:
        dv.switch(repo, "v1")
        assert dv.file_md5(repo) == md5 and not dv.on_remote(repo)
        dv.switch(repo, "v2")
        assert dv.on_remote(repo)
    finally:  # the other tests share the bucket
        client.put_object(Bucket=BUCKET, Key=key, Body=kept)


def bad_remotes():
    """(what is wrong, the options, the keys to use: 'good', 'wrong' or 'none', what to say)"""
    return [
        ("bucket", ["s3://no-such-bucket/x"], "good", "bucket 'no-such-bucket' does not exist"),
        ("secret", [f"s3://{BUCKET}/x"], "wrong", "access denied"),
        ("keys", [f"s3://{BUCKET}/x"], "none", "no AWS credentials"),
        ("endpoint", [f"s3://{BUCKET}/x"], "good", "Could not connect"),
    ]


@pytest.mark.e2e
@pytest.mark.parametrize(("wrong", "remote", "keys", "said"), bad_remotes(), ids=lambda x: x)
def test_a_bad_s3_remote_is_one_line_within_seconds_before_any_work(
    s3, tmp_path, wrong, remote, keys, said
):
    endpoint, good = s3
    if wrong == "endpoint":
        endpoint = f"http://127.0.0.1:{loopback.free_port()}"  # nothing listens there
    env = {
        "good": good,
        "wrong": {**good, "AWS_SECRET_ACCESS_KEY": "not-the-secret"},
        "none": {"AWS_DEFAULT_REGION": "us-east-1"},
    }[keys]
    repo = tmp_path / "repo"
    started = time.monotonic()
    done = run_exercise(
        "--repo",
        str(repo),
        "--remote",
        *remote,
        "--endpoint-url",
        endpoint,
        # No ~/.aws of the machine's own either: only what the test gives.
        env=env_without_aws(HOME=str(tmp_path), **env),
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and said in errors[0] and remote[0] in errors[0], done.stderr
    # Seconds (two attempts, short timeouts), not the minutes of boto's and DVC's own retries; a
    # minute leaves a slow, busy machine room to start Python and DVC.
    assert elapsed < 60, f"{elapsed:.1f} s"
    assert not repo.exists()  # refused before any work


@pytest.mark.e2e
def test_keys_in_the_endpoint_url_reach_only_dvc_config_local(s3, tmp_path):
    """--endpoint-url http://KEY:SECRET@host (as for MinIO): the keys work, with none in the
    environment, and go only to .dvc/config.local: never into a commit, stdout or the log."""
    from urllib.parse import quote

    endpoint, good = s3
    key, secret = good["AWS_ACCESS_KEY_ID"], good["AWS_SECRET_ACCESS_KEY"]
    with_keys = endpoint.replace("://", f"://{quote(key, safe='')}:{quote(secret, safe='')}@")
    repo = tmp_path / "repo"
    env = env_without_aws(HOME=str(tmp_path), AWS_DEFAULT_REGION=good["AWS_DEFAULT_REGION"])
    done = run_exercise(
        "--repo",
        str(repo),
        "--remote",
        f"s3://{BUCKET}/keyed",
        "--endpoint-url",
        with_keys,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    history = git(repo, "log", "-p", "--all").stdout
    committed = (repo / ".dvc" / "config").read_text()
    for shown in (done.stdout, done.stderr, history, committed):
        assert secret not in shown and key not in shown, shown
    assert f"endpointurl = {endpoint}" in committed, committed
    local = (repo / ".dvc" / "config.local").read_text()
    assert key in local and secret in local
    assert git(repo, "check-ignore", ".dvc/config.local").returncode == 0
