"""What the producers queued: the `notifications` rows read as the system, and a spy on billing's notices for
the events that queue no email (`subscription.updated` and `subscription.canceled` go to webhooks only)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing.notices import service as notices
from controlplane.core.db import SystemReason, fetch, system_tx
from tests.factories import Actor, Factory

Call = tuple[str, str, dict[str, Any], dict[str, Any]]


async def queued(event: str) -> list[dict[str, Any]]:
    """The rows queued for `event`, oldest first, their `data` decoded."""
    async with system_tx(SystemReason.STAFF_VIEW):
        rows = await fetch(
            "select tenant_id, partner_id, event_type, event_key, recipient, user_id, data, attachment_id "
            "from notifications where event_type = {} order by id",
            event,
        )
    return [{**row, "data": json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]} for row in rows]


def recipients(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["recipient"] for row in rows)


def one_occurrence(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows are one occurrence (one key, the same data for every recipient): its key and data."""
    assert len({row["event_key"] for row in rows}) == 1, rows
    assert all(row["data"] == rows[0]["data"] for row in rows)
    return rows[0]


async def told_tenant(factory: Factory, staff: Actor, **fields: Any) -> tuple[dict[str, Any], Actor]:
    """A tenant with a billing contact and an admin: each of its events queues exactly two emails."""
    tenant = await factory.tenant(staff, billing_email="billing@told.example", **fields)
    return tenant, await factory.member(tenant["id"], "tenant_admin")


def both(admin: Actor) -> list[str]:
    return sorted(["billing_contact", f"user:{admin.user_id}"])


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every `notify` billing's notices make (then made for real): (event, key, data, audience)."""
    calls: list[Call] = []
    real = notices.notify

    async def spy(event: str, key: str, data: Any, **audience: Any) -> int:
        calls.append((event, key, dict(data), audience))
        return await real(event, key, data, **audience)

    monkeypatch.setattr(notices, "notify", spy)
    return calls


def of(calls: list[Call], prefix: str) -> list[Call]:
    return [call for call in calls if call[0].startswith(prefix)]
