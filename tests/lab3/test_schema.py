"""schemathesis against the running service's own OpenAPI schema: generated valid and invalid
requests for every operation, served by real uvicorn (uvloop + httptools) in its own process.
Property: no request ever gets a 5xx, and every answer's status is one the schema documents."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests import loopback

MIN_CASES = 500
# Cases per operation and generation mode; GETs without parameters have few distinct cases.
BUDGET = {("POST", "/predict"): 300, ("POST", "/predict/image"): 120}


@pytest.fixture(scope="module", params=["tabular", pytest.param("image", marks=pytest.mark.images)])
def service(request, tmp_path_factory):
    folder = (
        request.getfixturevalue("models").folders["1"]
        if request.param == "tabular"
        else request.getfixturevalue("image_model").folder
    )
    env = {"MODEL_URI": str(folder), "MAX_BATCH_ROWS": "50", "MAX_BODY_BYTES": "65536"}
    with loopback.model_service(tmp_path_factory.mktemp("schema"), env) as url:
        yield url


def run_cases(service: str, operation, mode, calls: list) -> None:
    """Send up to BUDGET generated requests for one operation; check each answer."""
    raw = operation.definition.raw
    allowed = {int(code) for code in raw.get("responses", {}) if code.isdigit()}
    allowed |= {200, 400, 404, 405, 422}
    budget = BUDGET.get((operation.method.upper(), operation.path), 10)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=budget,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call(base_url=service, timeout=30)
        calls.append((case.method, case.path, response.status_code))
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        if response.status_code >= 400:  # a clear message, in the documented form
            assert response.json()["detail"], response.text
        assert response.status_code in allowed, (case.as_curl_command(), response.text)

    check()


def test_no_generated_request_gets_a_5xx(service):
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json")
    calls: list[tuple[str, str, int]] = []
    for operation in (result.ok() for result in schema.get_all_operations()):
        raw = operation.definition.raw
        modes = list(schemathesis.GenerationMode)
        if "requestBody" not in raw and not raw.get("parameters"):
            modes = [schemathesis.GenerationMode.POSITIVE]  # nothing to make invalid
        for mode in modes:
            run_cases(service, operation, mode, calls)
    statuses = {status for *_, status in calls}
    print(f"{len(calls)} cases:", dict(Counter(calls)))  # shown with pytest -s
    assert len(calls) >= MIN_CASES, f"only {len(calls)} cases ran"
    assert 200 in statuses and len(statuses & {400, 413, 415, 422}) >= 2, statuses
