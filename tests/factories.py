"""Builders of realistic data through the service layer and the API."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient

from tenants import service

PASSWORD = "correct horse battery staple"
_counter = itertools.count()


@dataclass
class Actor:
    user_id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def user(self, *, staff: bool = False, tenant_id: uuid.UUID | None = None, role: str | None = None) -> Actor:
        email = f"user{next(_counter)}-{uuid.uuid4().hex[:6]}@example.com"
        user = await service.create_or_update_user(email, PASSWORD, staff=staff, tenant_id=tenant_id, role=role)
        response = await self.client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return Actor(user.id, email, response.json()["access_token"])

    async def staff(self) -> Actor:
        return await self.user(staff=True)

    async def tenant(self, staff: Actor, **fields: Any) -> dict[str, Any]:
        body = {"name": "Acme", "slug": f"t-{uuid.uuid4().hex[:12]}", "currency": "EUR", **fields}
        response = await self.client.post("/v1/tenants", json=body, headers=staff.headers)
        assert response.status_code == 201, response.text
        return response.json()

    async def member(self, tenant_id: uuid.UUID | str, role: str = "tenant_admin") -> Actor:
        return await self.user(tenant_id=uuid.UUID(str(tenant_id)), role=role)
