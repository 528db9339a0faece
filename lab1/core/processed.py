"""The processed-data contract between stage 2 and stages 3-5 (and lab5's data checks).

data/processed/{train,test}.parquet hold one row per judged day:
  meta columns     station, date, is_faulty (the label), fault_kind
  model input      t_m7 .. t_0 .. t_p7: the raw readings around the day (NaN = missing)
  features         f_<name>: the preprocessor's output (scaled), what the estimator is fit on
data/processed/preprocessor.skops is the fitted preprocessor (skops: loading never unpickles).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lab1.core.errors import DataError

if TYPE_CHECKING:  # pandas is imported to read a file: the names here cost nothing to import
    import pandas as pd

META_COLUMNS = ["station", "date", "is_faulty", "fault_kind"]
LABEL = "is_faulty"
# Names of the label values 0 and 1, in that order (stored in the model; the service answers
# with them).
CLASS_NAMES = ("normal", "faulty")


def input_columns(frame: pd.DataFrame) -> list[str]:
    """The model-input columns (raw readings window), in window order."""
    return [c for c in frame.columns if c.startswith("t_")]


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("f_")]


def read_split(path: Path) -> pd.DataFrame:
    """Read one processed split, checking the contract's columns; DataError names the file."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (run data_preprocessing first)") from None
    except Exception as exc:  # pyarrow raises several types for a garbled file
        raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__})") from None
    missing = [c for c in META_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} missing")
    if not input_columns(frame):
        raise DataError(f"{path}: no model-input columns (t_*)")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def load_preprocessor(path: Path):
    """Load the fitted preprocessor without unpickling (skops, with the model's trust policy)."""
    from lab1.core.model_io import load_skops

    if not path.exists():
        raise DataError(f"{path}: file not found (run data_preprocessing first)")
    return load_skops(path)
