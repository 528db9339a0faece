"""The FastAPI application: health, readiness, model lineage, predictions, Prometheus metrics.

    GET  /health          the process is alive (always 200)
    GET  /ready           200 once a model is loaded; 503 before. Reports a failed reload too.
    GET  /model           what is served: name, version, alias, source run, commit, data, metrics
    POST /predict         a batch of raw inputs (see lab3/service/inputs.py for the bodies)
    POST /predict/image   image models: one PNG/JPEG, as multipart field `file` or a raw body
    GET  /metrics         Prometheus
    GET  /, /docs, /redoc the demo page and the API pages, served offline (pages.py)
    GET  /openapi.json

Request bodies are read and validated by hand (inputs.py) rather than by pydantic models: the
one-row path is the hot path, and skipping FastAPI's body machinery keeps it at a fraction of a
millisecond. The OpenAPI schema still describes every body (openapi_extra), so /docs and
schemathesis see the real contract. Concurrent predictions share model calls (batching.py).
"""

from __future__ import annotations

import logging
import re
import uuid
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect

from lab3.service import inputs
from lab3.service.batching import Batcher
from lab3.service.inputs import InputError
from lab3.service.middleware import Guard, Metrics
from lab3.service.model import ServedModel, public
from lab3.service.pages import add_pages
from lab3.service.prediction_log import PredictionLog
from lab3.service.schemas import (
    IMAGE_OPENAPI,
    PREDICT_OPENAPI,
    PREDICTION_ERRORS,
    Health,
    ImagePrediction,
    Predictions,
    Ready,
    ServedModelInfo,
    answers,
)
from lab3.service.settings import Settings
from lab3.service.watcher import ModelWatcher

logger = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg")


def create_app(settings: Settings, watcher: ModelWatcher | None = None) -> FastAPI:
    """The service for ``settings``. ``watcher`` defaults to one following settings.model_uri;
    it is started and stopped with the application (lifespan)."""
    watcher = watcher or ModelWatcher(settings.model_uri, settings.poll_interval_s)
    log = PredictionLog(settings.prediction_log) if settings.prediction_log else None
    metrics = Metrics(watcher, log)
    batcher = Batcher(settings.max_batch_rows, on_call=metrics.model_call)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        watcher.start()
        if log:
            log.start()
        yield
        watcher.stop()
        if log:
            log.stop()

    app = FastAPI(
        title="Model service (lab3)",
        version="1.0",
        lifespan=lifespan,
        description="Serves the registry's champion; see lab3/README.md.",
        docs_url=None,  # FastAPI's pages load from a CDN: pages.py serves them offline
        redoc_url=None,
    )
    add_pages(app)
    app.state.watcher = watcher
    app.add_middleware(Guard, max_body_bytes=settings.max_body_bytes, metrics=metrics)

    @app.exception_handler(InputError)
    async def refuse(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, exc.status)

    @app.exception_handler(ClientDisconnect)
    async def gone(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client hung up, or its body timed out (lab3/service/http.py answered 408): no
        # one reads this answer, and it is not the service's error (no traceback in the log).
        return JSONResponse({"detail": "body: the connection closed before it was complete"}, 400)

    add_model_routes(app, watcher)
    add_prediction_routes(app, settings, watcher, batcher, log)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def served_by(watcher: ModelWatcher) -> ServedModel:
    """The model being served, or 503 with why there is none yet (public: no credentials or
    absolute paths, as /ready)."""
    model = watcher.current
    if model is None:
        raise HTTPException(503, public(f"no model loaded yet ({watcher.last_error or 'loading'})"))
    return model


def add_model_routes(app: FastAPI, watcher: ModelWatcher) -> None:
    """/health, /ready and /model: whether and what the service serves."""

    @app.get("/health", summary="The process is alive", response_model=Health)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="A model is loaded",
        responses={200: {"model": Ready}, 503: {"model": Ready, "description": "Not yet"}},
    )
    async def ready() -> JSONResponse:
        model = watcher.current
        body = {
            "ready": model is not None,
            "model_uri": watcher.model_uri,
            "serving": model.info.uri if model else None,
            "last_error": watcher.last_error,
            "last_checked": watcher.last_checked,
        }
        return JSONResponse(public(body), 200 if model else 503)

    @app.get(
        "/model",
        summary="What is served and where it came from",
        responses=answers(ServedModelInfo, {503: "No model loaded yet"}),
        response_model=None,  # documented by ``responses``; the body is built here
    )
    async def model_info() -> dict[str, Any]:
        model = served_by(watcher)
        return public(
            {
                **model.info.as_dict(),
                "classes": model.classes,
                "input": model.input_description(),
                "follows_alias": watcher.follows_alias,
                "last_reload_error": watcher.last_error,
            }
        )


