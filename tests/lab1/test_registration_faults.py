"""The champion alias moves last, and only for a registration that will finish: at every write of
model_registration (each one MLflow store request), a SIGKILL, a SIGTERM or a full disk never
leaves "the alias moved" and "the run says promoted" disagreeing. Stages run in-process on a real
SQLite store; a SIGKILL is an exception nothing in the stage catches (BaseException), raised just
before the write, as the process would die there."""

from __future__ import annotations

import errno
import os
import signal

import pytest
from mlflow.tracking import MlflowClient

from lab1.core import registry
from lab1.core.stages import STAGES
from tests.conftest import SMALL, Project

NAME = "temperature-classifier"
# Every MlflowClient call that writes to the store.
WRITES = (
    "create_model_version",
    "create_registered_model",
    "set_model_version_tag",
    "set_registered_model_alias",
    "update_model_version",
    "update_registered_model",
    "set_tag",
    "log_batch",
    "log_artifact",
    "log_inputs",
    "set_terminated",
)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even `except Exception`)."""


@pytest.fixture(scope="module")
def tested(module_project: Project) -> Project:
    """A project whose first four stages ran: model_registration is what is left."""
    for stage in STAGES[:-1]:
        done = module_project.run(stage, *(SMALL if stage == "data_creation" else ()))
        assert done.returncode == 0, done.stderr
    return module_project


def reset(project: Project) -> None:
    """No registered model and no registration records: the next registration promotes."""
    client = project.client()
    if client.search_registered_models(f"name = '{NAME}'"):
        client.delete_registered_model(NAME)
    for name in ("registration.json", "lineage.json"):
        (project.root / "reports" / name).unlink(missing_ok=True)


def patch_writes(monkeypatch, before_write) -> None:
    for method in WRITES:
        real = getattr(MlflowClient, method)

        def write(self, *args, _real=real, _method=method, **kwargs):
            before_write(_method)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, method, write)


def registration_run(project: Project):
    runs = [
        r for r in project.runs() if r.data.tags.get("mlflow.runName", "").startswith(STAGES[-1])
    ]
    return runs[-1]


def alias_moved(project: Project) -> bool:
    return registry.champion(project.client(), NAME) is not None


def says_promoted(project: Project) -> bool:
    return registration_run(project).data.tags.get(registry.DECISION) == "promoted"


def check_agreement(project: Project, where) -> None:
    """Now (before any reconcile) the run never says promoted for an alias that did not move;
    after the next gate's reconcile the two agree exactly. The reports are written only for a
    registration whose alias moved (or that was not promoting)."""
    moved = alias_moved(project)
    assert moved or not says_promoted(project), where
    assert moved or not (project.root / "reports" / "registration.json").exists(), where
    registry.reconcile(project.client(), NAME)
    assert moved == says_promoted(project), where
    assert moved == alias_moved(project), where


def count_writes(project: Project, monkeypatch) -> list[str]:
    reset(project)
    writes: list[str] = []
    patch_writes(monkeypatch, writes.append)
    done = project.run(STAGES[-1])
    monkeypatch.undo()
    assert done.returncode == 0, done.stderr
    assert alias_moved(project) and says_promoted(project)
    return writes


def test_everything_is_recorded_before_the_alias_moves(tested, monkeypatch):
    writes = count_writes(tested, monkeypatch)
    move = writes.index("set_registered_model_alias")
    assert "log_artifact" in writes[:move] and "log_artifact" not in writes[move:]
    # After the move: the promoted tags (run and version), then the run's end.
    assert set(writes[move + 1 :]) <= {
        "set_tag",
        "set_model_version_tag",
        "log_batch",
        "log_inputs",
        "set_terminated",
    }, writes[move:]


@pytest.mark.integration  # the interrupt matrix
def test_a_sigkill_at_any_write_never_leaves_the_alias_and_the_run_disagreeing(tested, monkeypatch):
    writes = count_writes(tested, monkeypatch)
    for n, what in enumerate(writes):
        reset(tested)
        seen = []

        def kill_at(method, n=n, seen=seen):
            if len(seen) == n:
                raise Killed
            seen.append(method)

        patch_writes(monkeypatch, kill_at)
        with pytest.raises(Killed):
            tested.run(STAGES[-1])
        monkeypatch.undo()
        check_agreement(tested, (n, what))


@pytest.mark.integration  # the interrupt matrix
def test_a_sigterm_at_any_write_never_leaves_the_alias_and_the_run_disagreeing(tested, monkeypatch):
    """SIGTERM reaches the stage's handler; around the alias move it waits until the move and
    the records that say so are done."""
    writes = count_writes(tested, monkeypatch)

    def after_the_stage(signum, frame):  # the handler the stage restores when it ends
        raise Killed

    previous = signal.signal(signal.SIGTERM, after_the_stage)
    try:
        for n, what in enumerate(writes):
            reset(tested)
            seen = []

            def term_at(method, n=n, seen=seen):
                if len(seen) == n:
                    os.kill(os.getpid(), signal.SIGTERM)
                seen.append(method)

            patch_writes(monkeypatch, term_at)
            with pytest.raises(BaseException) as stopped:
                tested.run(STAGES[-1])
            monkeypatch.undo()
            assert type(stopped.value).__name__ in ("Terminated", "Killed"), stopped.value
            # No reconcile needed: a SIGTERM leaves the two agreeing at once.
            assert alias_moved(tested) == says_promoted(tested), (n, what)
            if alias_moved(tested):  # the records that say so were renamed into place too
                assert (tested.root / "reports" / "registration.json").exists(), (n, what)
            check_agreement(tested, (n, what))
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_full_disk_under_reports_fails_the_stage_in_one_line_and_the_champion_stays(
    tested, monkeypatch
):
    import lab1.core.registration as stage  # where the records are written

    reset(tested)

    def full(target, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(stage, "write_json", full)
    done = tested.run(STAGES[-1])
    monkeypatch.undo()
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "reports/" in errors[0] and "disk is full" in errors[0], errors
    assert not alias_moved(tested) and not says_promoted(tested)
    run = registration_run(tested)
    assert run.info.status == "FAILED"
    check_agreement(tested, "disk full")
