"""Saving, logging and loading the pipeline's model: one home for the MLflow model format.

The model is one scikit-learn Pipeline (preprocessor + estimator) that takes raw reading windows.
It is stored with skops rather than pickle, so loading it never runs arbitrary code: only types
on an explicit trust list (ours and scikit-learn's) are rebuilt. It carries the one project
module it needs (lab1/core/features.py) and exact pip requirements (inferring them costs ~9 s).

The sha256 of every file of a logged model is recorded when it is logged (model_files.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from lab1.core import registry
from lab1.core.errors import DataError, one_line
from lab1.core.model_files import FILES_SHA256, download_checked, files_sha256
from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)

# The types beyond skops' own defaults (numpy, scikit-learn's estimators) that our models hold,
# by exact name: the preprocessor (lab1.core.features) and the estimators' trees.
# Never a prefix: "sklearn." would also admit sklearn.utils._testing.check_output, which is
# subprocess.check_output under another name, and a crafted file would run a command on load.
# tests/lab1/test_model_safety.py checks that every model the project trains needs only these.
TRUSTED_TYPES = frozenset(
    {
        "lab1.core.features.WindowFeatures",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
    }
)
ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
PICKLED = "a pickled model; this project loads only skops or torch.export files"


def pip_requirements(*names: str) -> list[str]:
    """What loading the model needs, pinned to the versions that trained it."""
    return [f"{name}=={version(name)}" for name in names]


def allowed_types(found: list[str], where: str) -> list[str]:
    """The trust policy for skops files: the non-default types skops ``found`` must each be in
    TRUSTED_TYPES by exact name; anything else is refused (ValueError naming ``where`` and the
    types) before a single object is rebuilt."""
    foreign = sorted(set(found) - TRUSTED_TYPES)
    if foreign:
        raise ValueError(f"{where} contains types outside the trust list: {', '.join(foreign)}")
    return sorted(found)


@contextlib.contextmanager
def sklearn_options(
    model: Any, example: pd.DataFrame, classes: list[str]
) -> Iterator[dict[str, Any]]:
    """The arguments of ``mlflow.sklearn.log_model`` for the pipeline's model: skops (no pickle)
    with its exact-name trust list, signature, input example, exact pip requirements, the class
    names in label order (the MLmodel's metadata) and, as code_paths, just the one module the
    model needs (lab1/core/features.py), staged in a temporary folder that lives while the model
    is logged."""
    import skops.io
    from mlflow.models import infer_signature

    trusted = allowed_types(skops.io.get_untrusted_types(data=skops.io.dumps(model)), "model")
    with tempfile.TemporaryDirectory() as staging:
        package = Path(staging) / "lab1"
        (package / "core").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "core" / "__init__.py").write_text("")
        shutil.copy2(PATHS.root / "lab1" / "core" / "features.py", package / "core")
        yield {
            "metadata": {"classes": list(classes)},
            "serialization_format": "skops",
            "skops_trusted_types": trusted,
            "signature": infer_signature(example, model.predict(example)),
            "input_example": example,
            "pip_requirements": pip_requirements(
                "mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy"
            ),
            "code_paths": [str(package)],
        }


def torch_options(model: Any, example: Any, classes: list[str]) -> dict[str, Any]:
    """The arguments of ``mlflow.pytorch.log_model`` for the CNN (raw uint8 images in,
    probabilities out): the "pt2" format (torch.export), so loading never unpickles; signature,
    input example, exact pip requirements, the class names (the service labels answers so)."""
    import torch
    from mlflow.models import infer_signature

    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    return {
        "serialization_format": "pt2",
        "input_example": example,
        "signature": infer_signature(example, output),
        "pip_requirements": pip_requirements("mlflow", "torch", "numpy"),
        "metadata": {"classes": list(classes)},
    }


def keep_copy(logged: Any, local_dir: Path) -> None:
    """Copy exactly what was logged (``logged``: log_model's ModelInfo) to ``local_dir`` (one
    serialisation, and the local folder byte-identical to the logged model), and record the
    sha256 of each of its files on the LoggedModel, checked before every registry load."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    local_dir.mkdir(parents=True)
    mlflow.artifacts.download_artifacts(artifact_uri=logged.model_uri, dst_path=str(local_dir))
    digests = json.dumps(files_sha256(local_dir), sort_keys=True)
    MlflowClient().set_logged_model_tags(logged.model_id, {FILES_SHA256: digests})


def load_torch_model(local_dir: Path) -> Any:
    """Load the logged PyTorch model from a local folder: only the torch.export ("pt2") format,
    whose archive MLflow checks to be free of pickle payloads before torch reads it. A model
    saved with pickle ("pth") is refused before anything in it is read."""
    import mlflow.pytorch

    flavor = _flavor(local_dir, "pytorch")
    data = local_dir / str(flavor.get("model_data", "data"))
    if not (data / "model.pt2").is_file() or (data / "model.pth").exists():
        raise DataError(f"{local_dir}: {PICKLED}")
    # MLflow's default allows pickle; off, it validates the pt2 archive as pickle-free first.
    previous = os.environ.get(ALLOW_PICKLE)
    os.environ[ALLOW_PICKLE] = "false"
    try:
        return mlflow.pytorch.load_model(str(local_dir))
    except Exception as exc:  # MLflow's refusal, or a garbled MLmodel or model file
        raise DataError(f"{local_dir}: cannot load the model ({one_line(exc)})") from None
    finally:
        if previous is None:
            del os.environ[ALLOW_PICKLE]
        else:
            os.environ[ALLOW_PICKLE] = previous


def save_skops(model: Any, path: Path) -> None:
    """Write a scikit-learn object with skops (what load_skops reads back), the same bytes for the
    same object: skops names its arrays by id() and dates the zip's entries now, so the ids are
    renumbered in order of appearance and the entries dated 1980. A stage re-run on the same
    data then writes the same digest, and what later stages made from it stays valid."""
    import io
    import re
    import zipfile

    import skops.io

    written = zipfile.ZipFile(io.BytesIO(skops.io.dumps(model)))
    ids: dict[str, str] = {}

    def renumber(found: re.Match[str]) -> str:
        return ids.setdefault(found[0], str(len(ids) + 1))

    schema = written.read("schema.json").decode()
    schema = re.sub(r'(?<="__id__": )\d+|(?<="file": ")\d+(?=\.npy")', renumber, schema)
    files = {f"{ids[n.removesuffix('.npy')]}.npy": written.read(n) for n in written.namelist()
             if n != "schema.json"}  # fmt: skip
    with zipfile.ZipFile(path, "w") as out:
        for name, data in sorted({**files, "schema.json": schema.encode()}.items()):
            entry = zipfile.ZipInfo(name)  # dated 1980-01-01
            entry.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(entry, data)


def load_skops(path: Path) -> Any:
    """Read a skops file under the trust policy of allowed_types (never unpickles); a missing or
    unreadable file raises DataError naming it."""
    import skops.io

    if not path.exists():
        raise DataError(f"{path}: file not found (run the stage that writes it first)")
    try:
        trusted = allowed_types(skops.io.get_untrusted_types(file=path), str(path))
        return skops.io.load(path, trusted=trusted)
    except Exception as exc:
        raise DataError(f"{path}: cannot load ({exc})") from None


def load_model(uri_or_dir: str | Path) -> Any:
    """Load the scikit-learn Pipeline from a local folder or a models:/ / runs:/ URI.

    Whatever the source, the files are read here, never by a flavour's loader: the MLmodel file
    must name a skops file, which load_skops reads under the exact-name trust list. A model
    stored with pickle or cloudpickle is refused before it is opened. (A local folder is read
    without importing MLflow, which saves a second per process.)
    """
    if isinstance(uri_or_dir, Path):
        return load_skops(_skops_file(uri_or_dir))
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = str(uri_or_dir)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as staging:
        try:
            if uri.startswith("models:/"):  # a registry model: its files checked (check_files)
                client = MlflowClient()
                local = download_checked(client, registry.resolve(client, uri), staging)
            else:
                local = mlflow.artifacts.download_artifacts(uri, dst_path=staging)
        except MlflowException as exc:
            raise DataError(f"{uri_or_dir}: cannot load the model ({one_line(exc)})") from None
        return load_skops(_skops_file(Path(local)))


def read_mlmodel(model_dir: Path, where: str | None = None) -> dict[str, Any]:
    """The MLmodel file of ``model_dir`` as a mapping, or a DataError line naming it (as
    ``where``/MLmodel when given: a download's folder means nothing to the user)."""
    import yaml

    path = model_dir / "MLmodel"
    shown = f"{where}/MLmodel" if where else str(path)
    if not path.exists():
        raise DataError(f"{where or model_dir}: no MLflow model here (no MLmodel file)")
    try:
        described = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{shown}: not valid YAML ({one_line(exc, whole=True)})") from None
    if not isinstance(described, dict):
        what = "empty" if described is None else f"a YAML {type(described).__name__}"
        raise DataError(f"{shown}: {what}, not an MLflow model description")
    return described


def _flavor(model_dir: Path, name: str) -> dict[str, Any]:
    """The MLmodel file's ``name`` flavour (DataError naming the file if it has none)."""
    where = model_dir / "MLmodel"
    if not where.exists():
        raise DataError(f"{model_dir}: no MLflow model here (run model_preparation first)")
    described = read_mlmodel(model_dir)
    flavors = described.get("flavors")
    if not isinstance(flavors, dict) or not isinstance(flavors.get(name), dict):
        found = ", ".join(flavors) if isinstance(flavors, dict) else "none"
        raise DataError(f"{where}: not an MLflow {name} model (flavors: {found})")
    return dict(flavors[name])


def _skops_file(model_dir: Path) -> Path:
    """The skops file of an MLflow sklearn model folder; a pickled one is refused."""
    flavor = _flavor(model_dir, "sklearn")
    if flavor.get("serialization_format") != "skops":
        raise DataError(f"{model_dir}: {PICKLED}")
    name = str(flavor.get("pickled_model", ""))
    path = (model_dir / name).resolve()
    if not name or not path.is_relative_to(model_dir.resolve()):
        raise DataError(f"{model_dir / 'MLmodel'}: pickled_model {name!r} is not a file here")
    return path
