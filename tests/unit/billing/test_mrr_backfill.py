"""The MRR history's backfill: what each of today's subscriptions leaves in the history, worked out by hand."""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.catalogue.rules import plan_from_row

migration = importlib.import_module("billing.piccolo_migrations.billing_2026_12_04t12_00_00_000000")

TENANT = uuid.uuid4()
NOW = datetime.now(UTC)
STARTED = NOW - timedelta(days=90)
TRIAL_END = STARTED + timedelta(days=14)
# 49.00 flat + 10.00 a seat a month.
PLAN = plan_from_row(
    {
        "id": uuid.uuid4(), "code": "team", "version": 1, "name": "Team", "currency": "EUR", "interval": "month",
        "trial_days": 14, "proration_upgrade": "immediate", "proration_downgrade": "next_period",
    },
    [{"type": "flat", "amount_minor": 4900}, {"type": "per_seat", "unit_amount_minor": 1000}],
)  # fmt: skip


def _row(status: str, *, trial: bool = False, canceled_at: datetime | None = None) -> dict[str, Any]:
    return {
        "tenant_id": TENANT, "plan_id": PLAN.id, "seats": 2, "status": status, "started_at": STARTED,
        "trial_end": TRIAL_END if trial else None, "canceled_at": canceled_at, "addons": "[]", "discounts": "[]",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (_row("active"), [(STARTED, 6900, "backfill")]),
        (_row("past_due"), [(STARTED, 6900, "backfill")]),
        (_row("active", trial=True), [(STARTED, 0, "trial_started"), (TRIAL_END, 6900, "trial_converted")]),
        (_row("trialing", trial=True), [(STARTED, 0, "trial_started")]),
        (
            _row("canceled", trial=True, canceled_at=STARTED + timedelta(days=3)),
            [(STARTED, 0, "trial_started"), (STARTED + timedelta(days=3), 0, "trial_canceled")],
        ),
        (
            _row("canceled", canceled_at=NOW - timedelta(days=1)),
            [(STARTED, 6900, "backfill"), (NOW - timedelta(days=1), 0, "backfill")],
        ),
    ],
)
def test_each_subscription_replays_into_its_rows(row: dict[str, Any], expected: list[tuple[Any, ...]]) -> None:
    assert [change[2:] for change in migration._replay(row, PLAN)] == expected
    assert {change[:2] for change in migration._replay(row, PLAN)} == {(TENANT, "EUR")}


def test_a_paused_subscription_counts_until_now_then_nothing() -> None:
    replayed = migration._replay(_row("paused"), PLAN)
    assert [change[2:] for change in replayed][:1] == [(STARTED, 6900, "backfill")]
    assert [change[3:] for change in replayed][1:] == [(0, "backfill")]
