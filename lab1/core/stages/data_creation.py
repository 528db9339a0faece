"""Stage 1/5: data creation. The dataset's kind writes data/raw (splits + manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lab1.core.kinds import Kind
from lab1.core.params import Params
from lab1.core.runner import Stage
from lab1.core.tracking.stage_run import StageRun


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv",
        type=Path,
        help="base series from a CSV of real daily readings "
        "(columns date, station, temperature); sets data_creation.temperature.csv_path",
    )


def overrides(args: argparse.Namespace) -> list[str]:
    """--csv is a shortcut for the params key it sets."""
    return [f"data_creation.temperature.csv_path={args.csv.resolve()}"] if args.csv else []


def run(params: Params, kind: Kind, run: StageRun) -> int:
    kind.create(params, run)
    return 0


STAGE = Stage("data_creation", run, add_arguments=add_arguments, overrides=overrides)
