"""The one runner every stage script calls: parse -> params -> kind -> stage run -> one line.

    raise SystemExit(runner.main_process(STAGE, __doc__))

1. parse the command line (the options every stage takes plus the stage's own);
2. load and validate params.yaml with the overrides;
3. choose the dataset kind (tables or images) once;
4. hold the workspace (one pipeline per checkout: workspace.py) and check that the stage's
   inputs are outputs of finished runs of one lineage (provenance.py);
5. open the stage's MLflow run (tracking/stage_run.py: the tracking service under pipeline.sh,
   in-process otherwise), which checks every recorded input and output against the stage's
   declared contract (stage_io.py);
6. run the stage's work (lab1/core/stages/<stage>.py), whose outputs are written atomically,
   and record the finished run with the digests of what it read and wrote;
7. turn an expected failure (PipelineError) into one ERROR line and exit 1.

Tests call ``main`` in-process (against a project copy: paths.project_at); the scripts call
``main_process``, which also skips the interpreter's final garbage collection.
"""

from __future__ import annotations

import argparse
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import EXIT_GATE_REJECTED, EXIT_OK
from lab1.core.params import Params

if TYPE_CHECKING:
    from lab1.core.kinds import Kind
    from lab1.core.tracking.stage_run import StageRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """A stage's work and its hooks into the runner (each stage module defines ``STAGE``)."""

    name: str
    run: Callable[[Params, Kind, StageRun], int]  # the work; returns the exit code
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    overrides: Callable[[argparse.Namespace], list[str]] | None = None  # options -> params keys
    without_run: Callable[[argparse.Namespace, Params], int | None] | None = None  # e.g. rollback
    after_run: Callable[[Params], None] | None = None  # after a successful run (stdout line)


def main(stage: Stage, doc: str | None, argv: list[str] | None = None) -> int:
    """Run ``stage`` with the command line ``argv``; return its exit code."""
    name = stage.name
    parser = stage_parser(doc)
    if stage.add_arguments:
        stage.add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        extra = stage.overrides(args) if stage.overrides else []
        params = params_from_args(args, extra)
        if stage.without_run and (code := stage.without_run(args, params)) is not None:
            return code
        from lab1.core import provenance
        from lab1.core.kinds import for_params
        from lab1.core.tracking.lineage import code_state
        from lab1.core.tracking.stage_run import stage_run
        from lab1.core.workspace import workspace_held

        kind = for_params(params)
        with workspace_held(f"lab1/{name}.py"):
            with stage_run(name, params) as run:
                # Inside the run: a refusal is recorded as the stage's FAILED run, with its reason.
                run.ancestry = provenance.check_inputs(name)
                code = stage.run(params, kind, run)
            if code in (EXIT_OK, EXIT_GATE_REJECTED):  # a rejection is a result too
                provenance.record_finished(
                    name,
                    run.ancestry,
                    run.key,
                    *run.ids_if_known(),
                    code_state(),
                    provenance.stage_params(params, name),
                    run.notes,
                )
        if code == EXIT_OK and stage.after_run:
            stage.after_run(params)
        return code

    return run_script(name, body)


def main_process(stage: Stage, doc: str | None) -> int:
    """``main`` for a stage process: the exit code, without the 1 s that the interpreter's final
    garbage collection of MLflow's and scikit-learn's module graphs would cost (every run has
    already ended)."""
    from lab1.core.tracking.stage_run import Terminated

    try:
        return main(stage, doc)
    except KeyboardInterrupt:  # Ctrl-C: the run already ended KILLED and said so; no traceback
        return 130
    except Terminated:  # SIGTERM, likewise
        return 143
    finally:
        gc.freeze()
