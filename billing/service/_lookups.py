"""Reads other domains make inside their own transactions (the plugin registry prices plugins with them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from billing import repository
from billing.service import _state


async def known_metrics(codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The billable metrics among `codes` that exist, by code."""
    return await _state.metrics(codes)


async def live_subscription(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """Inside the caller's transaction: the tenant's subscription that is not canceled, if any."""
    return await repository.live_subscription(tenant_id)
