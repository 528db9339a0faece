"""What every stage script shares, as plain calls the script makes (no framework calls it):

    args = stage.parser(__doc__).parse_args(argv)      # --params, -S, --dataset, -v, --help
    return stage.exit_code("model_testing", args, test_model)

    def test_model(params: Params) -> int:
        with stage.run("model_testing", params) as run:  # mlflow.start_run, workspace, lineage
            mlflow.log_params(run.params)                 # the stage's own MLflow calls
            ...
        return 0

``exit_code`` loads params.yaml with the overrides and turns every expected failure into one
ERROR line and an exit code (cli.run_script). ``run`` holds the workspace (one pipeline per
checkout), starts the stage's MLflow run (tracking.stage_run), checks that the stage's inputs are
outputs of finished runs of one execution, and, once the run has ended well, records the stage as
finished.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.params import Params

if TYPE_CHECKING:
    from mlflow.data.dataset import Dataset

    from lab1.core.lineage import Ancestry

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


@dataclass
class StageRun:
    """The stage's MLflow run as its script uses it."""

    stage: str
    run_id: str
    experiment_id: str
    pipeline_run_id: str | None  # the parent run; None when the stage runs alone
    params: dict[str, str]  # the part of params.yaml the stage uses: its run's params
    ancestry: Ancestry  # the finished runs behind the inputs (lineage.check_inputs)
    notes: dict[str, str] = field(default_factory=dict)  # facts for the lineage record

    def dataset(self, path: Path, context: str = "input") -> Dataset:
        """``path`` (a file or folder the stage declares, stage_io.py) as an MLflow dataset
        named by its path, with its content digest, for ``mlflow.log_input``."""
        from mlflow.data.dataset_source_registry import get_registered_sources
        from mlflow.data.meta_dataset import MetaDataset

        from lab1.core.io import file_sha256, tree_sha256
        from lab1.core.paths import PATHS
        from lab1.core.stage_io import check_declared

        check_declared(self.stage, path, "reads" if context == "input" else "writes")
        name = path.relative_to(PATHS.root).as_posix()
        # An input was hashed by the input check, and cannot change while the workspace is held.
        known = self.ancestry.digests.get(name) if context == "input" else None
        digest = known or (file_sha256(path) if path.is_file() else tree_sha256(path))
        # MLflow's source for local files (its class is made at run time: no name to import).
        local: Any = next(s for s in get_registered_sources() if s._get_source_type() == "local")
        dataset: Any = MetaDataset  # mypy: its abstract `profile` is a property it defines
        return dataset(local(path.resolve().as_uri()), name=name, digest=digest[:16])


@contextlib.contextmanager
def run(name: str, params: Params) -> Iterator[StageRun]:
    """The stage's MLflow run, inside the workspace, after its inputs were checked; the stage
    is recorded as finished (lineage.py) when the block ends without an exception."""
    from lab1.core import lineage
    from lab1.core.stage_io import run_params, stage_params
    from lab1.core.tracking import code_state, stage_run
    from lab1.core.workspace import workspace_held

    with workspace_held(f"lab1/{name}.py"):
        with stage_run(name, params) as active:
            here = StageRun(
                name,
                active.info.run_id,
                active.info.experiment_id,
                active.data.tags.get("mlflow.parentRunId"),
                run_params(params, name),
                lineage.Ancestry(),
            )
            # Inside the run: a refusal is recorded as the stage's FAILED run, with its reason.
            here.ancestry = lineage.check_inputs(name)
            yield here
        lineage.record_finished(
            name,
            here.ancestry,
            here.run_id,
            here.pipeline_run_id,
            code_state(),
            stage_params(params, name),
            here.notes,
            params.digest(),
        )


def process(main: Callable[[], int]) -> int:
    """A stage script's process: ``main``'s exit code, 130 after Ctrl-C and 143 after SIGTERM
    (the run already ended KILLED and said so: no traceback), without the 1 s that the
    interpreter's final garbage collection of MLflow's and scikit-learn's modules would cost."""
    from lab1.core.cli import Terminated

    try:
        return main()
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    finally:
        gc.freeze()
