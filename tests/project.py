"""A fresh copy of the project to run the real scripts in (tests and benchmarks share it).

Never imports pytest: bench/ scripts use it in the default environment, where pytest is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Small but real: one year per station keeps an end-to-end run short.
SMALL = ("-S", "data_creation.temperature.years=1")


# Run outputs and environments: never part of a copy (the same folders .gitignore lists).
NOT_COPIED = {
    ".git",
    ".venv",
    ".uv",
    ".mlflow",
    ".mlops",
    "data",
    "models",
    "reports",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}


def tracked_files(root: Path) -> list[str]:
    """What a fresh clone would contain (tracked files plus new files git does not ignore).

    Outside a git checkout (a copy made by another test), every file not under NOT_COPIED.
    """
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
    )
    if done.returncode == 0:
        return [name for name in done.stdout.decode().split("\0") if name]
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not NOT_COPIED & set(path.relative_to(root).parts)
    ]


# What the test command may leave in a checkout: the environments pipeline.sh and tests/tools.sh
# install before the tests start, and the caches of Python and of the linters run.sh runs first.
# Coverage data (.coverage*) is written by the test command itself, after the tests.
ENVIRONMENTS = {".venv", ".uv", "lab2/lint/node_modules"}  # paths from the checkout's root
CACHES = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}  # names, anywhere


def checkout_files(
    root: Path, skip: set[str] = CACHES, tracked: Collection[str] = ()
) -> dict[str, tuple[int, int] | None]:
    """Every file and folder under ``root`` but ENVIRONMENTS, coverage data, the folders named
    in ``skip`` and the ``tracked`` files: its path relative to ``root`` -> (size, modification
    time in ns), None for a folder. Two of these, before and after a test run, say what the run
    wrote (``written``)."""
    found: dict[str, tuple[int, int] | None] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if d not in skip and (here / d).as_posix() not in ENVIRONMENTS]
        found.update({(here / d).as_posix() + "/": None for d in dirs})
        for name in files:
            path = (here / name).as_posix()
            if path in tracked or (here == Path(".") and name.startswith(".coverage")):
                continue
            try:
                stat = os.lstat(Path(folder) / name)
            except FileNotFoundError:  # removed since the listing (a process still running)
                continue
            found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


def git_tracked(root: Path) -> set[str]:
    """The files git tracks in the checkout at ``root`` (none outside a git checkout)."""
    done = subprocess.run(["git", "ls-files", "--cached", "-z"], cwd=root, capture_output=True)
    if done.returncode:
        return set()
    return {name for name in done.stdout.decode().split("\0") if name}


def written(
    before: dict[str, tuple[int, int] | None], after: dict[str, tuple[int, int] | None]
) -> list[str]:
    """What changed between two ``checkout_files``: each new, changed or removed file, saying
    which (a folder only when nothing under it is named: an empty one)."""
    new = _innermost([path for path in after if path not in before])
    removed = _innermost([path for path in before if path not in after])
    changed = [path for path in after if path in before and after[path] != before[path]]
    return sorted(
        [
            *(f"{path} (new)" for path in new),
            *(f"{path} (changed)" for path in changed),
            *(f"{path} (removed)" for path in removed),
        ]
    )


def _innermost(paths: list[str]) -> list[str]:
    """``paths`` without the folders (ending in /) that hold another of them."""
    return [p for p in paths if not any(q != p and q.startswith(p) for q in paths if p[-1] == "/")]


def copy_project(dest: Path) -> Path:
    for name in tracked_files(REPO):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell would have, pointed at the test's Python environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MLOPS_", "BUILD_", "JOB_")) and k != "PYTHONPATH"
    }
    env["MLOPS_VENV"] = sys.prefix
    env.update(extra)
    return env


@dataclass
class Project:
    """A copy of the project in a temporary folder, with helpers to run its entry points."""

    root: Path

    def pipeline(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(self.root / "pipeline.sh"), *args],
            cwd=self.root,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_pipeline(
        self, *args: str, env: dict[str, str] | None = None, **popen: Any
    ) -> subprocess.Popen:
        """Start pipeline.sh without waiting (stdout/stderr piped, text mode)."""
        return subprocess.Popen(
            ["bash", str(self.root / "pipeline.sh"), *args],
            cwd=self.root,
            env=env or clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **popen,
        )

    def start_stage(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        """Start ``python -m lab1.<name>`` without waiting (stderr piped, text mode)."""
        return subprocess.Popen(
            [sys.executable, "-m", f"lab1.{name}", *args],
            cwd=self.root,
            env=clean_env(PYTHONPATH=str(self.root), **env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, name: str, *args: str, **env: str) -> StageResult:
        """Run one stage in this process (fast: no interpreter start, imports paid once)."""
        return run_stage_in_process(self.root, name, *args, env=env)

    def stage(self, name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        """Run one stage script as its own process (``python -m lab1.<name>``), as a user
        would: for tests where the process boundary is the point."""
        return subprocess.run(
            [sys.executable, "-m", f"lab1.{name}", *args],
            cwd=self.root,
            env=clean_env(PYTHONPATH=str(self.root), **env),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def client(self):
        from mlflow.tracking import MlflowClient

        uri = f"sqlite:///{self.root / '.mlflow' / 'mlflow.db'}"
        return MlflowClient(uri, registry_uri=uri)

    def runs(self, experiment: str = "lab1-temperature") -> list:
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def vouch_for(root: Path, stage: str) -> None:
    """Record ``stage``'s outputs in the project copy at ``root``, as they are now, as those of a
    finished run: the MLflow run of the stage that made exactly these files would leave. Tests
    that hand-craft bad data use it to reach the checks behind provenance (lab1/core/lineage.py),
    which otherwise refuses files that no finished run made."""
    import mlflow

    from lab1.core import lineage, records
    from lab1.core.mlflow_ui import experiment_id
    from lab1.core.params import load_params
    from lab1.core.paths import project_at
    from lab1.core.stage_io import STAGE_IO
    from lab1.core.tracking import connect

    # connect() points MLflow at the copy's store (MLflow keeps that in MLFLOW_TRACKING_URI):
    # the test process's environment is left as found.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("MLFLOW_")}
    try:
        with project_at(root) as paths:
            client = connect()
            params = load_params(paths.params)
            experiment = experiment_id(client, params.experiment_name)
            # The real, finished runs behind the inputs.
            ancestry = lineage.check_inputs(stage, client, [experiment], params.dataset)
            reads = [
                records.PathDataset(root / p, ancestry.digests[p]) for p in STAGE_IO[stage].reads
            ]
            outputs = [records.PathDataset(root / p) for p in records.outputs_of(stage)]
            with mlflow.start_run(experiment_id=experiment, run_name=stage):
                for dataset in reads:
                    mlflow.log_input(dataset, context="input")
                for dataset in outputs:
                    mlflow.log_input(dataset, context="output")
    finally:
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(saved)


def reseal_raw(root: Path, name: str, edit: Callable[[str], str]) -> None:
    """Change the raw file ``name`` (relative to data/raw) with ``edit``, update its digest in
    the manifest and vouch for data/raw: as if data_creation had made it so (tests of the checks
    behind the manifest and provenance)."""
    import json

    from lab1.core.io import file_sha256

    path = root / "data" / "raw" / name
    path.write_text(edit(path.read_text()))
    manifest_path = root / "data" / "raw" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        if entry["path"] == name:
            entry["sha256"] = file_sha256(path)
    manifest_path.write_text(json.dumps(manifest))
    vouch_for(root, "data_creation")


@dataclass
class StageResult:
    """What an in-process stage run returned and printed (as subprocess.CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


def run_stage_in_process(
    root: Path, name: str, *args: str, env: dict[str, str] | None = None
) -> StageResult:
    """Run stage ``name`` in this process against the project copy in ``root``: the stage
    script's own ``main`` (its stage.run, the MLflow run recorded in-process), with
    stdout and stderr captured, and the test process's environment and logging left as found.
    ``env``: variables to set for the run (MLFLOW_* and MLOPS_* are cleared first)."""
    import contextlib
    import importlib
    import io
    import logging

    from lab1.core.paths import project_at

    script = importlib.import_module(f"lab1.{name}")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("MLFLOW_", "MLOPS_"))}
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level
    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    try:
        with project_at(root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = script.main(list(args))
    finally:
        root_logger.handlers[:] = handlers
        root_logger.setLevel(level)
        for key in [*(env or {}), *os.environ]:  # also what MLflow set (MLFLOW_TRACKING_URI)
            if key in (env or {}) or key.startswith(("MLFLOW_", "MLOPS_")):
                os.environ.pop(key, None)
        os.environ.update(saved)
    return StageResult(code, out.getvalue(), err.getvalue())


def changed(section: Any, **changes: Any) -> Any:
    """A params section with some values changed (params models are frozen)."""
    return section.model_copy(update=changes)


def preprocessing(**changes: Any) -> Any:
    """params.yaml's data_preprocessing section with ``changes``: what a test builds its
    preprocessor from, so that a new option of the stage reaches every test with its value."""
    from lab1.core.params import load_params
    from lab1.core.paths import PATHS

    return changed(load_params(PATHS.params).data_preprocessing, **changes)


def param_change(
    key: str, value: Any = None, *, text: str | None = None, rename: str | None = None
) -> Callable[[Path], None]:
    """An edit of one key of a project's params.yaml, keeping its other lines and comments, that
    reads the current value instead of pinning the file's text (so a new fault kind or station
    changes no test). ``key`` is dotted (``data_creation.temperature.years``); the new value is
    ``value`` (a Python value, or a function of the current one, written as JSON, which YAML
    reads), or ``text`` (raw YAML, possibly broken on purpose); ``rename`` renames the key."""
    import json

    import yaml

    def edit(root: Path) -> None:
        path = root / "params.yaml"
        lines = path.read_text().splitlines(keepends=True)
        parts = key.split(".")
        line_no, indent, depth = _find_key(lines, parts)
        name, inner = parts[depth - 1], parts[depth:]  # inner: keys inside a {flow: mapping}
        line = lines[line_no]
        head, rest = line[: indent + len(name) + 1], line[indent + len(name) + 1 :]
        old_text, hash_, comment = rest.partition(" #")
        if rename:
            assert not inner, key
            head = " " * indent + rename + ":"
        if text is not None:
            new_text = text
        elif value is None:
            new_text = old_text.strip()
        else:
            current = yaml.safe_load(old_text) if old_text.strip() else None
            if inner:
                if not isinstance(current, dict):
                    raise KeyError(f"params.yaml has no key {key}")
                target = current
                for part in inner[:-1]:
                    target = target[part]
                old = target[inner[-1]]
                target[inner[-1]] = value(old) if callable(value) else value
                new = current
            else:
                new = value(current) if callable(value) else value
            new_text = json.dumps(new)
        ending = "\n" if line.endswith("\n") else ""
        spaces = len(old_text) - len(old_text.rstrip())
        tail = " " * spaces + hash_ + comment.rstrip("\n") if hash_ else ""
        lines[line_no] = f"{head} {new_text}{tail}{ending}"
        path.write_text("".join(lines))

    return edit


def _find_key(lines: list[str], parts: list[str]) -> tuple[int, int, int]:
    """(line number, indentation, how many of ``parts`` it matched) of the deepest key of
    ``parts`` that has a line of its own in a YAML file's ``lines``."""
    start, parent_indent, found = 0, -1, None
    for depth, part in enumerate(parts, 1):
        child_indent = None
        for number in range(start, len(lines)):
            stripped = lines[number].lstrip(" ")
            if not stripped.strip() or stripped.startswith("#"):
                continue
            indent = len(lines[number]) - len(stripped)
            if indent <= parent_indent:
                break  # out of the parent's block
            child_indent = indent if child_indent is None else child_indent
            if indent == child_indent and stripped.startswith(f"{part}:"):
                found, start, parent_indent = (number, indent, depth), number + 1, indent
                break
        if found is None or found[2] != depth:
            if found is None:
                raise KeyError(f"params.yaml has no key {'.'.join(parts)}")
            return found
    assert found is not None
    return found
