"""The dataset kinds behind one protocol, chosen once per stage run by the runner.

  tables   temperature: station readings -> windows and features -> a scikit-learn Pipeline
  images   cifar10, fashion_mnist: uint8 images -> channel statistics -> a PyTorch CNN

A stage module (lab1/core/stages/) does what every dataset shares (checking the manifest,
model.json, metrics.json, the registry); its kind does the rest. Each kind imports its heavy
libraries inside its functions, so choosing one costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lab1.core.params import Params

if TYPE_CHECKING:
    from lab1.core.tracking.stage_run import StageRun


class Kind(Protocol):
    """What a dataset kind does in each stage; ``run`` records inputs, outputs and metrics."""

    def create(self, params: Params, run: StageRun) -> None:
        """Stage 1: write data/raw (the splits and the manifest), atomically."""

    def preprocess(self, params: Params, manifest: dict[str, Any], run: StageRun) -> None:
        """Stage 2: write data/processed from the checked raw data, atomically."""

    def prepare(self, params: Params, run: StageRun, out_dir: Path) -> dict[str, Any]:
        """Stage 3: train, log the model to the run and copy it to ``out_dir``/model; return
        what models/model.json records besides the run ids (model_uri, model_id, estimator,
        train_digest, ...)."""
        ...

    def evaluate(self, params: Params, run: StageRun) -> tuple[dict[str, Any], dict[str, float]]:
        """Stage 4: (the metrics report without run ids, extra MLflow metrics); draws the
        plots into reports/. The report includes ``test_digest``, the test split's digest."""
        ...

    def score(self, params: Params, model_dir: Path) -> dict[str, float]:
        """The model in ``model_dir`` (another one than the stage's: the champion) scored on this
        test split, for a fair gate; DataError when it cannot score this data."""
        ...


def for_params(params: Params) -> Kind:
    """The kind of ``params.dataset``."""
    from lab1.core.kinds import images, tables  # each imports its heavy libraries lazily

    return images if params.is_image else tables


if TYPE_CHECKING:  # the type checker proves that both modules implement the protocol
    from lab1.core.kinds import images, tables

    _checked: tuple[Kind, Kind] = (tables, images)
