"""The history of installs and trials (`plugin_install_events`, append-only), from which adoption is counted:
each step is written inside the transaction of the change it records, at the time it takes effect."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from plugins_registry import repository

Step = Literal["installed", "uninstalled", "trial_started", "trial_converted", "trial_ended"]


async def record_step(row: dict[str, Any], step: Step, at: datetime) -> None:
    """`row`: the install or license the step is of (its tenant, plugin and slug)."""
    await repository.insert_install_event(row["tenant_id"], row["plugin_id"], row["slug"], step, at)


def trial_end(license_row: dict[str, Any], now: datetime) -> datetime:
    """When a trial license's trial ended, seen at `now`: at its end, or now if it is cut short (uninstalled,
    the tenant erased) before. A trial converts or expires at its end, whenever the expiry job gets to it."""
    ends_at: datetime | None = license_row["trial_ends_at"]
    return now if ends_at is None else min(ends_at, now)
