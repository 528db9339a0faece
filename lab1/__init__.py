"""Lab 1: the five-stage pipeline (stage scripts) and the small library they share (lab1.core).

Also the first code of the project that any of its programs runs (lab3, lab4 and lab5 import it
first): standard library only, and no syntax newer than Python 3.7, so that a Python other than
the project's (a bare `python`, without its libraries, or too old) is told so in one line.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
NEEDS = (3, 11)  # pyproject.toml's requires-python


def wrong_python(exc: BaseException | None = None) -> str | None:
    """The line for a Python that cannot run the project: too old (``exc`` None), or without a
    library (``exc``, a ModuleNotFoundError for a module that is not the project's own: a
    missing module of the project's is a bug). None when ``exc`` is anything else."""
    module = None
    if exc is None:
        have, need = "{}.{}".format(*sys.version_info[:2]), "{}.{}".format(*NEEDS)
        why = f"this is Python {have}; the project needs {need}"
    elif isinstance(exc, ModuleNotFoundError) and exc.name:
        module = exc.name.split(".")[0]
        if (ROOT / module).is_dir() or (ROOT / f"{module}.py").is_file():
            return None
        why = f"missing module {module!r}"
    else:
        return None
    name, how = _command()
    ours = {os.path.realpath(ROOT / ".venv"), os.path.realpath(os.environ.get("MLOPS_VENV", ROOT))}
    if module and os.path.realpath(sys.prefix) in ours:  # the right Python, but incomplete
        return (
            f"{name}: the project's Python environment {sys.prefix} has no module {module!r}: "
            "bash pipeline.sh --setup --dev adds the tools of requirements-dev.lock (DVC, "
            "Jupyter, the tests'); without a library of requirements.lock it is damaged: remove "
            "it and run bash pipeline.sh --setup"
        )
    return (
        f"{name} needs the project's Python environment ({why}): run it as .venv/bin/python"
        f"{how}, or `source .venv/bin/activate` first; bash pipeline.sh --setup creates .venv"
    )


def _command() -> tuple[str, str]:
    """What this process runs, and how to run it again after ".venv/bin/python": a module
    ("lab1.lineage", " -m lab1.lineage"), a file, or ("this", "") for an interactive Python."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    argv = getattr(sys, "orig_argv", [])  # Python 3.10 on
    if spec is not None:  # python -m NAME, running NAME
        name = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
    elif sys.argv[:1] == ["-m"] and "-m" in argv[:-1]:  # python -m NAME, importing its package
        name = argv[argv.index("-m") + 1]
    elif sys.argv[:1] not in ([], [""], ["-c"]):  # python FILE
        return sys.argv[0], f" {sys.argv[0]}"
    else:
        return "this", ""
    return name, f" -m {name}"


def _excepthook(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    """Ctrl-C is not a bug: no traceback, whenever it lands (even while modules still import).
    The process still ends as killed by SIGINT, which a shell reports as exit 130. Nor is a
    Python without the project's libraries: one line (exit 1), whichever import found it."""
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        return
    line = wrong_python(value)
    if line is not None:
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} ERROR {line}\n")
        return
    sys.__excepthook__(kind, value, traceback)


sys.excepthook = _excepthook
# MLflow's telemetry sends usage events to MLflow's host from every process that imports it. An
# offline-first project whose users were never asked keeps it off (MLflow reads this when it
# sends); a user who wants it sets MLFLOW_DISABLE_TELEMETRY=false. lab3-5 import lab1 first.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
if sys.version_info < NEEDS:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} ERROR {wrong_python()}\n")
    raise SystemExit(1)
