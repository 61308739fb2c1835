"""The discounts an invoice of a subscription gets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from billing.periods import Period
from billing.rating import Line


async def discount_lines(
    tenant_id: uuid.UUID, subscription_id: uuid.UUID, lines: Sequence[Line], period: Period
) -> list[Line]:
    """Inside the caller's tenant transaction: the discount lines (negative) the subscription's discounts give
    `lines`. Nothing is consumed: `record_applied` does that once the invoice is written."""
    return []


async def record_applied(
    tenant_id: uuid.UUID, subscription_id: uuid.UUID, invoice_id: uuid.UUID, lines: Sequence[Line]
) -> None:
    """Inside the caller's tenant transaction: what the discount lines of a written invoice used up."""
