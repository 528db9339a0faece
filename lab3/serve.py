"""Serve the registry's champion over HTTP (FastAPI on uvicorn with uvloop and httptools).

Requests are limited before they are parsed: headers to 64 KiB (431), bodies to MAX_BODY_BYTES
and rows to MAX_BATCH_ROWS (413), images to 4096x4096 pixels (413). A request's head and body
must arrive in time (408), and connections are capped: params.yaml's serving section.

    .venv/bin/python -m lab3.serve                       # models:/<dataset>-classifier@champion
    MODEL_URI=models/model .venv/bin/python -m lab3.serve --port 8080   # a local model folder

Settings come from the environment (MODEL_URI, MLFLOW_TRACKING_URI, POLL_INTERVAL_S,
MAX_BATCH_ROWS, MAX_BODY_BYTES, MLFLOW_UI_URL: see lab3/service/settings.py); the options below
override the first two. One process serves one model; scale out with more replicas behind a
load balancer (each is stateless and follows the alias by itself). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lab1.core.cli import setup_logging
from lab1.core.errors import EXIT_ERROR, PipelineError


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: %(default)s; 0.0.0.0 in the Docker image)",
    )
    cli.add_argument("--port", type=int, default=8080, help="default: %(default)s")
    cli.add_argument("--model-uri", help="overrides MODEL_URI")
    cli.add_argument("--poll-interval", type=float, help="seconds; overrides POLL_INTERVAL_S")
    cli.add_argument("--access-log", action="store_true", help="log every request (slower)")
    cli.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.model_uri:
        os.environ["MODEL_URI"] = args.model_uri
    if args.poll_interval is not None:
        os.environ["POLL_INTERVAL_S"] = str(args.poll_interval)
    # One request is one small predict: OpenMP thread start-up and hand-off would cost more
    # than the work, and the process would compete with its siblings for the same cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from lab1.core.mlflow_ui import ui_base
    from lab3.service.app import create_app
    from lab3.service.http import Limits, limited
    from lab3.service.settings import Settings

    try:
        ui_base()  # MLFLOW_UI_URL, for GET /model's links: a bad one is refused now
        settings = Settings.from_env()
        app = create_app(settings)
    except PipelineError as exc:
        logging.getLogger("lab3.serve").error("%s", exc)
        return EXIT_ERROR
    serving = settings.serving
    assert serving is not None  # from_env always reads params.yaml's
    limits = Limits(
        max_connections=connections_allowed(serving.max_connections),
        head_timeout_s=serving.head_timeout_s,
        body_timeout_s=serving.body_timeout_s,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        # httptools, with a limit on the request's headers (431), time limits on reading a
        # request (408) and a cap on connections
        http=limited(limits),
        timeout_keep_alive=serving.keep_alive_s,
        access_log=args.access_log,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


RESERVED_FILES = 100  # the process's own: model files, logs, the store, the log writer's pipes


def connections_allowed(wanted: int) -> int:
    """``wanted``, if the open-file limit can hold it beside the process's own files (raising
    the soft limit up to the hard one if need be); else as many as it can, said on stderr."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    allowed = max(1, soft - RESERVED_FILES)
    logging.getLogger("lab3.serve").warning(
        "params.yaml: serving.max_connections=%d is more than the open-file limit allows "
        "(ulimit -n %d): serving at most %d connections",
        wanted,
        soft,
        allowed,
    )
    return allowed


if __name__ == "__main__":
    sys.exit(main())
