"""The Makefile's tasks: `make help` and the README's Tasks table say the same of each task; a
setting (NAME=value) reaches its command as data, never as shell; the ports and the UI's
address reach the service and the simulation; a decision (exit 3) is said in words and ends the
task with 0, while a failure still fails it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project import REPO, Project, clean_env

SETTING = re.compile(r"\b([A-Z_]+)=(\w+)")
SECONDS = re.compile(r"(\d+) s\b")


def make(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``make -s ARGS`` in ``root``, as a user's shell would run it."""
    return subprocess.run(
        ["make", "-s", *args],
        cwd=root,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def help_lines() -> dict[str, str]:
    said = make(REPO, "help")
    assert said.returncode == 0, said.stderr
    return dict(re.findall(r"^  make (\S+)\s+(.*)$", said.stdout, re.MULTILINE))


def readme_rows() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    return dict(re.findall(r"^\| `make (\S+)` \| (.*) \|$", text, re.MULTILINE))


def test_make_help_and_the_readme_tasks_table_agree():
    helped, rows = help_lines(), readme_rows()
    assert set(rows) <= set(helped), set(rows) - set(helped)
    for task, row in rows.items():
        # Every setting both name has the same value (DATASET=fashion_mnist for the CNN).
        ours, theirs = dict(SETTING.findall(helped[task])), dict(SETTING.findall(row))
        for name in ours.keys() & theirs.keys():
            assert ours[name] == theirs[name], (task, name, ours[name], theirs[name])
        # A duration is the same in both, where both give one.
        if SECONDS.search(helped[task]) and SECONDS.search(row):
            assert SECONDS.findall(helped[task]) == SECONDS.findall(row), task
    assert "DATASET=fashion_mnist" in helped["pipeline"]
    assert SECONDS.findall(helped["simulate"]) == ["10"]
    assert "PORT=5000" in helped["ui"] and "SERVE_PORT=8080" in helped["serve"]


# Stands in for .venv/bin/python and pipeline.sh: writes the MLflow UI address it was given and
# its arguments (NUL-separated, one call a line) to $RECORD, and does nothing else. What the
# Makefile is tested for is what reaches a command, exactly; the real commands would refuse
# these values before any work.
RECORDER = '#!/bin/sh\n{ printf "%s\\0" "$MLFLOW_UI_URL" "$@"; echo; } >> "$RECORD"\n'


@pytest.fixture
def recorded(tmp_path: Path):
    """Run a task of the real Makefile, in a folder where every command it runs is RECORDER;
    returns each call's (MLflow UI address, arguments)."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    for name in (".venv/bin/python", "pipeline.sh"):
        (tmp_path / name).write_text(RECORDER)
        (tmp_path / name).chmod(0o755)
    record = tmp_path / "record"

    def run(*args: str, **env: str) -> list[tuple[str, list[str]]]:
        record.unlink(missing_ok=True)
        done = make(tmp_path, *args, RECORD=str(record), **env)
        assert done.returncode == 0, done.stderr
        calls = [line.split("\0")[:-1] for line in record.read_text().splitlines()]
        return [(call[0], call[1:]) for call in calls]

    return run


def hostile(marker: Path) -> str:
    """A value that runs a command in every way a shell, or make itself, would run one pasted
    into a command line: each leaves its own marker file."""
    return (
        f"x;touch {marker}1;`touch {marker}2`$(touch {marker}3)$$(touch {marker}4)"
        f"$(shell touch {marker}5)|touch {marker}6&&touch {marker}7"
    )


# (task, setting, the arguments its command must get for the value)
SETTINGS = [
    ("ui", "PORT", lambda v: ["--port", v]),
    ("serve", "SERVE_PORT", lambda v: ["--port", v]),
    ("simulate", "SERVE_PORT", lambda v: ["--url", f"http://127.0.0.1:{v}"]),
    ("monitor", "SINCE", lambda v: ["--since", v]),
    ("monitor", "UNTIL", lambda v: ["--until", v]),
    ("monitor", "LABELS", lambda v: ["--labels", v]),
    ("pipeline", "DATASET", lambda v: ["--dataset", v]),
    ("pipeline", "ARGS", lambda v: v.split()),  # pipeline.sh's options: split at spaces
    ("mlflow-run", "ENTRY", lambda v: ["-e", v]),
]


@pytest.mark.parametrize(("task", "name", "expected"), SETTINGS, ids=[s[1] for s in SETTINGS])
def test_a_setting_reaches_its_command_as_data_never_as_shell(
    recorded, tmp_path, task, name, expected
):
    value = hostile(tmp_path / "ran")
    calls = recorded(task, f"{name}={value}")
    assert sorted(p.name for p in tmp_path.glob("ran*")) == []  # no command ran
    words = expected(value)
    assert any(args[i : i + len(words)] == words for _, args in calls for i in range(len(args))), (
        calls
    )  # the value arrived as typed


def test_the_ports_and_the_ui_address_reach_the_service_and_the_simulation(recorded):
    [(ui, args)] = recorded("serve")
    assert (ui, args[-2:]) == ("http://127.0.0.1:5000", ["--port", "8080"])
    # `make ui PORT=5001` beside it: the service's links open that UI.
    [(ui, args)] = recorded("serve", "PORT=5001", "SERVE_PORT=8081")
    assert (ui, args[-2:]) == ("http://127.0.0.1:5001", ["--port", "8081"])
    [(ui, args)] = recorded("simulate", "PORT=5001", "SERVE_PORT=8081")
    assert (ui, args[-2:]) == ("http://127.0.0.1:5001", ["--url", "http://127.0.0.1:8081"])
    # A tracking server is its own UI (lab1/core/mlflow_ui.py): the Makefile leaves it be.
    [(ui, _)] = recorded("serve", MLFLOW_TRACKING_URI="http://mlflow.example:5000")
    assert ui == ""
    # An address of your own wins.
    [(ui, _)] = recorded("serve", "PORT=5001", MLFLOW_UI_URL="https://mlflow.example")
    assert ui == "https://mlflow.example"


def test_a_refusal_through_make_is_said_and_ends_the_task_with_0(project: Project):
    """`make clean` while a process holds the embedded store: pipeline.sh --clean refuses with
    exit 3; make says what that means, last, instead of `make: *** ... Error 3`."""
    store = project.root / ".mlflow"
    store.mkdir()
    (store / "mlflow.db").write_bytes(b"")
    hold = "import sys; store = open(sys.argv[1]); print(flush=True); input()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(store / "mlflow.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        holder.stdout.readline()  # it has the store open
        done = make(project.root, "clean")
    finally:
        holder.communicate("")  # let it go
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("make clean: the store is in use and nothing was removed"), last
    assert "Exit 3 is a decision, not a crash" in last and "***" not in done.stderr
    assert f"in use by pid {holder.pid}" in done.stderr and (store / "mlflow.db").exists()


def test_a_failure_through_make_still_fails_the_task(project: Project):
    done = make(project.root, "pipeline", "DATASET=no_such_dataset")
    assert done.returncode == 2, done.stderr
    assert "unknown dataset 'no_such_dataset'" in done.stderr
    assert "Error 2" in done.stderr and "a decision" not in done.stderr
