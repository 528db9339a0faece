"""Every bad input and broken environment: one line, the right exit code, nothing lost.

One table, one row per mistake a user can make: a params.yaml value, a command-line option, raw
data, a user CSV, processed files, the model folder, the MLflow store, the file system. Each row
breaks one thing in a copy of a project whose pipeline ran once, runs the stage that meets it
(in this process; the pipeline.sh rows as a process), and checks:

- the exit code (2 for a command-line mistake, 1 otherwise);
- exactly one error line, naming the file, field and value;
- no traceback;
- nothing half-written, nothing good overwritten: data/, models/ and reports/ are as they were;
- the `champion` alias has not moved;
- and for the environment rows, how long the failure took.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab1.core.io import tree_sha256
from lab1.core.stages import STAGES
from tests.conftest import SMALL, Project, clean_env, copy_project, error_lines
from tests.project import param_change, reseal_raw, vouch_for

NAME = "temperature-classifier"
OUTPUTS = ("data/raw", "data/processed", "models", "reports")


@dataclass
class Case:
    id: str
    stage: str  # a stage run in-process, or "pipeline.sh" (a process)
    expect: str  # what the one error line must contain (a regular expression)
    args: tuple[str, ...] = ()
    break_it: Callable[[Path], None] = lambda root: None
    code: int = 1
    env: dict[str, str] = field(default_factory=dict)
    within_s: float | None = None  # environment rows: the failure's deadline
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    small: bool = True  # run with SMALL's -S years=1 (False where the row breaks years itself)


# --- how to break things ---------------------------------------------------------------------


def write(relative: str, content: bytes | str, *vouch: str) -> Callable[[Path], None]:
    """Overwrite a file; then record it as the finished output of the stages in ``vouch``, as if
    they had written it (to reach the checks behind provenance)."""

    def edit(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        for stage in vouch:
            vouch_for(root, stage)

    return edit


def a_station(root: Path, split: str) -> Path:
    """One station file of ``split`` as data_creation wrote it (which stations: params.yaml)."""
    return min((root / "data" / "raw" / split).glob("*.csv"))


def edit_raw(split: str, edit: Callable[[str], str]) -> Callable[[Path], None]:
    """Change a raw station file of ``split``, reseal the manifest and vouch: as if data_creation
    made it."""
    return lambda root: reseal_raw(root, f"{split}/{a_station(root, split).name}", edit)


def relabel_manifest(root: Path, dataset: str) -> None:
    """The raw data claims to be another dataset's (and data_creation vouches for it)."""
    import json

    path = root / "data" / "raw" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["dataset"] = dataset
    path.write_text(json.dumps(manifest))
    vouch_for(root, "data_creation")


def user_csv(text: str) -> Callable[[Path], None]:
    return write("mine.csv", "date,station,temperature\n" + text)


