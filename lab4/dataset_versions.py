"""The dataset-versioning exercise: three versions of one dataset under DVC, then switch between
them.

In a git repository (by default a new scratch repository in a temporary folder; the project's own
history is never touched) this script:
  1. writes the project's own data (daily readings of eight weather stations, with sensor faults
     and missing readings) as data/stations.csv, and configures a DVC remote;
  2. makes three versions, each `dvc add`-ed, committed, tagged and pushed to the remote:
       v1  a subset of the columns (date, station, temperature, is_faulty)
       v2  v1 with missing readings filled with the column mean
       v3  v2 with the categorical column `station` one-hot encoded
  3. switches to each version (`git checkout <tag>` + `dvc checkout`), and checks that the file's
     md5 (DVC's content hash, which names the file in the cache and on the remote) is the one
     pushed and that the remote holds it (`dvc status --cloud`).

    .venv/bin/python -m lab4.dataset_versions                     # scratch repo, local remote
    .venv/bin/python -m lab4.dataset_versions --repo ~/ds --remote /srv/dvc-remote
    .venv/bin/python -m lab4.dataset_versions --remote s3://bucket/dvc --endpoint-url http://minio:9000

An s3:// remote takes its credentials where DVC and boto3 look for them: AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials), and the endpoint from --endpoint-url or
AWS_ENDPOINT_URL (none: AWS itself). Keys given in the endpoint's URL (http://KEY:SECRET@host, as
for MinIO) go only to .dvc/config.local, which git never sees, never into a commit or a message.
The bucket is checked before any work, so a wrong bucket, wrong keys or an unreachable endpoint
is one line within seconds.

The table of versions goes to stdout; the commands it runs are logged to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from lab1.core.cli import setup_logging
from lab1.core.errors import EXIT_ERROR, PipelineError, without_credentials
from lab1.core.io import atomic_path

logger = logging.getLogger("lab4.dataset_versions")

DATASET = Path("data") / "stations.csv"
VERSIONS = ("v1", "v2", "v3")
V1_COLUMNS = ["date", "station", "temperature", "is_faulty"]


# --- the three versions (pure functions of a DataFrame) ------------------------------------------


def base_table(seed: int = 42) -> pd.DataFrame:
    """The project's temperature data as one table: date, station, temperature (NaN = missing
    reading), is_faulty, fault_kind. Generated from params.yaml's defaults, one year."""
    from lab1.core.datasets.temperature import generate
    from lab1.core.params import load_params
    from lab1.core.paths import PATHS

    params = load_params(PATHS.params, ["data_creation.temperature.years=1"])
    frames = generate(params.data_creation.temperature, seed)
    return pd.concat(frames.values(), ignore_index=True)


def version_1(table: pd.DataFrame) -> pd.DataFrame:
    """A subset of the columns."""
    return table[V1_COLUMNS].copy()


def version_2(v1: pd.DataFrame) -> pd.DataFrame:
    """Missing values filled with their column's mean (numeric columns)."""
    filled = v1.copy()
    numeric = filled.select_dtypes("number").columns
    filled[numeric] = filled[numeric].fillna(filled[numeric].mean())
    return filled


def version_3(v2: pd.DataFrame) -> pd.DataFrame:
    """The categorical column `station` one-hot encoded (station_<name>, 0/1)."""
    return pd.get_dummies(v2, columns=["station"], dtype=int)


BUILDERS = {"v1": version_1, "v2": version_2, "v3": version_3}


# --- git and DVC ---------------------------------------------------------------------------


def run(repo: Path, *argv: str, secret: str = "") -> str:
    """Run a git or dvc command in ``repo``; a failure raises PipelineError with its message.
    ``secret`` (an argument of argv) is shown as *** in the log and the error."""
    command = " ".join("***" if secret and arg == secret else arg for arg in argv)
    logger.info("$ %s", command)
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        # DVC's first "ERROR:" line is the cause; its last lines are an advert for its support.
        errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
        reason = errors[0] if errors else lines[-1] if lines else ""
        if secret:
            reason = reason.replace(secret, "***")
        raise PipelineError(f"{repo}: `{command}` failed: {reason}")
    return done.stdout


