"""Data-parallel CNN training under torchrun (lab1/core/distributed.py): bad `processes` values
are refused in one line before any work; two gloo processes on the CPU train the model one
process would, recorded once; a rank killed mid-training fails the job in one line and leaves
the champion where it was. Across machines (the README's multi-node commands, two launchers on
this machine standing for two nodes): one model, recorded by rank 0 alone, then tested and
registered on its node; a launcher run alone holds its checkout for its ranks; a rendezvous
that never completes and an interrupted launcher end in one line."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lab1.core.errors import UsageError
from lab1.core.params import load_params
from lab1.core.paths import PATHS
from tests.conftest import Project, clean_env, copy_project, error_lines
from tests.lab1.image_archives import write_fashion_mnist

CPUS = len(os.sched_getaffinity(0))
DATASET = ("--dataset", "fashion_mnist")


def overrides(**values: object) -> list[str]:
    return [f"model_preparation.cnn.{k.replace('__', '.')}={v}" for k, v in values.items()]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "-S model_preparation.cnn.processes: (0|-2) must be >= 1$"),
        (-2, "-S model_preparation.cnn.processes: (0|-2) must be >= 1$"),
        (CPUS + 1, rf"-S model_preparation.cnn.processes: {CPUS + 1} is more than the {CPUS} CPUs"),
    ],
)
def test_bad_processes_are_a_command_line_mistake(value, message):
    with pytest.raises(UsageError, match=message):
        load_params(PATHS.params, ["dataset=fashion_mnist", *overrides(processes=value)])


def test_processes_need_a_batch_each():
    if CPUS < 2:
        pytest.fail("needs 2 CPUs")
    wrong = overrides(processes=2, fashion_mnist__batch_size=1)
    with pytest.raises(UsageError, match=r"fashion_mnist.batch_size: 1 cannot be split among 2"):
        load_params(PATHS.params, ["dataset=fashion_mnist", *wrong])


@pytest.mark.images
def test_processes_are_one_per_gpu(monkeypatch):
    """On CUDA each rank takes a GPU: more processes than GPUs are refused (faked: no GPU here,
    the count is what torch would say on a one-GPU machine)."""
    import torch

    from lab1.core import distributed

    params = load_params(PATHS.params, ["dataset=fashion_mnist", *overrides(processes=2)])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UsageError, match="processes: 2 is more than the 1 GPUs here"):
        distributed.processes(params)


def test_temperature_ignores_processes():
    from lab1.core import distributed

    params = load_params(PATHS.params, overrides(processes=2))
    assert distributed.processes(params) == 1


@pytest.mark.e2e
def test_pipeline_refuses_bad_processes_before_any_work(project):
    done = project.pipeline(*DATASET, "-S", "model_preparation.cnn.processes=0")
    assert done.returncode == 2
    [line] = error_lines(done.stderr)
    assert "model_preparation.cnn.processes" in line and "Traceback" not in done.stderr
    assert not (project.root / "data").exists()


# --- two processes, end to end -------------------------------------------------------------


def tiny(folder: Path, *extra: str) -> list[str]:
    """A small, learnable Fashion-MNIST-format set (tests/lab1/image_archives.py)."""
    settings = {
        "data_creation.fashion_mnist.data_dir": folder,
        "data_creation.fashion_mnist.verify": "false",
        "model_preparation.cnn.fashion_mnist.width": 8,
        "model_preparation.cnn.fashion_mnist.batch_size": 64,
        "model_registration.fashion_mnist.min_accuracy": 0.6,
        "model_registration.fashion_mnist.min_f1": 0.3,
    }
    args = [*DATASET]
    for key, value in settings.items():
        args += ["-S", f"{key}={value}"]
    for setting in extra:
        args += ["-S", setting]
    return args


def accuracy(done: subprocess.CompletedProcess) -> float:
    match = re.fullmatch(r"Model test accuracy is: (\d\.\d{3})", done.stdout.splitlines()[-1])
    assert match, done.stdout
    return float(match.group(1))


def training_runs(project) -> list:
    return [
        r
        for r in project.runs("lab1-fashion_mnist")
        if r.data.tags["mlflow.runName"] == "model_preparation"
    ]


@pytest.mark.images
@pytest.mark.e2e
def test_two_processes_train_the_model_one_process_would(project, tmp_path):
    folder = write_fashion_mnist(tmp_path / "data", train=800, test=300)
    epochs = "model_preparation.cnn.fashion_mnist.epochs=4"
    one = project.pipeline(*tiny(folder, epochs))
    assert one.returncode == 0, one.stderr[-3000:]
    two = project.pipeline(*tiny(folder, epochs, "model_preparation.cnn.processes=2"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert not error_lines(two.stderr)
    for noise in ("OMP_NUM_THREADS", "Grad strides", "Traceback"):  # torchrun's, DDP's
        assert noise not in two.stderr

    first, second = training_runs(project)
    assert first.data.params["world_size"] == "1" and first.data.params["backend"] == "none"
    assert second.data.params["world_size"] == "2" and second.data.params["backend"] == "gloo"
    assert second.data.params["per_rank_batch_size"] == "32"
    assert second.data.params["cnn.processes"] == "2"
    assert second.info.status == "FINISHED"
    client = project.client()
    history = client.get_metric_history(second.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3, 4]  # rank 0 alone recorded the epochs
    versions = client.search_model_versions("name='fashion_mnist-classifier'")
    # One model per pipeline: the 2-process run logged exactly one (rank 0's).
    assert sorted(v.run_id for v in versions) == sorted([first.info.run_id, second.info.run_id])
    assert abs(accuracy(two) - accuracy(one)) <= 0.01, (accuracy(one), accuracy(two))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(proc.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rank_process(pipeline: int, rank: int) -> int | None:
    """The pid of torchrun's worker of ``rank`` under ``pipeline``, once it runs."""
    for pid in descendants(pipeline):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"TORCHELASTIC_RUN_ID" in b" ".join(environ):
            return pid
    return None