def add_prediction_routes(
    app: FastAPI,
    settings: Settings,
    watcher: ModelWatcher,
    batcher: Batcher,
    log: PredictionLog | None,
) -> None:
    """/predict (a batch of rows or images as JSON) and /predict/image (one PNG or JPEG)."""

    @app.post(
        "/predict",
        summary="Predict a batch",
        openapi_extra=PREDICT_OPENAPI,
        responses=answers(Predictions, PREDICTION_ERRORS),
    )
    async def predict(request: Request) -> Response:
        model = served_by(watcher)
        _require_type(request, ("application/json",))
        max_rows = settings.max_batch_rows
        if model.kind == "tabular":
            body = await _body_within(request, max_rows, 1)  # a row: one list or object of numbers
            batch = inputs.tabular_batch(inputs.parse_json(body), model.columns, max_rows)
        else:
            shape = model.image_input_shape()
            per_image = 1 + shape[0] + shape[0] * shape[1]  # rows of pixels of channels
            body = await _body_within(request, max_rows, per_image)
            batch = inputs.image_batch(inputs.parse_json(body), shape, max_rows)
        return await _answer(model, batch, batcher, request, log)

    @app.post(
        "/predict/image",
        summary="Classify one PNG or JPEG image",
        openapi_extra=IMAGE_OPENAPI,
        responses=answers(ImagePrediction, PREDICTION_ERRORS),
    )
    async def predict_image(request: Request) -> Response:
        model = served_by(watcher)
        if model.kind != "image":
            raise InputError(400, "this model takes tabular rows, not images; use POST /predict")
        content_type = _require_type(request, ("multipart/form-data", *IMAGE_TYPES))
        if content_type == "multipart/form-data":
            data, where = await _uploaded_file(request)
        else:
            data, where = await request.body(), "body"
        batch = inputs.decode_image(data, model.image_input_shape(), where)
        return await _answer(model, batch, batcher, request, log, single=True)


def _require_type(request: Request, allowed: tuple[str, ...]) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in allowed:
        raise InputError(
            415, f"Content-Type {content_type or 'missing'!r}: send {' or '.join(allowed)}"
        )
    return content_type


async def _body_within(request: Request, max_rows: int, per_row: int) -> bytes:
    """The request's body, read as it arrives with its JSON lists and objects counted: a body
    that holds more rows than ``max_rows`` (each at most ``per_row`` of them) is refused (413)
    before it is parsed. Parsing first let 16 MiB of empty rows cost seconds and 500 MB.
    (A bracket inside a string counts too: no valid body of ours has strings with many.)"""
    limit = max_rows * per_row + 8  # the envelope: {"dataframe_split": {"columns": [...]...}}
    chunks, containers = [], 0
    async for chunk in request.stream():
        containers += chunk.count(b"[") + chunk.count(b"{")
        if containers > limit:
            raise InputError(413, f"body: more than the limit of {max_rows} rows")
        chunks.append(chunk)
    return b"".join(chunks)


async def _uploaded_file(request: Request) -> tuple[bytes, str]:
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException as exc:  # Starlette's own refusals (too many files or fields)
        raise InputError(400, f"multipart body: {exc.detail}") from None
    except (AssertionError, ValueError, KeyError) as exc:  # malformed multipart
        raise InputError(400, f"multipart body: malformed ({exc})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InputError(422, "multipart body: expected a file in field 'file'")
    return await upload.read(), f"file {upload.filename!r}"


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


async def _answer(
    model: ServedModel,
    batch: np.ndarray,
    batcher: Batcher,
    request: Request,
    log: PredictionLog | None,
    single: bool = False,
) -> Response:
    probabilities = np.asarray(await batcher.probabilities(model, batch), dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    labels = [model.classes[i] if i < len(model.classes) else str(i) for i in predicted]
    # The caller's X-Request-ID (to match labels to predictions later), or a new one.
    request_id = request.headers.get("x-request-id", "")
    if not REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    if log:
        log.record(request_id, model, batch, probabilities, labels)
    body: dict[str, Any] = {"model": {"name": model.info.name, "version": model.info.version}}
    if single:
        first = probabilities[0].tolist()
        body.update(label=labels[0], probabilities=dict(zip(model.classes, first, strict=False)))
    else:
        body.update(predictions=predicted, labels=labels, probabilities=probabilities)
    # orjson straight to bytes (numpy arrays natively): FastAPI's jsonable_encoder would walk
    # every float in Python.
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
        headers={"X-Request-ID": request_id},
    )
