"""Benchmark of the CNN: real Fashion-MNIST (all 10 classes) and 32x32x3 training throughput.

  .venv/bin/python bench/cnn_bench.py [--processes 1 2] [-S model_preparation.cnn.fashion_mnist...]

Prints the device, test accuracy, training seconds and images per second on Fashion-MNIST (read
offline from Debian's dataset-fashion-mnist package, or downloaded), with
model_preparation.cnn.fashion_mnist from params.yaml, once per number of processes in
--processes (data-parallel under torchrun, lab1/core/distributed.py; the same global batch and
epochs), in one run, with the ratio to the first, each with its torch threads and the load
average around it (other jobs on the cores make any ratio meaningless), and what the quality gate
(model_registration.fashion_mnist) would say of each model: settings chosen to measure speed
(fewer images or epochs) may give a model that `bash pipeline.sh` with the same -S options trains
and then refuses (exit 3). Then images per second for 32x32x3 (CIFAR-10-shaped) training on
random images in one process, since CIFAR-10 itself may not be downloadable. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from lab1.core.datasets.images import make_images  # noqa: E402
from lab1.core.evaluation import multiclass_metrics  # noqa: E402
from lab1.core.gate import decide  # noqa: E402
from lab1.core.params import load_params  # noqa: E402


def fashion_mnist(overrides: list[str], out: Path) -> None:
    """One rank's training on Fashion-MNIST (all ranks under torchrun); rank 0 writes what it
    measured to ``out``."""
    import torch

    from lab1.core import cnn  # torch: imported for the work, not for --help

    params = load_params(ROOT / "params.yaml", ["dataset=fashion_mnist", *overrides])
    with tempfile.TemporaryDirectory() as cache:
        data = make_images(
            "fashion_mnist",
            params.data_creation.fashion_mnist,
            params.data_creation.seed,
            Path(cache),
        )
    started = time.perf_counter()
    model, history = cnn.train(
        data.train_images,
        data.train_labels,
        len(data.classes),
        cnn.channel_stats(data.train_images),
        params.cnn,
        params.data_preprocessing.augmentation["fashion_mnist"],
        params.model_preparation.seed,
    )
    train_s = time.perf_counter() - started
    if int(os.environ.get("RANK", "0")):
        return
    proba = cnn.predict_proba(cnn.Probabilities(model), data.test_images)
    best = max(history, key=lambda r: r.val_accuracy)
    metrics = multiclass_metrics(data.test_labels, proba)  # as model_testing measures them
    result = {
        "source": data.source,
        "train": len(data.train_labels),
        "test": len(data.test_labels),
        "device": str(cnn.device()),
        "threads": torch.get_num_threads(),  # per process: torch's choice, 1 under torchrun
        "accuracy": metrics["accuracy"],
        "f1": metrics["f1"],
        "train_s": train_s,
        "epochs": len(history),
        "best_epoch": best.epoch,
        "images_per_second": float(np.mean([r.images_per_second for r in history])),
    }
    out.write_text(json.dumps(result))


def measure(processes: int, overrides: list[str]) -> dict:
    """Fashion-MNIST trained by ``processes`` processes (torchrun for more than one), with the
    1-minute load average before and after."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        worker = [str(Path(__file__)), "--worker", str(out)]
        for override in overrides:
            worker += ["-S", override]
        launch = ["-m", "lab1.core.distributed", "--standalone", "--nproc-per-node"]
        launch = [*launch, str(processes)] if processes > 1 else []
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, *launch, *worker], check=True, cwd=ROOT, env=env)
        return {**json.loads(out.read_text()), "load": (load_before, os.getloadavg()[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1], help="one run per number (default: 1)"
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a rank of one run
    args = parser.parse_args(argv)
    try:
        from lab1.core import cnn
    except ModuleNotFoundError as exc:  # the quick tier's environment has no torch
        sys.stderr.write(f"{exc.name} is not installed: `bash pipeline.sh --setup --images`\n")
        return 2
    if args.worker:
        fashion_mnist(args.overrides, args.worker)
        return 0
    params = load_params(ROOT / "params.yaml", ["dataset=fashion_mnist", *args.overrides])
    aug = params.data_preprocessing.augmentation["fashion_mnist"]
    first: dict = {}
    cpus, busiest = len(os.sched_getaffinity(0)), 0.0
    for processes in args.processes:
        got = measure(processes, args.overrides)
        first = first or got
        if processes == args.processes[0]:
            print(
                f"Fashion-MNIST ({got['source']}): {got['train']} train / {got['test']} test "
                f"images, 10 classes, {got['device']}, batch {params.cnn.batch_size} (global), "
                f"augmentation: crop padding {aug.crop_padding}, flip {aug.horizontal_flip}; "
                f"{cpus} CPUs"
            )
        threads = f"{got['threads']} thread{'s' if got['threads'] > 1 else ''}"
        who = f"{processes} processes, {threads} each" if processes > 1 else f"1 process, {threads}"
        print(
            f"  {who}: test accuracy "
            f"{got['accuracy']:.4f} | training {got['train_s']:.0f} s for {got['epochs']} epochs "
            f"(best epoch {got['best_epoch']}) | {got['images_per_second']:.0f} images/s "
            f"(x{got['images_per_second'] / first['images_per_second']:.2f}) | load average "
            f"{got['load'][0]:.1f} before, {got['load'][1]:.1f} after"
        )
        # The gate pipeline.sh applies to a first model (no champion to beat).
        verdict = decide({"accuracy": got["accuracy"], "f1": got["f1"]}, None, params.gate)
        print(
            f"    quality gate: {verdict.label}: {verdict.reason}"
            + ("" if verdict.passed else " - pipeline.sh with these settings ends in exit 3")
        )
        busiest = max(busiest, *got["load"])
    if busiest > cpus:
        # Measured on a busy machine, a process of 2 threads loses most: each waits for the
        # other at every operation whenever another job holds a core (torchrun's ranks: 1 each).
        print(
            f"  (load average up to {busiest:.1f} on {cpus} CPUs: other jobs took the cores, so "
            "these ratios measure the load, not the code; on an idle machine N processes on N "
            "cores can be at most xN)"
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
