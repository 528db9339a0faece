"""A model loaded for serving: what it takes (from its MLflow signature), what it answers, and
where it came from (registry version, run, commit, data digest, test metrics).

Two kinds, told apart by the MLmodel's flavours:
  tabular  the scikit-learn Pipeline (skops): a row of named float columns in, class out
  image    the PyTorch CNN (pt2): uint8 images (N, H, W, C) in, class probabilities out
Loading goes through lab1.core.model_io, the one place that knows the formats and the skops trust
policy, so the service never unpickles anything. A registry version's files are checked against
the sha256 recorded when it was logged before any is read, and a loaded model must answer its
own input example (sound probabilities) before it is served: a valid but altered file is refused.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lab1.core.errors import DataError, one_line, without_credentials

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """Where a loaded model came from (the body of GET /model, but for files_sha256)."""

    uri: str  # the exact, immutable URI that was loaded (models:/name/version, a folder, ...)
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    source_run_id: str | None = None
    git_commit: str | None = None
    data_digest: str | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] | None = None  # lineage.version_lineage, for registry versions
    loaded_at: str = ""
    files_sha256: str | None = None  # registry versions: model_files.FILES_SHA256 (not shown)

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        del shown["files_sha256"]
        return shown


class ServedModel:
    """A loaded model plus its input description. ``probabilities(x)`` is the only call the
    request path makes: x is already validated (tabular: float64 (n, columns); image: uint8
    (n, H, W, C)) and the result is float (n, classes)."""

    def __init__(
        self,
        native: Any,
        kind: str,
        classes: list[str],
        info: ModelInfo,
        columns: list[str] | None = None,
        image_shape: tuple[int, int, int] | None = None,
    ):
        self.native = native
        self.kind = kind
        self.classes = classes
        self.info = info
        self.columns = columns or []
        self.image_shape = image_shape  # (H, W, C)
        self._steps = _flat_steps(native) if kind == "tabular" else []

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "tabular":
            # The Pipeline's steps one by one: the same arithmetic as Pipeline.predict_proba,
            # without its per-call overhead (estimator tags, metadata routing: ~0.5-1 ms, a
            # third of a one-row call). The tests compare the two to 1e-12.
            for transformer in self._steps[:-1]:
                x = transformer.transform(x)
            return self._steps[-1].predict_proba(x)
        from lab1.core.cnn import predict_proba

        return predict_proba(self.native, x)

    def image_input_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of an image model's input; asking a tabular model is a bug."""
        if self.image_shape is None:
            raise RuntimeError(f"a {self.kind} model has no image shape")
        return self.image_shape

    def input_description(self) -> dict[str, Any]:
        if self.kind == "tabular":
            return {
                "kind": "tabular",
                "columns": self.columns,
                "dtype": "float64",
                "missing": "null",
            }
        height, width, channels = self.image_shape or (0, 0, 0)
        return {"kind": "image", "shape": [height, width, channels], "dtype": "uint8"}


def _flat_steps(model: Any) -> list[Any]:
    """The estimators of a (possibly nested) scikit-learn Pipeline, in order."""
    if not hasattr(model, "steps"):
        return [model]
    return [leaf for _, step in model.steps if step != "passthrough" for leaf in _flat_steps(step)]


