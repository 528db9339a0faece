"""The service with an image model (the CNN's kind): nested-list batches and PNG/JPEG uploads."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lab3.service.app import create_app
from tests.lab3.conftest import wait_for
from tests.lab3.test_service import settings

pytestmark = pytest.mark.images


@pytest.fixture(scope="module")
def service(image_model):
    with TestClient(create_app(settings(str(image_model.folder)))) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        yield client


def encoded(pixels: np.ndarray, kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=kind)
    return buffer.getvalue()


def test_batches_of_images_match_the_offline_model(service, image_model):
    info = service.get("/model").json()
    assert info["input"] == {"kind": "image", "shape": [16, 16, 1], "dtype": "uint8"}
    assert info["classes"] == ["circle", "square", "star"]
    answer = service.post("/predict", json={"instances": image_model.images.tolist()})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["probabilities"], image_model.expected, atol=1e-6)
    assert answer.json()["labels"][0] in info["classes"]


def test_png_upload_and_raw_body_give_the_offline_answer(service, image_model):
    pixels = image_model.images[4, :, :, 0]
    expected = dict(zip(["circle", "square", "star"], image_model.expected[4], strict=True))
    png = encoded(pixels, "PNG")
    for answer in (
        service.post("/predict/image", files={"file": ("x.png", png, "image/png")}),
        service.post("/predict/image", content=png, headers={"content-type": "image/png"}),
    ):
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["probabilities"] == pytest.approx(expected, abs=1e-6)
        assert got["label"] == max(expected, key=expected.get)


def test_colour_and_size_are_converted_to_what_the_model_takes(service):
    rgb = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    answer = service.post(
        "/predict/image", files={"file": ("p.jpg", encoded(rgb, "JPEG"), "image/jpeg")}
    )
    assert answer.status_code == 200, answer.text
    assert sum(answer.json()["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def bad_cases():
    gif = io.BytesIO()
    Image.new("L", (16, 16)).save(gif, format="GIF")
    noise = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
    png = encoded(noise, "PNG")  # noise compresses badly: half the file is pixel data
    return [
        (
            "not an image",
            {"files": {"file": ("x.png", b"hello", "image/png")}},
            415,
            "not a PNG or JPEG",
        ),
        (
            "a GIF",
            {"files": {"file": ("x.gif", gif.getvalue(), "image/gif")}},
            415,
            "GIF image; send PNG or JPEG",
        ),
        (
            "truncated PNG",
            {"content": png[: len(png) // 2], "headers": {"content-type": "image/png"}},
            422,
            "cannot decode",
        ),
        ("empty file", {"files": {"file": ("x.png", b"", "image/png")}}, 422, "empty file"),
        ("no file field", {"files": {"picture": ("x.png", png, "image/png")}}, 422, "field 'file'"),
        ("a form, not multipart", {"data": {"file": "1"}}, 415, "x-www-form-urlencoded"),
        ("JSON instead", {"json": {"instances": []}}, 415, "application/json"),
    ]


@pytest.mark.parametrize(
    ("what", "request_args", "status", "message"),
    bad_cases(),
    ids=[case[0] for case in bad_cases()],
)
def test_bad_uploads_are_a_clear_4xx(service, what, request_args, status, message):
    answer = service.post("/predict/image", **request_args)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [[[[1]] * 16] * 16] * 1 + [[[[1]] * 15] * 16]}, "equal shape"),
        ({"instances": [[[[1, 2]] * 16] * 16]}, "shape [16, 16, 2], the model takes [16, 16, 1]"),
        ({"instances": [[[[1.5]] * 16] * 16]}, "integers 0..255"),
        ({"instances": [[[[256]] * 16] * 16]}, "found 256..256"),
        ({"dataframe_split": {"data": [[1]]}}, "takes images"),
    ],
)
def test_bad_image_batches_are_a_422(service, body, message):
    answer = service.post("/predict", json=body)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["detail"]
