"""The CNN on whatever device it trains on: the pieces that keep the loop on the device, checked
on the CPU here, and the CUDA path itself (marker `gpu`: deselected where there is no CUDA device,
see tests/conftest.py; run on a machine with an NVIDIA GPU).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lab1.core.params import load_params
from lab1.core.paths import PATHS
from tests.lab1.image_archives import pattern_images
from tests.project import changed

PARAMS = load_params(PATHS.params, ["dataset=cifar10"])
pytestmark = [pytest.mark.images]


@pytest.mark.parametrize("shape", [(3, 3), (4, 4), (7, 7), (5, 6), (2, 2), (1, 1), (9, 2)])
def test_pool_2x2_is_adaptive_average_pooling_forward_and_backward(shape):
    import torch
    from torch.nn import functional as F

    from lab1.core.cnn import pool_2x2

    x = torch.randn(3, 4, *shape, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_(True)
    ours, theirs = pool_2x2(x), F.adaptive_avg_pool2d(y, 2)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    assert x.grad is not None and y.grad is not None
    assert torch.allclose(x.grad, y.grad, rtol=0, atol=1e-12)


def crops_and_flips(original: np.ndarray, pad: int) -> list[np.ndarray]:
    """Every image augment may make of ``original`` (H, W, C): each crop of the zero-padded
    image, flipped or not."""
    padded = np.pad(original, ((pad, pad), (pad, pad), (0, 0)))
    h, w = original.shape[:2]
    found = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            found += [crop, crop[:, ::-1]]
    return found


def check_augmented(device: str) -> None:
    import torch

    from lab1.core.cnn import augment

    aug = PARAMS.data_preprocessing.augmentation["cifar10"]
    images = np.random.default_rng(0).integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)
    generator = torch.Generator(device=device).manual_seed(5)
    out = augment(torch.from_numpy(images).to(device), aug, generator)
    assert out.device.type == device and out.dtype == torch.uint8
    result = out.cpu().numpy()
    for made, original in zip(result, images, strict=True):
        options = crops_and_flips(original, aug.crop_padding)
        assert any(np.array_equal(made, option) for option in options)
    assert not np.array_equal(result, images)  # something was cropped or flipped


def test_augment_makes_crops_and_flips_on_the_cpu():
    check_augmented("cpu")


def test_the_cuda_cross_entropy_is_the_cpu_one():
    import torch
    from torch.nn import functional as F

    from lab1.core import cnn

    logits = torch.randn(50, 7, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 7, (50,))
    for reduction in ("mean", "sum"):
        ours = cnn.one_hot_cross_entropy(logits, target, reduction)
        theirs = F.cross_entropy(logits, target, reduction=reduction)
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), reduction
        (grad_ours,) = torch.autograd.grad(ours, logits)
        (grad_theirs,) = torch.autograd.grad(theirs, logits)
        assert torch.allclose(grad_ours, grad_theirs, rtol=0, atol=1e-12), reduction


def test_predict_proba_answers_numpy_from_the_models_device():
    from lab1.core import cnn

    labels = np.arange(64) % 2
    images = pattern_images(labels, 16, 1, seed=4)
    model = cnn.ImageClassifier(*cnn.channel_stats(images), classes=2, width=4, dropout=0.0)
    proba = cnn.predict_proba(cnn.Probabilities(model.eval()), images, batch_size=10)
    assert isinstance(proba, np.ndarray) and proba.shape == (64, 2)
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-6)
    assert cnn.model_device(model).type == "cpu"


# --- CUDA -------------------------------------------------------------------------------------


def small_training(seed: int):
    from lab1.core import cnn

    labels = np.random.default_rng(1).integers(0, 4, size=1600)
    images = pattern_images(labels, 16, 3, seed=2)
    section = changed(PARAMS.cnn, epochs=3, width=8, batch_size=64)
    aug = PARAMS.data_preprocessing.augmentation["cifar10"]
    return cnn.train(images, labels, 4, cnn.channel_stats(images), section, aug, seed)


@pytest.mark.gpu
def test_training_on_cuda_stays_there_learns_and_is_deterministic():
    import torch

    from lab1.core import cnn

    assert cnn.device().type == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a nondeterministic CUDA op warns: that fails here
        (model, history), (again, _) = small_training(0), small_training(0)
    assert cnn.model_device(model).type == "cuda"
    assert max(r.val_accuracy for r in history) >= 0.95
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name


@pytest.mark.gpu
def test_a_model_trained_on_cuda_predicts_and_exports_like_on_the_cpu():
    import torch

    from lab1.core import cnn

    model, _ = small_training(0)
    test_labels = np.arange(40) % 4
    images = pattern_images(test_labels, 16, 3, seed=9)
    on_gpu = cnn.predict_proba(cnn.Probabilities(model), images)
    assert np.mean(on_gpu.argmax(1) == test_labels) >= 0.95
    served = cnn.Probabilities(model).cpu().eval()  # what model_preparation logs
    on_cpu = cnn.predict_proba(served, images)
    assert np.allclose(on_gpu, on_cpu, atol=1e-4)
    exported = torch.export.export(served, (torch.from_numpy(images[:2]),)).module()
    assert np.allclose(cnn.predict_proba(exported, images), on_cpu, atol=1e-6)


@pytest.mark.gpu
def test_augment_makes_crops_and_flips_on_cuda():
    check_augmented("cuda")
