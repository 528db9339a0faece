"""The registry's gate against a real (SQLite) MLflow store: a worse model never replaces the
champion, a model is gated again instead of registered twice, the champion check, and crash
consistency at every write of a promotion."""

from __future__ import annotations

import pytest

from lab1.core import registry
from lab1.core.errors import PipelineError
from lab1.core.params import GateParams

NAME = "unit-classifier"
RULES = GateParams(min_accuracy=0.9, min_f1=0.8)
TEST_SET = "t" * 16


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even `except Exception`)."""


@pytest.fixture
def client(tmp_path, monkeypatch):
    """A fresh store (the project's own connect), and a tiny logged model to register versions
    of. No fluent `set_experiment`: its active experiment would outlive this test."""
    import mlflow
    from sklearn.dummy import DummyClassifier

    from lab1.core.mlflow_ui import experiment_id
    from lab1.core.tracking import connect

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = connect()
    with mlflow.start_run(experiment_id=experiment_id(client, "unit")):
        info = mlflow.sklearn.log_model(
            DummyClassifier().fit([[0], [1]], [0, 1]),
            name="model",
            serialization_format="skops",
            pip_requirements=["scikit-learn"],
        )
    client.model_uri = info.model_uri  # type: ignore[attr-defined]
    return client


def gate(
    client,
    accuracy: float,
    champion_here: float | None = None,
    fingerprint: str | None = None,
    rules: GateParams = RULES,
    **kwargs,
):
    """A whole gate as model_registration runs it: decide and register (pending), then move the
    alias (the stage writes its records in between)."""
    fingerprint = fingerprint or f"fp-{accuracy}"
    state = registry.gate_state(client, NAME, fingerprint, TEST_SET, rules)
    if state["unchanged"]:
        return {"decision": "unchanged", **state["unchanged"]}
    result = registry.register_gated(
        client,
        NAME,
        client.model_uri,
        {"accuracy": accuracy, "f1": 0.9},
        {registry.TEST_DIGEST: TEST_SET, registry.FINGERPRINT: fingerprint},
        rules,
        kwargs.pop("champion_seen", state["champion_version"]),
        {"accuracy": champion_here} if champion_here is not None else None,
        existing=state["existing"],
        **kwargs,
    )
    if result["decision"] == "promoted":
        registry.promote(client, NAME, result["version"], result["champion_before"])
    return result


def test_a_worse_model_never_replaces_the_champion_however_small_the_loss(client):
    assert gate(client, 0.950)["passed"]
    worse = gate(client, 0.949, champion_here=0.950)
    assert not worse["passed"] and worse["version"] is None
    assert "0.949 < 0.950 of champion version 1" in worse["reason"]
    assert gate(client, 0.9500001, champion_here=0.950)["passed"]  # a tie passes
    assert [str(v.version) for v in registry.versions(client, NAME)] == ["1", "2"]  # rejected: none


def test_a_model_registered_before_is_gated_again_not_registered_twice(client):
    assert gate(client, 0.93, fingerprint="A")["passed"]  # version 1
    assert gate(client, 0.95, champion_here=0.93, fingerprint="B")["passed"]  # version 2
    # A trained again under a better champion: rejected, its version's tags say so.
    again = gate(client, 0.93, champion_here=0.95, fingerprint="A")
    assert again["decision"] == "rejected" and str(again["version"]) == "1"
    tags = client.get_model_version(NAME, "1").tags
    assert tags["gate.last_decision"] == "rejected"
    assert "0.930 < 0.950 of champion version 2" in tags["gate.last_reason"]
    # Its decision is still "promoted", and its reason still the promotion's, not this rejection's.
    assert tags["gate.decision"] == "promoted" and "<" not in tags["gate.reason"]
    registry.rollback(client, NAME)  # the champion is version 1 (0.93) again
    # B trained again under a worse champion: version 2 is promoted back, no version 3.
    back = gate(client, 0.95, champion_here=0.93, fingerprint="B")
    assert back["decision"] == "promoted" and str(back["version"]) == "2"
    assert str(registry.champion(client, NAME).version) == "2"
    assert [str(v.version) for v in registry.versions(client, NAME)] == ["1", "2"]
    # The same model, champion, same settings: nothing to decide.
    assert gate(client, 0.95, fingerprint="B")["decision"] == "unchanged"


def test_changing_the_gate_settings_gates_the_unchanged_champion_again(client):
    assert gate(client, 0.95, fingerprint="A")["passed"]
    stricter = GateParams(min_accuracy=0.9, min_f1=0.95)
    result = gate(client, 0.95, fingerprint="A", rules=stricter)
    assert result["decision"] == "rejected" and str(result["version"]) == "1"
    assert "f1 0.900 < min_f1 0.950" in result["reason"]
    assert str(registry.champion(client, NAME).version) == "1"  # nothing better to serve
    tags = client.get_model_version(NAME, "1").tags
    assert tags[registry.SETTINGS] == "min_accuracy 0.9, min_f1 0.95"
    assert gate(client, 0.95, fingerprint="A", rules=stricter)["decision"] == "rejected"  # again
    back = gate(client, 0.95, fingerprint="A")  # the settings back: it passes them again
    assert back["decision"] == "unchanged" and back["reason"].endswith("(it is the champion)")
    assert gate(client, 0.95, fingerprint="A")["decision"] == "unchanged"  # and now unchanged
    assert [str(v.version) for v in registry.versions(client, NAME)] == ["1"]


def test_a_model_that_cannot_be_compared_is_rejected_with_the_reason(client):
    assert gate(client, 0.95)["passed"]
    result = gate(client, 0.99, incomparable="cannot compare with champion version 1 fairly")
    assert not result["passed"] and result["reason"].startswith("cannot compare")
    assert str(registry.champion(client, NAME).version) == "1"


def test_a_gate_whose_champion_moved_meanwhile_is_refused(client):
    assert gate(client, 0.95)["passed"]
    with pytest.raises(PipelineError, match="moved from no version to version 1 while"):
        gate(client, 0.96, champion_seen=None)


def patch_writes(client, monkeypatch, before_write) -> None:
    """Call ``before_write(what)`` before each registry write of a promotion (each is one atomic
    store request): the version's creation, its tags, the alias."""
    for method in ("set_model_version_tag", "set_registered_model_alias"):
        real = getattr(client, method)
        monkeypatch.setattr(
            client, method, lambda *a, _r=real, _m=method: (before_write(_m), _r(*a))[1]
        )
    real_register = registry.register
    monkeypatch.setattr(
        registry, "register", lambda *a: (before_write("register"), real_register(*a))[1]
    )


class KillAt:
    """``before_write`` that raises Killed at write number ``n`` (0: before the first)."""

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def __call__(self, _what: str) -> None:
        if self.seen == self.n:
            raise Killed
        self.seen += 1


def test_a_registration_killed_before_any_of_its_writes_never_contradicts_the_alias(
    client, monkeypatch
):
    assert gate(client, 0.95)["passed"]
    writes: list[str] = []
    patch_writes(client, monkeypatch, writes.append)
    assert gate(client, 0.96, champion_here=0.95)["passed"]  # version 2: count its writes
    monkeypatch.undo()
    assert writes[0] == "register" and "set_registered_model_alias" in writes
    for n in range(len(writes)):
        patch_writes(client, monkeypatch, KillAt(n))
        before = str(registry.champion(client, NAME).version)
        with pytest.raises(Killed):
            gate(client, 0.97 + n / 1000, champion_here=0.96)
        monkeypatch.undo()
        # At the instant of the kill: no version says "promoted" unless the alias reached it.
        now = str(registry.champion(client, NAME).version)
        for version in registry.versions(client, NAME):
            if version.tags.get(registry.DECISION) == "promoted":
                assert int(version.version) <= int(before) or str(version.version) == now, n
        # The next gate reconciles: nothing pending; the champion is a promoted version.
        registry.reconcile(client, NAME)
        states = {
            str(v.version): v.tags.get(registry.DECISION) for v in registry.versions(client, NAME)
        }
        assert "pending" not in states.values(), (n, states)
        now = str(registry.champion(client, NAME).version)
        assert states[now] == "promoted" and now in (before, max(states, key=int)), (n, states)


def test_two_spellings_of_one_sqlite_store_share_one_registry_lock(tmp_path, monkeypatch, caplog):
    """sqlite:////x/./a.db and sqlite:////x/a.db are one store: one gate at a time on it (the
    lock was keyed on the URI's text, and one of two pipelines failed "champion moved")."""
    import logging
    import threading
    import time

    from lab1.core.registration import registry_lock

    caplog.set_level(logging.INFO, logger="lab1.core.registration")
    entered = threading.Event()

    def second_gate():
        with registry_lock(NAME):
            entered.set()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/./a.db")
    with registry_lock(NAME):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/a.db")
        thread = threading.Thread(target=second_gate)
        thread.start()
        # The second gate says that it waits for the first (an event, however slow the machine).
        while "waiting for another registration to finish" not in caplog.text:
            assert thread.is_alive() and not entered.is_set(), "it did not wait for the first"
            time.sleep(0.01)
        assert not entered.is_set()
    thread.join()
    assert entered.is_set()
