"""What each stage reads and writes, and which params.yaml sections it uses.

The one declaration of the stages' file contracts that tools consume: lab4 renders DVC's
dvc.yaml from it (deps, params, outs, metrics, plots), so the stage list (lab1/core/stages.py)
and these contracts are never written twice by hand. The stage scripts' docstrings describe the
same files in prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab1.core.paths import PATHS
from lab1.core.stages import STAGES

if TYPE_CHECKING:
    from lab1.core.params import Params


@dataclass(frozen=True)
class StageIO:
    params: tuple[str, ...]  # params.yaml sections (or top-level keys) the stage reads
    reads: tuple[str, ...]  # files or folders, relative to the project root
    # DVC caches all of writes, metrics, plots and records (lab4/README.md says why).
    writes: tuple[str, ...] = ()  # the data and the model
    metrics: tuple[str, ...] = ()  # small JSON files DVC reads as metrics (`dvc metrics diff`)
    plots: tuple[str, ...] = ()
    records: tuple[str, ...] = ()  # other small outputs (model_registration's decision)
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


def used_by(params: Params, stage: str) -> dict[str, Any]:
    """The parameters ``stage``'s work reads for this dataset, as a plain dict: what its MLflow
    run shows (a gradient-boosting run lists no logistic-regression or CNN settings; a
    temperature run no CIFAR-10 source)."""
    data = params.model_dump()
    section, dataset = data[stage], params.dataset
    if stage == "data_creation":
        return {"seed": section["seed"], dataset: section[dataset]}
    if stage == "data_preprocessing":
        if params.is_image:
            return {"augmentation": {dataset: section["augmentation"][dataset]}}
        return {k: v for k, v in section.items() if k != "augmentation"}
    if stage == "model_preparation":
        if params.is_image:
            cnn = section["cnn"]
            return {"cnn": {"processes": cnn["processes"], dataset: cnn[dataset]}}
        chosen = section["estimator"]
        return {"estimator": chosen, "seed": section["seed"], chosen: section[chosen]}
    if stage == "model_registration":
        return {dataset: section[dataset], "tracking": data["tracking"]}
    return dict(section)


def run_params(params: Params, stage: str | None = None) -> dict[str, str]:
    """The MLflow params of ``stage``'s run: the dataset and what ``used_by`` lists, flattened
    (``hist_gradient_boosting.max_iter``). With no stage, the pipeline's (parent) run: every
    stage's, each under its stage's name (``model_preparation.estimator``)."""
    tree = used_by(params, stage) if stage else {name: used_by(params, name) for name in STAGES}
    return {"dataset": params.dataset} | {k: str(v) for k, v in flatten(tree).items()}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
