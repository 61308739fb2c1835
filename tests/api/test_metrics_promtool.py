"""/metrics is valid Prometheus text (checked by promtool) with bounded labels."""

from __future__ import annotations

import asyncio
import shutil
import subprocess


async def test_promtool_accepts_the_scrape(client, factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).status_code == 200
    assert (await client.get("/v1/no-such-route")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'route="/v1/tenants/{tenant_id}"' in text
    assert 'route="unmatched"' in text
    assert tenant["id"] not in text  # never a raw path or a tenant id as a label
    assert "controlplane_db_query_duration_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text

    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make install` (Debian package prometheus)"
    check = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
