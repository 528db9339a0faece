"""Send weeks of readings to the running service, then monitor each week: a normal week should
raise no alarm and a shifted one should.

A week: a fleet of weather stations each sends its 7 judged days (one request per station, 15
readings per day) with faults injected as in training, and the labels the generator knows go to
a labels file. Kinds of week:

    normal   stations with the training stations' climates (new weather, a random time of year)
    climate  stations with the held-out climates (moscow, phoenix, singapore): other weather
    sensor   normal climates, but one station in four has a broken sensor (stuck the whole week)
    shifted  both at once

    make serve                                   # in another terminal
    .venv/bin/python -m lab3.monitor.simulate    # one normal week, then one shifted week
    .venv/bin/python -m lab3.monitor.simulate --weeks 20 --kinds normal climate sensor shifted

Each week is monitored with `.venv/bin/python -m lab3.monitor` (report, MLflow run); the last lines
on stderr give the share of weeks of each kind that raised an alarm, and the command that judges the
last week of each kind again. The weeks are sent seconds apart: `make monitor` alone judges the last
7 days, all weeks mixed (a shifted week beside a normal one is half diluted), so a week is judged on
its own with its window: `make monitor SINCE=... UNTIL=...`.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.datasets.temperature import CLIMATES, clean_series, inject_faults
from lab1.core.errors import PipelineError
from lab1.core.mlflow_ui import is_http_address
from lab1.core.paths import PATHS

logger = logging.getLogger("lab3.monitor.simulate")

KINDS = ("normal", "climate", "sensor", "shifted")
DAYS, BROKEN_SHARE, SPAN_DAYS = 7, 0.25, 365
OUT = Path("reports/monitoring/simulation")


def station_week(climate_name: str, start: pd.Timestamp, broken: bool, params, seed: list[int]):
    """One station's week: 7 windows of raw readings, their labels and fault kinds. Faults are
    injected over a year around the week, so their kinds and lengths are those of training."""
    rng = np.random.default_rng(seed)
    half = params.data_preprocessing.window
    dates = pd.date_range(start - pd.Timedelta(days=SPAN_DAYS // 2), periods=SPAN_DAYS, freq="D")
    series = clean_series(CLIMATES[climate_name], dates, rng)
    readings, kinds = inject_faults(series, params.data_creation.temperature.faults, rng)
    first = SPAN_DAYS // 2
    if broken:  # stuck at one value from a week before the first judged day to the end
        readings[first - half :] = readings[first - half - 1]
        kinds[first - half :] = "stuck"
    windows = [readings[d - half : d + half + 1] for d in range(first, first + DAYS)]
    week_kinds = [str(k) for k in kinds[first : first + DAYS]]
    return windows, week_kinds


def fleet(kind: str, seed: int, stations: int, params) -> list[tuple[str, list, list]]:
    """``stations`` (name, windows, fault kinds) of one week of ``kind``."""
    held_out = list(params.data_creation.temperature.test_stations)
    trained = [s for s in params.data_creation.temperature.stations if s not in held_out]
    climates = held_out if kind in ("climate", "shifted") else trained
    rng = np.random.default_rng([seed, 0])
    start = pd.Timestamp("2025-01-01") + pd.Timedelta(days=int(rng.integers(0, 365)))
    out = []
    for i in range(stations):
        climate = climates[i % len(climates)]
        broken = kind in ("sensor", "shifted") and i < round(BROKEN_SHARE * stations)
        windows, kinds = station_week(climate, start, broken, params, [seed, i, 2])
        out.append((f"{climate}-{i}", windows, kinds))
    return out


def send_week(url: str, name: str, stations: list, labels: Path) -> str:
    """POST each station's week (one request, request id ``<name>:<station>``); write the
    labels file; return the last request id."""
    with requests.Session() as client, labels.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["request_id", "row", "label", "fault_kind"])
        for station, windows, kinds in stations:
            request_id = f"{name}:{station}"
            rows = [[None if np.isnan(v) else float(v) for v in w] for w in windows]
            try:
                answer = client.post(
                    f"{url}/predict",
                    json={"instances": rows},
                    headers={"X-Request-ID": request_id},
                    timeout=30,
                )
            except requests.ConnectionError:
                raise PipelineError(f"{url}: no service answers (start it: make serve)") from None
            if answer.status_code != 200:
                raise PipelineError(f"{url}/predict answered {answer.status_code}: "
                                    f"{answer.text[:200]}")  # fmt: skip
            for row, kind in enumerate(kinds):
                writer.writerow([request_id, row, "faulty" if kind else "normal", kind])
    return request_id


def wait_ready(url: str, timeout_s: float = 120.0) -> None:
    """Until the service has loaded its model (a service just started takes seconds)."""
    deadline, said = time.monotonic() + timeout_s, False
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if not said:
            logger.info("waiting for %s/ready (the service loads its model)", url)
            said = True
        time.sleep(0.5)
    raise PipelineError(f"{url}: not ready after {timeout_s:.0f} s (start it: make serve)")


def wait_logged(folder: Path, request_id: str, timeout_s: float = 15.0) -> None:
    """Until the service's log writer has written ``request_id`` (it hands over twice a second)."""
    needle = f'"request_id":"{request_id}"'.encode()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(needle in path.read_bytes() for path in folder.glob("predictions-*.jsonl")):
            return
        time.sleep(0.2)
    raise PipelineError(
        f"{folder}: request {request_id} not logged after {timeout_s:.0f} s "
        "(is the service's prediction log on, and does it write here?)"
    )


