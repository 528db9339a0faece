"""The model service in-process (FastAPI's TestClient runs the real app, lifespan included)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lab1.core import registry
from lab1.core.errors import PipelineError
from lab3.service.app import create_app
from lab3.service.model import public
from lab3.service.settings import Settings
from tests.lab3.conftest import NAME, rows, wait_for


def settings(uri: str, **extra) -> Settings:
    values = {
        "model_uri": uri,
        "poll_interval_s": 0.1,
        "max_batch_rows": 100,
        "max_body_bytes": 64 * 1024,
    }
    return Settings(**{**values, **extra})


@pytest.fixture
def local(models):
    """The service on version 1's local folder, ready."""
    with TestClient(create_app(settings(str(models.folders["1"])))) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        yield client


def test_every_body_form_gives_the_offline_predictions(local, models):
    sample, expected = models.sample, models.expected["1"]
    columns = list(sample.columns)
    data = rows(sample)
    shuffled = columns[::-1]
    bodies = {
        "instances rows": {"instances": data},
        "instances objects": {"instances": [dict(zip(columns, r, strict=True)) for r in data]},
        "dataframe_split, any column order": {
            "dataframe_split": {"columns": shuffled, "data": [r[::-1] for r in data]}
        },
        "inputs rows": {"inputs": data},
        "inputs columnar": {"inputs": {c: [r[i] for r in data] for i, c in enumerate(columns)}},
    }
    for form, body in bodies.items():
        answer = local.post("/predict", json=body)
        assert answer.status_code == 200, (form, answer.text)
        got = answer.json()
        np.testing.assert_allclose(got["probabilities"], expected, rtol=0, atol=1e-12, err_msg=form)
        assert got["predictions"] == expected.argmax(axis=1).tolist(), form
        assert got["labels"] == [["normal", "faulty"][i] for i in got["predictions"]]
    assert any(r[2] is None for r in data)  # a null reading went through as missing


