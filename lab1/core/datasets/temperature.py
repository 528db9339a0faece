"""Synthetic daily temperatures from weather stations, with labelled sensor faults.

Pure functions of (params, seed): no files, no MLflow. ``data_creation`` does the I/O.

A station's series = seasonal cycle + persistent weather noise (AR(1)). Faults of four kinds are
then injected and labelled per day: a spike (one wild reading), a stuck sensor (the same value
repeated), drift (an offset growing day by day until recalibration) and missing readings (NaN).
The base series may also come from a user's CSV of real readings; faults are injected the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lab1.core.errors import DataError
from lab1.core.params import FaultParams, TemperatureParams

RAW_COLUMNS = ["date", "station", "temperature", "is_faulty", "fault_kind"]
# Faults never touch each other: leaves clean readings between two faults, so each label is clear.
_FAULT_GAP_DAYS = 2


@dataclass(frozen=True)
class Climate:
    """A station's climate: yearly mean, half the summer-winter swing, warmest day of the year,
    day-to-day weather noise and how persistent that weather is (AR(1) coefficient)."""

    mean_c: float
    amplitude_c: float
    warmest_doy: int
    noise_c: float
    persistence: float


CLIMATES: dict[str, Climate] = {
    "yakutsk": Climate(-8.5, 30.0, 198, 3.0, 0.75),  # extreme continental
    "murmansk": Climate(0.5, 11.0, 205, 3.0, 0.70),  # subarctic
    "davos": Climate(3.0, 9.0, 205, 6.5, 0.55),  # mountain valley: much noisier than the rest
    "moscow": Climate(6.0, 14.0, 200, 2.8, 0.75),  # humid continental
    "bergen": Climate(8.0, 7.0, 210, 1.8, 0.70),  # maritime
    "phoenix": Climate(24.0, 10.0, 200, 1.5, 0.70),  # hot desert
    "singapore": Climate(27.5, 1.0, 130, 0.8, 0.50),  # equatorial
    "sydney": Climate(18.0, 5.0, 20, 2.0, 0.65),  # southern hemisphere: warmest in January
}


def clean_series(climate: Climate, dates: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    """Seasonal cycle plus AR(1) weather noise, one value per date (degrees C)."""
    doy = dates.day_of_year.to_numpy()
    seasonal = climate.mean_c + climate.amplitude_c * np.cos(
        2 * np.pi * (doy - climate.warmest_doy) / 365.25
    )
    # Scale the innovations so the stationary noise has standard deviation noise_c.
    innovation_sd = climate.noise_c * np.sqrt(1 - climate.persistence**2)
    noise = np.empty(len(dates))
    noise[0] = rng.normal(0, climate.noise_c)
    for i in range(1, len(dates)):
        noise[i] = climate.persistence * noise[i - 1] + rng.normal(0, innovation_sd)
    return np.round(seasonal + noise, 2)


def inject_faults(
    values: np.ndarray, faults: FaultParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Inject faults until about ``faults.fraction`` of days are faulty.

    Returns (readings with faults, fault kind per day; "" for a normal day). Readings that were
    already missing in ``values`` are labelled "missing" too.
    """
    out = values.astype(float).copy()
    kind = np.where(np.isnan(out), "missing", "").astype(object)
    n = len(out)
    target = round(faults.fraction * n)
    # Draw kinds roughly in inverse proportion to their mean length (the 0.7 power offsets long
    # runs failing more often to find room), so each kind contributes a similar number of faulty
    # days; drawn uniformly, long drifts would swamp one-day spikes.
    weights = np.array([1.0 / np.mean(_length_range(k, faults)) ** 0.7 for k in faults.kinds])
    weights /= weights.sum()
    for _attempt in range(50 * n):
        if np.count_nonzero(kind != "") >= target:
            break
        fault = faults.kinds[rng.choice(len(faults.kinds), p=weights)]
        length = _fault_length(fault, faults, rng)
        start = int(rng.integers(1, max(2, n - length)))
        lo, hi = max(0, start - _FAULT_GAP_DAYS), min(n, start + length + _FAULT_GAP_DAYS)
        if np.any(kind[lo:hi] != ""):
            continue
        span = slice(start, start + length)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if fault == "spike":
            out[span] += sign * rng.uniform(faults.spike_c[0], faults.spike_c[1])
        elif fault == "stuck":
            out[span] = out[start - 1]
        elif fault == "drift":
            reached = rng.uniform(faults.drift_c[0], faults.drift_c[1])
            out[span] += sign * reached * np.arange(1, length + 1) / length
        elif fault == "missing":
            out[span] = np.nan
        kind[span] = fault
    return np.round(out, 2), kind


