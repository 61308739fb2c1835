"""Credits from the tenant's wallet applied to an invoice as it is finalized."""

from __future__ import annotations

import uuid
from typing import Any


async def apply_credits(tenant_id: uuid.UUID, invoice: dict[str, Any]) -> int:
    """Inside the caller's tenant transaction, the invoice just finalized: the credits applied to it (minor
    units, at most its amount due), journaled."""
    return 0
