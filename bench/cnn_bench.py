"""Benchmark of the CNN: real Fashion-MNIST (all 10 classes) and 32x32x3 training throughput.

  .venv/bin/python bench/cnn_bench.py [-S model_preparation.cnn.fashion_mnist.epochs=8 ...]

Prints the device, test accuracy, training seconds and images per second on Fashion-MNIST (read
offline from Debian's dataset-fashion-mnist package, or downloaded), with
model_preparation.cnn.fashion_mnist from params.yaml; then images per second for 32x32x3
(CIFAR-10-shaped) training on random images, since CIFAR-10 itself may not be downloadable.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from lab1.core import cnn  # noqa: E402
from lab1.core.datasets.images import make_images  # noqa: E402
from lab1.core.params import load_params  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml", ["dataset=fashion_mnist", *args.overrides])
    section = params.cnn
    with tempfile.TemporaryDirectory() as cache:
        data = make_images(
            "fashion_mnist",
            params.data_creation.fashion_mnist,
            params.data_creation.seed,
            Path(cache),
        )
    stats = cnn.channel_stats(data.train_images)
    started = time.perf_counter()
    model, history = cnn.train(
        data.train_images,
        data.train_labels,
        len(data.classes),
        stats,
        section,
        params.data_preprocessing.augmentation["fashion_mnist"],
        params.model_preparation.seed,
    )
    train_s = time.perf_counter() - started
    accuracy = float(
        np.mean(
            cnn.predict_proba(cnn.Probabilities(model), data.test_images).argmax(1)
            == data.test_labels
        )
    )
    best = max(history, key=lambda r: r.val_accuracy)
    aug = params.data_preprocessing.augmentation["fashion_mnist"]
    rate = np.mean([r.images_per_second for r in history])
    print(
        f"Fashion-MNIST ({data.source}): {len(data.train_labels)} train / "
        f"{len(data.test_labels)} test images, 10 classes, {cnn.device()}"
    )
    print(
        f"  test accuracy {accuracy:.4f} | training {train_s:.0f} s for {len(history)} epochs "
        f"(best epoch {best.epoch}) | {rate:.0f} images/s (28x28x1; augmentation: crop "
        f"padding {aug.crop_padding}, flip {aug.horizontal_flip})"
    )

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4096, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, size=4096).astype(np.int64)
    one_epoch = load_params(
        ROOT / "params.yaml", ["dataset=cifar10", "model_preparation.cnn.cifar10.epochs=1"]
    ).cnn
    _, history = cnn.train(
        images,
        labels,
        2,
        cnn.channel_stats(images),
        one_epoch,
        params.data_preprocessing.augmentation["cifar10"],
        0,
    )
    print(
        f"32x32x3 (CIFAR-10 shape): {history[0].images_per_second:.0f} images/s training "
        f"(width {one_epoch.width}, batch {one_epoch.batch_size}, with augmentation)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