def simulate(args: argparse.Namespace) -> int:
    from lab3.monitor.__main__ import main as monitor_main

    params = params_from_args(args)
    folder = PATHS.root / params.monitoring.prediction_log
    out = PATHS.root / OUT
    out.mkdir(parents=True, exist_ok=True)
    alarms: dict[str, list[bool]] = {kind: [] for kind in args.kinds}
    windows: dict[str, tuple[str, str]] = {}  # the last week of each kind: --since, --until
    wait_ready(args.url)
    for week in range(args.weeks):
        for kind in args.kinds:
            name = f"{kind}-{args.seed + week}"
            stations = fleet(kind, args.seed + week, args.stations, params)
            since = datetime.now(UTC)
            # The request ids are new in each run of the simulation: waiting for the last one
            # must not find an earlier run's.
            sent = f"{since:%Y%m%dT%H%M%S.%f}-{name}"
            last = send_week(args.url, sent, stations, out / f"{name}.labels.csv")
            wait_logged(folder, last)
            windows[kind] = (since.isoformat(), datetime.now(UTC).isoformat())
            code = monitor_main([
                "--since", windows[kind][0], "--until", windows[kind][1],
                "--labels", str(out / f"{name}.labels.csv"),
                "--report", str(out / f"{name}.html"), *[f"-S{o}" for o in args.overrides],
            ])  # fmt: skip
            if code not in (0, 3):
                return code
            alarms[kind].append(code == 3)
            logger.info("week %s: %s", name, "ALARM" if code == 3 else "no alarm")
    for kind, raised in alarms.items():
        logger.info("%-8s weeks with an alarm: %d of %d (%.0f %%)", kind, sum(raised),
                    len(raised), 100 * np.mean(raised))  # fmt: skip
    for kind, (since_text, until_text) in windows.items():
        labels = OUT / f"{kind}-{args.seed + args.weeks - 1}.labels.csv"
        logger.info("the last %s week again: make monitor SINCE=%s UNTIL=%s LABELS=%s", kind,
                    since_text, until_text, labels)  # fmt: skip
    return 0


def service_url(text: str) -> str:
    """--url's type: http(s)://host[:port], checked before any week is made."""
    if not is_http_address(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not the address of a service (e.g. http://127.0.0.1:8080)"
        )
    return text.rstrip("/")


def parser() -> argparse.ArgumentParser:
    cli = stage_parser(__doc__)
    cli.prog = ".venv/bin/python -m lab3.monitor.simulate"
    cli.add_argument(
        "--url",
        type=service_url,
        default="http://127.0.0.1:8080",
        help="the service (make serve; make simulate gives SERVE_PORT's)",
    )
    cli.add_argument("--weeks", type=int, default=1, help="weeks of each kind (default: 1)")
    cli.add_argument("--kinds", nargs="+", choices=KINDS, default=["normal", "shifted"])
    cli.add_argument("--stations", type=int, default=40, help="stations in the fleet")
    cli.add_argument("--seed", type=int, default=0, help="the first week's seed")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_script("simulate", lambda: simulate(args))


if __name__ == "__main__":
    sys.exit(main())
