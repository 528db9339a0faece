"""Data-parallel CNN training under torchrun (lab1/core/distributed.py): bad `processes` values
are refused in one line before any work; two gloo processes on the CPU train the model one
process would, recorded once; a rank killed mid-training fails the job in one line and leaves
the champion where it was."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lab1.core.errors import UsageError
from lab1.core.params import load_params
from lab1.core.paths import PATHS
from tests.conftest import error_lines
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