@pytest.mark.images
@pytest.mark.e2e
@pytest.mark.faults
def test_a_rank_killed_mid_training_fails_the_run_and_keeps_the_champion(project, tmp_path):
    folder = write_fashion_mnist(tmp_path / "data", train=800, test=300)
    done = project.pipeline(*tiny(folder, "model_preparation.cnn.fashion_mnist.epochs=2"))
    assert done.returncode == 0, done.stderr[-3000:]
    client = project.client()
    champion = client.get_model_version_by_alias("fashion_mnist-classifier", "champion")

    long = ["model_preparation.cnn.fashion_mnist.epochs=200", "model_preparation.cnn.processes=2"]
    pipeline = project.start_pipeline(
        *tiny(folder, *long, "model_preparation.cnn.fashion_mnist.patience=200")
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(pipeline.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(re.search(r"epoch 2/200", line) for line in lines):  # mid-training
            assert pipeline.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.2)
        victim = rank_process(pipeline.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        rc = pipeline.wait(timeout=120)
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.wait()
    reader.join(timeout=10)
    stderr = "".join(lines)
    assert rc == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    # Rank 0 says why it stopped, then the launcher names the rank that failed first, last.
    *lost, last = error_lines(stderr)
    assert last.endswith("model_preparation failed: rank 1 stopped first: killed by SIGKILL")
    assert len(lost) == 1, lost
    # gloo says "Connection closed by peer" or "Read error ...: Connection reset by peer".
    assert "rank 0 of 2: training stopped because another rank did (" in lost[0]
    assert training_runs(project)[-1].info.status == "FAILED"
    after = client.get_model_version_by_alias("fashion_mnist-classifier", "champion")
    assert after.version == champion.version
    assert len(client.search_model_versions("name='fashion_mnist-classifier'")) == 1


# --- across machines: one torchrun launcher per node ----------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launcher(node: Path, *args: str, log: Path, **env: str) -> subprocess.Popen:
    """`python -m lab1.core.distributed ARGS` in the checkout ``node``, as the README runs it on
    each node; stdout and stderr to ``log`` (a pipe nobody reads could stall it)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lab1.core.distributed", *args],
            cwd=node,
            env=clean_env(PYTHONPATH=str(node), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def finish(processes: list[subprocess.Popen], timeout: float) -> list[int]:
    """The exit codes of ``processes``; any still running after ``timeout`` s is killed."""
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
    finally:
        for process in processes:
            stop(process)


def shared_store(path: Path) -> tuple[str, Any]:
    """A sqlite MLflow store outside both checkouts (the team's server of item 3), and a client."""
    from mlflow.tracking import MlflowClient

    path.mkdir()
    uri = f"sqlite:///{path / 'mlflow.db'}"
    return uri, MlflowClient(uri, registry_uri=uri)


@pytest.mark.images
@pytest.mark.e2e
def test_two_nodes_train_one_model_that_rank_0_records_and_its_node_registers(project, tmp_path):
    """The README's multi-node commands, with two launchers on this machine for two nodes: each
    node is its own checkout with its own data/processed (what `dvc pull` gives it) and both
    record to one MLflow store; c10d rendezvous on 127.0.0.1, one process per node."""
    folder = write_fashion_mnist(tmp_path / "data", train=800, test=300)
    store, client = shared_store(tmp_path / "store")
    nodes = [project.root, copy_project(tmp_path / "node2")]
    # One process makes the new store (data_creation), before the two nodes use it at once.
    for stage in ("data_creation", "data_preprocessing"):
        done = project.pipeline(*tiny(folder), "--stage", stage, MLFLOW_TRACKING_URI=store)
        assert done.returncode == 0, done.stderr[-3000:]
    shutil.copytree(nodes[0] / "data" / "processed", nodes[1] / "data" / "processed")

    rendezvous = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    rendezvous += ["--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "fmnist-test"]
    # `processes` is per node: one each.
    settings = tiny(folder, "model_preparation.cnn.fashion_mnist.epochs=3")
    stage = ["-m", "lab1.model_preparation", *settings, "-S", "model_preparation.cnn.processes=1"]
    logs = [tmp_path / f"node{number}.log" for number in (1, 2)]
    launched = [
        launcher(node, *rendezvous, *stage, log=log, MLFLOW_TRACKING_URI=store)
        for node, log in zip(nodes, logs, strict=True)
    ]
    codes = finish(launched, timeout=400)
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n----\n".join(o[-3000:] for o in outputs)
    for output in outputs:
        assert not error_lines(output) and "Traceback" not in output, output[-3000:]

    # Rank 0 alone opened a run and wrote models/; the other node trained and recorded nothing.
    [writer] = [node for node in nodes if (node / "models" / "model.json").exists()]
    experiment = client.get_experiment_by_name("lab1-fashion_mnist").experiment_id
    runs = client.search_runs([experiment])
    [training] = [run for run in runs if run.info.run_name == "model_preparation"]
    assert [("model_preparation run" in output) for output in outputs] == [
        node == writer for node in nodes
    ]
    assert training.info.status == "FINISHED"
    assert training.data.params["world_size"] == "2" and training.data.params["backend"] == "gloo"
    assert training.data.params["per_rank_batch_size"] == "32"
    history = client.get_metric_history(training.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3]

    # Then, on the node whose rank 0 wrote models/: the README's two follow-up commands.
    node = Project(writer)
    for stage_name in ("model_testing", "model_registration"):
        done = node.pipeline(*tiny(folder), "--stage", stage_name, MLFLOW_TRACKING_URI=store)
        assert done.returncode == 0, done.stderr[-3000:]
    [version] = client.search_model_versions("name='fashion_mnist-classifier'")
    assert version.run_id == training.info.run_id
    champion = client.get_model_version_by_alias("fashion_mnist-classifier", "champion")
    assert champion.version == version.version


@pytest.mark.images
@pytest.mark.e2e
@pytest.mark.faults
def test_a_launcher_run_alone_holds_the_workspace_for_its_ranks_and_stops_them(project, tmp_path):
    """The launcher as each node runs it (not under pipeline.sh), with 2 ranks in one checkout:
    it holds the checkout's workspace and its ranks share it (each taking the lock itself, rank
    1 would wait for rank 0, which waits for rank 1 to start training). SIGTERM stops the job:
    rank 0's run ends KILLED, and the launcher says so in one line."""
    folder = write_fashion_mnist(tmp_path / "data", train=800, test=300)
    for stage in ("data_creation", "data_preprocessing"):
        done = project.pipeline(*tiny(folder), "--stage", stage)
        assert done.returncode == 0, done.stderr[-3000:]
    long = ["model_preparation.cnn.fashion_mnist.epochs=200", "model_preparation.cnn.processes=2"]
    stage = tiny(folder, *long, "model_preparation.cnn.fashion_mnist.patience=200")
    log = tmp_path / "launcher.log"
    launch = ["--standalone", "--nproc-per-node", "2", "-m", "lab1.model_preparation", *stage]
    job = launcher(project.root, *launch, log=log)
    try:
        deadline = time.monotonic() + 240
        while "epoch 2/200" not in log.read_text():  # both ranks train: nobody waits for the lock
            assert job.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        holder = (project.root / ".mlops" / "workspace.lock").read_text()
        assert holder.startswith(f"lab1/core/distributed.py (torchrun) (pid {job.pid},"), holder
        job.send_signal(signal.SIGTERM)
        [code] = finish([job], timeout=120)
    finally:
        stop(job)
    output = log.read_text()
    assert code == 128 + signal.SIGTERM, output[-3000:]
    assert "Traceback" not in output and not error_lines(output), output[-3000:]
    assert output.splitlines()[-1].endswith(
        "WARNING __main__: model_preparation interrupted (SIGTERM); its ranks were stopped"
    )
    assert training_runs(project)[-1].info.status == "KILLED"
    assert not (project.root / "models" / "model.json").exists()


@pytest.mark.images
def test_a_rendezvous_that_never_completes_is_one_line(project):
    """One node of two: the other never comes, and the launcher gives up after the join timeout
    with one line naming the rendezvous (no rank ever started)."""
    endpoint = f"127.0.0.1:{free_port()}"
    args = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    args += ["--rdzv-endpoint", endpoint, "--rdzv-id", "alone", "--rdzv-conf", "join_timeout=3"]
    stage = ["-m", "lab1.model_preparation", *DATASET]
    done = subprocess.run(
        [sys.executable, "-m", "lab1.core.distributed", *args, *stage],
        cwd=project.root,
        env=clean_env(PYTHONPATH=str(project.root)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    [line] = error_lines(done.stderr)
    assert line.endswith(
        f"model_preparation failed: torchrun's rendezvous alone at {endpoint}: "
        "not all 2 nodes joined in time"
    )