def load(uri: str, info: ModelInfo) -> ServedModel:
    """Download ``uri`` (any MLflow model URI or a local folder) and load it for serving.

    Raises DataError with a one-line reason when the model cannot be fetched or loaded, or is
    not one of the two kinds above.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from lab1.core.model_files import check_files
    from lab1.core.model_io import read_mlmodel

    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix="served-model-"))
    try:
        if Path(uri).is_dir():
            local = Path(uri)
        else:
            try:
                local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(staging)))
            except (MlflowException, OSError) as exc:
                raise DataError(f"{uri}: cannot fetch the model ({one_line(exc)})") from None
        if not (local / "MLmodel").exists():
            raise DataError(f"{uri}: no MLmodel file (not an MLflow model)")
        if info.version is not None:  # a registry version: its files as they were logged
            check_files(local, info.files_sha256, uri)
        try:
            mlmodel = Model.from_dict(read_mlmodel(local, uri))
        except DataError:
            raise
        except Exception as exc:  # MLflow's own errors for fields of the wrong shape
            raise DataError(f"{uri}/MLmodel: not a valid MLflow model ({one_line(exc)})") from None
        served = _build(local, mlmodel, info)
        _answers_its_example(served, local, mlmodel)
    finally:
        # Everything needed is in memory now; the download is not kept.
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "loaded %s (%s, %d classes) in %.2f s",
        uri,
        served.kind,
        len(served.classes),
        time.perf_counter() - started,
    )
    return served


def _build(local: Path, mlmodel: Any, info: ModelInfo) -> ServedModel:
    from lab1.core.model_io import load_model, load_torch_model

    info = replace(
        info,
        source_run_id=info.source_run_id or mlmodel.run_id,
        loaded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    classes = list((mlmodel.metadata or {}).get("classes") or [])
    signature = mlmodel.signature
    if signature is None:
        raise DataError(f"{info.uri}: the model has no signature; the service needs one")
    inputs = signature.inputs.to_dict()
    if "sklearn" in mlmodel.flavors:
        columns = [spec["name"] for spec in inputs if spec.get("name")]
        if len(columns) != len(inputs):
            raise DataError(f"{info.uri}: the signature's inputs are not named columns")
        native = load_model(local)
        classes = classes or [str(c) for c in getattr(native, "classes_", [])]
        return ServedModel(native, "tabular", classes, info, columns=columns)
    if "pytorch" in mlmodel.flavors:
        shape = inputs[0].get("tensor-spec", {}).get("shape", []) if len(inputs) == 1 else []
        if len(shape) != 4 or min(shape[1:]) < 1:
            raise DataError(f"{info.uri}: the signature is not one image tensor (N, H, W, C)")
        native = load_torch_model(local)
        if not classes:
            raise DataError(f"{info.uri}: the model's metadata names no classes")
        return ServedModel(native, "image", classes, info, image_shape=tuple(shape[1:]))
    raise DataError(f"{info.uri}: flavours {sorted(mlmodel.flavors)}: not a model this serves")


def _answers_its_example(served: ServedModel, local: Path, mlmodel: Any) -> None:
    """The model predicts the input example logged with it: one probability per class for each
    row, finite, summing to 1; else a DataError line. A model that fails here would fail every
    request (a file whose class was swapped for another trusted one loads, then cannot predict)."""
    where = served.info.uri
    try:
        example = mlmodel.load_input_example(str(local))
    except Exception as exc:
        raise DataError(f"{where}: its input example cannot be read ({one_line(exc)})") from None
    if example is None:
        raise DataError(f"{where}: the model has no input example to check it with")
    try:
        if served.kind == "tabular":
            x = np.asarray(example[served.columns], dtype=np.float64)
        else:
            x = np.asarray(example, dtype=np.uint8)
        answer = np.asarray(served.probabilities(x), dtype=np.float64)
    except Exception as exc:
        raise DataError(
            f"{where}: the model fails on its own input example ({type(exc).__name__}: "
            f"{one_line(exc)}); not serving it"
        ) from None
    shape = (len(x), len(served.classes))
    if answer.shape != shape or not np.isfinite(answer).all():
        raise DataError(f"{where}: the model answers its input example with {answer.shape} "
                        f"values, not {shape} finite probabilities; not serving it")  # fmt: skip
    if not np.allclose(answer.sum(axis=1), 1.0, atol=1e-6):
        raise DataError(f"{where}: the model's probabilities for its input example do not sum "
                        "to 1; not serving it")  # fmt: skip


# What the service shows about itself (GET /ready, GET /model) is public: a URI's credentials
# (http://user:password@host) and the absolute paths of the machine that trained the model (a
# user's CSV, a checkout under /home/...) are never echoed; a path keeps its file name. A web
# link (the MLflow UI's pages: http://host/#/models/...) is matched first and kept whole: its
# path and fragment name a page, not a file.
_PATH = re.compile(
    r"(?P<link>https?://[^\s'\"]+)|(?:file://|sqlite:///|(?<![\w:/.~-]))/[^\s'\",;()]+"
)


def _file_name(match: re.Match[str]) -> str:
    if match.group("link"):
        return match.group(0)
    return "…/" + match.group(0).rstrip("/").rsplit("/", 1)[-1]


def public(value: Any) -> Any:
    """``value`` (a JSON value) with credentials and absolute paths taken out of its strings."""
    if isinstance(value, str):
        return _PATH.sub(_file_name, without_credentials(value))
    if isinstance(value, dict):
        return {key: public(item) for key, item in value.items()}
    if isinstance(value, list):
        return [public(item) for item in value]
    return value
