"""The project image built and run for real, and the light compose stack brought up: with rootful
podman from Debian's packages, as there is no Docker daemon here (lab3/podman/).

The Dockerfile's base image cannot be pulled from Docker Hub here, so its stand-in is made from
Debian's packages (lab3/podman/base.sh) and passed with build.sh's --base. Both the stand-in and
the image's layers stay in podman's storage: a second run rebuilds only what changed. Every
container, network and volume a test starts is removed, also when a check fails. Marker
`container` (deselect with -m "not container").
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lab1.core.model_io import load_model
from tests import loopback
from tests.conftest import REPO, clean_env
from tests.lab3.conftest import rows, wait_for, windows

pytestmark = [pytest.mark.container]

PODMAN = ["bash", str(REPO / "lab3" / "podman" / "podman.sh")]
COMPOSE = ["bash", str(REPO / "lab3" / "podman" / "compose.sh")]
ACCURACY_LINE = re.compile(r"^Model test accuracy is: \d\.\d{3}$")


def run(argv: list[str], timeout: float = 900, check: bool = True, **env: str):
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=clean_env(**env)
    )
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return done


def podman(*args: str, **kwargs):
    return run([*PODMAN, *args], **kwargs)


@dataclass
class Image:
    tag: str  # localhost/mlops-labs:<short sha>
    base_s: float
    build_s: float


@pytest.fixture(scope="module")
def image() -> Image:
    """The stand-in base (made once, then reused) and the image, built with lab3/build.sh."""
    for tool in ("podman", "mmdebstrap", "docker-compose"):
        if shutil.which(tool) is None:  # never a skip: a missing tool must not pass
            pytest.fail(f"{tool} is not installed; run `bash tests/run.sh`, which installs it")
    started = time.perf_counter()
    base = run(["bash", "lab3/podman/base.sh"]).stdout.strip()
    base_s = time.perf_counter() - started
    started = time.perf_counter()
    built = run(["bash", "lab3/build.sh", "--base", base], DOCKER=" ".join(PODMAN))
    build_s = time.perf_counter() - started
    found = re.search(r"built (\S+):(\S+) and \S+:(\S+)", built.stderr)
    assert found, built.stderr
    sha = run(["git", "rev-parse", "--short=12", "HEAD"]).stdout.strip()
    assert found[2].startswith(sha)  # tags: the short sha (-dirty if uncommitted) and the branch
    return Image(f"localhost/{found[1]}:{found[2]}", base_s, build_s)


@contextmanager
def container(image: Image, *args: str) -> Iterator[str]:
    """A detached container of ``image``; yields its name; removed afterwards, whatever happens.
    The health check is run by hand (`podman healthcheck run`): there is no systemd here to run
    it on a timer."""
    name = f"mlops-test-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--health-interval=disable", *args, image.tag)
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def get(url: str) -> tuple[int, dict]:
    """(HTTP status, JSON body or {}); status 0 when nothing answers."""
    try:
        with loopback.LOCAL.open(url, timeout=5) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, {}
    try:
        return status, dict(json.loads(body))
    except ValueError:
        return status, {"text": body.decode(errors="replace")}


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with loopback.LOCAL.open(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


def healthy(name: str) -> bool:
    return podman("healthcheck", "run", name, check=False).returncode == 0


def test_the_image_serves_the_champion_once_the_trainer_made_one(image, tmp_path):
    port = loopback.free_port()
    with container(image, "-p", f"127.0.0.1:{port}:8080", "-e", "POLL_INTERVAL_S=0.5") as name:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(f"{url}/health")[0] == 200, timeout=120)
        # Alive but with no model: not ready (once it has looked), and unhealthy.
        status, ready = wait_for(lambda: (got := get(f"{url}/ready"))[1].get("last_error") and got)
        assert status == 503 and "temperature-classifier" in ready["last_error"]
        assert not healthy(name)
        # The same image trains: pipeline.sh in the container registers a champion.
        trained = podman("exec", name, "bash", "pipeline.sh", timeout=600)
        assert ACCURACY_LINE.match(trained.stdout.splitlines()[-1]), trained.stderr[-2000:]
        wait_for(lambda: get(f"{url}/ready")[0] == 200, timeout=60)
        assert healthy(name)
        assert get(f"{url}/model")[1]["version"] == "1"
        # Its answers are the model's: the model folder, copied out, scored here.
        podman("cp", f"{name}:/app/models/model", str(tmp_path / "model"))
        sample, _ = windows(25, seed=11)
        answer = post_json(f"{url}/predict", {"instances": rows(sample)})
        expected = load_model(tmp_path / "model").predict_proba(sample)
        assert np.allclose(answer["probabilities"], expected, rtol=0, atol=1e-9)
        user = podman("exec", name, "id", "-u").stdout.strip()
    assert user != "0"  # the service runs as the unprivileged user `app`


def test_the_image_is_non_root_without_compilers_and_its_size_is_known(image, record_property):
    checked = podman(
        "run", "--rm", "--health-interval=disable", image.tag, "sh", "-c",
        "id -un; for tool in gcc cc c++ make; do command -v $tool || true; done",
    )  # fmt: skip
    assert checked.stdout.split() == ["app"]  # the user, and no compiler found
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image.tag).stdout)
    inspected = podman("image", "inspect", "--format", "{{json .Labels}}", image.tag)
    labels = json.loads(inspected.stdout)
    head = run(["git", "rev-parse", "HEAD"]).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == head
    record_property("image_mb", round(size / 1e6))
    record_property("base_s", round(image.base_s, 1))
    record_property("build_s", round(image.build_s, 1))
    # What the image weighs: the locked runtime (MLflow, scikit-learn, pandas, pyarrow, ...).
    assert size < 1.5e9, f"{size / 1e6:.0f} MB"


def test_the_light_compose_stack_trains_registers_and_serves(image):
    """lab3/docker-compose.light.yml with the project's image: the MLflow server (SQLite, an
    artifact volume), the trainer's pipeline.sh against it, the API serving the champion it
    registered; `down -v` leaves nothing behind."""
    project = f"mlopstest{uuid.uuid4().hex[:8]}"
    mlflow_port, api_port = loopback.free_port(), loopback.free_port()
    repository, tag = image.tag.rsplit(":", 1)
    env = {
        "IMAGE": repository,
        "TAG": tag,
        "MLFLOW_PORT": str(mlflow_port),
        "API_PORT": str(api_port),
    }
    compose = [*COMPOSE, "-p", project, "-f", "lab3/docker-compose.light.yml"]
    started = time.perf_counter()
    try:
        up = run([*compose, "up", "-d"], check=False, timeout=600, **env)
        assert up.returncode == 0, up.stderr[-3000:]
        trainer = podman("wait", f"{project}_trainer_1").stdout.strip()
        assert trainer == "0", podman("logs", f"{project}_trainer_1", check=False).stderr[-2000:]
        api = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: get(f"{api}/ready")[0] == 200, timeout=120)
        served = get(f"{api}/model")[1]
        assert served["version"] == "1" and served["alias"] == "champion"
        # The champion is the server's: its registry says so over the API.
        status, registered = get(
            f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/registered-models/get"
            "?name=temperature-classifier"
        )
        assert status == 200, registered
        aliases = registered["registered_model"]["aliases"]
        assert {"alias": "champion", "version": "1"} in aliases
        print(f"compose stack up and serving in {time.perf_counter() - started:.0f} s")
    finally:
        down = run([*compose, "down", "-v"], check=False, timeout=300, **env)
    assert down.returncode == 0, down.stderr[-2000:]
    label = f"label=com.docker.compose.project={project}"
    assert podman("ps", "-a", "-q", "--filter", label).stdout.strip() == ""
    assert podman("volume", "ls", "-q", "--filter", label).stdout.strip() == ""


def test_podman_settings_are_the_projects(tmp_path):
    """The wrapper uses lab3/podman/containers.conf, and builds in Docker's format (which keeps
    the image's HEALTHCHECK) without touching /etc."""
    conf = Path(REPO / "lab3" / "podman" / "containers.conf").read_text()
    assert 'runtime = "runc"' in conf and 'cgroup_manager = "cgroupfs"' in conf
    fake = tmp_path / "podman"
    fake.write_text('#!/bin/sh\necho "$CONTAINERS_CONF $*"\n')
    fake.chmod(0o755)
    done = subprocess.run(
        [*PODMAN, "build", "-t", "x", "."],
        capture_output=True,
        text=True,
        env=clean_env(PATH=f"{tmp_path}:/usr/bin:/bin"),
        timeout=30,
    )
    assert done.stdout.split() == [
        str(REPO / "lab3" / "podman" / "containers.conf"),
        *("build", "--format", "docker", "-t", "x", "."),
    ]
