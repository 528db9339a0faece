"""The MLflow UI tells the story of a pipeline run: checked in a real browser.

One pipeline run in a copy of the project, then `mlflow ui` on its store and headless Chromium
(tests/browser.py) on the links pipeline.sh prints: the runs table in the model-training view
with the pipeline-story columns, the run with its five stages, its params and description, the
logged model with its test metrics, and the registered model with its champion and model card.

Set MLOPS_SCREENSHOTS=<folder> to keep a PNG of every page checked (the README's screenshots
were taken this way).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab1.core.mlflow_ui import LOCAL_UI, ML_VIEW, run_link, runs_link
from lab1.core.stages import STAGES
from tests import loopback
from tests.browser import chromium, screenshot, wait_for_text, wait_until
from tests.conftest import SMALL, Project, copy_project

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


class Ui:
    """`mlflow ui` on a project copy after one pipeline run, and what that run reported."""

    def __init__(self, url: str, root: Path):
        self.url = url
        self.root = root
        self.decision = json.loads((root / "reports" / "registration.json").read_text())
        self.metrics = json.loads((root / "reports" / "metrics.json").read_text())["metrics"]
        self.model = json.loads((root / "models" / "model.json").read_text())

    def link(self, printed: str) -> str:
        """A link as pipeline.sh prints it, pointed at this test's UI."""
        return printed.replace(LOCAL_UI, self.url)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory):
    root = copy_project(tmp_path_factory.mktemp("ui") / "project")
    # The README's screenshots show the default run (its figures: accuracy 0.929); checks alone
    # need only the small one.
    done = Project(root).pipeline(*(() if os.environ.get("MLOPS_SCREENSHOTS") else SMALL))
    assert done.returncode == 0, done.stderr
    port = loopback.free_port()
    argv = [loopback.mlflow_command(), "ui", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--backend-store-uri", f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"]
    with loopback.running("mlflow-ui", argv, port, "/health", root / "mlflow-ui.log") as url:
        yield Ui(url, root)


def quiet(browser, url: str) -> None:
    """Open the UI once with its assistant panel closed (it would cover the tables)."""
    browser.get(url)
    browser.execute_script(
        "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
        "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
    )


def test_the_runs_table_shows_the_pipeline_story(ui):
    from selenium.webdriver.common.by import By

    experiment = ui.decision["experiment_id"]
    with chromium(width=2400) as browser:
        quiet(browser, ui.url)
        browser.get(ui.link(runs_link(experiment)))
        # The model-training view (not GenAI's "Overview"), with the saved view's columns.
        columns = ("Dataset", "Source", "accuracy", "f1", "gate.decision")
        text = wait_for_text(browser, "Pipeline story", "pipeline-temperature", *columns)
        assert "Token Usage" not in text and "data/processed/test.parquet" in text
        assert str(ui.metrics["accuracy"])[:5] in text and "promoted" in text
        assert "hist_gradient_boosting" in text and "pipeline.sh" in text
        # The parent run (the only run here) opens onto its five stages: its row's first button.
        browser.find_elements(By.CSS_SELECTOR, "[role=gridcell] button")[0].click()
        wait_for_text(browser, *(stage[:10] for stage in STAGES))
        screenshot(browser, "mlflow-runs")


def test_the_pipeline_run_has_its_description_and_params(ui):
    experiment, run = ui.decision["experiment_id"], ui.decision["pipeline_run_id"]
    with chromium() as browser:
        quiet(browser, ui.url)
        browser.get(ui.link(run_link(experiment, run)))
        text = wait_for_text(browser, "Gate: promoted", "model_preparation.estimator")
        assert ui.decision["reason"][:40] in text
        assert "hist_gradient_boosting" in text and "data_creation.seed" in text
        screenshot(browser, "mlflow-pipeline-run")


def test_the_logged_model_is_named_for_what_it_is_with_its_test_metrics(ui):
    experiment, model_id = ui.decision["experiment_id"], ui.model["model_id"]
    with chromium() as browser:
        quiet(browser, ui.url)
        browser.get(f"{ui.url}/#/experiments/{experiment}/models/{model_id}?{ML_VIEW}")
        text = wait_for_text(browser, "temperature-hist_gradient_boosting", "recall.spike")
        assert str(ui.metrics["accuracy"])[:5] in text
        screenshot(browser, "mlflow-logged-model")


def test_the_registered_model_shows_its_champion_and_model_card(ui):
    name = ui.decision["registered_model"]
    with chromium() as browser:
        quiet(browser, ui.url)
        browser.get(f"{ui.url}/#/models/{name}")
        wait_for_text(browser, name, "champion", "Flags faulty days")
        screenshot(browser, "mlflow-registered-model")
        browser.get(f"{ui.url}/#/models/{name}/versions/{ui.decision['version']}")
        wait_until(
            browser,
            lambda b: "gate.decision" in b.page_source and "promoted" in b.page_source,
            "the version's gate tags",
        )
