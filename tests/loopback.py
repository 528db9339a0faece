"""The compose stack's services as plain processes on 127.0.0.1, for hosts without Docker.

lab3/docker-compose.yml runs PostgreSQL, an S3-compatible store, an MLflow server and the model
service as containers. This module starts the same programs with the same options as local
processes, so the integration test (tests/lab3/test_stack.py) and the serving benchmark exercise
the real thing here. MinIO cannot be installed on this machine, so the S3 store is moto's
standalone server: the MLflow server talks to it through the same boto3 S3 client it would use
against MinIO.

Every process is started in its own session and stopped by its process-group id (the MLflow
server forks job consumers), never by name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "loopback",
    "AWS_SECRET_ACCESS_KEY": "loopback-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# Loopback requests never go through a proxy. urllib's module-level urlopen() builds its opener
# once, from the proxy variables of that moment, and keeps it for the life of the process; an
# explicit opener without proxies cannot be poisoned that way.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A started server: its Popen, its log file and how to stop it (by process group)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as sink:
            self.popen = subprocess.Popen(
                argv, stdout=sink, stderr=sink, env=env, cwd=cwd, start_new_session=True
            )
        logger.info("started %s (pid %d): %s", name, self.popen.pid, " ".join(argv[:3]))

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
            except ProcessLookupError:
                pass
        # Children left in the group (the MLflow server's job consumers) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def wait_http(process: Process, url: str, timeout: float = 90.0) -> None:
    """Until ``url`` answers 200; fails early (with the log's tail) if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(
                f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}"
            )
        try:
            with LOCAL.open(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name}: {url} not ready after {timeout} s:\n{process.tail()}")


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return found[-1].parent


@contextmanager
def postgres(database: str = "mlflow", user: str = "mlflow", password: str = "mlflow"):
    """A throwaway PostgreSQL cluster in a new temporary folder on a free loopback port.

    Yields the SQLAlchemy URI (postgresql+psycopg://...) for ``database``; the cluster and its
    folder are gone afterwards. PostgreSQL refuses to run as root, so under root the server runs
    as the ``postgres`` system user (which is why the folder is its own, outside any 0700 tree).
    """
    binaries = postgres_bin()
    workdir = Path(tempfile.mkdtemp(prefix="loopback-postgres-"))
    data = workdir / "pgdata"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        account = pwd.getpwnam("postgres")
        os.chown(workdir, account.pw_uid, account.pw_gid)
        os.chown(data, account.pw_uid, account.pw_gid)
        as_user = [
            "setpriv",
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--init-groups",
            "--",
        ]
    server = None
    try:
        done = subprocess.run(
            [
                *as_user,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")
        port = free_port()
        server = Process(
            "postgres",
            [
                *as_user,
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(workdir),
                "-c",
                "listen_addresses=127.0.0.1",
            ],
            workdir / "postgres.log",
        )
        deadline = time.monotonic() + 60
        while (
            subprocess.run(
                [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline or not server.alive():
                raise RuntimeError(f"postgres did not start:\n{server.tail()}")
            time.sleep(0.2)
        psql = [
            str(binaries / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
        ]
        subprocess.run(
            [*psql, f"CREATE USER {user} PASSWORD '{password}'"], check=True, capture_output=True
        )
        subprocess.run(
            [*psql, f"CREATE DATABASE {database} OWNER {user}"], check=True, capture_output=True
        )
        yield f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/{database}"
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- S3-compatible store -----------------------------------------------------------------------


@contextmanager
def s3_store(workdir: Path, bucket: str = "mlflow"):
    """moto's standalone S3 server with ``bucket`` created; yields its endpoint URL."""
    port = free_port()
    server = Process(
        "moto",
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        workdir / "moto.log",
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(server, f"{endpoint}/moto-api/")
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


def s3_client(endpoint: str, keys: dict[str, str] = S3_KEYS):
    """A boto3 S3 client for a loopback store (by default s3_store's fixed test credentials)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, **_boto_keys(keys))


# --- MLflow server and the model service -------------------------------------------------------


def mlflow_command() -> str:
    """The `mlflow` CLI of the running environment."""
    return str(Path(sys.executable).parent / "mlflow")


@contextmanager
def running(
    name: str,
    argv: list[str],
    port: int,
    ready_path: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
    cwd: Path | None = None,
):
    """Start an HTTP server process listening on ``port``; yield its base URL once
    ``ready_path`` answers 200; stop it (by process group) afterwards."""
    server = Process(name, argv, log, env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(server, f"{url}{ready_path}", timeout=timeout)
        yield url
    finally:
        server.stop()


@contextmanager
def mlflow_server(
    workdir: Path, backend_uri: str, artifacts_destination: str, env: dict[str, str] | None = None
):
    """``mlflow server`` with proxied artifacts (clients never see the store); yields its URL."""
    port = free_port()
    argv = [
        mlflow_command(),
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        artifacts_destination,
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with running(
        "mlflow-server",
        argv,
        port,
        "/health",
        workdir / "mlflow-server.log",
        env={**os.environ, **(env or {})},
    ) as url:
        yield url


@contextmanager
def model_service(
    workdir: Path,
    env: dict[str, str],
    port: int | None = None,
    ready: bool = True,
    checkout: Path | None = None,
):
    """``python -m lab3.serve`` with ``env`` (MODEL_URI, MLFLOW_TRACKING_URI, ...); yields its URL
    once /ready says a model is loaded (``ready=False``: once /health answers). ``checkout``: run
    that checkout's code (e.g. a worktree of an older commit) instead of this one's."""
    port = port or free_port()
    # The prediction log goes to ``workdir`` unless ``env`` says where (by default the service
    # logs under the checkout's reports/: the tests' lines were once left there).
    env = {"PREDICTION_LOG": str(workdir / "predictions"), **env}
    argv = [sys.executable, "-m", "lab3.serve", "--port", str(port)]
    if checkout is not None:  # `python -m` imports from its working directory first
        env = {**env, "PYTHONPATH": str(checkout)}
    with running(
        "model-service",
        argv,
        port,
        "/ready" if ready else "/health",
        workdir / "service.log",
        env={**os.environ, **env},
        cwd=checkout,
    ) as url:
        yield url


@contextmanager
def s3_store_with_keys(workdir: Path, bucket: str):
    """moto's S3 server checking credentials as AWS does, with ``bucket`` created.

    Yields (endpoint URL, the AWS_* variables of the only keys that work). Unlike s3_store, a
    wrong key or secret is refused (403), as by AWS or MinIO. moto leaves its first
    INITIAL_NO_AUTH_ACTION_COUNT requests unchecked: exactly the four that create the user, its
    policy, its key and the bucket.
    """
    import json

    port = free_port()
    server = Process(
        "moto (with IAM)",
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        workdir / "moto.log",
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(server, f"{endpoint}/moto-api/")
        import boto3

        iam = boto3.client("iam", endpoint_url=endpoint, **_boto_keys(S3_KEYS))
        iam.create_user(UserName="lab4")
        allow_s3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        iam.put_user_policy(
            UserName="lab4",
            PolicyName="s3",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow_s3]}),
        )
        key = iam.create_access_key(UserName="lab4")["AccessKey"]
        s3_client(endpoint).create_bucket(Bucket=bucket)
        yield (
            endpoint,
            {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "AWS_DEFAULT_REGION": S3_KEYS["AWS_DEFAULT_REGION"],
            },
        )
    finally:
        server.stop()


def _boto_keys(keys: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
        "region_name": keys["AWS_DEFAULT_REGION"],
    }
