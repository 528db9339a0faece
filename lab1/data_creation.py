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

from lab1.core import stage
from lab1.core.io import atomic_dir, file_sha256
from lab1.core.kinds import images, tables
from lab1.core.params import Params
from lab1.core.paths import PATHS

logger = logging.getLogger(__name__)


def create_data(params: Params) -> int:
    import mlflow  # imported for the work, not for --help

    with stage.run("data_creation", params) as run:
        mlflow.log_params(run.params)
        if params.is_image:
            create_images(params)
        else:
            create_stations(params)
        mlflow.log_input(run.dataset(PATHS.raw, "output"), context="output")
    return 0


def create_stations(params: Params) -> None:
    import mlflow

    from lab1.core.datasets import temperature  # pandas: imported for the work, not for --help

    section = params.data_creation.temperature
    frames = temperature.generate(section, params.data_creation.seed)  # readings + faults
    splits = temperature.split_by_station(frames, section.test_stations)
    with atomic_dir(PATHS.raw) as tmp:  # all of data/raw appears at once, or nothing does
        manifest = tables.write_raw(splits, tmp, params.dataset)
    rows = {split: sum(len(f) for f in frames.values()) for split, frames in splits.items()}
    faulty = sum(f["faulty"] for f in manifest["files"])
    mlflow.log_metrics(
        {
            "train_rows": rows["train"],
            "test_rows": rows["test"],
            "faulty_fraction": faulty / max(1, sum(rows.values())),
        }
    )
    # Where the data came from is part of its lineage (lineage.py reads the data.* tags).
    mlflow.set_tag("data.verified", "false (user CSV)" if section.csv_path else "synthetic")
    if section.csv_path:  # the user's file by content, not by path
        source = {"data.source": str(section.csv_path)}
        mlflow.set_tags(source | {"data.source_sha256": file_sha256(Path(section.csv_path))})
    logger.info("wrote %d station files (%s rows) to %s", len(manifest["files"]), rows, PATHS.raw)


def create_images(params: Params) -> None:
    import mlflow

    from lab1.core.datasets.images import make_images

    section = getattr(params.data_creation, params.dataset)
    splits = make_images(params.dataset, section, params.data_creation.seed, PATHS.data_cache)
    with atomic_dir(PATHS.raw) as tmp:
        manifest = images.write_images(splits, tmp, params.dataset)
    mlflow.log_metrics(
        {"train_rows": len(splits.train_labels), "test_rows": len(splits.test_labels)}
    )
    # Whether the files passed the md5 check is part of the data's lineage (the data.* tags).
    mlflow.set_tags({"data.verified": splits.verified, "data.source": splits.source})
    logger.info(
        "wrote %s images of %d classes (%s) to %s",
        {f["split"]: f["rows"] for f in manifest["files"]},
        len(splits.classes),
        "verified" if splits.verified else "NOT verified",
        PATHS.raw,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    parser = stage.parser(__doc__)
    parser.add_argument(
        "--csv",
        type=Path,
        help="base series from a CSV of real daily readings "
        "(columns date, station, temperature); sets data_creation.temperature.csv_path",
    )
    args = parser.parse_args(argv)
    # --csv is a shortcut for the params key it sets.
    csv = [f"data_creation.temperature.csv_path={args.csv.resolve()}"] if args.csv else []
    return stage.exit_code("data_creation", args, create_data, extra=csv)


if __name__ == "__main__":
    raise SystemExit(stage.process(main))
