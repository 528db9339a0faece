"""Stage 2/5: data preprocessing. Checks the raw data against its manifest; the dataset's kind
writes data/processed (fitted on the train split only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab1.core.errors import DataError
from lab1.core.io import file_sha256, read_json
from lab1.core.kinds import Kind
from lab1.core.params import Params
from lab1.core.paths import PATHS
from lab1.core.runner import Stage
from lab1.core.tracking.stage_run import StageRun


def checked_manifest(raw_dir: Path, dataset: str) -> dict[str, Any]:
    """The raw manifest, after checking it is of ``dataset`` and every file it lists is intact."""
    manifest_path = raw_dir / PATHS.raw_manifest.name
    manifest = read_json(manifest_path)
    made_for = manifest.get("dataset", "temperature")
    if made_for != dataset:
        raise DataError(
            f"{manifest_path}: dataset={made_for!r} but params ask for {dataset!r}; "
            "run data_creation for it first"
        )
    for entry in manifest.get("files", []):
        path = raw_dir / entry["path"]
        if not path.exists():
            raise DataError(f"{path}: listed in {manifest_path} but missing")
        if file_sha256(path) != entry["sha256"]:
            raise DataError(f"{path}: content changed since data_creation (sha256 mismatch)")
    return manifest


def run(params: Params, kind: Kind, run: StageRun) -> int:
    run.add_input(PATHS.raw)
    kind.preprocess(params, checked_manifest(PATHS.raw, params.dataset), run)
    return 0


STAGE = Stage("data_preprocessing", run)