def _length_range(fault: str, faults: FaultParams) -> list[int]:
    return {
        "spike": [1, 1],
        "stuck": faults.stuck_days,
        "drift": faults.drift_days,
        "missing": faults.missing_days,
    }[fault]


def _fault_length(fault: str, faults: FaultParams, rng: np.random.Generator) -> int:
    low, high = _length_range(fault, faults)
    return int(rng.integers(low, high + 1))


def generate(params: TemperatureParams, seed: int) -> dict[str, pd.DataFrame]:
    """Build one labelled frame per station (columns RAW_COLUMNS), deterministic from ``seed``.

    The base series are synthetic, or read from ``params.csv_path`` when it is set.
    """
    if params.csv_path:
        base = read_station_csv(Path(params.csv_path))
    else:
        base = _synthetic_base(params, seed)
    source = params.csv_path or "data_creation.temperature.stations"
    for station in params.stations:
        if station not in base:
            raise DataError(f"{source}: no station {station!r} (found: {', '.join(sorted(base))})")
    # test_stations within stations, and some left to train on: params.py checks that.
    frames = {}
    for index, station in enumerate(params.stations):
        # One generator per station: adding a station never changes the others' data.
        rng = np.random.default_rng([seed, index, 1])
        series = base[station]
        readings, kind = inject_faults(series.to_numpy(dtype=float), params.faults, rng)
        frames[station] = pd.DataFrame(
            {
                "date": series.index.strftime("%Y-%m-%d"),
                "station": station,
                "temperature": readings,
                "is_faulty": (kind != "").astype(int),
                "fault_kind": kind,
            }
        )
    return frames


def split_by_station(
    frames: dict[str, pd.DataFrame], test_stations: list[str]
) -> dict[str, dict[str, pd.DataFrame]]:
    """``{"train": {station: frame}, "test": {...}}``: the model is tested on stations it never
    saw, so a good score cannot come from memorising a station's climate."""
    return {
        "train": {s: f for s, f in frames.items() if s not in test_stations},
        "test": {s: f for s, f in frames.items() if s in test_stations},
    }


def _synthetic_base(params: TemperatureParams, seed: int) -> dict[str, pd.Series]:
    unknown = [s for s in params.stations if s not in CLIMATES]
    if unknown:
        raise DataError(
            f"params.yaml: data_creation.temperature.stations has unknown station {unknown[0]!r} "
            f"(catalogue: {', '.join(CLIMATES)}; or set csv_path)"
        )
    dates = pd.date_range(params.start_date, periods=round(365.25 * params.years), freq="D")
    base = {}
    for index, station in enumerate(params.stations):
        rng = np.random.default_rng([seed, index, 0])
        base[station] = pd.Series(clean_series(CLIMATES[station], dates, rng), index=dates)
    return base