BAD_BODIES = [
    # (what, body bytes, content type, status, part of the message)
    ("malformed JSON", b'{"instances": [[1,', "application/json", 400, "malformed JSON"),
    ("not UTF-8", b"\xff\xfe{}", "application/json", 400, "malformed JSON"),
    ("empty body", b"", "application/json", 400, "empty"),
    (
        "NaN literal",
        b'{"instances": [[NaN' + b", 1.0" * 14 + b"]]}",
        "application/json",
        400,
        "NaN is not valid JSON",
    ),
    (
        "Infinity literal",
        b'{"instances": [[Infinity' + b", 1.0" * 14 + b"]]}",
        "application/json",
        400,
        "Infinity is not valid JSON",
    ),
    (
        "overflowing number",
        b'{"instances": [[1e400' + b", 1.0" * 14 + b"]]}",
        "application/json",
        400,
        "number is infinity",
    ),
    (
        "a finite number far outside any reading",
        b'{"instances": [[1e308, -1e308' + b", 1.0" * 13 + b"]]}",
        "application/json",
        422,
        "instances[0].t_m7: 1e+308 is outside -90..60 degrees C",
    ),
    (
        "a reading just over the hottest possible, by name, in any column order",
        b'{"dataframe_split": {"columns": ["t_p7", "t_p6", "t_p5", "t_p4", "t_p3", "t_p2", '
        b'"t_p1", "t_0", "t_m1", "t_m2", "t_m3", "t_m4", "t_m5", "t_m6", "t_m7"], '
        b'"data": [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 60.5' + b", 1.0" * 7 + b"]]}}",
        "application/json",
        422,
        "dataframe_split[0].t_0: 60.5 is outside -90..60",
    ),
    (
        "an integer beyond 64 bits' worth of degrees",
        b'{"instances": [[18446744073709551615' + b", 1.0" * 14 + b"]]}",
        "application/json",
        422,
        "instances[0].t_m7: 1.84467e+19 is outside",
    ),
    ("wrong content type", b'{"instances": []}', "text/plain", 415, "Content-Type 'text/plain'"),
    ("no content type", b'{"instances": []}', "", 415, "missing"),
    ("not an object", b"[1, 2]", "application/json", 422, "JSON object"),
    ("unknown key", b'{"rows": [[1]]}', "application/json", 422, "found keys: 'rows'"),
    ("two keys", b'{"instances": [], "inputs": []}', "application/json", 422, "exactly one"),
    ("empty batch", b'{"instances": []}', "application/json", 422, "empty batch"),
    (
        "too few values",
        b'{"instances": [[1.0, 2.0]]}',
        "application/json",
        422,
        "2 values, the model takes 15",
    ),
    (
        "a string value",
        b'{"instances": [["warm"' + b", 1.0" * 14 + b"]]}",
        "application/json",
        422,
        "instances[0].t_m7: 'warm' is not a number",
    ),
    (
        "a boolean value",
        b'{"instances": [[true' + b", 1.0" * 14 + b"]]}",
        "application/json",
        422,
        "True is not a number",
    ),
    ("row not a list", b'{"instances": [5]}', "application/json", 422, "got a number"),
    (
        "object missing a column",
        b'{"instances": [{"t_0": 1}]}',
        "application/json",
        422,
        "missing ['t_m7'",
    ),
    (
        "dataframe_split wrong columns",
        b'{"dataframe_split": {"columns": ["a"], "data": [[1]]}}',
        "application/json",
        422,
        "not the model's columns",
    ),
    (
        "columnar ragged",
        json.dumps(
            {
                "inputs": {
                    f"t_{k}": [1.0]
                    for k in [
                        "m7",
                        "m6",
                        "m5",
                        "m4",
                        "m3",
                        "m2",
                        "m1",
                        "0",
                        "p1",
                        "p2",
                        "p3",
                        "p4",
                        "p5",
                        "p6",
                    ]
                }
                | {"t_p7": [1.0, 2.0]}
            }
        ).encode(),
        "application/json",
        422,
        "same length",
    ),
    (
        "batch over the limit",
        json.dumps({"instances": [[1.0] * 15] * 101}).encode(),
        "application/json",
        413,
        "101 rows is over the limit of 100",
    ),
]


