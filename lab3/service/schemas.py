"""The service's answers as OpenAPI schemas, so /docs and clients see their real shape.

They document; they do not run on the request path: /predict writes its answer with orjson
(app._answer) and /ready returns 200 or 503 with the same body. tests/lab3 validates real
answers against these schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    model_uri: str
    serving: str | None
    last_error: str | None
    last_checked: str | None


class ModelName(BaseModel):
    name: str | None  # None: a model loaded from a folder, not the registry
    version: str | int | None


class ServedModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")  # what a model's lineage adds

    uri: str
    name: str | None
    version: str | int | None
    alias: str | None
    source_run_id: str | None
    git_commit: str | None
    data_digest: str | None
    test_metrics: dict[str, float]
    lineage: dict[str, Any] | None
    loaded_at: str
    classes: list[str]
    input: dict[str, Any]
    follows_alias: bool
    last_reload_error: str | None


class Predictions(BaseModel):
    model: ModelName
    predictions: list[int]
    labels: list[str]
    probabilities: list[list[float]]


class ImagePrediction(BaseModel):
    model: ModelName
    label: str
    probabilities: dict[str, float]


class Error(BaseModel):
    detail: str


def answers(model: type[BaseModel], **errors: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: its 200 answer, and each error status (``e413="..."``)."""
    documented: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    for status, text in errors.items():
        documented[int(status.removeprefix("e"))] = {"model": Error, "description": text}
    return documented


PREDICTION_ERRORS = {
    "e400": "Malformed body",
    "e413": "Body or batch over the limit",
    "e415": "Wrong content type",
    "e422": "Body does not fit the model",
    "e503": "No model loaded yet",
}