def dvc(repo: Path, *args: str, secret: str = "") -> str:
    return run(repo, str(Path(sys.executable).parent / "dvc"), *args, secret=secret)


def split_endpoint(endpoint_url: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """--endpoint-url as (the URL without credentials, (access key id, secret) from its
    http://KEY:SECRET@host form, or None)."""
    from urllib.parse import unquote, urlsplit

    if not endpoint_url:
        return None, None
    parts = urlsplit(endpoint_url)
    if "@" not in parts.netloc:
        return endpoint_url, None
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


def content_hash(repo: Path) -> str:
    """DVC's md5 of the dataset, as recorded in its .dvc file."""
    import yaml

    record = yaml.safe_load((repo / f"{DATASET}.dvc").read_text())
    return record["outs"][0]["md5"]


def check_s3_bucket(
    remote: str, endpoint_url: str | None, keys: tuple[str, str] | None = None
) -> None:
    """Fail fast, before any work, if an s3:// remote's bucket cannot be reached with these
    credentials (``keys``, else boto3's own). DVC would say the same only at the first
    `dvc push`, after retrying for seconds."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket = remote.removeprefix("s3://").split("/")[0]
    # Two attempts, short timeouts: an unreachable endpoint is reported in seconds, not minutes.
    config = Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 2})
    key_id, secret = keys or (None, None)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        config=config,
        aws_access_key_id=key_id or None,
        aws_secret_access_key=secret or None,
    )
    where = f"{remote} (endpoint {s3.meta.endpoint_url})"
    try:
        s3.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise PipelineError(
            f"{where}: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        reasons = {
            "404": f"bucket '{bucket}' does not exist",
            "403": f"access denied to bucket '{bucket}': wrong AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY, or these keys may not use it",
        }
        raise PipelineError(f"{where}: {reasons.get(code, f'HTTP {code}: {exc}')}") from None
    except BotoCoreError as exc:  # no connection, a bad URL, a timeout
        raise PipelineError(f"{where}: {exc}") from None


def prepare(
    repo: Path, remote: str, endpoint_url: str | None, keys: tuple[str, str] | None = None
) -> None:
    """A git repository with DVC initialised and ``remote`` as its default remote; ``keys``
    (access key id, secret) only in .dvc/config.local, which DVC keeps out of git."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "git", "config", "user.name", os.environ.get("GIT_AUTHOR_NAME", "lab4"))
    run(repo, "git", "config", "user.email", os.environ.get("GIT_AUTHOR_EMAIL", "lab4@localhost"))
    if not (repo / ".dvc").exists():
        dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "--force", "--default", "storage", remote)
    if endpoint_url:
        dvc(repo, "remote", "modify", "storage", "endpointurl", endpoint_url)
    if keys:
        for option, value in zip(("access_key_id", "secret_access_key"), keys, strict=True):
            dvc(repo, "remote", "modify", "--local", "storage", option, value, secret=value)
    run(repo, "git", "add", ".dvc")
    if run(repo, "git", "status", "--porcelain", ".dvc").strip():
        run(repo, "git", "commit", "-q", "-m", "DVC set up with remote 'storage'")


def make_versions(repo: Path, table: pd.DataFrame) -> dict[str, str]:
    """Write, add, commit, tag and push v1..v3; returns {tag: content hash}."""
    hashes = {}
    current = table
    for tag in VERSIONS:
        current = BUILDERS[tag](current)
        with atomic_path(repo / DATASET) as tmp:
            current.to_csv(tmp, index=False)
        dvc(repo, "add", "-q", str(DATASET))
        run(repo, "git", "add", f"{DATASET}.dvc", str(DATASET.parent / ".gitignore"))
        run(repo, "git", "commit", "-q", "-m", f"dataset {tag}: {BUILDERS[tag].__doc__}")
        run(repo, "git", "tag", "-f", tag)
        dvc(repo, "push")
        hashes[tag] = content_hash(repo)
        logger.info(
            "%s: %d rows x %d columns, md5 %s", tag, len(current), current.shape[1], hashes[tag]
        )
    return hashes


