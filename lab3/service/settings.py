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
MLFLOW_UI_URL        the MLflow UI that GET /model's links open (default: the tracking server,
                     else http://127.0.0.1:5000; `make serve` gives `make ui`'s PORT). Read
                     by lab1/core/mlflow_ui.py, which makes every link; lab3/serve.py checks it.
Time limits on reading a request and the cap on connections: params.yaml's serving section.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lab1.core.errors import PipelineError
from lab1.core.params import ServingParams


@dataclass(frozen=True)
class LogSettings:
    destination: Path | str  # a folder, or a postgresql:// URL
    rotate_mb: float
    keep_files: int
    keep_days: float = 30.0  # a table's retention
    max_pending_mb: float = 64.0  # what may wait for the writer (params.yaml says why)


# pydantic's words for a bad variable, in the project's (pydantic-settings would read the
# environment itself, but only the dev lock has it: the image installs requirements.lock).
WHY = {"float_parsing": "is not a number", "int_parsing": "is not an integer"}


class Settings(BaseModel):
    """Each field's alias is its environment variable."""

    model_config = ConfigDict(frozen=True, validate_by_name=True)

    model_uri: str = Field(alias="MODEL_URI")
    poll_interval_s: float = Field(10.0, alias="POLL_INTERVAL_S", ge=0.05)
    max_batch_rows: int = Field(10_000, alias="MAX_BATCH_ROWS", ge=1)
    max_body_bytes: int = Field(16 * 2**20, alias="MAX_BODY_BYTES", ge=1024)
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
        log = LogSettings(
            folder if is_database(folder) else PATHS.root / folder,
            monitoring.rotate_mb,
            monitoring.keep_files,
            monitoring.keep_days,
            monitoring.max_pending_mb,
        )
        names = [field.alias for field in cls.model_fields.values() if field.alias]
        given = {name: env[name] for name in names if env.get(name)}  # "" is unset
        try:
            return cls.model_validate(
                {
                    "MODEL_URI": champion,
                    **given,
                    "prediction_log": log if folder else None,
                    "serving": params.serving,
                }
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            name = str(error["loc"][0])
            limit = error.get("ctx", {}).get("ge")
            why = WHY.get(error["type"]) or (f"must be at least {limit}" if limit else error["msg"])
            raise PipelineError(f"environment: {name}={env[name]!r} {why}") from None


def is_database(destination: Path | str) -> bool:
    """Whether a prediction log destination is a PostgreSQL URL rather than a folder."""
    return str(destination).startswith(("postgresql://", "postgres://"))
