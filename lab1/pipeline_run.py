"""Begin or end the MLflow parent run of one pipeline execution (used by pipeline.sh, Jenkins).

  .venv/bin/python -m lab1.pipeline_run begin --owner-pid PID   prints the run id (pipeline.sh)
  .venv/bin/python -m lab1.pipeline_run begin --context         keeps it in .mlops/pipeline_run.json
  .venv/bin/python -m lab1.pipeline_run end [RUN_ID] --status FINISHED|FAILED|KILLED

``begin`` also marks KILLED any run on this host whose process died. ``--context`` is for
callers with no process that lives as long as the pipeline (Jenkins runs each stage in a new
shell): stages find the run id in the context file, and ``end`` without RUN_ID reads it there.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import PipelineError
from lab1.core.io import read_json
from lab1.core.paths import PATHS

logger = logging.getLogger("lab1.pipeline_run")
STATUSES = ("FINISHED", "FAILED", "KILLED")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser(
        "begin",
        parents=[stage_parser(None)],
        add_help=False,
        help="start the parent run; print its id",
    )
    owner = begin.add_mutually_exclusive_group(required=True)
    owner.add_argument("--owner-pid", type=int, help="the process that will end the run")
    owner.add_argument(
        "--context",
        action="store_true",
        help=f"no owning process: keep the run id in {PATHS.run_context}",
    )
    end = commands.add_parser("end", help="end the parent run")
    end.add_argument("run_id", nargs="?", help="default: the id in the run-context file")
    end.add_argument("--status", choices=STATUSES, required=True)
    end.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from lab1.core.tracking import begin_pipeline, end_pipeline

        if args.command == "begin":
            owner = None if args.context else args.owner_pid
            sys.stdout.write(begin_pipeline(params_from_args(args), owner) + "\n")
            return 0
        if args.run_id is None and not PATHS.run_context.exists():
            # A build that failed before --begin has no run to end: say so, do not fail again.
            logger.warning("%s not found: no pipeline run to end", PATHS.run_context)
            return 0
        run_id = args.run_id or str(read_json(PATHS.run_context).get("run_id", ""))
        if not run_id:
            raise PipelineError(f"{PATHS.run_context}: no run_id; nothing to end")
        end_pipeline(run_id, args.status)
        return 0

    return run_script("pipeline_run", body)


if __name__ == "__main__":
    import gc

    code = main()
    gc.freeze()  # skip collecting MLflow's module graph at exit (about 1 s); the run has ended
    raise SystemExit(code)
