"""The service's settings: one home, read from the environment (twelve-factor, as Docker expects).

MODEL_URI            models:/<name>@<alias> (default: the default dataset's champion),
                     models:/<name>/<version>, runs:/<id>/<dataset>-<model> or a local model folder
MLFLOW_TRACKING_URI  where models:/ URIs are resolved (MLflow reads it itself)
POLL_INTERVAL_S      how often to ask the registry where the alias points (default 10)
MAX_BATCH_ROWS       rows (or images) per /predict request (default 10000)
MAX_BODY_BYTES       request body limit (default 16 MiB)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lab1.core.errors import PipelineError


def default_model_uri() -> str:
    """The champion of params.yaml's dataset, named as the pipeline registers it."""
    from lab1.core.params import load_params
    from lab1.core.paths import PATHS
    from lab1.core.registry import CHAMPION

    return f"models:/{load_params(PATHS.params).registered_model_name}@{CHAMPION}"


@dataclass(frozen=True)
class Settings:
    model_uri: str
    poll_interval_s: float
    max_batch_rows: int
    max_body_bytes: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; a bad value raises PipelineError naming the variable and value."""
        env = os.environ if env is None else env
        return cls(
            model_uri=env.get("MODEL_URI") or default_model_uri(),
            poll_interval_s=_number(env, "POLL_INTERVAL_S", 10.0, float, minimum=0.05),
            max_batch_rows=_number(env, "MAX_BATCH_ROWS", 10_000, int, minimum=1),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", 16 * 2**20, int, minimum=1024),
        )


def _number(env: Mapping[str, str], name: str, default, kind, minimum):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise PipelineError(f"environment: {name}={raw!r} is not {what}") from None
    if not value >= minimum:  # also refuses NaN
        raise PipelineError(f"environment: {name}={raw!r} must be at least {minimum}")
    return value
