"""Request bodies -> validated numpy batches. Pure functions: no FastAPI, no model calls.

Every refusal is an InputError carrying the HTTP status and a one-line message that names the
field and the value, so bad input is a 4xx the client can act on, never a 5xx. Nothing from a
request is ever unpickled: JSON is parsed by orjson (strict: no NaN/Infinity, no numbers beyond
float64; ~6x faster than the json module on a 1,000-row batch), images by Pillow.

Why not pydantic models for the bodies (issue 33 asked for them unless they cost over 10 %): tried
on 2026-12-05, `bench/serve_bench.py --against` (A/B in one run, 2 cores) gave 1.07-1.16x at 1
row, 0.99-1.00x at 1,000 rows, but 0.81-0.86x at 10,000 rows (in-process a valid 10,000-row batch
took ~115 ms against ~60 ms), and the module grew from 254 to 294 lines: the one-line messages
still had to be rebuilt from pydantic's errors, and its default of collecting every error made a
body of 150,000 bad cells cost 3.5 s and 250 MB until each collection stopped at its first.

Accepted /predict bodies (``instances`` is this service's own; the other two are what
``mlflow models serve`` takes, so the same client code works against both):
    {"instances": [[t_m7, ..., t_p7], ...]}            rows in the signature's column order
    {"instances": [{"t_m7": ..., ...}, ...]}           or rows as objects
    {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
    {"inputs": [[...], ...]}  or  {"inputs": {"t_m7": [...], ...}}   (columnar)
For a tabular model ``null`` is a missing reading (the model handles those); NaN and Infinity
are not JSON and are refused. The tabular model is the temperature model: its readings are
degrees C, and one outside PLAUSIBLE_C (the data stage's range) is refused with 422 naming the row
and column, as the data stage refuses it in a CSV (lab3/README.md says why). For an image model,
instances/inputs hold uint8 images (H, W, C) as nested lists.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import orjson

from lab1.core.datasets.temperature import PLAUSIBLE_C

NUMBER_TYPES = (int, float)  # checked with type(): bool is an int subclass and is refused
PLAIN_CELL_TYPES = {int, float, type(None)}
BODY_KEYS = ("instances", "dataframe_split", "inputs")
MAX_IMAGE_PIXELS = 4096 * 4096


class InputError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json(body: bytes) -> Any:
    """Strict JSON. Malformed, non-UTF-8, NaN/Infinity or out-of-range numbers -> 400."""
    if not body:
        raise InputError(400, "body: empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        for constant in (b"NaN", b"Infinity"):
            if constant in body:  # the likeliest cause, said plainly
                raise InputError(
                    400,
                    f"body: {constant.decode()} is not valid JSON; send null for a missing value",
                ) from None
        raise InputError(400, f"body: malformed JSON ({exc})") from None


def _body_field(payload: Any) -> tuple[str, Any]:
    if not isinstance(payload, dict):
        raise InputError(422, f"body: expected a JSON object with one of {', '.join(BODY_KEYS)}")
    present = [key for key in BODY_KEYS if key in payload]
    extra = sorted(set(payload) - set(BODY_KEYS))
    if len(present) != 1 or extra:
        found = ", ".join(map(repr, sorted(payload))) or "none"
        raise InputError(
            422, f"body: expected exactly one of {', '.join(BODY_KEYS)} (found keys: {found})"
        )
    return present[0], payload[present[0]]


# --- tabular ---------------------------------------------------------------------------------


def tabular_batch(payload: Any, columns: list[str], max_rows: int) -> np.ndarray:
    """A float64 array (rows, len(columns)) in the signature's column order; null -> NaN."""
    key, value = _body_field(payload)
    if key == "dataframe_split":
        rows, order = _dataframe_split(value, columns)
    elif key == "inputs" and isinstance(value, dict):
        rows, order = _columnar(value, columns), columns
    else:
        rows, order = value, columns
    if not isinstance(rows, list):
        raise InputError(422, f"{key}: expected a list of rows, got {_kind(rows)}")
    if not rows:
        raise InputError(422, f"{key}: empty batch; send at least one row")
    if len(rows) > max_rows:
        raise InputError(413, f"{key}: {len(rows)} rows is over the limit of {max_rows}")
    width = len(order)
    if not _plain_rows(rows, width):
        _check_rows(rows, key, order)
    # Finite by construction: parse_json refuses NaN, Infinity and numbers beyond float64.
    batch = np.array(rows, dtype=np.float64)
    if order is not columns:  # dataframe_split may name the columns in any order
        batch = batch[:, [order.index(name) for name in columns]]
    _check_plausible(batch, key, columns)
    return batch


def _check_plausible(batch: np.ndarray, key: str, columns: list[str]) -> None:
    """Refuse a reading outside PLAUSIBLE_C. Finite is not enough: the model's features are
    differences and a standard deviation, which overflow to infinity from about 1e154 (1e308
    gave a 500), and it has never seen a reading beyond Earth's records to judge one."""
    low, high = PLAUSIBLE_C
    outside = (batch < low) | (batch > high)  # NaN (a missing reading) is neither
    if outside.any():
        row, column = np.argwhere(outside)[0]
        raise InputError(
            422,
            f"{key}[{row}].{columns[column]}: {batch[row, column]:g} is outside {low:g}..{high:g} "
            "degrees C (Earth's records: -89.2, 56.7): a broken sensor, or not Celsius; send "
            "null for a reading the sensor did not give",
        )


def _plain_rows(rows: list, width: int) -> bool:
    """True if every row is a list of ``width`` numbers or nulls. Checked with map() over all
    cells at C speed (~5x faster than a Python loop on 15,000 cells); any other batch goes
    through _check_rows, which finds the first bad cell for the error message."""
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
        return False
    return set(map(type, itertools.chain.from_iterable(rows))) <= PLAIN_CELL_TYPES


def _check_rows(rows: list, key: str, order: list[str]) -> None:
    """Validate row by row, converting object rows to lists in place; raises at the first
    problem, naming the row and column."""
    width = len(order)
    for index, row in enumerate(rows):
        if type(row) is dict:
            rows[index] = row = _row_from_object(row, order, f"{key}[{index}]")
        elif type(row) is not list:
            raise InputError(
                422,
                f"{key}[{index}]: expected a list of {width} numbers or an "
                f"object, got {_kind(row)}",
            )
        if len(row) != width:
            raise InputError(
                422,
                f"{key}[{index}]: {len(row)} values, the model takes {width} ({', '.join(order)})",
            )
        for position, cell in enumerate(row):
            if cell is not None and type(cell) not in NUMBER_TYPES:
                raise InputError(
                    422, f"{key}[{index}].{order[position]}: {cell!r} is not a number or null"
                )


def _dataframe_split(value: Any, columns: list[str]) -> tuple[Any, list[str]]:
    if not isinstance(value, dict) or "data" not in value:
        raise InputError(422, "dataframe_split: expected an object with columns and data")
    order = value.get("columns", columns)
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(columns):
        raise InputError(
            422,
            f"dataframe_split.columns: {order!r} is not the model's columns ({', '.join(columns)})",
        )
    return value["data"], [str(name) for name in order]


def _columnar(value: dict, columns: list[str]) -> list[list[Any]]:
    if sorted(value) != sorted(columns):
        raise InputError(
            422,
            f"inputs: keys {sorted(value)!r} are not the model's columns ({', '.join(columns)})",
        )
    lengths = {name: len(value[name]) if isinstance(value[name], list) else -1 for name in columns}
    if min(lengths.values()) < 0 or len(set(lengths.values())) != 1:
        raise InputError(422, "inputs: every column must be a list, all of the same length")
    return [list(row) for row in zip(*(value[name] for name in columns), strict=True)]


def _row_from_object(row: dict, order: list[str], where: str) -> list[Any]:
    if len(row) != len(order) or any(name not in row for name in order):
        missing = [name for name in order if name not in row]
        unknown = [name for name in row if name not in order]
        raise InputError(
            422, f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'none'}"
        )
    return [row[name] for name in order]


# --- images ----------------------------------------------------------------------------------


def image_batch(payload: Any, shape: tuple[int, int, int], max_rows: int) -> np.ndarray:
    """A uint8 array (n, H, W, C) from nested lists of integers 0..255."""
    key, value = _body_field(payload)
    if key == "dataframe_split":
        raise InputError(422, "dataframe_split: this model takes images; use instances or inputs")
    if not isinstance(value, list) or not value:
        raise InputError(422, f"{key}: expected a non-empty list of images {list(shape)}")
    if len(value) > max_rows:
        raise InputError(413, f"{key}: {len(value)} images is over the limit of {max_rows}")
    try:
        batch = np.array(value)
    except (ValueError, OverflowError):
        raise InputError(422, f"{key}: images must be nested lists of equal shape") from None
    if batch.shape[1:] != tuple(shape):
        raise InputError(
            422,
            f"{key}: images of shape {list(batch.shape[1:])}, the model "
            f"takes {list(shape)} (height, width, channels)",
        )
    if batch.dtype.kind not in "iu":  # floats, bools, strings, objects
        raise InputError(422, f"{key}: pixel values must be integers 0..255")
    if batch.min() < 0 or batch.max() > 255:
        raise InputError(
            422, f"{key}: pixel values must be integers 0..255 (found {batch.min()}..{batch.max()})"
        )
    return batch.astype(np.uint8)


def decode_image(data: bytes, shape: tuple[int, int, int], where: str) -> np.ndarray:
    """A PNG or JPEG file -> uint8 (1, H, W, C): converted to the model's channels (grey or
    RGB) and resized to its height and width."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError(422, f"{where}: empty file")
    height, width, channels = shape
    try:
        image: Image.Image = Image.open(io.BytesIO(data))
        if image.format not in ("PNG", "JPEG"):
            raise InputError(415, f"{where}: {image.format} image; send PNG or JPEG")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise InputError(
                413,
                f"{where}: {image.width}x{image.height} pixels is over the "
                f"limit of {MAX_IMAGE_PIXELS}",
            )
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
    except Image.DecompressionBombError:  # PIL's own limit, met before our check above
        raise InputError(
            413, f"{where}: too many pixels (over the limit of {MAX_IMAGE_PIXELS})"
        ) from None
    except UnidentifiedImageError:
        raise InputError(415, f"{where}: not a PNG or JPEG image") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt files
        raise InputError(422, f"{where}: cannot decode the image ({exc})") from None
    pixels = np.array(image, dtype=np.uint8)  # a writable copy (torch wants one)
    return pixels.reshape(1, height, width, channels)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )
