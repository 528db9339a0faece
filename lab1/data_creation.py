"""Stage 1/5: data creation.

Generates daily temperature readings for several weather stations (seasonal cycle, weather noise,
one much noisier station) with labelled sensor faults: spikes, stuck readings, drift and missing
readings. Some stations go to data/raw/train/, the others to data/raw/test/, so the model is
tested on stations it never saw. Deterministic from data_creation.seed.

Reads:  params.yaml (dataset, data_creation); optionally a CSV of real readings (--csv)
Writes: data/raw/{train,test}/<station>.csv and data/raw/manifest.json (rows, faults, sha256)
"""

from __future__ import annotations

import logging
from pathlib import Path

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.datasets import RawSplits, make_raw
from lab1.core.io import atomic_dir, file_sha256, write_json
from lab1.core.paths import PATHS
from lab1.core.tracking import stage_run

STAGE = "data_creation"
logger = logging.getLogger(f"lab1.{STAGE}")  # not __name__: that is "__main__" under -m


def write_raw(splits: RawSplits, out_dir: Path) -> dict:
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
    manifest = {"files": files}
    write_json(out_dir / "manifest.json", manifest)
    return manifest


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
            splits = make_raw(params)
            with atomic_dir(PATHS.raw) as tmp:
                manifest = write_raw(splits, tmp)
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
            logger.info(
                "wrote %d station files (%s rows) to %s", len(manifest["files"]), rows, PATHS.raw
            )
        return 0

    return run_script(STAGE, body)


if __name__ == "__main__":
    raise SystemExit(main())
