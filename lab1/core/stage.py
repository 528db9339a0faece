"""What every stage script shares, as plain calls the script makes (no framework calls it):

    args = stage.parser(__doc__).parse_args(argv)      # --params, -S, --dataset, -v, --help
    return stage.exit_code("model_testing", args, test_model)

    def test_model(params: Params) -> int:
        with stage.run("model_testing", params) as run:  # mlflow.start_run, lineage
            mlflow.log_params(run.params)                 # the stage's own MLflow calls
            ...
        return 0

``exit_code`` loads params.yaml with the overrides, holds the workspace (one pipeline per
checkout) and turns every expected failure into one ERROR line and an exit code
(cli.run_script). ``run`` starts the stage's MLflow run (tracking.stage_run), checks that the
stage's inputs are outputs of finished runs of one execution (lineage.py) and logs them as the
run's input datasets: with the outputs the script logs, MLflow's dataset records are the
pipeline's provenance.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab1.core.cli import Terminated, params_from_args, run_script, setup_logging, stage_parser
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.stage_io import STAGE_IO, check_declared, run_params, used_by
from lab1.core.workspace import workspace_held

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
    script's own options stand for), holding the workspace (one pipeline per checkout: taken
    before the work imports MLflow, so that a second pipeline waits at once); return its exit
    code, or 1/2 after one ERROR line."""
    setup_logging(args.verbose)

    def held() -> int:
        params = params_from_args(args, extra)
        with workspace_held(f"lab1/{name}.py"):
            return work(params)

    return run_script(name, held)


@dataclass
class StageRun:
    """The stage's MLflow run as its script uses it."""

    stage: str
    run_id: str
    experiment_id: str
    pipeline_run_id: str | None  # the parent run; None when the stage runs alone
    params: dict[str, str]  # the part of params.yaml the stage uses: its run's params
    ancestry: Ancestry  # the finished runs behind the inputs (lineage.check_inputs)

    def dataset(self, path: Path, context: str = "input") -> Dataset:
        """``path`` (a file or folder the stage declares, stage_io.py) as an MLflow dataset
        named by its path, with its content digest (records.PathDataset), for
        ``mlflow.log_input``."""
        from lab1.core.records import PathDataset

        check_declared(self.stage, path, "reads" if context == "input" else "writes")
        # An input was hashed by the input check, and cannot change while the workspace is held.
        known = self.ancestry.digests.get(PathDataset.name_of(path)) if context == "input" else None
        return PathDataset(path, known)


@contextlib.contextmanager
def run(name: str, params: Params) -> Iterator[StageRun]:
    """The stage's MLflow run, with its inputs checked and logged: when the run ends FINISHED,
    the outputs the script logged are vouched for (lineage.py)."""
    import mlflow

    from lab1.core import lineage
    from lab1.core.tracking import stage_run

    with stage_run(name, params) as active:
        info, client = active.info, mlflow.MlflowClient()
        parent = active.data.tags.get("mlflow.parentRunId")
        here = StageRun(
            name, info.run_id, info.experiment_id, parent, run_params(params, name),
            lineage.Ancestry(),
        )  # fmt: skip
        # The params the stage used, typed (MLflow's params are strings): the model's lineage.
        # A setting it does not read for this dataset (the CNN's epochs for a temperature
        # model) is left out: it does not make another model.
        used = {"dataset": params.dataset, name: used_by(params, name)}
        mlflow.set_tag("mlops.params", json.dumps(used, sort_keys=True))
        # Inside the run: a refusal is recorded as the stage's FAILED run, with its reason.
        here.ancestry = lineage.check_inputs(name, client, [info.experiment_id], params.dataset)
        for path in STAGE_IO[name].reads:  # what the next stage's check follows back
            mlflow.log_input(here.dataset(PATHS.root / path), context="input")
        yield here


def process(main: Callable[[], int]) -> int:
    """A stage script's process: ``main``'s exit code, 130 after Ctrl-C and 143 after SIGTERM
    (the run already ended KILLED and said so: no traceback), without the 1 s that the
    interpreter's final garbage collection of MLflow's and scikit-learn's modules would cost."""
    try:
        return main()
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    finally:
        gc.freeze()
