"""What can be checked of the Docker side without a Docker engine: the compose files with Debian's
docker-compose, the shell in their commands, the Dockerfile's structure and its HEALTHCHECK
(run against a real service process), and the image tagging script."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from tests import loopback
from tests.conftest import REPO, copy_project, tool

LAB3 = REPO / "lab3"
# Every secret the team stack needs; none has a default (each test below removes one).
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test",
    "MINIO_ROOT_USER": "minio-user",
    "MINIO_ROOT_PASSWORD": "minio-test",
    "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-test",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "key-test",
}


def compose_config(name: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("MLFLOW")}
    return subprocess.run(
        [tool("docker-compose"), "-f", str(LAB3 / name), "config"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


@pytest.mark.tools
def test_full_stack_compose_file():
    done = compose_config("docker-compose.yml", **SECRETS)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"postgres", "minio", "minio-init", "mlflow", "trainer", "api"}
    assert services["api"]["depends_on"] == {
        "mlflow": {"condition": "service_healthy"},
        "trainer": {"condition": "service_completed_successfully"},
    }
    assert services["mlflow"]["depends_on"]["minio-init"] == {
        "condition": "service_completed_successfully"
    }
    for name in ("postgres", "minio", "mlflow"):
        assert services[name]["healthcheck"]["test"], name
    # One image for the server, the trainer and the API, built from lab3/Dockerfile.
    assert services["mlflow"]["build"]["dockerfile"] == "lab3/Dockerfile"
    assert services["mlflow"]["image"] == services["api"]["image"] == services["trainer"]["image"]
    assert services["trainer"]["command"] == ["bash", "pipeline.sh"]
    assert services["api"]["environment"]["MODEL_URI"] == "models:/temperature-classifier@champion"
    # Clients get the server's URL only; the S3 keys stay with the server (proxied artifacts).
    assert "AWS_SECRET_ACCESS_KEY" not in services["trainer"]["environment"]
    assert services["mlflow"]["environment"]["AWS_SECRET_ACCESS_KEY"] == "minio-test"


@pytest.mark.tools
@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_full_stack_refuses_to_start_without_passwords(missing):
    done = compose_config(
        "docker-compose.yml", **{k: v for k, v in SECRETS.items() if k != missing}
    )
    assert done.returncode != 0 and f"set {missing} in lab3/.env" in done.stderr


def published(name: str, **env: str) -> list[tuple[str, str]]:
    """(host address, host port) of every port the compose file publishes."""
    done = compose_config(name, **{**SECRETS, **env})
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    found = []
    for service in services.values():
        for port in service.get("ports", []):  # Debian's docker-compose: HOST:PUBLISHED:TARGET
            parts = str(port).split(":")
            found.append((parts[0] if len(parts) == 3 else "0.0.0.0", parts[-2]))
    return found


@pytest.mark.tools
@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.light.yml"])
def test_ports_are_published_on_loopback_only_unless_the_user_opts_in(name):
    ports = published(name)
    assert ports and all(host == "127.0.0.1" for host, _ in ports), ports
    if name == "docker-compose.yml":  # the team stack: BIND_ADDRESS opens it, on purpose
        assert {host for host, _ in published(name, BIND_ADDRESS="0.0.0.0")} == {"0.0.0.0"}


def test_env_example_sets_no_secret_and_compose_names_each_one():
    """lab3/.env.example ships empty secrets (no default password to forget to change); each is
    one that compose refuses to start without (the test above)."""
    values = dict(
        line.split("=", 1)
        for line in (LAB3 / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert {key: values[key] for key in SECRETS} == dict.fromkeys(SECRETS, "")


@pytest.mark.tools
def test_light_compose_file_is_the_sqlite_variant():
    done = compose_config("docker-compose.light.yml")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"mlflow", "trainer", "api"}
    command = services["mlflow"]["command"]
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:////mlflow/mlflow.db"
    assert "--serve-artifacts" in command


def mlflow_server_argv(**env: str) -> list[str]:
    """Run the compose mlflow service's shell command with `mlflow` replaced by a function that
    prints its arguments: the real shell expansion, without starting a server."""
    done = compose_config("docker-compose.yml", **SECRETS)
    service = yaml.safe_load(done.stdout)["services"]["mlflow"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    script = service["command"][0].replace("$$", "$").removeprefix("exec ")
    printed = subprocess.run(
        ["/bin/sh", "-c", 'mlflow() { printf "%s\\n" "$@"; }; ' + script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"], **env},
    )
    return printed.stdout.splitlines()


@pytest.mark.tools
def test_mlflow_server_command_postgres_proxied_s3_and_auth_always_on():
    argv = mlflow_server_argv(POSTGRES_PASSWORD="s3cret")
    assert argv[:3] == [
        "server",
        "--backend-store-uri",
        "postgresql+psycopg://mlflow:s3cret@postgres:5432/mlflow",
    ]
    assert argv[argv.index("--artifacts-destination") + 1] == "s3://mlflow/artifacts"
    assert "--serve-artifacts" in argv
    assert argv[-2:] == ["--app-name", "basic-auth"]  # no switch turns it off
    # The auth config it points at is one MLflow can read.
    import configparser

    config = configparser.ConfigParser()
    config.read(LAB3 / "mlflow" / "basic_auth.ini")
    assert config["mlflow"]["authorization_function"].endswith("authenticate_request_basic_auth")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (LAB3 / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in lines]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    steps = dockerfile_instructions()
    stages = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    assert len(stages) == 2
    build, final = steps[stages[0] : stages[1]], steps[stages[1] :]
    assert any(
        "--require-hashes" in arg and "requirements.lock" in arg for op, arg in build if op == "RUN"
    )
    ops = [op for op, _ in final]
    assert "HEALTHCHECK" in ops and ops.index("USER") < ops.index("CMD")
    assert dict(final)["USER"] not in ("root", "0")
    assert not any(re.search(r"\b(gcc|build-essential|apt-get install)\b", arg) for _, arg in final)
    # Every file the image copies from the build context exists (and is not docker-ignored).
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for op, arg in steps:
        if op == "COPY" and "--from=" not in arg:
            sources = [word for word in shlex.split(arg) if not word.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.split("/")[0] not in ignored, source
    assert {".git", ".venv", "data", "models", "mlruns", ".mlflow"} <= ignored


@pytest.mark.integration  # the image's commands on a real service
def test_image_command_and_healthcheck_work_on_a_real_service(models, tmp_path):
    steps = dict(dockerfile_instructions())
    command = json.loads(steps["CMD"])
    assert command[:3] == ["python", "-m", "lab3.serve"]
    helped = subprocess.run(
        [sys.executable, *command[1:], "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0, helped.stderr
    probe = json.loads(steps["HEALTHCHECK"].split("CMD", 1)[1])
    assert probe[0] == "python"
    port = loopback.free_port()
    probe = [sys.executable, *probe[1:-1], probe[-1].replace("8080", str(port))]
    with loopback.model_service(tmp_path, {"MODEL_URI": str(models.folders["1"])}, port=port):
        assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    # No model: the process answers /health, but the container must not count as healthy.
    with loopback.model_service(
        tmp_path, {"MODEL_URI": str(tmp_path / "none")}, port=port, ready=False
    ):
        assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)


def build(root, *args, **env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REGISTRY", "BRANCH_NAME", "GIT_BRANCH", "IMAGE")
    }
    return subprocess.run(
        ["bash", "lab3/build.sh", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


def test_build_script_tags_commit_and_branch_and_guards_push(tmp_path):
    root = copy_project(tmp_path / "repo")
    git(root, "init", "-q", "-b", "feature/login+UI")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    sha = git(root, "rev-parse", "--short=12", "HEAD").stdout.strip()
    commit = git(root, "rev-parse", "HEAD").stdout.strip()

    done = build(root, "--dry-run", REGISTRY="registry.example.com:5000/team/")
    assert done.returncode == 0, done.stderr
    assert shlex.split(done.stdout.splitlines()[0]) == [
        "docker",
        "build",
        "-f",
        "lab3/Dockerfile",
        "--build-arg",
        f"GIT_COMMIT={commit}",
        "--build-arg",
        "GIT_BRANCH=feature/login+UI",
        "-t",
        f"registry.example.com:5000/team/mlops-labs:{sha}",
        "-t",
        "registry.example.com:5000/team/mlops-labs:feature-login-UI",
        ".",
    ]

    done = build(root, "--push", "--dry-run", REGISTRY="r.example/team")
    assert done.stdout.splitlines()[1:] == [
        f"docker push r.example/team/mlops-labs:{sha}",
        "docker push r.example/team/mlops-labs:feature-login-UI",
    ]

    assert build(root, "--push", "--dry-run").returncode == 2  # no REGISTRY

    git(root, "checkout", "-q", "--detach")
    done = build(root, "--dry-run", BRANCH_NAME="main")
    assert f"-t mlops-labs:{sha} -t mlops-labs:main" in done.stdout
    assert build(root, "--dry-run").returncode == 2  # detached, and no CI branch name

    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "\n# edit\n")
    done = build(root, "--dry-run", BRANCH_NAME="main")
    assert f"mlops-labs:{sha}-dirty" in done.stdout
    done = build(root, "--push", "--dry-run", BRANCH_NAME="main", REGISTRY="r.example")
    assert done.returncode == 2 and "uncommitted changes" in done.stderr


@pytest.mark.e2e
def test_basic_auth_config_works_with_the_real_mlflow_server(tmp_path):
    """lab3/mlflow/basic_auth.ini under `mlflow server --app-name basic-auth` (what
    MLFLOW_AUTH=basic-auth switches on in compose): anonymous requests are refused, the admin
    from the environment gets in. Only the users database path differs from the container's."""
    import base64
    import urllib.error
    import urllib.request

    ini = (LAB3 / "mlflow" / "basic_auth.ini").read_text()
    assert "sqlite:////mlflow/auth/basic_auth.db" in ini  # the compose volume
    config = tmp_path / "basic_auth.ini"
    config.write_text(ini.replace("/mlflow/auth/", f"{tmp_path}/"))
    port = loopback.free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "test-only-pw",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key",
    }
    argv = [
        loopback.mlflow_command(),
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        f"sqlite:///{tmp_path}/db",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with loopback.running(
        "mlflow-auth", argv, port, "/health", tmp_path / "server.log", env=env
    ) as base:
        url = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            loopback.LOCAL.open(url, timeout=10)
        assert refused.value.code == 401
        token = base64.b64encode(b"admin:test-only-pw").decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with loopback.LOCAL.open(request, timeout=10) as answer:
            assert answer.status == 200


@pytest.mark.integration
def test_the_health_check_module_says_healthy_only_for_a_200(models, tmp_path, capsys):
    """lab3.healthcheck, in-process: 0 for a ready service, 1 with the reason for a 503 (no model
    yet) and for a port nothing listens on; --help prints its use."""
    from lab3 import healthcheck

    assert healthcheck.main(["--help"]) == 0 and "healthcheck" in capsys.readouterr().out
    port = loopback.free_port()
    with loopback.model_service(tmp_path, {"MODEL_URI": str(models.folders["1"])}, port=port):
        assert healthcheck.main([f"http://127.0.0.1:{port}/ready"]) == 0
    with loopback.model_service(
        tmp_path, {"MODEL_URI": str(tmp_path / "none")}, port=port, ready=False
    ):
        assert healthcheck.main([f"http://127.0.0.1:{port}/ready"]) == 1
        assert "503" in capsys.readouterr().err
    assert healthcheck.main([f"http://127.0.0.1:{loopback.free_port()}/ready"]) == 1
    assert "refused" in capsys.readouterr().err.lower()
