"""Saving, logging and loading the pipeline's model: one home for the MLflow model format.

The model is one scikit-learn Pipeline (preprocessor + estimator) that takes raw reading windows.
It is stored with skops rather than pickle, so loading it never runs arbitrary code: only types
on an explicit trust list (ours and scikit-learn's) are rebuilt. It carries the one project
module it needs (lab1/core/features.py) and exact pip requirements (inferring them costs ~9 s).

The sha256 of every file of a logged model is recorded when it is logged (model_files.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from lab1.core.errors import DataError, one_line
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
# What loading the model needs, pinned to the versions that trained it.
REQUIREMENTS = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def allowed_types(found: list[str], where: str) -> list[str]:
    """The trust policy for skops files: the non-default types skops ``found`` must each be in
    TRUSTED_TYPES by exact name; anything else is refused (ValueError naming ``where`` and the
    types) before a single object is rebuilt."""
    foreign = sorted(set(found) - TRUSTED_TYPES)
    if foreign:
        raise ValueError(f"{where} contains types outside the trust list: {', '.join(foreign)}")
    return sorted(found)


def trusted_types(model: Any) -> list[str]:
    """The non-default types skops must trust to load ``model`` (see allowed_types)."""
    import skops.io

    return allowed_types(skops.io.get_untrusted_types(data=skops.io.dumps(model)), "model")


def _model_kwargs(
    model: Any, example: pd.DataFrame, code_dir: Path, classes: list[str], trusted: list[str]
) -> dict[str, Any]:
    from mlflow.models import infer_signature

    return {
        "metadata": {"classes": list(classes)},
        "serialization_format": "skops",
        "skops_trusted_types": trusted,
        "signature": infer_signature(example, model.predict(example)),
        "input_example": example,
        "pip_requirements": pip_requirements(),
        "code_paths": [str(code_dir / "lab1")],
    }


def _stage_code(into: Path) -> Path:
    """Copy just the modules the model unpickles into ``into``/lab1 (a minimal package)."""
    package = into / "lab1"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core" / "__init__.py").write_text("")
    shutil.copy2(PATHS.root / "lab1" / "core" / "features.py", package / "core" / "features.py")
    return into


def _copy_logged(info: Any, local_dir: Path) -> None:
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    from lab1.core.model_files import FILES_SHA256, files_sha256

    local_dir.mkdir(parents=True)
    mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(local_dir))
    digests = json.dumps(files_sha256(local_dir), sort_keys=True)
    MlflowClient().set_logged_model_tags(info.model_id, {FILES_SHA256: digests})


def new_logged_model(run_id: str, experiment_id: str, name: str) -> str:
    """Create the LoggedModel ``name`` for run ``run_id`` in its experiment; return its id.

    Model.log creates one itself only in the process's *current* experiment (the default one
    when no run is active, as in the tracking service), so it is created here explicitly, with
    the run's params and its source tags as MLflow would copy them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run = client.get_run(run_id)
    source = {
        k: v for k, v in run.data.tags.items() if k.startswith(("mlflow.source.", "mlflow.user"))
    }
    model = client.create_logged_model(
        experiment_id, name=name, source_run_id=run_id, params=run.data.params, tags=source
    )
    return model.model_id


def _log_to_run(
    flavor: Any, run_id: str, experiment_id: str, local_dir: Path, name: str, **kwargs: Any
) -> Any:
    """Log a model with ``flavor`` to run ``run_id`` (Model.log is what each flavour's log_model
    calls; it also takes the run explicitly, which the tracking service needs: it records several
    stage runs, none "active"), then copy exactly what was logged to ``local_dir``."""
    from mlflow.models import Model

    info = Model.log(
        artifact_path=None,
        name=name,
        model_id=new_logged_model(run_id, experiment_id, name),
        flavor=flavor,
        run_id=run_id,
        **kwargs,
    )
    _copy_logged(info, local_dir)
    return info


