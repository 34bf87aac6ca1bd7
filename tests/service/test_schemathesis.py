"""Property-based requests generated from the service's own OpenAPI: none may cause a server error.

Operations are enumerated from the live schema and each is fuzzed with a bounded Hypothesis run
(schemathesis' strategies, our own loop, so the test does not depend on its pytest plugin).
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.checks import not_a_server_error

from tests.service.server import ServerProcess

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 25


def test_no_server_errors(server: ServerProcess):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert "POST /classify" in labels and "GET /explain/{explanation_id}" in labels
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case) -> None:
            case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=30)

        fuzz()
    # The run really reached the routes (not only schema-level rejections inside the client).
    families = text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text)
    handled = {
        sample.labels["handler"]
        for family in families
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    }
    assert {"/classify", "/classify/batch", "/explain", "/v1/model"} <= handled, handled