def read_station_csv(path: Path) -> dict[str, pd.Series]:
    """Read real daily readings (columns date, station, temperature) into one daily series per
    station. Days absent from the file become missing readings (NaN)."""
    frame = _read_csv(path, ["date", "station", "temperature"], dtype={"station": str})
    dates = pd.to_datetime(frame["date"], errors="coerce", format="%Y-%m-%d")
    _refuse_first(dates.isna(), frame["date"], path, "is not YYYY-MM-DD")
    _check_station_names(frame, path)
    readings = _numeric(frame, "temperature", path)
    _check_plausible(readings, frame["temperature"], path)
    frame = frame.assign(date=dates, temperature=readings)
    duplicated = frame.duplicated(["station", "date"])
    if duplicated.any():
        line = _line_of(duplicated)
        station, date = frame["station"].iloc[line - 2], frame["date"].iloc[line - 2]
        raise DataError(f"{path}: line {line}: station {station!r} has date {date:%Y-%m-%d} twice")
    series = {}
    for station, group in frame.groupby("station", sort=True):
        daily = group.set_index("date")["temperature"].sort_index()
        full = pd.date_range(daily.index.min(), daily.index.max(), freq="D")
        series[str(station)] = daily.reindex(full)
    return series


# A station's name becomes part of MLflow metric keys (accuracy.<station>): MLflow accepts
# letters, digits, _ - . and spaces there (plus / and :, which this project keeps out: a path).
STATION_NAME = re.compile(r"^\w[\w.\- ]*$")
# Readings outside Earth's records (-89.2 and 56.7 degrees C) are a broken sensor or wrong units.
PLAUSIBLE_C = (-90.0, 60.0)


def _check_station_names(frame: pd.DataFrame, path: Path) -> None:
    names = frame["station"].astype(str)
    bad = ~names.str.match(STATION_NAME) | names.str.contains("..", regex=False)
    problem = "may hold only letters, digits, _, -, . and spaces (it names MLflow metrics)"
    _refuse_first(bad, names, path, problem)


def _check_plausible(readings: pd.Series, as_written: pd.Series, path: Path) -> None:
    """Refuse infinite readings and readings no thermometer on Earth has shown."""
    low, high = PLAUSIBLE_C
    bad = readings.notna() & ~readings.between(low, high)
    problem = (
        f"is outside {low:g}..{high:g} degrees C (Earth's records: -89.2, 56.7): a broken "
        "sensor, or not Celsius"
    )
    _refuse_first(bad, as_written.map(str), path, problem)


def read_raw_station_file(path: Path) -> pd.DataFrame:
    """Read one raw station file written by data_creation, checking its schema."""
    frame = _read_csv(
        path,
        RAW_COLUMNS,
        dtype={"station": str, "fault_kind": str},
        keep_default_na=False,  # an empty fault_kind means "normal", not NaN
        na_values={"temperature": [""]},
    )
    frame["temperature"] = _numeric(frame, "temperature", path)
    labels = _numeric(frame, "is_faulty", path)
    if labels.isna().any() or not set(labels.unique()) <= {0, 1}:
        found = sorted(map(str, frame["is_faulty"].unique()))
        raise DataError(f"{path}: column 'is_faulty' must hold only 0 and 1 (found: {found})")
    frame["is_faulty"] = labels.astype(int)
    return frame


def _read_csv(path: Path, required: list[str], **options) -> pd.DataFrame:
    """Read a CSV that must exist, parse, have ``required`` columns and at least one row."""
    try:
        frame = pd.read_csv(path, **options)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise DataError(f"{path}: column {missing[0]!r} missing (found: {found})")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``column`` as numbers; an empty cell is NaN, any other non-number is an error."""
    numeric = pd.to_numeric(frame[column], errors="coerce")
    bad = numeric.isna() & frame[column].notna() & (frame[column].astype(str).str.strip() != "")
    _refuse_first(bad, frame[column], path, "is not a number")
    return numeric


def _refuse_first(bad: pd.Series, values: pd.Series, path: Path, problem: str) -> None:
    """DataError at the first row ``bad`` marks: "<path>: line <n>: <column>=<value> <problem>"."""
    if bad.any():
        line = _line_of(bad)
        raise DataError(f"{path}: line {line}: {values.name}={values.iloc[line - 2]!r} {problem}")


def _line_of(mask: pd.Series) -> int:
    """File line of the first True row (line 1 is the header)."""
    return int(mask.to_numpy().argmax()) + 2
