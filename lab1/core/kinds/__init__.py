"""The two dataset kinds, one library each, called by the stage scripts:

  tables   temperature: station readings -> windows and features -> a scikit-learn Pipeline
  images   cifar10, fashion_mnist: uint8 images -> channel statistics -> a PyTorch CNN

Each kind imports its heavy libraries inside its functions, so importing one costs nothing.
What both share lives here: the raw data's manifest and its check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab1.core.errors import DataError
from lab1.core.io import file_sha256, read_json
from lab1.core.paths import PATHS


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
