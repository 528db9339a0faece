"""Stage 1/5: data creation.

temperature (default): generates daily temperature readings for several weather stations
(seasonal cycle, weather noise, one much noisier station) with labelled sensor faults: spikes,
stuck readings, drift and missing readings. Some stations go to data/raw/train/, the others to
data/raw/test/, so the model is tested on stations it never saw. Deterministic from the seed.

cifar10, fashion_mnist: reads the images with torchvision's dataset classes (from data_dir,
Debian's package or a one-time download into data/cache), keeps the classes named in params.

Reads:  params.yaml (dataset, data_creation); optionally a CSV of real readings (--csv)
Writes: data/raw/{train,test}/<station>.csv, or data/raw/{train,test}.npz for images, and
        data/raw/manifest.json (dataset, rows, sha256; for images: classes, verified)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.datasets import RawSplits, make_raw
from lab1.core.io import atomic_dir, file_sha256, write_json
from lab1.core.paths import PATHS
from lab1.core.tracking.stage_run import stage_run

STAGE = "data_creation"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def write_raw(splits: RawSplits, out_dir: Path, dataset: str) -> dict:
    """Write one CSV per station and split into ``out_dir``; return the manifest it wrote."""
    files = []
    for split, frames in splits.items():
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        for name, frame in sorted(frames.items()):
            path = out_dir / split / f"{name}.csv"
            frame.to_csv(path, index=False, na_rep="")
            files.append(
                {
                    "path": f"{split}/{name}.csv",
                    "split": split,
                    "rows": len(frame),
                    "faulty": int(frame["is_faulty"].sum()),
                    "sha256": file_sha256(path),
                }
            )
    manifest = {"dataset": dataset, "files": files}
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def write_images(splits, out_dir: Path, dataset: str) -> dict:
    """Write train.npz / test.npz (uint8 images + labels) and the manifest; return it."""
    from lab1.core.datasets.images import save_split

    files = []
    for split in ("train", "test"):
        images, labels = getattr(splits, f"{split}_images"), getattr(splits, f"{split}_labels")
        path = out_dir / f"{split}.npz"
        save_split(path, images, labels)
        counts = np.bincount(labels, minlength=len(splits.classes)).tolist()
        files.append(
            {
                "path": path.name,
                "split": split,
                "rows": len(labels),
                "per_class": counts,
                "sha256": file_sha256(path),
            }
        )
    manifest = {
        "dataset": dataset,
        "classes": splits.classes,
        "verified": splits.verified,
        "source": splits.source,
        "image_shape": list(splits.train_images.shape[1:]),
        "files": files,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def create_stations(params, run) -> None:
    splits = make_raw(params)
    with atomic_dir(PATHS.raw) as tmp:
        manifest = write_raw(splits, tmp, params.dataset)
    run.add_output(PATHS.raw)
    rows = {split: sum(len(f) for f in frames.values()) for split, frames in splits.items()}
    faulty = sum(f["faulty"] for f in manifest["files"])
    run.log(
        metrics={
            "train_rows": rows["train"],
            "test_rows": rows["test"],
            "faulty_fraction": faulty / max(1, sum(rows.values())),
        }
    )
    logger.info("wrote %d station files (%s rows) to %s", len(manifest["files"]), rows, PATHS.raw)


def create_images(params, run) -> None:
    from lab1.core.datasets.images import make_images

    section = getattr(params.data_creation, params.dataset)
    splits = make_images(params.dataset, section, params.data_creation.seed, PATHS.data_cache)
    with atomic_dir(PATHS.raw) as tmp:
        manifest = write_images(splits, tmp, params.dataset)
    run.add_output(PATHS.raw)
    # Whether the files passed the md5 check is part of the data's lineage.
    run.log(
        metrics={"train_rows": len(splits.train_labels), "test_rows": len(splits.test_labels)},
        tags={"data.verified": str(splits.verified), "data.source": splits.source},
    )
    logger.info(
        "wrote %s images of %d classes (%s) to %s",
        {f["split"]: f["rows"] for f in manifest["files"]},
        len(splits.classes),
        "verified" if splits.verified else "NOT verified",
        PATHS.raw,
    )


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--csv",
        type=Path,
        help="base series from a CSV of real daily readings "
        "(columns date, station, temperature); sets data_creation.temperature.csv_path",
    )
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        if args.csv:
            args.overrides.append(f"data_creation.temperature.csv_path={args.csv.resolve()}")
        params = params_from_args(args)
        with stage_run(STAGE, params) as run:
            if params.is_image:
                create_images(params, run)
            else:
                create_stations(params, run)
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
