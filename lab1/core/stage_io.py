"""What each stage reads and writes, and which params.yaml sections it uses.

The one declaration of the stages' file contracts that tools consume: lab4 renders DVC's
dvc.yaml from it (deps, params, outs, metrics, plots), so the stage list (lab1/core/stages.py)
and these contracts are never written twice by hand. The stage scripts' docstrings describe the
same files in prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lab1.core.paths import PATHS
from lab1.core.stages import STAGES


@dataclass(frozen=True)
class StageIO:
    params: tuple[str, ...]  # params.yaml sections (or top-level keys) the stage reads
    reads: tuple[str, ...]  # files or folders, relative to the project root
    writes: tuple[str, ...] = ()  # outputs DVC caches
    metrics: tuple[str, ...] = ()  # small JSON outputs kept in git, not in DVC's cache
    plots: tuple[str, ...] = ()
    records: tuple[str, ...] = field(default=())  # other small outputs kept in git
    # Outputs DVC does not track: written for some datasets only, or a download cache.
    untracked: tuple[str, ...] = ()


def _rel(path) -> str:
    return path.relative_to(PATHS.root).as_posix()


CODE = "lab1/core"  # every stage imports the shared library

STAGE_IO: dict[str, StageIO] = {
    "data_creation": StageIO(
        params=("dataset", "data_creation"),
        reads=(),
        writes=(_rel(PATHS.raw),),
        untracked=(_rel(PATHS.data_cache),),
    ),
    "data_preprocessing": StageIO(
        params=("dataset", "data_preprocessing"),
        reads=(_rel(PATHS.raw),),
        writes=(_rel(PATHS.processed),),
    ),
    "model_preparation": StageIO(
        params=("dataset", "model_preparation"),
        reads=(_rel(PATHS.processed),),
        writes=(_rel(PATHS.models),),
    ),
    "model_testing": StageIO(
        params=("model_testing",),
        reads=(_rel(PATHS.models), _rel(PATHS.processed)),
        metrics=(_rel(PATHS.metrics),),
        plots=(_rel(PATHS.confusion_matrix_plot),),
        untracked=(_rel(PATHS.misclassified_plot),),
    ),
    "model_registration": StageIO(
        params=("model_registration", "tracking"),
        # The rest of the lineage (data, params, code) comes from the provenance records.
        reads=(_rel(PATHS.metrics), _rel(PATHS.models)),
        records=(_rel(PATHS.registration), _rel(PATHS.lineage)),
        # code.diff: only when the checkout has uncommitted changes; the staging folder: the
        # records before the champion alias moves (model_registration.py).
        untracked=(_rel(PATHS.code_diff), _rel(PATHS.registration_staging)),
    ),
}
assert tuple(STAGE_IO) == STAGES, "stage_io.py and stages.py list different stages"


class UndeclaredIO(Exception):
    """A stage recorded a file its contract (STAGE_IO) does not declare: a bug in the stage."""


def check_declared(stage: str, path: Path, kind: str) -> None:
    """Raise UndeclaredIO unless ``path`` lies under what ``stage`` declares: ``kind`` "reads"
    allows its reads and its own outputs, "writes" only its outputs."""
    io = STAGE_IO[stage]
    outputs = io.writes + io.metrics + io.plots + io.records + io.untracked
    allowed = io.reads + outputs if kind == "reads" else outputs
    resolved = path.resolve()
    if resolved.is_relative_to(PATHS.root):
        rel = resolved.relative_to(PATHS.root)
        if any(rel.is_relative_to(declared) for declared in allowed):
            return
    raise UndeclaredIO(
        f"{stage} {kind[:-1]}s {path}, which lab1/core/stage_io.py does not declare for it "
        f"(declared: {', '.join(allowed) or 'nothing'})"
    )