@pytest.mark.parametrize(
    ("what", "body", "content_type", "status", "message"),
    BAD_BODIES,
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_input_is_a_clear_4xx(local, what, body, content_type, status, message):
    headers = {"content-type": content_type} if content_type else {}
    answer = local.post("/predict", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


def test_every_json_number_is_predicted_on_or_refused_by_name_never_a_500(local):
    """Any number JSON can carry, in any cell: 200 inside the physical range (its ends
    included), 422 naming the row and column outside it. 1e308 was a 500 ("Input X contains
    infinity")."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    low, high = -90.0, 60.0
    edges = st.sampled_from([low, high, -0.0, 5e-324, 1e154, -1e308, 1e308, 2**63, -(2**63)])
    numbers = st.one_of(
        edges,
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(min_value=low, max_value=high),
    )

    @given(cell=numbers, column=st.integers(0, 14))
    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(cell, column):
        row: list = [5.0] * 15
        row[column] = cell
        body = json.dumps({"instances": [[1.0] * 15, row]}).encode()
        answer = local.post("/predict", content=body, headers={"content-type": "application/json"})
        if low <= float(cell) <= high:
            assert answer.status_code == 200, (cell, answer.text)
            assert len(answer.json()["predictions"]) == 2
        else:
            assert answer.status_code == 422, (cell, answer.text)
            name = local.get("/model").json()["input"]["columns"][column]
            assert answer.json()["detail"].startswith(f"instances[1].{name}: "), answer.text

    check()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_one_failing_request_never_fails_the_others_batched_with_it(models):
    """Requests that share a model call: one whose rows make the model raise (infinite
    features from 1e308, which the service refuses before, but any failure will do) gets the
    error; the others, in the same call, get their own answers."""
    import asyncio

    from lab3.service.batching import Batcher
    from lab3.service.model import ModelInfo, load

    model = load(str(models.folders["1"]), ModelInfo(uri="local"))
    sample = models.sample.to_numpy()
    poison = np.array([[1e308, -1e308] + [1.0] * 13])
    batcher = Batcher(max_rows=100)

    async def all_at_once():
        asks = [batcher.probabilities(model, sample[i : i + 2]) for i in range(0, 10, 2)]
        asks.insert(2, batcher.probabilities(model, poison))
        return await asyncio.gather(*asks, return_exceptions=True)

    answers = asyncio.run(all_at_once())
    failed = answers.pop(2)
    assert isinstance(failed, ValueError) and "infinity" in str(failed), failed
    for index, answer in enumerate(answers):
        np.testing.assert_allclose(
            answer, models.expected["1"][2 * index : 2 * index + 2], atol=1e-12
        )


def test_bodies_over_the_size_limit_are_refused_declared_or_streamed(local):
    big = b'{"instances": [' + b"[1.0]," * 20_000 + b"[1.0]]}"  # ~120 KB > 64 KiB
    answer = local.post("/predict", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "limit of 65536 bytes" in answer.json()["detail"]

    def chunks():  # no Content-Length: the service counts as it reads
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    answer = local.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert local.get("/health").status_code == 200  # and it goes on serving


def test_health_model_and_metrics(local, models):
    assert local.get("/health").json() == {"status": "ok"}
    info = local.get("/model").json()
    # A folder of the machine is shown by its name only (no absolute paths leave the service).
    assert info["uri"] == "…/" + models.folders["1"].name and info["classes"] == [
        "normal",
        "faulty",
    ]
    assert info["input"]["columns"][0] == "t_m7" and len(info["input"]["columns"]) == 15
    assert info["source_run_id"]  # from the MLmodel file
    local.post("/predict", json={"instances": [[1.0] * 15, [2.0] * 15]})
    local.post("/predict", json={"instances": []})
    text = local.get("/metrics").text
    assert 'service_requests_total{endpoint="/predict",status="200"}' in text
    assert 'service_requests_total{endpoint="/predict",status="422"}' in text
    assert "service_predicted_rows_total" in text and "service_model_ready 1.0" in text
    local.get("/no/such/path")
    assert 'endpoint="other",status="404"' in local.get("/metrics").text  # bounded labels


def test_not_ready_until_a_model_loads(tmp_path):
    app = create_app(settings(str(tmp_path / "no-model-here")))
    with TestClient(app) as client:
        wait_for(lambda: app.state.watcher.last_error)
        ready = client.get("/ready")
        assert ready.status_code == 503 and "no-model-here" in ready.json()["last_error"]
        assert client.get("/health").status_code == 200
        answer = client.post("/predict", json={"instances": [[1.0] * 15]})
        assert answer.status_code == 503 and "no model loaded" in answer.json()["detail"]


def test_follows_the_alias_and_keeps_serving_when_a_version_is_broken(
    models, monkeypatch, tmp_path
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", models.tracking_uri)
    client_registry = models.registered()
    body = {"instances": rows(models.sample)}
    app = create_app(settings(f"models:/{NAME}@champion"))
    try:
        with TestClient(app) as client:
            wait_for(lambda: client.get("/ready").status_code == 200)
            info = client.get("/model").json()
            assert (info["name"], info["version"], info["alias"]) == (NAME, "1", "champion")
            assert (info["git_commit"], info["data_digest"]) == ("commit1", "digest1")
            assert info["test_metrics"] == {"accuracy": 0.9}
            # The same lineage as `python -m lab1.lineage` prints for that version.
            from lab1.core.lineage import version_lineage

            version = client_registry.get_model_version(NAME, "1")
            # Less the training machine's absolute paths (GET /model never shows them).
            assert info["lineage"] == public(version_lineage(client_registry, version))
            assert models.tracking_uri.removeprefix("sqlite:///") not in json.dumps(info)
            assert info["lineage"]["code"]["commit"] == "commit1"
            assert info["lineage"]["model"]["uri"] == f"models:/{NAME}/1"
            # Its links open the page they name (a link's fragment is not a file path).
            from lab1.core.mlflow_ui import version_link

            assert info["lineage"]["model"]["url"] == version_link(NAME, "1")
            np.testing.assert_allclose(
                client.post("/predict", json=body).json()["probabilities"],
                models.expected["1"],
                atol=1e-12,
            )

            registry.promote(client_registry, NAME, "2", "1")
            wait_for(lambda: client.get("/model").json()["version"] == "2")
            np.testing.assert_allclose(
                client.post("/predict", json=body).json()["probabilities"],
                models.expected["2"],
                atol=1e-12,
            )

            # Version 3 points at a folder whose model file is garbage.
            broken = tmp_path / "broken"
            broken.mkdir()
            for item in models.folders["2"].iterdir():
                if item.is_file():
                    (broken / item.name).write_bytes(item.read_bytes())
            (broken / "model.skops").write_bytes(b"not a skops archive")
            version = client_registry.create_model_version(NAME, str(broken)).version
            registry.promote(client_registry, NAME, version, "2")
            wait_for(lambda: client.get("/ready").json()["last_error"])
            ready = client.get("/ready").json()
            assert ready["serving"] == f"models:/{NAME}/2"
            assert f"models:/{NAME}/{version}" in ready["last_error"]
            assert client.get("/model").json()["last_reload_error"] == ready["last_error"]
            np.testing.assert_allclose(
                client.post("/predict", json=body).json()["probabilities"],
                models.expected["2"],
                atol=1e-12,
            )
    finally:
        registry.promote(client_registry, NAME, "1", None)  # other tests expect version 1


def test_the_links_of_get_model_open_the_ui_mlflow_ui_url_names(models, monkeypatch):
    """`make ui PORT=5001` beside `make serve PORT=5001`: GET /model's links open that UI (the
    Makefile gives the service MLFLOW_UI_URL=http://127.0.0.1:5001)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", models.tracking_uri)
    monkeypatch.setenv("MLFLOW_UI_URL", "http://127.0.0.1:5001/")
    with TestClient(create_app(settings(f"models:/{NAME}@champion"))) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        lineage = client.get("/model").json()["lineage"]
    page = f"#/models/{NAME}/versions/1?workflowType=machine_learning"
    assert lineage["model"]["url"] == f"http://127.0.0.1:5001/{page}"
    links = re.findall(r"https?://[^\"\s]+", json.dumps(lineage))
    assert all(link.startswith("http://127.0.0.1:5001/#/") for link in links), links


def test_public_keeps_web_links_whole_and_hides_file_paths():
    link = "http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning"
    shown = public({"url": link, "about": [f"see {link} for /home/ann/data/my.csv"]})
    assert shown["url"] == link
    assert shown["about"] == [f"see {link} for …/my.csv"]
    assert public("file:///home/ann/mlruns/1 and sqlite:////srv/mlflow.db") == (
        "…/1 and …/mlflow.db"
    )
    assert public("http://ann:secret@host:5000/#/models/m") == "http://***@host:5000/#/models/m"


def test_settings_refuse_bad_values_with_one_line():
    with pytest.raises(PipelineError, match=r"POLL_INTERVAL_S='soon' is not a number"):
        Settings.from_env({"MODEL_URI": "m", "POLL_INTERVAL_S": "soon"})
    with pytest.raises(PipelineError, match=r"MAX_BATCH_ROWS='0' must be at least 1"):
        Settings.from_env({"MODEL_URI": "m", "MAX_BATCH_ROWS": "0"})
    default = Settings.from_env({})
    assert default.model_uri == "models:/temperature-classifier@champion"


def test_serve_cli_help_and_bad_settings():
    done = subprocess.run(
        [sys.executable, "-m", "lab3.serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "MODEL_URI" in done.stdout
    env = {"PATH": "/usr/bin:/bin", "MAX_BODY_BYTES": "tiny"}
    done = subprocess.run(
        [sys.executable, "-m", "lab3.serve"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1
    assert "MAX_BODY_BYTES='tiny' is not an integer" in done.stderr.strip().splitlines()[-1]
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_UI_URL": "127.0.0.1:5001"}  # no http://
    done = subprocess.run(
        [sys.executable, "-m", "lab3.serve"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1
    assert (
        "MLFLOW_UI_URL='127.0.0.1:5001' is not the address of an MLflow UI"
        in (done.stderr.strip().splitlines()[-1])
    )


def test_a_tabular_model_refuses_image_uploads(models):
    with TestClient(create_app(settings(str(models.folders["1"])))) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        answer = client.post("/predict/image", content=b"x", headers={"content-type": "image/png"})
        assert answer.status_code == 400 and "use POST /predict" in answer.json()["detail"]


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(models):
    import asyncio

    from lab3.service.batching import Batcher
    from lab3.service.model import ModelInfo, load

    model = load(str(models.folders["1"]), ModelInfo(uri="local"))
    sample = models.sample.to_numpy()
    batcher = Batcher(max_rows=25)

    async def all_at_once():
        return await asyncio.gather(
            *(batcher.probabilities(model, sample[i : i + 2]) for i in range(0, 40, 2))
        )

    answers = asyncio.run(all_at_once())
    for index, answer in enumerate(answers):
        np.testing.assert_allclose(
            answer, models.expected["1"][2 * index : 2 * index + 2], atol=1e-12
        )
    assert batcher.calls == 2  # 20 requests of 2 rows, at most 25 rows per call


def test_ready_never_shows_the_credentials_of_the_tracking_uri(monkeypatch):
    """A server URI with credentials in it (http://user:password@host) fails to answer: /ready
    says why, without the password."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://admin:s3cret@127.0.0.1:9/")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with TestClient(create_app(settings(f"models:/{NAME}@champion"))) as client:
        wait_for(lambda: client.get("/ready").json()["last_error"])
        body = client.get("/ready").text
    assert "127.0.0.1:9" in body and "s3cret" not in body and "admin:" not in body, body


def test_503_answers_and_the_log_never_show_credentials_or_absolute_paths(tmp_path):
    """A real `python -m lab3.serve` whose tracking server (with credentials in its URI) does
    not answer: /model, /predict and /predict/image say why (503) without the password, and so
    does its stderr. With an embedded store not made yet, the 503s name the file, not its path."""
    import urllib.error
    import urllib.request

    from tests.loopback import LOCAL, free_port, model_service

    port = free_port()
    env = {
        "MLFLOW_TRACKING_URI": f"http://admin:se@cret@127.0.0.1:{port}/",
        "MODEL_URI": f"models:/{NAME}@champion",
    }
    requests = [
        ("/model", None, {}),
        ("/predict", b"{}", {"content-type": "application/json"}),
        ("/predict/image", b"x", {"content-type": "image/png"}),
    ]
    with model_service(tmp_path, env, ready=False) as url:
        wait_for(lambda: json.loads(LOCAL.open(f"{url}/health").read())["status"] == "ok")
        for path, data, headers in requests:
            request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                LOCAL.open(request, timeout=10)
            body = refused.value.read().decode()
            assert refused.value.code == 503, (path, body)
            assert f"127.0.0.1:{port}" in body and "does not answer" in body, (path, body)
            assert "cret" not in body and "admin" not in body, (path, body)
    log = (tmp_path / "service.log").read_text()
    assert "does not answer" in log and "cret" not in log and "admin" not in log, log

    store = tmp_path / "nowhere" / "mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        with TestClient(create_app(settings(f"models:/{NAME}@champion"))) as client:
            wait_for(lambda: client.get("/ready").json()["last_error"])
            for path, data, headers in requests:
                answer = client.request(
                    "GET" if data is None else "POST", path, content=data, headers=headers
                )
                detail = answer.json()["detail"]
                assert answer.status_code == 503 and "mlflow.db" in detail, (path, detail)
                assert str(tmp_path) not in detail, (path, detail)


def test_every_answer_has_the_shape_its_openapi_schema_documents(local):
    """No response is documented as a bare string: each JSON answer has a typed schema, and the
    real answers (200s and errors) validate against it."""
    import jsonschema

    spec = local.get("/openapi.json").json()

    def check(path: str, method: str, response) -> None:
        documented = spec["paths"][path][method]["responses"][str(response.status_code)]
        schema = documented["content"]["application/json"]["schema"]
        jsonschema.validate(response.json(), {**schema, "components": spec["components"]})

    check("/health", "get", local.get("/health"))
    check("/ready", "get", local.get("/ready"))
    check("/model", "get", local.get("/model"))
    check("/predict", "post", local.post("/predict", json={"instances": [[1.0] * 15]}))
    check("/predict", "post", local.post("/predict", json={"instances": [[1.0] * 3]}))  # 422
    check(
        "/predict",
        "post",
        local.post("/predict", content=b"{", headers={"content-type": "application/json"}),
    )  # 400
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                for media, content in answer.get("content", {}).items():
                    typed = content["schema"].get("$ref") or content["schema"].get("type")
                    assert typed and (typed != "string" or media.startswith("text/plain")), (
                        path,
                        method,
                        status,
                    )


def test_a_store_that_vanishes_stops_the_service_serving_and_a_new_one_is_loaded(
    models, monkeypatch, tmp_path
):
    """`make clean` removes .mlflow/ under a running service: an open SQLite file still reads
    after it is deleted, so the service must notice by itself, and never serve a version the
    registry no longer has."""
    import shutil

    db = tmp_path / "mlflow.db"
    shutil.copy(models.tracking_uri.removeprefix("sqlite:///"), db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with TestClient(create_app(settings(f"models:/{NAME}@champion"))) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        db.unlink()
        wait_for(lambda: client.get("/ready").status_code == 503)
        ready = client.get("/ready").json()
        # (The body names the file only: no absolute paths leave the service.)
        assert ready["serving"] is None and "mlflow.db no longer exists" in ready["last_error"]
        refused = client.post("/predict", json={"instances": [[1.0] * 15]})
        assert refused.status_code == 503 and "no longer exists" in refused.json()["detail"]
        shutil.copy(models.tracking_uri.removeprefix("sqlite:///"), db)  # a new store
        wait_for(lambda: client.get("/ready").status_code == 200)
        assert client.get("/model").json()["version"] == "1"


def test_a_store_not_made_yet_is_waited_for_not_made_and_not_called_vanished(
    models, monkeypatch, tmp_path
):
    """The image's service starts before the trainer has made the store: /ready names the model
    it waits for, and the service does not create the store itself (two processes creating one
    SQLite store at once crash in its migration)."""
    import shutil

    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with TestClient(create_app(settings(f"models:/{NAME}@champion"))) as client:
        wait_for(lambda: client.get("/ready").json().get("last_error"))
        ready = client.get("/ready")
        assert ready.status_code == 503 and NAME in ready.json()["last_error"]
        assert "does not exist yet" in ready.json()["last_error"]
        assert "no longer" not in ready.json()["last_error"]
        # A whole poll more, at least: each poll starts by setting last_checked (whole seconds).
        seen = {ready.json()["last_checked"]}

        def a_later_poll() -> str | None:
            checked = client.get("/ready").json()["last_checked"]
            return checked if checked not in seen else None

        for _ in range(2):
            seen.add(wait_for(a_later_poll))
        assert not db.exists()
        shutil.copy(models.tracking_uri.removeprefix("sqlite:///"), db)  # the trainer made it
        wait_for(lambda: client.get("/ready").status_code == 200)
        assert client.get("/model").json()["version"] == "1"
