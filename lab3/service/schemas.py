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


def answers(model: type[BaseModel], errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: its 200 answer, and each error status with what it means."""
    documented: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    for status, text in errors.items():
        documented[status] = {"model": Error, "description": text}
    return documented


PREDICTION_ERRORS = {
    400: "Malformed body",
    413: "Body or batch over the limit",
    415: "Wrong content type",
    422: "Body does not fit the model",
    503: "No model loaded yet",
}


# --- OpenAPI descriptions of the hand-parsed bodies ----------------------------------------

ROW_SCHEMA = {
    "oneOf": [
        {"type": "array", "items": {"type": ["number", "null"]}, "description": "signature order"},
        {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
    ]
}
EXAMPLE_ROW = [1.5, 2.0, 1.8, 2.2, 2.5, 2.4, 2.9, 3.1, 3.0, 2.7, 2.8, 3.3, 3.0, 2.9, 3.2]


def _only(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An object with the one property ``key``."""
    return {
        "type": "object",
        "required": [key],
        "additionalProperties": False,
        "properties": {key: schema},
    }


DATAFRAME_SPLIT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "data": {"type": "array", "items": ROW_SCHEMA},
    },
}
COLUMNAR = {"type": "object", "additionalProperties": {"type": "array"}}
PREDICT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "description": "Exactly one of the three forms. Tabular models: rows of the "
                    "signature's columns (GET /model lists them), null = missing reading; a "
                    "reading outside -90..60 (degrees C) is refused with 422. "
                    "Image models: instances/inputs hold uint8 images (H, W, C).",
                    "oneOf": [
                        _only("instances", {"type": "array", "minItems": 1, "items": {}}),
                        _only("dataframe_split", DATAFRAME_SPLIT),
                        _only("inputs", {"oneOf": [{"type": "array", "items": {}}, COLUMNAR]}),
                    ],
                    "example": {"instances": [EXAMPLE_ROW]},
                }
            }
        },
    },
}
IMAGE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}
