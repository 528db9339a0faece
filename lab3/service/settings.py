"""The service's settings: one home, read from the environment (twelve-factor, as Docker expects).

MODEL_URI            models:/<name>@<alias> (default: the default dataset's champion),
                     models:/<name>/<version>, runs:/<id>/<dataset>-<model> or a local model folder
MLFLOW_TRACKING_URI  where models:/ URIs are resolved (MLflow reads it itself)
POLL_INTERVAL_S      how often to ask the registry where the alias points (default 10)
MAX_BATCH_ROWS       rows (or images) per /predict request (default 10000)
MAX_BODY_BYTES       request body limit (default 16 MiB)
PREDICTION_LOG       the prediction log's folder (default: params.yaml's
                     monitoring.prediction_log, relative to the checkout), or a PostgreSQL URL
                     (postgresql://user:password@host:port/db: the stack's database); ""
                     turns it off. Rotation and retention: params.yaml's monitoring section.
Time limits on reading a request and the cap on connections: params.yaml's serving section.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab1.core.errors import PipelineError
from lab1.core.params import ServingParams
from lab1.core.tracking.store import without_credentials


@dataclass(frozen=True)
class LogSettings:
    destination: Path | str  # a folder, or a postgresql:// URL
    rotate_mb: float
    keep_files: int
    keep_days: float = 30.0  # a table's retention
    max_pending_mb: float = 64.0  # what may wait for the writer (params.yaml says why)


@dataclass(frozen=True)
class Settings:
    model_uri: str
    poll_interval_s: float
    max_batch_rows: int
    max_body_bytes: int
    prediction_log: LogSettings | None = None  # None: predictions are not logged
    serving: ServingParams | None = None  # params.yaml's; None: uvicorn's own (no limits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; a bad value raises PipelineError naming the variable and value."""
        from lab1.core.params import load_params
        from lab1.core.paths import PATHS
        from lab1.core.registry import CHAMPION

        env = os.environ if env is None else env
        params = load_params(PATHS.params)
        # The default model: the champion of params.yaml's dataset, as the pipeline names it.
        champion = f"models:/{params.registered_model_name}@{CHAMPION}"
        monitoring = params.monitoring
        folder = env.get("PREDICTION_LOG", monitoring.prediction_log)
        return cls(
            model_uri=env.get("MODEL_URI") or champion,
            poll_interval_s=_number(env, "POLL_INTERVAL_S", 10.0, float, minimum=0.05),
            max_batch_rows=_number(env, "MAX_BATCH_ROWS", 10_000, int, minimum=1),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", 16 * 2**20, int, minimum=1024),
            prediction_log=LogSettings(
                folder if is_database(folder) else PATHS.root / folder,
                monitoring.rotate_mb,
                monitoring.keep_files,
                monitoring.keep_days,
                monitoring.max_pending_mb,
            )
            if folder
            else None,
            serving=params.serving,
        )


def is_database(destination: Path | str) -> bool:
    """Whether a prediction log destination is a PostgreSQL URL rather than a folder."""
    return str(destination).startswith(("postgresql://", "postgres://"))


def shown(destination: Path | str) -> str:
    """A log destination as log lines may show it: a database URL without its credentials."""
    return without_credentials(str(destination))


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
