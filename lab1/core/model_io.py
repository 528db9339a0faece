"""Saving, logging and loading the pipeline's model: one home for the MLflow model format.

The model is one scikit-learn Pipeline (preprocessor + estimator) that takes raw reading windows.
It is stored with skops rather than pickle, so loading it never runs arbitrary code: only types
on an explicit trust list (ours and scikit-learn's) are rebuilt. It carries the one project
module it needs (lab1/core/features.py) and exact pip requirements (inferring them costs ~9 s).
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd

from lab1.core.errors import DataError
from lab1.core.paths import PATHS

OUR_TYPES = ("lab1.core.features.WindowFeatures",)
# What loading the model needs, pinned to the versions that trained it.
REQUIREMENTS = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def allowed_types(found: list[str], where: str) -> list[str]:
    """The trust policy for skops files: of the non-default types skops ``found``, trust ours
    and scikit-learn's; anything else is refused (ValueError naming ``where`` and the type)."""
    foreign = [t for t in found if t not in OUR_TYPES and not t.startswith("sklearn.")]
    if foreign:
        raise ValueError(f"{where} contains types outside the trust list: {', '.join(foreign)}")
    return sorted(found)


def trusted_types(model: Any) -> list[str]:
    """The non-default types skops must trust to load ``model`` (see allowed_types)."""
    import skops.io

    return allowed_types(skops.io.get_untrusted_types(data=skops.io.dumps(model)), "model")


def _model_kwargs(
    model: Any, example: pd.DataFrame, code_dir: Path, classes: list[str]
) -> dict[str, Any]:
    from mlflow.models import infer_signature

    return {
        "metadata": {"classes": list(classes)},
        "serialization_format": "skops",
        "skops_trusted_types": trusted_types(model),
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

    local_dir.mkdir(parents=True)
    mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(local_dir))


def log_and_save_torch(model: Any, example: Any, local_dir: Path, classes: list[str]) -> Any:
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
    info = mlflow.pytorch.log_model(
        model, name="model", serialization_format="pt2", input_example=example,
        signature=infer_signature(example, output), pip_requirements=requirements,
        metadata={"classes": list(classes)},
    )  # fmt: skip
    _copy_logged(info, local_dir)
    return info


def load_torch_model(local_dir: Path) -> Any:
    """Load the logged PyTorch model from a local folder (pt2: no arbitrary unpickling)."""
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    if not (local_dir / "MLmodel").exists():
        raise DataError(f"{local_dir}: no MLflow model here (run model_preparation first)")
    try:
        return mlflow.pytorch.load_model(str(local_dir))
    except MlflowException as exc:
        first = exc.message.splitlines()[0]
        raise DataError(f"{local_dir}: cannot load the model ({first})") from None


def log_and_save(model: Any, example: pd.DataFrame, local_dir: Path, classes: list[str]) -> Any:
    """Log the model to the active MLflow run, then copy exactly what was logged to ``local_dir``.

    ``classes`` names the model's classes in label order; it is stored in the MLmodel metadata.

    Logging once and copying (rather than saving twice) halves the serialisation work and makes
    the local folder byte-identical to the logged model. Returns MLflow's ModelInfo
    (``model_uri``, ``model_id``, ``run_id``).
    """
    import mlflow.sklearn

    with tempfile.TemporaryDirectory() as staging:
        kwargs = _model_kwargs(model, example, _stage_code(Path(staging)), classes)
        info = mlflow.sklearn.log_model(model, name="model", **kwargs)
    _copy_logged(info, local_dir)
    return info


def load_model(uri_or_dir: str | Path) -> Any:
    """Load the scikit-learn Pipeline from a local folder or a models:/ / runs:/ URI."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    target = str(uri_or_dir)
    if isinstance(uri_or_dir, Path) and not (uri_or_dir / "MLmodel").exists():
        raise DataError(f"{uri_or_dir}: no MLflow model here (run model_preparation first)")
    try:
        return mlflow.sklearn.load_model(target)
    except MlflowException as exc:
        raise DataError(
            f"{target}: cannot load the model ({exc.message.splitlines()[0]})"
        ) from None