def log_and_save_torch(
    model: Any,
    example: Any,
    local_dir: Path,
    classes: list[str],
    run_id: str,
    experiment_id: str,
    name: str = "model",
) -> Any:
    """Log a PyTorch module (raw uint8 images in, probabilities out) with MLflow's PyTorch
    flavour in the "pt2" format (torch.export): loading it never unpickles arbitrary objects.
    The class names travel in the model's metadata (the service labels its answers with them).
    Then copy what was logged to ``local_dir``. Returns MLflow's ModelInfo."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    requirements = [f"{name}=={version(name)}" for name in ("mlflow", "torch", "numpy")]
    return _log_to_run(
        mlflow.pytorch,
        run_id,
        experiment_id,
        local_dir,
        name,
        pytorch_model=model,
        serialization_format="pt2",
        input_example=example,
        signature=infer_signature(example, output),
        pip_requirements=requirements,
        metadata={"classes": list(classes)},
    )


def load_torch_model(local_dir: Path) -> Any:
    """Load the logged PyTorch model from a local folder: only the torch.export ("pt2") format,
    whose archive MLflow checks to be free of pickle payloads before torch reads it. A model
    saved with pickle ("pth") is refused before anything in it is read."""
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    flavor = _flavor(local_dir, "pytorch")
    data = local_dir / str(flavor.get("model_data", "data"))
    if not (data / "model.pt2").is_file() or (data / "model.pth").exists():
        raise DataError(f"{local_dir}: {PICKLED}")
    # MLflow's default allows pickle; off, it validates the pt2 archive as pickle-free first.
    previous = os.environ.get(ALLOW_PICKLE)
    os.environ[ALLOW_PICKLE] = "false"
    try:
        return mlflow.pytorch.load_model(str(local_dir))
    except MlflowException as exc:
        first = exc.message.splitlines()[0]
        raise DataError(f"{local_dir}: cannot load the model ({first})") from None
    except Exception as exc:  # a garbled MLmodel or model file: torch's and yaml's own errors
        raise DataError(f"{local_dir}: cannot load the model ({one_line(exc)})") from None
    finally:
        if previous is None:
            del os.environ[ALLOW_PICKLE]
        else:
            os.environ[ALLOW_PICKLE] = previous


def log_and_save(
    model: Any,
    example: pd.DataFrame,
    local_dir: Path,
    classes: list[str],
    run_id: str,
    experiment_id: str,
    trusted: list[str] | None = None,
    name: str = "model",
) -> Any:
    """Log the model as ``name`` to run ``run_id`` of ``experiment_id``, then copy exactly what
    was logged to ``local_dir``. ``trusted``: the model's skops trust list if known (else
    computed).

    ``classes`` names the model's classes in label order; it is stored in the MLmodel metadata.

    Logging once and copying (rather than saving twice) halves the serialisation work and makes
    the local folder byte-identical to the logged model. Returns MLflow's ModelInfo
    (``model_uri``, ``model_id``, ``run_id``).
    """
    import mlflow.sklearn

    with tempfile.TemporaryDirectory() as staging:
        trusted = trusted if trusted is not None else trusted_types(model)
        kwargs = _model_kwargs(model, example, _stage_code(Path(staging)), classes, trusted)
        return _log_to_run(
            mlflow.sklearn, run_id, experiment_id, local_dir, name, sk_model=model, **kwargs
        )


def save_skops(model: Any, path: Path) -> None:
    """Write a scikit-learn object with skops (what load_skops reads back)."""
    import skops.io

    skops.io.dump(model, path)


def load_skops(path: Path) -> Any:
    """Read a skops file under the trust policy of allowed_types (never unpickles); a missing or
    unreadable file raises DataError naming it."""
    return load_skops_trusted(path)[0]


def load_skops_trusted(path: Path) -> tuple[Any, list[str]]:
    """load_skops, also returning the non-default types it trusted (the MLmodel records them)."""
    import skops.io

    if not path.exists():
        raise DataError(f"{path}: file not found (run the stage that writes it first)")
    try:
        trusted = allowed_types(skops.io.get_untrusted_types(file=path), str(path))
        return skops.io.load(path, trusted=trusted), trusted
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

    from lab1.core import registry
    from lab1.core.model_files import download_checked

    uri = str(uri_or_dir)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as staging:
        try:
            if uri.startswith("models:/"):  # a registry model: its files checked (check_files)
                client = MlflowClient()
                local = download_checked(client, registry.resolve(client, uri), staging)
            else:
                local = mlflow.artifacts.download_artifacts(uri, dst_path=staging)
        except MlflowException as exc:
            raise DataError(
                f"{uri_or_dir}: cannot load the model ({exc.message.splitlines()[0]})"
            ) from None
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
