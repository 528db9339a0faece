"""Stage 3/5: model preparation. The dataset's kind trains and logs the model; what models/
holds (the model folder and model.json, which stages 4-5 read) is replaced entry by entry,
model.json last, inside the folder (models/ may be a mount point, such as a Docker volume)."""

from __future__ import annotations

from lab1.core.io import atomic_contents, write_json
from lab1.core.kinds import Kind
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.runner import Stage
from lab1.core.tracking.stage_run import StageRun


def run(params: Params, kind: Kind, run: StageRun) -> int:
    with atomic_contents(PATHS.models, last=PATHS.model_info.name) as tmp:
        info = kind.prepare(params, run, tmp)
        # models/model.json: which run logged the model and where it is.
        write_json(
            tmp / PATHS.model_info.name,
            {"run_id": run.run_id, "pipeline_run_id": run.pipeline_run_id, **info},
        )
    run.add_output(PATHS.models)
    return 0


STAGE = Stage("model_preparation", run)
