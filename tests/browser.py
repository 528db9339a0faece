"""Headless Chromium for tests of web pages, driven with Selenium.

The browser and its driver are Debian's ``chromium`` and ``chromium-driver`` (tests/tools.sh
installs them; they come in matching versions). Selenium is told both paths and runs offline, so
it never tries to download a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

WAIT_S = 60  # the MLflow UI's first load compiles a large bundle: slow on two busy cores


def _path(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # never a skip: a missing browser must not pass for a passing test
        pytest.fail(f"{name} is not installed; run `bash tests/run.sh`, which installs it")
    return path


@contextmanager
def chromium(width: int = 1800, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium session (a Selenium WebDriver); quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: no downloads
    options = webdriver.ChromeOptions()
    options.binary_location = _path("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",  # tests run as root here
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # No calls home: on a closed network they are refused by the dozen, and slow the start.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(_path("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> None:
    """Save the page as ``$MLOPS_SCREENSHOTS/<name>.png`` when that folder is set (how the
    README's screenshots were taken); nothing otherwise."""
    folder = os.environ.get("MLOPS_SCREENSHOTS")
    if folder:
        driver.save_screenshot(os.path.join(folder, f"{name}.png"))


def wait_until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    """Wait up to WAIT_S for ``condition(driver)`` to be truthy; fail naming ``what``, with the
    page's text, if it never is."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.25).until(condition)
    except TimeoutException:
        pytest.fail(f"{what}: not shown within {WAIT_S} s. The page said:\n{page_text(driver)}")


def page_text(driver: Any) -> str:
    """The visible text of the page."""
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def wait_for_text(driver: Any, *texts: str) -> str:
    """Wait until every one of ``texts`` is visible on the page; return the page's text."""

    def shown(d: Any) -> str | None:
        text = page_text(d)
        return text if all(t in text for t in texts) else None

    return str(wait_until(driver, shown, " and ".join(repr(t) for t in texts)))
