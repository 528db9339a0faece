"""One epoch of the CNN's training, and its building blocks: augmentation, the loss, the
validation pass, determinism and the progress bar (lab1/core/cnn.py's ``train`` runs them).

On CUDA the whole epoch stays on the device: the images, their augmentation (with a generator on
the device), and the running loss and accuracy, read back once per epoch; the GPU never waits on
Python mid-epoch. There it also trains in bfloat16 autocast. On the CPU: float32, the same random
draws in the same order as ever, the same results.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from lab1.core.params import AugmentationParams, CnnParams

if TYPE_CHECKING:
    from lab1.core.distributed import Group


def augment(
    batch: torch.Tensor, aug: AugmentationParams, generator: torch.Generator
) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, per image (uint8 NHWC), on
    the batch's device; ``generator`` must be on that device too."""
    n, h, w, _ = batch.shape
    dev = batch.device
    if aug.crop_padding:
        pad = aug.crop_padding
        padded = F.pad(batch.permute(0, 3, 1, 2), (pad, pad, pad, pad)).permute(0, 2, 3, 1)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, :]
        batch = padded[torch.arange(n, device=dev)[:, None, None], rows, cols]
    if aug.horizontal_flip:
        flip = torch.rand(n, generator=generator, device=dev) < 0.5
        batch = torch.where(flip[:, None, None, None], batch.flip(2), batch)
    return batch


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> Any:
    """Cross-entropy; on CUDA written with a one-hot product, whose forward and backward are
    deterministic there (nll_loss's are not guaranteed to be). The CPU keeps F.cross_entropy."""
    if not logits.is_cuda:
        return F.cross_entropy(logits, target, reduction=reduction)
    return one_hot_cross_entropy(logits, target, reduction)


def one_hot_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy from elementwise products and plain sums only (no gather, no scatter)."""
    picked = -(F.log_softmax(logits, dim=1) * F.one_hot(target, logits.shape[1])).sum(dim=1)
    return picked.sum() if reduction == "sum" else picked.mean()


def autocast(dev: torch.device) -> Any:
    """bfloat16 autocast on CUDA (tensor cores; no loss scaling needed); nothing on the CPU,
    where training stays float32 and unchanged."""
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> tuple[float, float]:
    """(mean loss, accuracy) on a labelled set, summed on the device and read back once."""
    model.eval()
    dev = images.device
    total_loss = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    with torch.no_grad(), autocast(dev):
        for start in range(0, len(images), batch_size):
            logits = model(images[start : start + batch_size]).float()
            target = labels[start : start + batch_size]
            total_loss += cross_entropy(logits, target, reduction="sum").double()
            correct += (logits.argmax(1) == target).sum()
    return total_loss.item() / len(images), correct.item() / len(images)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def deterministic(seed: int) -> torch.device:
    """Seed torch and ask for deterministic kernels; return the device to train on."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = device()
    if dev.type == "cuda":
        # cuBLAS needs this workspace setting to be deterministic (read when CUDA starts).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    return dev


def train_epoch(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    generator: torch.Generator,
    aug: AugmentationParams,
    params: CnnParams,
    epoch: int,
    group: Group | None = None,
) -> tuple[float, float]:
    """One pass over the (augmented, shuffled) training images; (mean loss, accuracy). With a
    ``group`` (torchrun), this rank's share of each batch; the sums are over all ranks."""
    x_train, y_train = train
    dev = x_train.device
    model.train()
    steps = -(-len(x_train) // params.batch_size)
    permutation = torch.randperm(len(x_train), generator=generator, device=dev)
    # Running sums stay on the device (float64: the sums Python floats gave on the CPU).
    seen = 0
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    for step in range(steps):
        index = permutation[step * params.batch_size : (step + 1) * params.batch_size]
        batch = augment(x_train[index], aug, generator)
        target = y_train[index]
        if group:
            if len(index) < group.size:  # a last batch too small to share: left out
                break
            batch, target = group.shard(batch), group.shard(target)
        with autocast(dev):
            logits = model(batch)
            loss = cross_entropy(logits.float(), target)
            if group:  # DDP averages over ranks: weigh each share by its size (batch's mean)
                loss = loss * (len(target) * group.size / len(index))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        seen += len(target)
        loss_sum += loss.detach().double() * (len(index) / group.size if group else len(index))
        correct += (logits.argmax(1) == target).sum()
        # A terminal only (quiet in logs, CI, Jenkins; reading the sums waits for the device),
        # and rank 0's share only.
        if sys.stderr.isatty() and not (group and group.rank):
            _progress(epoch, params.epochs, step + 1, steps, loss_sum / seen, correct / seen)
    if group:
        loss_sum, correct, total = group.total(loss_sum, correct, torch.tensor(seen, device=dev))
        seen = int(total.item())
    return loss_sum.item() / seen, correct.item() / seen


def _progress(
    epoch: int, epochs: int, step: int, steps: int, loss: torch.Tensor, acc: torch.Tensor
) -> None:
    """The progress bar's line on stderr."""
    done = int(30 * step / steps)
    sys.stderr.write(
        f"\repoch {epoch}/{epochs} [{'#' * done}{'.' * (30 - done)}] {step}/{steps} "
        f"loss {loss.item():.3f} acc {acc.item():.3f}" + ("\n" if step == steps else "")
    )
    sys.stderr.flush()
