"""Who is making a request: a signed-in person or a tenant's API key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "api_key"]
    id: uuid.UUID
    is_staff: bool = False
    # Set for API keys, which act only inside their own tenant with a fixed role.
    tenant_id: uuid.UUID | None = None
    api_key_role: str | None = None
    # A person's: their console sessions that started at a lower generation are over (a password change,
    # "sign out everywhere"). Read with the rest of the principal, so its cache eviction covers it.
    session_generation: int = 0

    @property
    def key(self) -> str:
        """Stable text naming this principal (idempotency scope, audit)."""
        return f"{self.kind}:{self.id}"