def on_remote(repo: Path) -> bool:
    """Whether the remote holds the checked-out version: DVC's remote is content-addressed (the
    object's name is its md5), and `dvc status --cloud` reports a file it lacks as "new"."""
    return dvc(repo, "status", "--cloud", "--json", f"{DATASET}.dvc").strip() in ("{}", "")


def file_md5(repo: Path) -> str:
    """The md5 of the checked-out file's bytes (DVC 3 hashes a file's bytes as they are)."""
    return hashlib.md5((repo / DATASET).read_bytes()).hexdigest()


def switch(repo: Path, tag: str) -> str:
    """Check out ``tag`` and its data; returns the data's content hash.

    Refuses (PipelineError) if the dataset or its .dvc file has uncommitted changes: switching
    would overwrite them.
    """
    if run(repo, "git", "status", "--porcelain", "--untracked-files=no").strip():
        raise PipelineError(f"{repo}: uncommitted changes; commit or stash them before switching")
    status = dvc(repo, "status", "--json", str(DATASET) + ".dvc")
    if status.strip() not in ("{}", ""):
        raise PipelineError(
            f"{repo / DATASET}: modified since the last `dvc add`; `dvc add` "
            "and commit it, or `dvc checkout` to drop the change"
        )
    run(repo, "git", "checkout", "-q", tag)
    dvc(repo, "checkout", "-q", str(DATASET) + ".dvc")
    return content_hash(repo)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument(
        "--repo",
        type=Path,
        help="git repository to work in (default: a new scratch repository in a temporary folder)",
    )
    cli.add_argument(
        "--remote",
        help="DVC remote: a folder or s3://bucket/path (default: a "
        "folder next to the scratch repository)",
    )
    cli.add_argument(
        "--endpoint-url",
        help="S3-compatible endpoint (MinIO, moto) for s3:// remotes "
        "(default: AWS_ENDPOINT_URL, else AWS itself)",
    )
    cli.add_argument("-v", "--verbose", action="store_true")
    args = cli.parse_args(argv)
    setup_logging(args.verbose)
    endpoint_url, keys = split_endpoint(args.endpoint_url)
    try:
        if args.remote and args.remote.startswith("s3://"):
            check_s3_bucket(args.remote, endpoint_url, keys)
        if args.repo and args.remote:
            repo, remote = args.repo.resolve(), args.remote
        else:  # a scratch folder, made only now that the remote answered
            work = Path(tempfile.mkdtemp(prefix="dataset-versions-"))
            repo = (args.repo or work / "repo").resolve()
            remote = args.remote or str(work / "dvc-remote")
        prepare(repo, remote, endpoint_url, keys)
        pushed = make_versions(repo, base_table())
        branch = run(repo, "git", "rev-parse", "--abbrev-ref", "HEAD").strip()
        rows = []
        for tag in VERSIONS:
            recorded = switch(repo, tag)
            found = file_md5(repo)
            if found != recorded or found != pushed[tag]:
                rows.append((tag, found, f"MISMATCH (pushed {pushed[tag]})"))
            else:
                rows.append((tag, found, "ok" if on_remote(repo) else "NOT ON THE REMOTE"))
        switch(repo, branch if branch != "HEAD" else VERSIONS[-1])
    except PipelineError as exc:
        logger.error("%s", exc)
        return EXIT_ERROR
    sys.stdout.write(f"repository {repo}\nremote {without_credentials(remote)}\n")
    for tag, found, check in rows:
        sys.stdout.write(f"{tag}  {found}  {check}\n")
    return 0 if all(check == "ok" for *_, check in rows) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
