"""Schemathesis over the whole OpenAPI document: no 5xx, and every answer is the one the schema documents.

Hypothesis runs in a worker thread (its engine is synchronous); each generated request is sent through
the session's async `client` on the test's own event loop, where the lifespan opened the connection pool,
and the response is checked with schemathesis' own checks. Generation is derandomized, so a run is
reproducible. Cases reach real rows: the known tenants, members and API keys are mixed into the path
parameters, and destructive operations (DELETE) run last so the others see live data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from httpx import AsyncClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.routes import HTTPRoute
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import Factory

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
SCHEMA_PATH = "/schema/openapi.json"
STATS = {}


async def test_openapi_document_lists_every_v1_route(client: AsyncClient, app: Litestar) -> None:
    response = await client.get(SCHEMA_PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/")
    paths = response.json()["paths"]
    expected = {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/v1/")
        for handler in route.route_handlers
        if handler.include_in_schema
        for method in handler.http_methods
        if method not in {"HEAD", "OPTIONS"}
    }
    assert expected, "no /v1 routes found"
    documented = {(path, method) for path, operations in paths.items() for method in operations}
    assert expected - documented == set()


async def test_every_operation_conforms_to_the_schema(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    known: list[dict[str, str]] = []
    for _ in range(2):
        tenant_id = (await factory.tenant(staff))["id"]
        known.append({"tenant_id": tenant_id})
        for role in ("tenant_admin", "tenant_member"):
            member = await factory.member(tenant_id, role)
            known.append({"tenant_id": tenant_id, "user_id": str(member.user_id)})
        key = await client.post(
            f"/v1/tenants/{tenant_id}/api-keys", json={"name": "ci"}, headers=staff.headers
        )
        assert key.status_code == 201, key.text
        known.append({"tenant_id": tenant_id, "key_id": key.json()["id"]})

    document = (await client.get(SCHEMA_PATH)).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        # Erasing a tenant or removing its members first would leave the other operations only 404s.
        key=lambda operation: (operation.method.upper() == "DELETE", -operation.path.count("/"), operation.label),
    )
    assert operations

    loop = asyncio.get_running_loop()

    def send(kwargs: dict[str, Any]) -> Any:
        prepared = requests.Request(**kwargs).prepare()
        request = client.request(
            str(prepared.method), str(prepared.url), headers=dict(prepared.headers), content=prepared.body
        )
        return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=30)

    failures = await asyncio.to_thread(_fuzz, operations, known, staff.headers, send)
    for k, v in STATS.items(): print("STAT", k, dict(v))
    assert not failures, "\n\n".join(failures)


def _fuzz(
    operations: list[Any], known: list[dict[str, str]], headers: dict[str, str], send: Callable[[dict[str, Any]], Any]
) -> list[str]:
    failures = []
    for operation in operations:
        names = {parameter.name for parameter in operation.path_parameters}
        fixed = [values for values in known if set(values) == names] if names else []
        for mode, examples in EXAMPLES.items():
            strategies = [operation.as_strategy(generation_mode=mode)]
            if mode is GenerationMode.POSITIVE:
                strategies += [operation.as_strategy(generation_mode=mode, path_parameters=values) for values in fixed]

            @settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=st.one_of(strategies))
            def check(case: schemathesis.Case) -> None:
                kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
                response = send(kwargs)
                import collections, os  # noqa
                if response.status_code < 300 and mode is GenerationMode.NEGATIVE:
                    print("P400", operation.label, response.request.url, dict(response.request.headers).get("authorization","NOAUTH")[:10], response.text[:100])
                STATS.setdefault((operation.label, mode.value), collections.Counter())[response.status_code] += 1
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures

