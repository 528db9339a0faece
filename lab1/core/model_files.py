"""The sha256 of a logged model's files: recorded when it is logged, checked before it is loaded.

A file that is valid but not the one logged (a class swapped for another trusted one, altered
tree values) would load and be served: so the sha256 of every file of a logged model is recorded
in the tracking store (a tag of its LoggedModel, FILES_SHA256), away from the artifact store that
holds the files, and checked (check_files) before a registry model is loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lab1.core.errors import DataError
from lab1.core.io import file_digests, file_sha256

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

FILES_SHA256 = "mlops.files_sha256"  # a LoggedModel tag: {relative path: sha256} as JSON


# MLflow writes this file into every download of a models:/ URI (the name and version it was
# reached by): it differs between downloads, and nothing reads it as the model.
DOWNLOAD_NOTE = "registered_model_meta"


def files_sha256(folder: Path) -> dict[str, str]:
    """{path relative to ``folder``: sha256} of every file of the model in it."""
    return {name: digest for name, digest in file_digests(folder).items() if name != DOWNLOAD_NOTE}


def check_files(folder: Path, recorded: str | None, where: str) -> None:
    """Each file FILES_SHA256 ``recorded`` when the model was logged is in ``folder`` (a
    download of model ``where``) with that sha256, or a DataError line names the file. (Files
    added since are never read as the model: the MLmodel, checked, names them.) A model logged
    before the sums were recorded is loaded with a warning."""
    if recorded is None:
        logger.warning("%s: no sha256 of its files was recorded (logged by an older version of "
                       "the project): loading it unchecked", where)  # fmt: skip
        return
    try:
        expected = json.loads(recorded)
    except ValueError:
        expected = None
    if not isinstance(expected, dict) or not expected:
        raise DataError(f"{where}: its {FILES_SHA256} tag is not a JSON object of files")
    root = folder.resolve()
    for name, digest in sorted(expected.items()):
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise DataError(f"{where}: file {name} is missing, though it was logged with the model")
        found = file_sha256(path)
        if found != digest:
            raise DataError(
                f"{where}: file {name} was changed since the model was logged (sha256 "
                f"{found[:12]}…, logged {str(digest)[:12]}…); refusing to load it"
            )


def recorded_files_sha256(client: MlflowClient, version: ModelVersion) -> str | None:
    """The sha256 of a version's model files, recorded on its LoggedModel when it was logged
    (FILES_SHA256), or None for a model logged before they were."""
    from mlflow.exceptions import MlflowException

    # A version registered from a LoggedModel may leave ``model_id`` empty: ``source`` names it.
    model_id = version.model_id or str(version.source).removeprefix("models:/")
    try:
        return client.get_logged_model(model_id).tags.get(FILES_SHA256)
    except MlflowException:  # registered from a run's folder (runs:/...), not a LoggedModel
        return None


def download_checked(client: MlflowClient, version: ModelVersion, into: str) -> str:
    """Download ``version``'s model into the folder ``into`` and check its files against the
    sums recorded when it was logged (check_files); returns the model's folder."""
    import mlflow.artifacts

    uri = f"models:/{version.name}/{version.version}"
    local = mlflow.artifacts.download_artifacts(uri, dst_path=into)
    check_files(Path(local), recorded_files_sha256(client, version), uri)
    return local
