"""The JSON API against its own OpenAPI document, with schemathesis (B9, DESIGN rule 6).

Every operation gets generated requests, valid and invalid, and every answer
must be a non-5xx that the document describes (status, content type, body
schema). Bounded and deterministic: a few dozen examples per operation and
mode, derandomized, on SQLite and PostgreSQL against the real server.

schemathesis's calls are synchronous (requests), so they run in a worker
thread while the server keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveApp

EXAMPLES = 25
# No 5xx, and every answer as the document describes it; a token is never ignored.
# Not checked: that every schema-valid request is accepted (a message may still lack
# a recipient, a documented 422) or that unknown query parameters are refused.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


def run_operations(raw_schema: dict[str, Any], base_url: str, headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_dict(raw_schema)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

            check()


async def test_api_answers_conform_to_its_openapi_document(live: LiveApp) -> None:
    document = await live.client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    await asyncio.to_thread(run_operations, document.json(), live.base_url, live.auth())