def remove(relative: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        target = root / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return apply


def locked_store(root: Path) -> None:
    """Another program holds the store's write lock (a background process) until the test kills
    it, whenever the stage gets there."""
    script = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('begin exclusive'); print('locked', flush=True); time.sleep(3600)"
    )
    holder = subprocess.Popen(
        ["python3", "-c", script, str(root / ".mlflow" / "mlflow.db")], stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    (root / "holder.pid").write_text(str(holder.pid))


def failing(function: str, error: BaseException) -> Callable[[pytest.MonkeyPatch], None]:
    """Make ``module:attribute`` raise ``error`` (the environment failing under the stage)."""
    module, attribute = function.split(":")

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        def fail(*_args, **_kwargs):
            raise error

        monkeypatch.setattr(f"{module}.{attribute}", fail)

    return patch


# The deadline of a store or server that cannot be used: its failure takes seconds (the lock's
# 5 s wait at most), where MLflow's own retries against a dead server take 4 minutes. A minute
# tells the two apart on a slow, busy machine too.
FAILS_FAST = 60

READ_ONLY = OSError(errno.EROFS, "Read-only file system", "data/raw")
NO_PERMISSION = PermissionError(errno.EACCES, "Permission denied", "reports/metrics.json")
DISK_FULL = OSError(errno.ENOSPC, "No space left on device", "models")
T = "data_creation.temperature"


CASES = [
    # params.yaml: types and meaning, all of a file's problems at once
    Case(
        "years-zero",
        "data_creation",
        rf"params.yaml: {T}.years: 0 must be >= 1",
        break_it=param_change("data_creation.temperature.years", 0),
        small=False,
    ),
    Case(
        "impossible-date",
        "data_creation",
        r"start_date: '2021-02-30' is not a calendar date",
        break_it=param_change("data_creation.temperature.start_date", "2021-02-30"),
    ),
    Case(
        "fault-fraction",
        "data_creation",
        r"faults.fraction: 0.9 must be in \(0, 0.6\)",
        break_it=param_change("data_creation.temperature.faults.fraction", 0.9),
    ),
    Case(
        "no-fault-kinds",
        "data_creation",
        r"faults.kinds: \[\] must not be empty",
        break_it=param_change("data_creation.temperature.faults.kinds", []),
    ),
    Case(
        "station-twice",
        "data_creation",
        r"stations: .* lists \w+ more than once",
        break_it=param_change("data_creation.temperature.stations", lambda s: [s[0], *s]),
    ),
    Case(
        "test-station-unknown",
        "data_creation",
        r"test_stations: has 'oslo', which is not in",
        break_it=param_change(
            "data_creation.temperature.test_stations", lambda s: ["oslo", *s[1:]]
        ),
    ),
    Case(
        "window-zero",
        "data_preprocessing",
        r"data_preprocessing.window: 0 must be >= 1",
        break_it=param_change("data_preprocessing.window", 0),
    ),
    Case(
        "negative-learning-rate",
        "model_preparation",
        r"hist_gradient_boosting.learning_rate: -0.1 must be > 0",
        break_it=param_change("model_preparation.hist_gradient_boosting.learning_rate", -0.1),
    ),
    Case(
        "threshold-above-one",
        "model_testing",
        r"model_testing.threshold: 1.5 must be in \[0, 1\]",
        break_it=param_change("model_testing.threshold", 1.5),
    ),
    Case(
        "gate-above-one",
        "model_registration",
        r"model_registration.temperature.min_accuracy: 2.0 must be in \[0, 1\]",
        break_it=param_change("model_registration.temperature.min_accuracy", 2),
    ),
    Case(
        "key-typo",
        "model_testing",
        r"model_testing.treshold: unknown key \(did you mean 'threshold'\?\)",
        break_it=param_change("model_testing.threshold", rename="treshold"),
    ),
    Case(
        "two-problems",
        "data_creation",
        r"2 problems: .*seed: -3 must be >= 0; .*years: -1 must be >= 1",
        break_it=lambda root: (
            param_change("data_creation.temperature.years", -1)(root),
            param_change("data_creation.seed", -3)(root),
        ),
        small=False,
    ),
    Case(
        "garbled-yaml",
        "data_creation",
        r"params.yaml: not valid YAML",
        break_it=param_change("dataset", text="[temperature"),
    ),
    Case(
        "logistic-C-zero",
        "model_preparation",
        r"logistic_regression.C: 0.0 must be > 0",
        break_it=param_change("model_preparation.logistic_regression.C", 0),
    ),
    Case(
        "one-leaf-node",
        "model_preparation",
        r"max_leaf_nodes: 1 must be >= 2",
        break_it=param_change("model_preparation.hist_gradient_boosting.max_leaf_nodes", 1),
    ),
    Case(
        "dropout-one",
        "model_preparation",
        r"cnn.fashion_mnist.dropout: 1.0 must be in \[0, 1\)",
        break_it=param_change("model_preparation.cnn.fashion_mnist.dropout", 1.0),
    ),
    Case(
        "wrong-type",
        "data_preprocessing",
        r"data_preprocessing.window: 'seven' must be int",
        break_it=param_change("data_preprocessing.window", text="seven"),
    ),
    # the command line: exit 2
    Case(
        "override-typo",
        "model_preparation",
        r"no key 'model_preparation.estimatr' \(did you mean 'estimator'\?\)",
        args=("-S", "model_preparation.estimatr=random_forest"),
        code=2,
    ),
    Case(
        "override-meaning",
        "data_creation",
        rf"-S {T}.years: -1 must be >= 1",
        args=("-S", f"{T}.years=-1"),
        code=2,
    ),
    Case(
        "override-no-equals",
        "data_creation",
        r"expected section.key=value",
        args=("-S", "model_preparation.seed"),
        code=2,
    ),
    Case(
        "override-impossible-date",
        "data_creation",
        r"'2022-02-30' is not a calendar date",
        args=("-S", f"{T}.start_date=2022-02-30"),
        code=2,
    ),
    Case(
        "pipeline-dataset-typo",
        "pipeline.sh",
        r"unknown dataset 'fashion_mnst' \(did you mean 'fashion_mnist'\?\)",
        args=("--dataset", "fashion_mnst"),
        code=2,
    ),
    Case(
        "pipeline-dataset-part",
        "pipeline.sh",
        r"unknown dataset 'mnist' \(did you mean 'fashion_mnist'\?\)",
        args=("--dataset", "mnist"),
        code=2,
    ),
    Case(
        "pipeline-stage-typo",
        "pipeline.sh",
        r"unknown stage 'model_test' \(did you mean 'model_testing'\?\)",
        args=("--stage", "model_test"),
        code=2,
    ),
    Case(
        "pipeline-unknown-option",
        "pipeline.sh",
        r"unknown option: --fast",
        args=("--fast",),
        code=2,
    ),
    Case(
        "pipeline-bad-override",
        "pipeline.sh",
        r"-S model_testing.threshold: 2.0 must be in",
        args=("-S", "model_testing.threshold=2"),
        code=2,
    ),
    # raw data
    Case(
        "raw-changed-by-hand",
        "data_preprocessing",
        r"data/raw: not the output of a finished data_creation run",
        break_it=lambda root: a_station(root, "train").unlink(),
    ),
    Case(
        "raw-column-missing",
        "data_preprocessing",
        r"train/\w+\.csv: column 'temperature' missing",
        break_it=edit_raw("train", lambda t: t.replace("temperature", "temp", 1)),
    ),
    Case(
        "raw-manifest-garbled",
        "data_preprocessing",
        r"data/raw/manifest.json: .*JSON",
        break_it=write("data/raw/manifest.json", "{not json", "data_creation"),
    ),
    Case(
        "raw-of-another-dataset",
        "data_preprocessing",
        r"dataset='fashion_mnist' but params ask for 'temperature'",
        break_it=lambda root: relabel_manifest(root, "fashion_mnist"),
    ),
    # a user CSV (data_creation --csv)
    Case(
        "csv-infinite",
        "data_creation",
        r"mine.csv: line 2: temperature='inf' is outside",
        args=("--csv", "mine.csv"),
        break_it=user_csv("2024-01-01,north,1e400\n"),
    ),
    Case(
        "csv-out-of-range",
        "data_creation",
        r"mine.csv: line 3: temperature='75.5' is outside",
        args=("--csv", "mine.csv"),
        break_it=user_csv("2024-01-01,north,1\n2024-01-02,north,75.5\n"),
    ),
    Case(
        "csv-station-name",
        "data_creation",
        r"mine.csv: line 2: station='north#1' may hold only",
        args=("--csv", "mine.csv"),
        break_it=user_csv("2024-01-01,north#1,3\n"),
    ),
    Case(
        "csv-bad-date",
        "data_creation",
        r"mine.csv: line 2: date='01/02/2024' is not YYYY-MM-DD",
        args=("--csv", "mine.csv"),
        break_it=user_csv("01/02/2024,north,3\n"),
    ),
    Case("csv-missing", "data_creation", r"nowhere.csv", args=("--csv", "nowhere.csv")),
    Case(
        "csv-date-twice",
        "data_creation",
        r"line 3: station 'north' has date 2024-01-01 twice",
        args=("--csv", "mine.csv"),
        break_it=user_csv("2024-01-01,north,3\n2024-01-01,north,4\n"),
    ),
    # processed files
    Case(
        "processed-garbled",
        "model_testing",
        r"data/processed/test.parquet",
        break_it=write(
            "data/processed/test.parquet",
            b"PAR1 not really",
            "data_preprocessing",
            "model_preparation",
        ),
    ),
    Case(
        "processed-missing",
        "model_preparation",
        r"data/processed: missing; run data_preprocessing",
        break_it=remove("data/processed"),
    ),
    # the model folder
    Case(
        "mlmodel-garbled",
        "model_testing",
        r"models/model/MLmodel: not valid YAML",
        break_it=write("models/model/MLmodel", "flavors: [", "model_preparation"),
    ),
    Case(
        "model-file-not-skops",
        "model_testing",
        r"models/model/model.skops: cannot load",
        break_it=write("models/model/model.skops", "not a zip", "model_preparation"),
    ),
    Case(
        "model-of-another-flavor",
        "model_testing",
        r"MLmodel: not an MLflow sklearn model \(flavors: python_function\)",
        break_it=write(
            "models/model/MLmodel", "flavors:\n  python_function: {}\n", "model_preparation"
        ),
    ),
    Case(
        "model-changed-by-hand",
        "model_testing",
        r"models: not the output of a finished model_preparation",
        break_it=write("models/model/model.skops", "edited"),
    ),
    Case(
        "metrics-changed-by-hand",
        "model_registration",
        r"reports/metrics.json: not the output of a finished model_testing",
        break_it=write("reports/metrics.json", "{}"),
    ),
    # the MLflow store
    Case(
        "store-garbled",
        "data_creation",
        r"mlflow.db: not a usable MLflow store \(file is not a database\)",
        break_it=write(".mlflow/mlflow.db", os.urandom(4096)),
        within_s=FAILS_FAST,
    ),
    Case(
        "store-locked",
        "data_creation",
        r"mlflow.db: not a usable MLflow store \(database is locked\)",
        break_it=locked_store,
        within_s=FAILS_FAST,
    ),
    Case(
        "server-not-answering",
        "data_creation",
        r"MLFLOW_TRACKING_URI=http://127.0.0.1:9: the tracking server does not answer",
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
        within_s=FAILS_FAST,
    ),
    Case(
        "pipeline-server-not-answering",
        "pipeline.sh",
        r"MLFLOW_TRACKING_URI=http://127.0.0.1:9: the tracking server does not answer",
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
        within_s=FAILS_FAST,
    ),
    # the file system
    Case(
        "read-only",
        "data_creation",
        r"data/raw: Read-only file system \(the file system is read-only\)",
        patch=failing("lab1.core.kinds.tables:write_raw", READ_ONLY),
    ),
    Case(
        "disk-full",
        "model_preparation",
        r"models: No space left on device \(the disk is full",
        patch=failing("lab1.core.kinds.tables:train", DISK_FULL),
    ),
    Case(
        "no-permission",
        "model_testing",
        r"reports/metrics.json: Permission denied \(check the permissions of the folder\)",
        patch=failing("lab1.model_testing:write_json", NO_PERMISSION),
    ),
    # a bug: one line that says so; -v shows the traceback
    Case(
        "unexpected-exception",
        "model_testing",
        r"model_testing failed: unexpected ZeroDivisionError: boom "
        r"\(a bug in the project; -v shows the traceback\)",
        patch=failing("lab1.core.kinds.tables:evaluate", ZeroDivisionError("boom")),
    ),
]


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Project:
    """A project whose pipeline ran once (in-process): every output exists, version 1 serves."""
    project = Project(copy_project(tmp_path_factory.mktemp("bad-inputs") / "base"))
    for stage in STAGES:
        assert project.run(stage, *SMALL).returncode == 0, stage
    return project


def copy_of(project: Project, dest: Path) -> Project:
    shutil.copytree(project.root, dest, symlinks=True)
    return Project(dest)


def fingerprint(root: Path) -> dict[str, str | None]:
    return {p: tree_sha256(root / p) if (root / p).exists() else None for p in OUTPUTS}


def champion(root: Path) -> str:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"
    return str(
        MlflowClient(uri, registry_uri=uri).get_model_version_by_alias(NAME, "champion").version
    )


def run_case(project: Project, case: Case) -> tuple[int, str]:
    if case.stage == "pipeline.sh":
        done = subprocess.run(
            ["bash", str(project.root / "pipeline.sh"), *case.args],
            cwd=project.root,
            env=clean_env(**case.env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stderr
    small = SMALL if case.small else ()
    done = project.run(case.stage, *small, *case.args, **case.env)
    return done.returncode, done.stderr


def test_the_table_covers_every_kind_of_input():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_bad_input_is_one_line_and_nothing_is_lost(case, ran, tmp_path, monkeypatch):
    project = copy_of(ran, tmp_path / "project")
    monkeypatch.chdir(project.root)  # relative paths (--csv mine.csv) as a user types them
    case.break_it(project.root)
    holder = project.root / "holder.pid"
    before = fingerprint(project.root)
    if case.patch:
        case.patch(monkeypatch)
    started = time.monotonic()
    try:
        code, stderr = run_case(project, case)
    finally:
        if holder.exists():
            os.kill(int(holder.read_text()), 9)
            holder.unlink()
    took = time.monotonic() - started
    monkeypatch.undo()
    assert code == case.code, stderr
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr) if case.stage != "pipeline.sh" else stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert " ERROR " in lines[0], lines[0]  # the same form as every other error line
    assert re.search(case.expect, lines[0]), lines[0]
    assert fingerprint(project.root) == before  # nothing half-written, nothing overwritten
    assert not [p for p in project.root.rglob("*") if ".tmp-" in p.name]
    if case.id not in ("store-garbled", "store-locked"):
        assert champion(project.root) == "1"
    if case.within_s is not None:
        assert took < case.within_s, f"took {took:.1f} s"


def test_a_date_given_with_s_is_read_like_dvc_does(ran, tmp_path):
    """`-S ...start_date=2022-01-01` (unquoted, as `dvc exp run -S` takes it) is a date string."""
    project = copy_of(ran, tmp_path / "project")
    done = project.run("data_creation", *SMALL, "-S", f"{T}.start_date=2022-01-01")
    assert done.returncode == 0, done.stderr
    first = a_station(project.root, "train").read_text().splitlines()[1]
    assert first.startswith("2022-01-01,")


def test_with_v_an_unexpected_exception_shows_its_traceback(ran, tmp_path, monkeypatch):
    project = copy_of(ran, tmp_path / "project")
    failing("lab1.core.kinds.tables:evaluate", ZeroDivisionError("boom"))(monkeypatch)
    done = project.run("model_testing", *SMALL, "-v")
    assert (
        done.returncode == 1 and "Traceback" in done.stderr and "ZeroDivisionError" in done.stderr
    )
    runs = [r for r in project.runs() if r.data.tags["mlflow.runName"] == "model_testing"]
    assert runs[-1].info.status == "FAILED" and "boom" in runs[-1].data.tags["mlops.error"]
