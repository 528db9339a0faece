"""Datasets behind one small registry.

Each dataset turns params into labelled raw tables split by station (or source) into train and
test: ``{"train": {name: frame}, "test": {name: frame}}``. data_creation writes them to disk.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from lab1.core.params import Params

RawSplits = dict[str, dict[str, pd.DataFrame]]


def _temperature(params: Params) -> RawSplits:
    from lab1.core.datasets import temperature

    section = params.data_creation.temperature
    frames = temperature.generate(section, params.data_creation.seed)
    return {
        "train": {s: f for s, f in frames.items() if s not in section.test_stations},
        "test": {s: f for s, f in frames.items() if s in section.test_stations},
    }


REGISTRY: dict[str, Callable[[Params], RawSplits]] = {"temperature": _temperature}


def make_raw(params: Params) -> RawSplits:
    """The train/test raw tables of ``params.dataset``."""
    return REGISTRY[params.dataset](params)
