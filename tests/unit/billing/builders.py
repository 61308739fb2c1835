"""Small builders shared by the billing unit tests: plans from JSON charges, UTC midnights, line sums."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.catalogue.rules import Plan, plan_from_row
from billing.rating import Line


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def make_plan(
    code: str,
    charges: list[dict[str, Any]],
    *,
    currency: str = "USD",
    interval: str = "month",
    trial_days: int = 0,
    upgrade: str = "immediate",
    downgrade: str = "next_period",
    plan_id: Any = None,
    version: int = 1,
) -> Plan:
    row = {
        "id": plan_id if plan_id is not None else f"plan-{code}",
        "code": code,
        "version": version,
        "name": code.capitalize(),
        "currency": currency,
        "interval": interval,
        "trial_days": trial_days,
        "proration_upgrade": upgrade,
        "proration_downgrade": downgrade,
    }
    return plan_from_row(row, charges)


def flat(amount: str | int, **extra: Any) -> dict[str, Any]:
    return {"type": "flat", "name": "Base fee", "amount_minor": str(amount), **extra}


def per_seat(unit: str | int, **extra: Any) -> dict[str, Any]:
    return {"type": "per_seat", "name": "Seat", "unit_amount_minor": str(unit), **extra}


def per_unit(metric: str, unit: str | int, **extra: Any) -> dict[str, Any]:
    return {"type": "metered", "metric_code": metric, "model": "per_unit", "unit_amount_minor": str(unit), **extra}


def amounts(lines: Iterable[Line]) -> list[int]:
    return [line.amount_minor for line in lines]


def total_of(lines: Iterable[Line]) -> int:
    return sum(amounts(lines), 0)


def precise_total(lines: Iterable[Line]) -> Decimal:
    return sum((line.precise_amount for line in lines), Decimal(0))
