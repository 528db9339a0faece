"""The convolutional network for the image datasets, and its training (one epoch: cnn_epoch.py).

The model takes RAW images: uint8 tensors (N, H, W, C), as they come from the files or a PNG.
Normalisation with the train images' per-channel statistics is its first layer, so nothing has
to be re-implemented at serving time. Training is seeded and deterministic, uses CUDA when
present, and keeps the epoch with the best validation accuracy. Under torchrun it trains
data-parallel (lab1/core/distributed.py): each rank its share of every batch.

On CUDA the whole loop stays on the device: the images, their augmentation (with a generator on
the device), and the running loss and accuracy, read back once per epoch; the GPU never waits on
Python mid-epoch. There it also trains in bfloat16 autocast with channels-last tensors. On the
CPU it does exactly what it did before those changes: the same random draws in the same order,
float32, the same results.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lab1.core import distributed
from lab1.core.cnn_epoch import augment as augment  # re-exported: part of the CNN's API
from lab1.core.cnn_epoch import deterministic, evaluate, train_epoch
from lab1.core.cnn_epoch import device as device
from lab1.core.cnn_epoch import one_hot_cross_entropy as one_hot_cross_entropy
from lab1.core.params import AugmentationParams, CnnParams

logger = logging.getLogger(__name__)


class Normalize(nn.Module):
    """uint8 (N, H, W, C) -> float (N, C, H, W), scaled to [0, 1] then standardised per channel."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        return (x - self.mean) / self.std


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """Adaptive average pooling to 2x2, as one ``avg_pool2d`` with the same windows: for an
    output of two, adaptive pooling's windows all have ceil(n/2) cells, floor(n/2) apart. The
    same values as ``F.adaptive_avg_pool2d(x, 2)``, one kernel, and a backward that is
    deterministic on CUDA (adaptive_avg_pool2d's adds gradients atomically there)."""
    h, w = x.shape[-2:]
    if h < 2 or w < 2:  # a 1-cell side: every window is that cell
        return F.adaptive_avg_pool2d(x, 2)
    return F.avg_pool2d(x, kernel_size=(-(-h // 2), -(-w // 2)), stride=(h // 2, w // 2))


class ImageClassifier(nn.Module):
    """Three conv blocks (width, 2x, 4x channels) -> 2x2 average pool -> dropout -> linear.

    Pooling to 2x2 rather than 1x1 keeps where in the image a feature is (top or bottom of a
    garment), worth ~2 points of accuracy on Fashion-MNIST for the same training time.

    Returns logits; wrap in Probabilities for serving.
    """

    def __init__(
        self, mean: list[float], std: list[float], classes: int, width: int, dropout: float
    ):
        super().__init__()
        channels = len(mean)
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            conv_block(channels, width),
            conv_block(width, 2 * width),
            conv_block(2 * width, 4 * width),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width * 4, classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(images))
        return self.head(pool_2x2(x))


class Probabilities(nn.Module):
    """What is logged and served: class probabilities for raw uint8 images."""

    def __init__(self, classifier: ImageClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(images), dim=1)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, H, W, C) on the [0, 1] scale."""
    scaled = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return scaled.mean(axis=0).tolist(), scaled.std(axis=0).tolist()


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    images_per_second: float

    def __str__(self) -> str:
        return (
            f"train loss {self.train_loss:.3f} acc {self.train_accuracy:.3f} | val loss "
            f"{self.val_loss:.3f} acc {self.val_accuracy:.3f} | {self.images_per_second:.0f} img/s"
        )

    def metrics(self) -> dict[str, float]:
        """What MLflow records for the epoch (as step metrics): all but its number and seconds."""
        return {k: v for k, v in asdict(self).items() if k not in ("epoch", "seconds")}


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are (the CPU for a model with none)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def predict_proba(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities for uint8 images (N, H, W, C) from a model that returns them, on the
    device the model is on (a model trained on CUDA stays there), as a NumPy array. The model
    must already be in eval mode (an exported "pt2" model always is, and refuses .eval())."""
    dev = model_device(model)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size]).to(dev)
            out.append(model(batch).float().cpu())
    return torch.cat(out).numpy()


def _split(
    images: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int, dev: torch.device
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train, validation) images and labels on ``dev``: a seeded random share held out."""
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = max(1, round(val_fraction * len(images)))
    parts = (order[n_val:], order[:n_val])
    return tuple(  # type: ignore[return-value]
        (torch.from_numpy(images[i]).to(dev), torch.from_numpy(labels[i]).to(dev)) for i in parts
    )


def train(
    images: np.ndarray,
    labels: np.ndarray,
    classes: int,
    normalization: tuple[list[float], list[float]],
    params: CnnParams,
    aug: AugmentationParams,
    seed: int,
    on_epoch: Callable[[EpochResult], object] = lambda _result: None,
) -> tuple[ImageClassifier, list[EpochResult]]:
    """Train on uint8 images (N, H, W, C); the best-validation-accuracy model and the history.
    ``normalization``: data_preprocessing's per-channel (mean, std); ``on_epoch``: MLflow's."""
    dev = deterministic(seed)
    group = distributed.join(dev)  # torchrun's ranks; None for one process, as ever
    dev = group.device if group else dev
    (x_train, y_train), (x_val, y_val) = _split(images, labels, params.val_fraction, seed, dev)
    model = ImageClassifier(*normalization, classes, params.width, params.dropout).to(dev)
    model = model.to(memory_format=torch.channels_last) if dev.type == "cuda" else model
    trainer = group.prepare(model, len(x_train), params.batch_size, seed) if group else model
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    steps = params.epochs * -(-len(x_train) // params.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, params.learning_rate, steps)
    # The same draws as ever (the CPU generator on the CPU; on CUDA one there, so augmentation
    # stays on the GPU); every rank draws them all (permutation, augmentation), as one process.
    generator = torch.Generator(device=dev).manual_seed(seed)
    history: list[EpochResult] = []
    best_state, best_accuracy, stale = None, -1.0, 0
    with group.collectives() if group else contextlib.nullcontext():
        for epoch in range(1, params.epochs + 1):
            started = time.perf_counter()
            train_loss, train_accuracy = train_epoch(
                trainer, (x_train, y_train), optimizer, schedule, generator, aug, params, epoch,
                group,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            if group:
                group.sync_buffers(model)
            val_loss, val_accuracy = evaluate(model, x_val, y_val, 4 * params.batch_size)
            if group:
                val_loss, val_accuracy = group.from_rank0(val_loss, val_accuracy)
            result = EpochResult(epoch, train_loss, train_accuracy, val_loss, val_accuracy,
                                 seconds, len(x_train) / seconds)  # fmt: skip
            history.append(result)
            on_epoch(result)
            logger.info("epoch %d/%d: %s", epoch, params.epochs, result)
            stale = 0 if val_accuracy > best_accuracy else stale + 1
            if stale == 0:
                best_state, best_accuracy = copy.deepcopy(model.state_dict()), val_accuracy
            elif stale >= params.patience:
                logger.info("no better validation accuracy for %d epochs: stopping", stale)
                break
    if group:
        distributed.leave()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history
