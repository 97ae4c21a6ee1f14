"""Schema-based fuzzing (schemathesis) of every operation in /openapi.json against a real server.

Checks: no 5xx for anything the fuzzer sends, every status code and content type is one the
schema declares, and responses match their declared schemas. `/admin/config` is left out: a
valid request there may legitimately set `crash_after_requests` and end the process. The server
runs with tiny input limits so that valid synthesis requests stay short. Slow (about a minute).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_schema(serve_factory):
    server = serve_factory.start("--max-batch", "2", "--max-input-chars", "40", "--max-job-chars", "40",
                                 "--job-chunk-frames", "4", "--batch-window-ms", "0", name="fuzz")
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path="/admin/config").parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_yields_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance], timeout=120)
