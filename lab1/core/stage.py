"""What every stage script shares, as plain calls the script makes (no framework calls it):

    args = stage.parser(__doc__).parse_args(argv)      # --params, -S, --dataset, -v, --help
    return stage.exit_code("model_testing", args, test_model)

    def test_model(params: Params) -> int:
        with stage.run("model_testing", params) as run:  # MLflow child run, workspace, lineage
            ...                                           # the stage's work and its logging
        return 0

``exit_code`` loads params.yaml with the overrides and turns every expected failure into one
ERROR line and an exit code (cli.run_script). ``run`` holds the workspace (one pipeline per
checkout), opens the stage's MLflow run, checks that the stage's inputs are outputs of finished
runs of one execution, and, once the run has ended well, records the stage as finished.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.params import Params

if TYPE_CHECKING:
    from lab1.core.tracking.stage_run import StageRun

parser = stage_parser  # the options every stage takes; a script adds its own


def exit_code(
    name: str,
    args: argparse.Namespace,
    work: Callable[[Params], int],
    extra: list[str] | None = None,
) -> int:
    """Run ``work`` with the params the command line asks for (``extra``: params keys that a
    script's own options stand for); return its exit code, or 1/2 after one ERROR line."""
    setup_logging(args.verbose)
    return run_script(name, lambda: work(params_from_args(args, extra)))


@contextlib.contextmanager
def run(name: str, params: Params) -> Iterator[StageRun]:
    """The stage's MLflow run, inside the workspace, after its inputs were checked; the stage
    is recorded as finished (lineage.py) when the block ends without an exception."""
    from lab1.core import lineage
    from lab1.core.stage_io import stage_params
    from lab1.core.tracking.stage_run import stage_run
    from lab1.core.tracking.tags import code_state
    from lab1.core.workspace import workspace_held

    with workspace_held(f"lab1/{name}.py"):
        with stage_run(name, params) as tracked:
            # Inside the run: a refusal is recorded as the stage's FAILED run, with its reason.
            tracked.ancestry = lineage.check_inputs(name)
            yield tracked
        lineage.record_finished(
            name,
            tracked.ancestry,
            tracked.key,
            *tracked.ids_if_known(),
            code_state(),
            stage_params(params, name),
            tracked.notes,
            params.digest(),
        )


def process(main: Callable[[], int]) -> int:
    """A stage script's process: ``main``'s exit code, 130 after Ctrl-C and 143 after SIGTERM
    (the run already ended KILLED and said so: no traceback), without the 1 s that the
    interpreter's final garbage collection of MLflow's and scikit-learn's modules would cost."""
    from lab1.core.tracking.stage_run import Terminated

    try:
        return main()
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    finally:
        gc.freeze()
