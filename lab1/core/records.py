"""The records of files in MLflow: every stage run logs each file or folder it read (context
"input") and wrote ("output") as a PathDataset, named by its path, with its content digest; and
the queries that find, by content, the finished run that wrote a file (lineage.py builds on them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.data.dataset_source_registry import get_registered_sources
from mlflow.data.meta_dataset import MetaDataset

from lab1.core.io import file_digests, tree_sha256
from lab1.core.paths import PATHS
from lab1.core.stage_io import STAGE_IO

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

DIGEST = 16  # hex digits of a content digest that a dataset record keeps


def outputs_of(stage: str) -> tuple[str, ...]:
    """The outputs a stage's run vouches for (those DVC tracks; not plots or caches)."""
    io = STAGE_IO[stage]
    return io.writes + io.metrics + io.records


def producer_of(path: str) -> str:
    """The stage that writes ``path`` (a declared output, relative to the project root)."""
    for stage in STAGE_IO:
        if path in outputs_of(stage):
            return stage
    raise ValueError(f"no stage declares {path} as an output")  # a bug in stage_io.py


class PathDataset(MetaDataset):
    """A file or folder of the project as an MLflow dataset: named by its path, with its content
    digest (``known``, else computed); a folder's also lists the digest of each of its files
    (its profile), so that a refusal can name the file that changed."""

    def __init__(self, path: Path, known: str | None = None):
        self.files = None
        if known is None and path.is_dir():
            self.files = {k: v[:DIGEST] for k, v in file_digests(path).items()}
        # MLflow's source for local files (its class is made at run time: no name to import).
        local: Any = next(s for s in get_registered_sources() if s._get_source_type() == "local")
        content = known or tree_sha256(path)
        super().__init__(local(path.resolve().as_uri()), self.name_of(path), content[:DIGEST])

    @staticmethod
    def name_of(path: Path) -> str:
        return path.relative_to(PATHS.root).as_posix()

    @property
    def profile(self) -> dict[str, Any] | None:
        return None if self.files is None else {"files": self.files}

    def to_dict(self) -> dict[str, str]:
        config = super().to_dict()
        if self.files is not None:
            config["profile"] = json.dumps(self.profile, sort_keys=True)
        return config


def datasets(run: Run, context: str) -> dict[str, Any]:
    """The datasets ``run`` logged with ``context`` ("input"/"output"), by name."""
    logged = run.inputs.dataset_inputs if run.inputs else []
    tagged = [(d.dataset, {t.key: t.value for t in d.tags}) for d in logged]
    return {d.name: d for d, tags in tagged if tags.get("mlflow.data.context") == context}


def finished_runs(client: MlflowClient, experiments: list[str], stage: str, query: str = ""):
    """The FINISHED runs of ``stage``, newest first (``query``: more of the filter)."""
    where = f"attributes.run_name = '{stage}' AND attributes.status = 'FINISHED'" + query
    return client.search_runs(experiments, where, order_by=["attributes.end_time DESC"])


def find(client: MlflowClient, experiments: list[str], path: str, content: str) -> Run | None:
    """The newest FINISHED run of ``path``'s producer that wrote ``content`` to it."""
    query = f" AND datasets.name = '{path}' AND datasets.digest = '{content}'"
    for run in finished_runs(client, experiments, producer_of(path), query):
        written = datasets(run, "output").get(path)
        if written is not None and written.digest == content:
            return run
    return None
