"""What every script shares on the command line: the options, logging to stderr, one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from lab1 import wrong_python
from lab1.core.errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    PipelineError,
    UsageError,
    did_you_mean,
    error_line,
    one_line,
    without_credentials,
)
from lab1.core.params import DATASETS, Params, load_params
from lab1.core.paths import PATHS, tracking_uri

logger = logging.getLogger("lab1.core.cli")  # also when run as __main__ (pipeline.sh)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a command-line mistake told in one line (exit 2), not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, error_line(self.prog, f"{message} (see --help)"))


def dataset_name(text: str) -> str:
    """--dataset's type: one of DATASETS, or a one-line mistake with a suggestion."""
    if text in DATASETS:
        return text
    raise argparse.ArgumentTypeError(
        f"unknown dataset {text!r}{did_you_mean(text, DATASETS)} (datasets: {', '.join(DATASETS)})"
    )


def stage_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the options every stage takes; ``doc`` is the stage module's docstring."""
    parser = OneLineParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--params", type=Path, default=PATHS.params, help="params file (default: %(default)s)"
    )
    parser.add_argument(
        "-S",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one parameter, e.g. -S model_preparation.seed=7 (repeatable; same syntax "
        "as `dvc exp run -S`)",
    )
    parser.add_argument(
        "--dataset",
        type=dataset_name,
        metavar="{" + ",".join(DATASETS) + "}",
        help="shortcut for -S dataset=NAME (default: params.yaml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


class ScrubbingFormatter(logging.Formatter):
    """Every log line, ours and the libraries' (MLflow's, uvicorn's), with a URI's credentials
    hidden (errors.without_credentials): MLFLOW_TRACKING_URI may hold a password."""

    def format(self, record: logging.LogRecord) -> str:
        return without_credentials(super().format(record))


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr: stdout is reserved for the accuracy line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # MLflow and its HTTP stack are chatty at INFO; their warnings still show.
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs every database error with its traceback before raising it; the scripts report
    # the error they catch as one line (-v shows it all).
    logging.getLogger("mlflow.store.db.utils").setLevel(
        logging.DEBUG if verbose else logging.CRITICAL
    )


def params_from_args(args: argparse.Namespace, extra: list[str] | None = None) -> Params:
    """params.yaml (--params) with the -S overrides, then ``extra`` (a stage's own options that
    stand for params keys), then --dataset."""
    overrides = list(args.overrides) + list(extra or [])
    if args.dataset:
        overrides.append(f"dataset={args.dataset}")
    return load_params(args.params, overrides)


def run_script(name: str, body: Callable[[], int]) -> int:
    """Run a script's body; every failure becomes one ERROR line and an exit code: 2 for a
    command-line mistake, 1 for anything else. No traceback reaches the user unless -v asked
    for it: an unexpected exception is a bug in the project, and the line says so (a library
    missing from the Python that runs it is not: lab1.wrong_python says which Python to use)."""
    try:
        return body()
    except UsageError as exc:
        logger.error("%s: %s", name, exc)
        return EXIT_USAGE
    except PipelineError as exc:
        logger.error("%s failed: %s", name, exc)
        return EXIT_ERROR
    except OSError as exc:  # the environment: read-only or full disk, a missing permission
        logger.error("%s failed: %s", name, os_error_line(exc))
        return EXIT_ERROR
    except Exception as exc:
        if (line := wrong_python(exc)) is not None:  # a Python without the project's libraries
            logger.error("%s", line)
            return EXIT_ERROR
        if is_store_error(exc):  # the tracking store failed (a full disk, a broken database)
            logger.error("%s failed: %s", name, store_error_line(exc))
            return EXIT_ERROR
        if logger.isEnabledFor(logging.DEBUG):
            logger.exception("%s failed: unexpected %s (a bug)", name, type(exc).__name__)
        else:
            logger.error(
                "%s failed: unexpected %s: %s (a bug in the project; -v shows the traceback)",
                name,
                type(exc).__name__,
                one_line(exc),
            )
        return EXIT_ERROR


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for the duration: a few writes that must happen together
    (the champion alias and the records that say so) finish, then the signal acts as usual.

    The handlers are swapped rather than the signals masked: a mask holds only this thread,
    and the libraries' threads (MLflow's, SQLAlchemy's) would take the signal instead."""
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda n, _f: caught.append(n)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:  # delivered again, now, to the usual handler
            os.kill(os.getpid(), caught[0])


class Terminated(BaseException):
    """Raised in place of SIGTERM's default action, so that a run is ended, not abandoned."""


def raise_terminated(signum: int, _frame: object) -> None:
    """A SIGTERM handler: raise Terminated (tracking.stage_run ends its run KILLED)."""
    raise Terminated(f"signal {signum}")


def is_store_error(exc: BaseException) -> bool:
    """An error raised by the tracking store's libraries (MLflow, SQLAlchemy, sqlite3)."""
    return type(exc).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "sqlite3")


def store_name(uri: str) -> str:
    """The tracking store as a message names it: its SQLite file, or its URI without the
    credentials it may hold."""
    return uri.removeprefix("sqlite:///") if uri.startswith("sqlite:") else without_credentials(uri)


def store_error_line(exc: BaseException) -> str:
    """A tracking-store error as one line naming the store (no credentials)."""
    store = store_name(tracking_uri())
    message = without_credentials(one_line(exc))
    hint = " (the disk is full: free some space)" if "disk is full" in message else ""
    return f"MLflow store {store}: {message}{hint}"


PROBE_TIMEOUT_S = 5.0


def check_store(uri: str) -> None:
    """Fail fast, before any work, with one PipelineError line when the store cannot be used: a
    tracking server that does not answer within PROBE_TIMEOUT_S, or an embedded SQLite file
    that is not a database or is locked. Takes milliseconds, and imports no MLflow."""
    import sqlite3
    import urllib.error
    import urllib.request

    if uri.startswith("sqlite:"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.exists():
            return  # created on first use
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            ) as c:
                c.execute("pragma schema_version").fetchone()
            return
        except sqlite3.Error as exc:
            raise PipelineError(
                f"{db}: not a usable MLflow store ({one_line(exc)}); if another program holds "
                f"it, wait for it; if it is damaged, move it aside (mv {db} {db}.broken) to start "
                "anew"
            ) from None
    if not uri.startswith(("http://", "https://")):
        return
    # A new opener reads the proxy variables of now; urlopen() keeps the first it ever built.
    opener = urllib.request.build_opener()
    try:
        with opener.open(_health_request(uri), timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError as exc:  # `mlflow server` answers /health with 200 "OK"
        why = f"HTTP {exc.code} {exc.reason} for /health: a proxy, or not an MLflow server"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        why = one_line(reason) if isinstance(reason, BaseException) else str(reason)
    raise PipelineError(
        f"MLFLOW_TRACKING_URI={store_name(uri)}: the tracking server does not answer ({why}); "
        "check that `mlflow server` runs there, the host and port, and any proxy (or unset the "
        "variable for the embedded store)"
    )


def _health_request(uri: str) -> Any:
    """GET /health of the server at ``uri``. urllib would take "user:password@host" for a host
    name; MLflow (requests) sends such credentials, or MLFLOW_TRACKING_USERNAME and _PASSWORD
    first, as basic auth: so does this, to the URI without them."""
    import base64
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    request = urllib.request.Request(f"{bare.rstrip('/')}/health")
    env = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    url = [urllib.parse.unquote(part or "") for part in (parts.username, parts.password)]
    user, password = env if all(env) else url
    if user or password:
        pair = f"{user}:{password}"
        request.add_header("Authorization", f"Basic {base64.b64encode(pair.encode()).decode()}")
    return request


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: the file, what the system said, and what to check."""
    hints = {
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "check the permissions of the folder",
        errno.EPERM: "check the permissions of the folder",
        errno.ENOSPC: "the disk is full: free some space",
        errno.EDQUOT: "the disk quota is used up",
    }
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or one_line(exc)
    hint = hints.get(exc.errno or 0)
    if hint is None and "No space left" in str(exc):  # a library's error with no errno
        hint = hints[errno.ENOSPC]
    return f"{where}{what}" + (f" ({hint})" if hint else "")


def check_main(argv: list[str] | None = None) -> int:
    """``python -m lab1.core.cli [OPTIONS]``: check the options every stage takes and the params
    they give, before any work (pipeline.sh runs it first): exit 0, or one line and 2 (a
    command-line mistake) or 1 (params.yaml)."""
    parser = stage_parser("Check the pipeline's options, params and tracking server; no work.")
    parser.prog = "pipeline.sh"
    parser.add_argument(
        "--experiment-name",
        action="store_true",
        help="print the MLflow experiment these params record into (the Makefile's mlflow-run)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    def check() -> int:
        from lab1.core.mlflow_ui import ui_base

        params = params_from_args(args)
        if args.experiment_name:
            sys.stdout.write(params.experiment_name + "\n")
        else:
            check_store(tracking_uri())  # now, rather than after the first stages' work
            ui_base()  # MLFLOW_UI_URL: the links the run prints at its end
        return EXIT_OK

    return run_script("pipeline.sh", check)


if __name__ == "__main__":
    raise SystemExit(check_main())
