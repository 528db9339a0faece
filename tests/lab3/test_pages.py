"""The service's pages: the demo page, /docs and /redoc, served with no CDN.

In-process: what each page loads comes from this service. In a real browser (headless
Chromium; this machine has no internet, so a page that needs a CDN stays blank): Swagger UI and
ReDoc render the API, and the demo page shows the same prediction the model makes offline.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lab1.core.model_io import load_model
from lab3.service.app import create_app
from lab3.service.settings import Settings
from tests import loopback
from tests.browser import chromium, page_text, screenshot, wait_for_text, wait_until
from tests.lab3.conftest import wait_for

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.fixture
def local(models):
    settings = Settings(
        model_uri=str(models.folders["1"]),
        poll_interval_s=0.1,
        max_batch_rows=100,
        max_body_bytes=64 * 1024,
    )
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        yield client


@pytest.mark.parametrize("page", ["/", "/docs", "/redoc"])
def test_pages_load_everything_from_the_service(local, page):
    html = local.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    text = html.text
    assets = ASSET.findall(text) + re.findall(r"""url: ?['"]([^'"]+)['"]""", text)
    assert assets, text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        assert local.get(asset).status_code == 200, asset
    assert "cdn" not in text.lower() and "googleapis" not in text


def test_the_pages_are_not_api_operations(local):
    paths = local.get("/openapi.json").json()["paths"]
    assert "/predict" in paths and not {"/", "/docs", "/redoc"} & paths.keys()


@pytest.fixture(scope="module")
def service(models, tmp_path_factory):
    """The real service process (uvicorn) on version 1's local folder."""
    workdir = tmp_path_factory.mktemp("pages")
    with loopback.model_service(workdir, {"MODEL_URI": str(models.folders["1"])}) as url:
        yield url


@pytest.mark.browser
def test_swagger_ui_and_redoc_render_the_api_offline(service):
    with chromium() as browser:
        browser.get(f"{service}/docs")
        wait_for_text(browser, "/predict", "/predict/image", "Predict a batch")
        screenshot(browser, "service-docs")
        browser.get(f"{service}/redoc")
        wait_for_text(browser, "Predict a batch", "Classify one PNG or JPEG image")


@pytest.mark.browser
@pytest.mark.parametrize("example", ["normal", "spike", "missing"])
def test_the_demo_page_shows_the_models_prediction(service, models, example):
    from selenium.webdriver.common.by import By

    model = load_model(models.folders["1"])
    with chromium(width=1000, height=760) as browser:
        browser.get(service)
        wait_for_text(browser, "Serving", "faulty")
        browser.find_element(By.CSS_SELECTOR, f"[data-example={example}]").click()
        entered = browser.find_element(By.ID, "readings").get_attribute("value")
        browser.find_element(By.CSS_SELECTOR, "#tabular button[type=submit]").click()
        wait_until(browser, lambda b: b.find_element(By.ID, "answer").is_displayed(), "answer")
        label = browser.find_element(By.ID, "label").text
        shown = {
            row.find_elements(By.TAG_NAME, "td")[0].text: float(
                row.find_elements(By.TAG_NAME, "td")[1].text
            )
            for row in browser.find_elements(By.CSS_SELECTOR, "#probabilities tbody tr")
        }
        text = page_text(browser)
        screenshot(browser, f"service-demo-{example}")
    # The same row, offline: the page sent what it showed, and shows what the model says.
    values = [float(v) if v.strip() else np.nan for v in str(entered).split(",")]
    frame = pd.DataFrame([values], columns=models.sample.columns)
    expected = model.predict_proba(frame)[0]
    classes = ["normal", "faulty"]
    assert label == classes[int(expected.argmax())], text
    assert shown == pytest.approx(dict(zip(classes, expected, strict=True)), abs=5e-4), text


@pytest.mark.browser
def test_the_demo_page_says_what_is_wrong_with_a_row(service):
    from selenium.webdriver.common.by import By

    with chromium() as browser:
        browser.get(service)
        wait_for_text(browser, "Serving")
        field = browser.find_element(By.ID, "readings")
        field.clear()
        field.send_keys("1, 2, three")
        browser.find_element(By.CSS_SELECTOR, "#tabular button[type=submit]").click()
        wait_for_text(browser, "expected 15 values")
