"""Liveness, readiness and the Prometheus scrape (no authentication needed for any of them)."""

from __future__ import annotations

import re
import uuid

from httpx import AsyncClient

from tests.factories import Factory


async def test_live(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_every_dependency(client: AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok", "openbao": "ok"}}


def _samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


async def test_metrics_count_requests_by_route_template_never_by_id(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    unknown = uuid.uuid4()
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).status_code == 200
    assert (await client.get(f"/v1/tenants/{unknown}", headers=staff.headers)).status_code == 404
    assert (await client.get(f"/v1/tenants/{tenant['id']}/members", headers=staff.headers)).status_code == 200
    assert (await client.get(f"/v1/no-such-thing/{unknown}")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE controlplane_http_requests_total counter" in text
    requests = _samples(text, "controlplane_http_requests_total")
    routes = {match for line in requests for match in re.findall(r'route="([^"]*)"', line)}
    # The template as Litestar names it, with or without the parameter's type.
    (tenant_route,) = {route for route in routes if re.fullmatch(r"/v1/tenants/\{tenant_id(:uuid)?\}", route)}
    assert tenant_route + "/members" in routes
    ok = [line for line in requests if f'route="{tenant_route}"' in line and 'status="200"' in line]
    not_found = [line for line in requests if f'route="{tenant_route}"' in line and 'status="404"' in line]
    assert ok and not_found
    assert all(float(line.rsplit(" ", 1)[1]) >= 1 for line in ok + not_found)
    # Bounded labels: no raw path, no tenant id, anywhere in the scrape.
    assert tenant["id"] not in text
    assert str(unknown) not in text
    assert all("/v1/no-such-thing" not in route for route in routes)
    assert _samples(text, "controlplane_http_request_duration_seconds_bucket")


async def test_the_api_documents_itself(client) -> None:
    docs = await client.get("/schema")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    spec = await client.get("/schema/openapi.json")
    assert spec.status_code == 200
    assert "/v1/tenants" in spec.json()["paths"]
