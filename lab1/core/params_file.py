"""The mechanics of a params file: YAML without implicit dates, ``-S section.key=value``
overrides, checks of meaning for the params models (``Annotated[int, at_least(1)]``), and every
problem told in one line, in the project's words: ``data_preprocessing.window: 'seven' must be
int``. What the parameters are is params.py.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from lab1.core.errors import ParamsError, UsageError, did_you_mean, one_line


def check(problem: Callable[[Any], str | None]) -> AfterValidator:
    """A check run after the type's: ``problem(value)`` says what is wrong, or None. None (where
    the type allows it) always passes."""

    def validate(value: Any) -> Any:
        if value is not None and (text := problem(value)) is not None:
            raise PydanticCustomError("check", "{text}", {"text": f"{value!r} {text}"})
        return value

    return AfterValidator(validate)


def at_least(low: float) -> AfterValidator:
    return check(lambda v: None if v >= low else f"must be >= {low}")


def above(low: float) -> AfterValidator:
    return check(lambda v: None if v > low else f"must be > {low}")


def between(low: float, high: float, low_open: bool = False, high_open: bool = False):
    def problem(v: float) -> str | None:
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return None if ok else f"must be in {left}{low}, {high}{right}"

    return check(problem)


def one_of(*choices: str) -> AfterValidator:
    return check(
        lambda v: (
            None
            if v in choices
            else f"is not one of: {', '.join(choices)}{did_you_mean(v, choices)}"
        )
    )


def _distinct(values: list[Any]) -> str | None:
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if not values:
        return "must not be empty"
    return f"lists {', '.join(twice)} more than once" if twice else None


def subset_of(choices: tuple[str, ...]) -> AfterValidator:
    def problem(values: list[str]) -> str | None:
        unknown = [v for v in values if v not in choices]
        if not unknown:
            return None
        return (
            f"has {unknown[0]!r}{did_you_mean(unknown[0], choices)} (choices: {', '.join(choices)})"
        )

    return check(problem)


def _calendar_date(value: str) -> str | None:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return "is not a calendar date (YYYY-MM-DD)"
    return None


iso_date = check(_calendar_date)


PROBABILITY = between(0, 1)
DISTINCT = check(_distinct)
# A [min, max] range with 0 < min <= max.
RANGE = check(
    lambda p: None if len(p) == 2 and 0 < p[0] <= p[1] else "must be [min, max] with 0 < min <= max"
)


def key(loc: tuple[Any, ...]) -> str:
    """``("a", "b", 0)`` -> ``a.b[0]``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key or "top level"


def problem(error: Any, fields_at: Callable[[tuple[Any, ...]], list[str]]) -> str:
    """What is wrong, in the project's words: ``'x' must be int``, ``missing``, ..."""
    kind, value = error["type"], error.get("input")
    if kind == "check":
        return error["ctx"]["text"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        known = fields_at(error["loc"][:-1])
        return (
            f"unknown key{did_you_mean(str(error['loc'][-1]), known)} (known: {', '.join(known)})"
        )
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping, got {value!r}"
    if kind == "list_type":
        return f"{value!r} must be a list"
    if kind == "finite_number":
        return f"{value!r} must be a finite number"
    names = {"int": "int", "float": "float", "string": "str", "bool": "bool"}
    return f"{value!r} must be {names.get(kind.split('_')[0], kind)}"


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: ``2022-01-01`` stays text, in the file and in -S alike,
    and its field's check says whether it is a real date (PyYAML would make it a date object,
    and crash on an impossible one such as 2022-02-30)."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(text: str) -> Any:
    """Parse params YAML (safe, dates as text)."""
    return yaml.load(text, Loader=_Loader)


def one_error(path: Path, problems: list[tuple[str, str]], overridden: set[str]) -> Exception:
    """All problems as one error: UsageError (exit 2) when -S options caused them all."""

    def by_option(key: str) -> bool:  # the key is, or lies under, a key an -S option set
        return any(key == o or key.startswith((f"{o}.", f"{o}[")) for o in overridden)

    texts = [f"-S {k}: {p}" if by_option(k) else f"{k}: {p}" for k, p in problems]
    count = f"{len(texts)} problems: " if len(texts) > 1 else ""
    if all(by_option(k) for k, _ in problems):
        return UsageError(f"{count}{'; '.join(texts)}")
    return ParamsError(f"{path}: {count}{'; '.join(texts)}")


def apply_override(raw: dict[str, Any], override: str, source: Path) -> str:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML, as `dvc exp run
    -S` does. Returns the key. UsageError (a command-line mistake) for a bad option."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise UsageError(f"-S {override!r}: expected section.key=value")
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            raise UsageError(
                f"-S {override!r}: {source} has no key {'.'.join(parts[: depth + 1])!r}"
                f"{did_you_mean(part, known)} (known: {', '.join(known) or 'none'})"
            )
        if depth < len(parts) - 1:
            node = node[part]
    try:
        node[parts[-1]] = read_yaml(text) if text else ""
    except yaml.YAMLError as exc:
        reason = one_line(exc, whole=True)
        raise UsageError(f"-S {override!r}: value is not valid YAML ({reason})") from None
    return key
