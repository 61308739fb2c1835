"""Property: whatever the mix of principals and operations, no tenant sees or changes another's data.

Hypothesis draws the seed of a random operation stream; the stream runs at least 10,000 operations over
five tenants (each with an admin, a read-only member and an admin API key), half through the HTTP API
and half through the service layer and raw SQL in tenant, user and no contexts. Principals act on their
own tenant and, maliciously, on others: another tenant's paths with their own credentials, their own
paths with another tenant's ids, forged API keys, and raw SQL in their own tenant context aimed at
another tenant's rows. The application runs with a pool of ONE connection, so every transaction reuses
the connection the previous one (often of another tenant) just released.

After every operation: no response or query result holds an id, slug, name or email of another tenant;
cross-tenant attempts are refused (404/403, or 204 for the idempotent member removal) and change
nothing; and a query with no context set sees no tenant row. A model of what each tenant holds is
compared with what the API and services answer, and with what is stored (read as the owner).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import Litestar

from controlplane.app import create_app
from controlplane.core import db
from controlplane.core.auth.principal import Principal
from controlplane.core.db import anonymous_tx, fetch, tenant_tx, user_tx
from controlplane.core.pagination import PageRequest, encode_cursor
from controlplane.core.settings import Settings
from controlplane.core.views import Page
from tenants import billing_contact, repository, service
from tenants.errors import ApiKeyNotFound, MemberNotFound
from tests.conftest import COUNTS, connect_as_inspector
from tests.factories import PASSWORD

pytestmark = pytest.mark.slow

OPERATIONS = int(os.environ.get("ISOLATION_OPERATIONS", "10000"))
# Hypothesis's first seed is 0 (fixed); the second is random. The world carries over between examples.
EXAMPLES = int(os.environ.get("ISOLATION_EXAMPLES", "2"))
TENANTS = 5
FULL_CHECK_EVERY = 250
ROLES = ("tenant_admin", "tenant_member", "billing_viewer")
READERS = frozenset({"admin", "member", "key"})
MANAGERS = frozenset({"admin", "key"})
# Whole values are looked up as they are; inside longer text, anything shaped like an id or an email.
TOKEN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}|[^\s@\"'/<>(),]+@[^\s@\"'/<>(),]+"
)


@dataclass
class Who:
    kind: str  # admin | member | key
    headers: dict[str, str]
    principal: Principal


@dataclass
class TenantModel:
    """What one tenant should hold."""

    index: int
    id: uuid.UUID
    slug: str
    name: str
    admin: Who
    member: Who
    key: Who
    key_text: str
    billing_email: str | None = None
    members: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)  # user id -> (email, role)
    former: dict[uuid.UUID, str] = field(default_factory=dict)  # removed members, may come back
    keys: dict[uuid.UUID, bool] = field(default_factory=dict)  # key id -> revoked
    audit_count: int = 0
    audit_seen: int = 0
    audit_after: tuple[datetime, uuid.UUID] | None = None
    idempotency: int = 0

    @property
    def principals(self) -> set[uuid.UUID]:
        return {self.admin.principal.id, self.member.principal.id}

    def added_members(self) -> list[uuid.UUID]:
        return [user_id for user_id in self.members if user_id not in self.principals]

    def spare_keys(self) -> list[uuid.UUID]:
        return [key_id for key_id in self.keys if key_id != self.key.principal.id]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, uuid.UUID):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # a service's view
        yield from strings(dataclasses.asdict(value))
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from strings(item)


def tokens_in(value: Any) -> set[str]:
    found: set[str] = set()
    for text in strings(value):
        found.add(text)
        found.update(TOKEN.findall(text))
    return found


class World:
    """The tenants, their model, and the operations; counts operations, cross-tenant attempts and leaks."""

    def __init__(self, client: httpx.AsyncClient, app: Litestar, owner: asyncpg.Connection, tables: list[Any]) -> None:
        self.client = client
        self.app = app
        self.owner = owner
        self.tables = [(row["relname"], row["tenant_column"]) for row in tables]
        self.tenants: list[TenantModel] = []
        self.owner_of: dict[str, int] = {}
        self.leaks: list[str] = []
        self.kinds: Counter[str] = Counter()
        self.operations = 0
        self.api_calls = 0
        self.service_calls = 0
        self.cross_attempts = 0
        self.pids: set[int] = set()
        self.counter = itertools.count()
        self.where = ""
        counts = " + ".join(f'(select count(*) from "{name}")' for name, _ in self.tables)  # noqa: S608
        self.no_context_sql = f"select pg_backend_pid() as pid, {counts} as n"

    # -- bookkeeping ------------------------------------------------------------------------------

    def register(self, tenant: TenantModel, *values: Any) -> None:
        for value in values:
            texts = [str(value), value.hex] if isinstance(value, uuid.UUID) else [str(value)]
            for text in texts:
                owner = self.owner_of.setdefault(text, tenant.index)
                if owner != tenant.index:
                    self.leak(f"{text} of tenant {owner} also belongs to tenant {tenant.index}")

    def leak(self, message: str) -> None:
        self.leaks.append(f"op {self.operations} {self.where}: {message}")

    def scan(self, payload: Any, acting: TenantModel, echo: set[str] | frozenset[str] = frozenset()) -> None:
        """Nothing in `payload` may belong to a tenant other than `acting` (except what the request itself sent)."""
        for token in tokens_in(payload):
            owner = self.owner_of.get(token)
            if owner is not None and owner != acting.index and token not in echo:
                self.leak(f"{token} of tenant {owner} shown to tenant {acting.index}")

    def fresh(self, tenant: TenantModel, what: str) -> str:
        value = f"{what}{next(self.counter)}@t{tenant.index}.isolation.example"
        self.register(tenant, value)
        return value

    def fresh_name(self, tenant: TenantModel) -> str:
        value = f"Tenant {tenant.index} rev {next(self.counter)}"
        self.register(tenant, value)
        return value

    # -- setup ------------------------------------------------------------------------------------

    async def build(self) -> None:
        staff_email = f"staff-{uuid.uuid4().hex[:8]}@isolation.example"
        await service.create_or_update_user(staff_email, PASSWORD, staff=True)  # the one password hash
        login = await self.client.post("/v1/auth/token", json={"email": staff_email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        staff_headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        staff = Principal(kind="user", id=uuid.uuid4(), is_staff=True)
        signer = self.app.state.token_signer
        for index in range(TENANTS):
            slug = f"iso-{index}-{uuid.uuid4().hex[:10]}"
            name = f"Tenant {index} {uuid.uuid4().hex[:6]}"
            created = await self.client.post(
                "/v1/tenants", json={"name": name, "slug": slug, "currency": "EUR"}, headers=staff_headers
            )
            assert created.status_code == 201, created.text
            tenant_id = uuid.UUID(created.json()["id"])
            people = {}
            for kind, role in (("admin", "tenant_admin"), ("member", "tenant_member")):
                email = f"{kind}@t{index}.isolation.example"
                row = await service.add_member(staff, tenant_id, email, role)  # invited: no password to hash
                people[kind] = (row.user_id, email, role)
            new_key = await service.create_api_key(staff, tenant_id, "principal key", "tenant_admin")
            key_row, key_text = new_key.key, new_key.secret

            admin, member = (
                Who(kind, {"Authorization": f"Bearer {signer.issue(user_id)}"}, Principal("user", user_id))
                for kind, user_id in ((kind, people[kind][0]) for kind in ("admin", "member"))
            )
            key_principal = Principal("api_key", key_row.id, tenant_id=tenant_id, api_key_role="tenant_admin")
            tenant = TenantModel(
                index=index,
                id=tenant_id,
                slug=slug,
                name=name,
                admin=admin,
                member=member,
                key=Who("key", {"Authorization": f"Bearer {key_text}"}, key_principal),
                key_text=key_text,
            )
            tenant.members = {user_id: (email, role) for user_id, email, role in people.values()}
            tenant.keys = {key_row.id: False}
            emails = [email for _, email, _ in people.values()]
            self.register(tenant, tenant_id, slug, name, key_row.id, *tenant.members, *emails)
            self.tenants.append(tenant)
        stored = await self.snapshot()
        for tenant in self.tenants:
            tenant.audit_count = stored["audit"].get(tenant.id, 0)
            assert tenant.audit_count == 4  # tenant.created, 2 x member.added, api_key.created
        await self.full_check()

    # -- checks -----------------------------------------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        """What is really stored, read as the owner in the platform scope."""
        # The billing email is stored sealed (the tenant's data key): opened the way the API shows it.
        raw = [dict(row) for row in await self.owner.fetch("select id, name, billing_email, status from tenants")]
        assert all(row["billing_email"] is None or row["billing_email"].startswith("dk:v1:") for row in raw)
        stored_tenants = await billing_contact.reveal(raw)
        tenants = {row["id"]: (row["name"], row["billing_email"], row["status"]) for row in stored_tenants}
        members: dict[uuid.UUID, dict[uuid.UUID, tuple[str, str]]] = {}
        for row in await self.owner.fetch(
            "select m.id, m.tenant_id, m.user_id, m.role, u.email from memberships m join users u on u.id = m.user_id"
        ):
            members.setdefault(row["tenant_id"], {})[row["user_id"]] = (row["email"], row["role"])
        keys: dict[uuid.UUID, dict[uuid.UUID, bool]] = {}
        for row in await self.owner.fetch("select id, tenant_id, revoked_at is not null as revoked from api_keys"):
            keys.setdefault(row["tenant_id"], {})[row["id"]] = row["revoked"]
        audit = dict(await self.owner.fetch("select tenant_id, count(*) from audit_events group by 1"))
        idempotency = dict(await self.owner.fetch("select tenant_id, count(*) from idempotency_keys group by 1"))
        return {"tenants": tenants, "members": members, "keys": keys, "audit": audit, "idempotency": idempotency}

    async def compare_with_storage(self) -> None:
        stored = await self.snapshot()
        assert set(stored["tenants"]) == {tenant.id for tenant in self.tenants}, stored["tenants"]
        for tenant in self.tenants:
            got = {
                "tenant": stored["tenants"][tenant.id],
                "members": stored["members"].get(tenant.id, {}),
                "keys": stored["keys"].get(tenant.id, {}),
                "audit": stored["audit"].get(tenant.id, 0),
                "idempotency": stored["idempotency"].get(tenant.id, 0),
            }
            want = {
                "tenant": (tenant.name, tenant.billing_email, "active"),
                "members": tenant.members,
                "keys": tenant.keys,
                "audit": tenant.audit_count,
                "idempotency": tenant.idempotency,
            }
            for part in want:
                if got[part] != want[part]:
                    self.leak(f"tenant {tenant.index} {part} stored {got[part]!r}, model {want[part]!r}")
            assert got == want, f"op {self.operations} {self.where}: tenant {tenant.index} diverged; leaks {self.leaks}"

    async def full_check(self) -> None:
        """Storage equals the model, and every stored row id is known to belong to its own tenant."""
        await self.compare_with_storage()
        by_id = {tenant.id: tenant for tenant in self.tenants}
        for table in ("memberships", "audit_events", "idempotency_keys", "api_keys"):
            for row in await self.owner.fetch(f"select id, tenant_id from {table}"):  # noqa: S608
                self.register(by_id[row["tenant_id"]], row["id"])

    async def no_context_check(self) -> None:
        """No tenant row is visible without a context, on the one pooled connection."""
        rows = await fetch(self.no_context_sql)
        self.pids.add(rows[0]["pid"])
        if rows[0]["n"] != 0:
            self.leak(f"{rows[0]['n']} tenant rows visible with no context")

    # -- HTTP -------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        acting: TenantModel,
        who: Who,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = dict(who.headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = await self.client.request(method, path, headers=headers, json=body, params=params)
        self.api_calls += 1
        if response.content:
            self.scan(response.json(), acting, echo=tokens_in([path, body]))
        return response

    def expect(
        self,
        response: httpx.Response,
        acting: TenantModel,
        target: TenantModel,
        who: Who,
        allowed: frozenset[str],
        ok: int,
    ) -> bool:
        """True when the operation should have succeeded (and did); a cross-tenant success is a leak."""
        status = response.status_code
        if target is not acting:
            self.cross_attempts += 1
            if 200 <= status < 300:
                self.leak(f"cross-tenant attempt by tenant {acting.index} on {target.index} answered {status}")
            else:
                assert status == 404, f"{self.where}: {status} {response.text}"
            return False
        if who.kind not in allowed:
            assert status == 403, f"{self.where}: {who.kind} got {status} {response.text}"
            return False
        assert status == ok, f"{self.where}: {status} {response.text}"
        return True

    async def pages(
        self, path: str, acting: TenantModel, who: Who, limit: int | None
    ) -> tuple[httpx.Response, list[dict[str, Any]]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": limit} if limit else {}
        while True:
            response = await self.request("GET", path, acting, who, params=params)
            if response.status_code != 200:
                return response, items
            page = response.json()
            items.extend(page["items"])
            if page["next_cursor"] is None:
                return response, items
            params = {**params, "cursor": page["next_cursor"]}

    async def replay(
        self, method: str, path: str, acting: TenantModel, who: Who, body: Any, key: str, first: httpx.Response
    ) -> None:
        again = await self.request(method, path, acting, who, body=body, idempotency_key=key)
        assert again.status_code == first.status_code, again.text
        assert again.headers.get("idempotent-replayed") == "true"
        # A replay leaves out secrets shown once (an API key's `secret`); everything else is identical.
        assert again.json() == {k: v for k, v in first.json().items() if k != "secret"}

    # -- API operations ---------------------------------------------------------------------------

    async def api_list_tenants(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        response, items = await self.pages("/v1/tenants", a, who, rng.choice([None, 1, 100]))
        assert response.status_code == 200, response.text
        assert [item["id"] for item in items] == [str(a.id)], items
        return False

    async def api_get_tenant(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        response = await self.request("GET", f"/v1/tenants/{target.id}", a, who)
        if self.expect(response, a, target, who, READERS, 200):
            got = response.json()
            assert (got["id"], got["slug"], got["name"], got["billing_email"]) == (
                str(a.id),
                a.slug,
                a.name,
                a.billing_email,
            )
        return False

    async def api_patch_tenant(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        if rng.random() < 0.5:
            body: dict[str, Any] = {"name": self.fresh_name(a)}
        else:
            body = {"billing_email": self.fresh(a, "billing") if rng.random() < 0.8 else None}
        response = await self.request("PATCH", f"/v1/tenants/{target.id}", a, who, body=body)
        if self.expect(response, a, target, who, MANAGERS, 200):
            a.name = body.get("name", a.name)
            a.billing_email = body["billing_email"] if "billing_email" in body else a.billing_email
            a.audit_count += 1
            assert response.json()["name"] == a.name
        return target is not a or who.kind == "member"

    async def api_list_members(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        response, items = await self.pages(f"/v1/tenants/{target.id}/members", a, who, rng.choice([None, 7, 100]))
        if self.expect(response, a, target, who, READERS, 200):
            assert all(item["tenant_id"] == str(a.id) for item in items)
            got = {uuid.UUID(item["user_id"]): (item["email"], item["role"]) for item in items}
            assert got == a.members
        return False

    async def api_get_member(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        user_id = rng.choice(list((a if rng.random() < 0.5 else b).members))
        response = await self.request("GET", f"/v1/tenants/{target.id}/members/{user_id}", a, who)
        if target is a and user_id not in a.members:
            self.cross_attempts += 1
            if response.status_code != 404:
                self.leak(f"tenant {a.index} read member {user_id} of another tenant: {response.status_code}")
        elif self.expect(response, a, target, who, READERS, 200):
            got = response.json()
            assert (got["email"], got["role"]) == a.members[user_id]
        return False

    async def api_add_member(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        existing = None
        draw = rng.random()
        if target is a and draw < 0.15:
            existing = rng.choice(list(a.members))
            email = a.members[existing][0]
        elif target is a and draw < 0.35 and a.former:
            email = a.former[rng.choice(list(a.former))]
        else:
            email = self.fresh(a, "member")
        body = {"email": email, "role": rng.choice(ROLES)}
        key = f"add-{next(self.counter)}" if rng.random() < 0.3 else None
        path = f"/v1/tenants/{target.id}/members"
        response = await self.request("POST", path, a, who, body=body, idempotency_key=key)
        if existing is not None and target is a and who.kind in MANAGERS:
            assert response.status_code == 409, response.text
        elif self.expect(response, a, target, who, MANAGERS, 201):
            got = response.json()
            user_id = uuid.UUID(got["user_id"])
            assert got["tenant_id"] == str(a.id) and got["email"] == email
            self.register(a, user_id)
            a.members[user_id] = (email, body["role"])
            a.former.pop(user_id, None)
            a.audit_count += 1
            if key is not None:
                a.idempotency += 1
                if rng.random() < 0.5:
                    await self.replay("POST", path, a, who, body, key, response)
        return target is not a

    async def api_patch_member(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        own = a.added_members()
        foreign = target is not a or not own or rng.random() < 0.3
        user_id = rng.choice(list(b.members)) if foreign else rng.choice(own)
        role = rng.choice(ROLES)
        response = await self.request(
            "PATCH", f"/v1/tenants/{target.id}/members/{user_id}", a, who, body={"role": role}
        )
        if target is a and foreign:
            self.cross_attempts += 1
            expected = 404 if who.kind in MANAGERS else 403
            if response.status_code != expected:
                self.leak(f"tenant {a.index} changed member {user_id} of tenant {b.index}: {response.status_code}")
        elif self.expect(response, a, target, who, MANAGERS, 200):
            if a.members[user_id][1] != role:
                a.audit_count += 1
            a.members[user_id] = (a.members[user_id][0], role)
            assert response.json()["role"] == role
        return foreign or who.kind == "member"

    async def api_remove_member(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        own = a.added_members() + list(a.former)
        foreign = target is not a or not own or rng.random() < 0.3
        user_id = rng.choice(list(b.members)) if foreign else rng.choice(own)
        response = await self.request("DELETE", f"/v1/tenants/{target.id}/members/{user_id}", a, who)
        if target is a and foreign:
            # Removal is idempotent: someone who is not a member here is "already removed" (204).
            self.cross_attempts += 1
            expected = {204, 404} if who.kind in MANAGERS else {403}
            assert response.status_code in expected, response.text
        elif self.expect(response, a, target, who, MANAGERS, 204) and user_id in a.members:
            a.former[user_id] = a.members.pop(user_id)[0]
            a.audit_count += 1
        return foreign or who.kind == "member"

    async def api_create_key(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        body = {"name": f"key {next(self.counter)} of {a.index}", "role": rng.choice(ROLES)}
        key = f"key-{next(self.counter)}" if rng.random() < 0.3 else None
        path = f"/v1/tenants/{target.id}/api-keys"
        response = await self.request("POST", path, a, who, body=body, idempotency_key=key)
        if self.expect(response, a, target, who, MANAGERS, 201):
            got = response.json()
            key_id = uuid.UUID(got["id"])
            assert got["tenant_id"] == str(a.id) and got["secret"].startswith(f"cpk_{a.id.hex}_{key_id.hex}_")
            self.register(a, key_id)
            a.keys[key_id] = False
            a.audit_count += 1
            if key is not None:
                a.idempotency += 1
                if rng.random() < 0.5:
                    await self.replay("POST", path, a, who, body, key, response)
        return target is not a or who.kind == "member"

    async def api_list_keys(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        response, items = await self.pages(f"/v1/tenants/{target.id}/api-keys", a, who, rng.choice([None, 9, 100]))
        if self.expect(response, a, target, who, MANAGERS, 200):
            assert all(item["tenant_id"] == str(a.id) and "secret" not in item for item in items)
            assert {uuid.UUID(item["id"]): item["revoked_at"] is not None for item in items} == a.keys
        return False

    async def api_revoke_key(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        spare = a.spare_keys()
        foreign = target is not a or not spare or rng.random() < 0.3
        key_id = rng.choice(list(b.keys)) if foreign else rng.choice(spare)
        response = await self.request("DELETE", f"/v1/tenants/{target.id}/api-keys/{key_id}", a, who)
        if target is a and foreign:
            self.cross_attempts += 1
            expected = 404 if who.kind in MANAGERS else 403
            if response.status_code != expected:
                self.leak(f"tenant {a.index} revoked key {key_id} of tenant {b.index}: {response.status_code}")
        elif self.expect(response, a, target, who, MANAGERS, 204):
            if not a.keys[key_id]:
                a.audit_count += 1
            a.keys[key_id] = True
        return foreign or who.kind == "member"

    def take_audit_page(self, a: TenantModel, items: list[dict[str, Any]]) -> None:
        for item in items:
            if str(item["tenant_id"]) != str(a.id):
                self.leak(f"audit event {item['id']} of tenant {item['tenant_id']} listed for tenant {a.index}")
            self.register(a, uuid.UUID(str(item["id"])))
        if items:
            last = items[-1]
            created = last["created_at"]
            created = datetime.fromisoformat(created) if isinstance(created, str) else created
            a.audit_after = (created, uuid.UUID(str(last["id"])))
        a.audit_seen += len(items)

    async def api_list_audit(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        target = rng.choice([a, b])
        while True:
            params: dict[str, Any] = {"limit": 100}
            if target is a and a.audit_after is not None:
                params["cursor"] = encode_cursor(*a.audit_after)
            response = await self.request("GET", f"/v1/tenants/{target.id}/audit-events", a, who, params=params)
            if not self.expect(response, a, target, who, MANAGERS, 200):
                return False
            page = response.json()
            self.take_audit_page(a, page["items"])
            if page["next_cursor"] is None:
                break
        assert a.audit_seen == a.audit_count, (a.audit_seen, a.audit_count)
        return False

    async def api_forged_key(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        """A's key id and secret presented as B's, or B's key id with A's secret: refused before any tenant."""
        _, _, key_hex, secret = a.key_text.split("_", 3)
        b_key = rng.choice(list(b.keys))
        forged = rng.choice([f"cpk_{b.id.hex}_{key_hex}_{secret}", f"cpk_{a.id.hex}_{b_key.hex}_{secret}"])
        target = rng.choice([a, b])
        forger = Who("key", {"Authorization": f"Bearer {forged}"}, who.principal)
        response = await self.request("GET", f"/v1/tenants/{target.id}/members", a, forger)
        self.cross_attempts += 1
        if response.status_code != 401:
            self.leak(f"forged API key answered {response.status_code}")
        return False

    # -- service-layer and SQL operations -------------------------------------------------------------

    async def svc_list_tenants(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        actor = a.key.principal if who.kind == "key" else who.principal
        rows = (await service.list_tenants(actor, PageRequest(limit=100))).items
        self.service_calls += 1
        self.scan(rows, a)
        assert [row.id for row in rows] == [a.id]
        return False

    async def svc_list_own(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        page = PageRequest(limit=rng.choice([5, 100]))
        listers: list[Callable[[uuid.UUID, PageRequest], Awaitable[Page[Any]]]] = [
            service.list_members,
            service.list_api_keys,
        ]
        lister = rng.choice(listers)
        rows: list[Any] = []
        while True:
            listed = await lister(a.id, page)
            batch, cursor = listed.items, listed.next_cursor
            self.service_calls += 1
            self.scan(batch, a)
            rows.extend(batch)
            if cursor is None:
                break
            page = PageRequest.parse(page.limit, cursor)
        assert all(row.tenant_id == a.id for row in rows)
        self.register(a, *(row.id for row in rows))
        if lister is service.list_members:
            assert {row.user_id: (row.email, row.role) for row in rows} == a.members
        else:
            assert {row.id: row.revoked_at is not None for row in rows} == a.keys
        return False

    async def svc_list_audit(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        while True:
            events = await service.list_audit_events(a.id, PageRequest(limit=100, after=a.audit_after))
            rows, cursor = [dataclasses.asdict(event) for event in events.items], events.next_cursor
            self.service_calls += 1
            self.scan(rows, a)
            self.take_audit_page(a, rows)
            if cursor is None:
                break
        assert a.audit_seen == a.audit_count, (a.audit_seen, a.audit_count)
        return False

    async def svc_add_member(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        actor = a.key.principal if who.kind == "key" else a.admin.principal
        email = self.fresh(a, "svc-member")
        role = rng.choice(ROLES)
        row = await service.add_member(actor, a.id, email, role)
        self.service_calls += 1
        self.scan(row, a)
        assert row.tenant_id == a.id and row.email == email
        self.register(a, row.user_id, row.id)
        a.members[row.user_id] = (email, role)
        a.audit_count += 1
        return False

    async def svc_update_tenant(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        actor = a.key.principal if who.kind == "key" else a.admin.principal
        changes: service.TenantChanges = {"billing_email": self.fresh(a, "svc-billing")}
        row = await service.update_tenant(actor, a.id, changes)
        self.service_calls += 1
        self.scan(row, a)
        assert row.id == a.id and row.billing_email == changes["billing_email"]
        a.billing_email = changes["billing_email"]
        a.audit_count += 1
        return False

    async def svc_foreign_by_id(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        """Service calls for tenant A, as A, with B's ids."""
        actor = a.key.principal if who.kind == "key" else a.admin.principal
        user_id = rng.choice(list(b.members))
        key_id = rng.choice(list(b.keys))
        choice = rng.randrange(4)
        self.cross_attempts += 1
        self.service_calls += 1
        try:
            if choice == 0:
                self.leak(f"get_member found {await service.get_member(a.id, user_id)}")
            elif choice == 1:
                changed = await service.change_member_role(actor, a.id, user_id, "tenant_admin")
                self.leak(f"change_member_role changed {changed}")
            elif choice == 2:
                await service.revoke_api_key(actor, a.id, key_id)
                self.leak(f"revoke_api_key accepted key {key_id} of tenant {b.index}")
            else:
                assert await service.remove_member(actor, a.id, user_id) is None  # idempotent, and a no-op here
        except (MemberNotFound, ApiKeyNotFound):
            pass
        return True

    async def tx_read_foreign(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        """Raw repository reads in tenant_tx(A) of B's rows, by id and by tenant."""
        user_id = rng.choice(list(b.members))
        key_id = rng.choice(list(b.keys))
        page = PageRequest(limit=100)
        self.cross_attempts += 1
        self.service_calls += 1
        async with tenant_tx(a.id):
            results = [
                await repository.get_tenant(b.id),
                await repository.get_membership(b.id, user_id),
                await repository.get_api_key(key_id),
                await repository.list_memberships(b.id, page),
                await repository.list_api_keys(b.id, page),
                await repository.list_audit_events(b.id, page),
                await fetch("select * from memberships where user_id = {}", user_id),
                await fetch("select * from idempotency_keys where tenant_id = {}", b.id),
            ]
        for result in results:
            if result:
                self.leak(f"tenant_tx({a.index}) read {result!r:.200}")
        return False

    async def tx_scan_own(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        """Everything a tenant context sees, with no filter at all, is its own and all of its own."""
        self.service_calls += 1
        seen: dict[str, int] = {}
        async with tenant_tx(a.id):
            for name, column in self.tables:
                rows = await fetch(f'select "{column}" as t, count(*) as n from "{name}" group by 1')  # noqa: S608
                for row in rows:
                    if row["t"] != a.id:
                        self.leak(f"tenant_tx({a.index}) sees {row['n']} rows of {row['t']} in {name}")
                seen[name] = sum(row["n"] for row in rows)
        expected = {
            "tenants": 1,
            "memberships": len(a.members),
            "api_keys": len(a.keys),
            "audit_events": a.audit_count,
            "idempotency_keys": a.idempotency,
        }
        assert {name: seen[name] for name in expected} == expected
        return False

    async def tx_write_foreign(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        """Raw writes in tenant_tx(A) at B's rows: they find nothing to change, or WITH CHECK refuses them."""
        user_id = rng.choice(list(b.members))
        key_id = rng.choice(list(b.keys))
        own_key = rng.choice(list(a.keys))
        attempts = [
            ("update memberships set role = 'tenant_admin' where user_id = {} returning id", (user_id,)),
            ("update tenants set name = 'pwned' where id = {} returning id", (b.id,)),
            ("update api_keys set revoked_at = now() where id = {} returning id", (key_id,)),
            ("delete from memberships where tenant_id = {} returning id", (b.id,)),
            ("update api_keys set tenant_id = {} where id = {} returning id", (b.id, own_key)),
            (
                "insert into memberships (id, tenant_id, user_id, role) "
                "values ({}, {}, {}, 'tenant_admin') returning id",
                (uuid.uuid4(), b.id, a.admin.principal.id),
            ),
            (
                "insert into audit_events (id, tenant_id, actor_type, action, target_type, target_id) "
                "values ({}, {}, 'system', 'forged', 'tenant', 'x') returning id",
                (uuid.uuid4(), b.id),
            ),
        ]
        sql, args = rng.choice(attempts)
        self.cross_attempts += 1
        self.service_calls += 1
        try:
            async with tenant_tx(a.id):
                rows = await fetch(sql, *args)
        except asyncpg.InsufficientPrivilegeError:
            rows = []
        if rows:
            self.leak(f"tenant_tx({a.index}) wrote {rows} with {sql}")
        return True

    async def user_tx_scan(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        """A user context shows the user's own tenants and memberships, and no other tenant rows."""
        user_id = rng.choice(list(a.principals))
        self.service_calls += 1
        async with user_tx(user_id):
            tenants = await fetch("select id from tenants")
            memberships = await fetch("select tenant_id, user_id from memberships")
            others = [
                await fetch(f'select * from "{name}"')  # noqa: S608 (catalogue table names)
                for name, _ in self.tables
                if name not in ("tenants", "memberships")
            ]
        self.scan([tenants, memberships, others], a)
        assert tenants == [{"id": a.id}]
        assert memberships == [{"tenant_id": a.id, "user_id": user_id}]
        if any(others):
            self.leak(f"user_tx sees {others!r:.200}")
        return False

    async def no_context_select(self, rng: random.Random, a: TenantModel, b: TenantModel, who: Who) -> bool:
        name, _ = rng.choice(self.tables)
        self.service_calls += 1
        if rng.random() < 0.5:
            async with anonymous_tx():
                rows = await fetch(f'select * from "{name}"')  # noqa: S608
        else:
            rows = await fetch(f'select * from "{name}"')  # noqa: S608
        if rows:
            self.leak(f"no context: {len(rows)} rows of {name}")
        return False

    # -- the driver -------------------------------------------------------------------------------

    WEIGHTS = {
        "api_list_tenants": 3,
        "api_get_tenant": 5,
        "api_patch_tenant": 5,
        "api_list_members": 4,
        "api_get_member": 6,
        "api_add_member": 6,
        "api_patch_member": 5,
        "api_remove_member": 4,
        "api_create_key": 4,
        "api_list_keys": 3,
        "api_revoke_key": 4,
        "api_list_audit": 3,
        "api_forged_key": 2,
        "svc_list_tenants": 3,
        "svc_list_own": 4,
        "svc_list_audit": 2,
        "svc_add_member": 2,
        "svc_update_tenant": 2,
        "svc_foreign_by_id": 7,
        "tx_read_foreign": 7,
        "tx_scan_own": 4,
        "tx_write_foreign": 7,
        "user_tx_scan": 3,
        "no_context_select": 4,
    }

    async def run(self, rng: random.Random, operations: int) -> None:
        names = list(self.WEIGHTS)
        weights = [self.WEIGHTS[name] for name in names]
        for _ in range(operations):
            name = rng.choices(names, weights)[0]
            a, b = rng.sample(self.tenants, 2)
            who = rng.choices([a.admin, a.member, a.key], [4, 2, 4])[0]
            self.where = f"{name} by {who.kind} of tenant {a.index} (other {b.index})"
            wrote_across = await getattr(self, name)(rng, a, b, who)
            self.operations += 1
            self.kinds[name] += 1
            await self.no_context_check()
            if wrote_across:
                await self.compare_with_storage()
            if self.operations % FULL_CHECK_EVERY == 0:
                await self.full_check()
        await self.full_check()


@pytest.fixture(scope="module")
async def world(
    client: httpx.AsyncClient, settings: Settings, stack_env: dict[str, str], request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    """An app of its own whose pool holds ONE connection; the session's pool is restored afterwards."""
    await db.stop_pool()  # the session app's pool; ENGINE is global
    one = dataclasses.replace(settings, db_pool_min_size=1, db_pool_max_size=1)
    app = create_app(one)
    owner = await connect_as_inspector(stack_env)
    started = time.perf_counter()
    try:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://isolation") as http,
        ):
            assert db.ENGINE.pool is not None and db.ENGINE.pool.get_max_size() == 1
            tables = await fetch(
                "select c.relname, case when c.relname = 'tenants' then 'id' else 'tenant_id' end as tenant_column "
                "from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') "
                "and (c.relname = 'tenants' or exists (select 1 from pg_attribute a where a.attrelid = c.oid "
                "and a.attname = 'tenant_id' and not a.attisdropped)) order by 1"
            )
            world = World(http, app, owner, tables)
            await world.build()
            yield world
    finally:
        await owner.close()
        if db.ENGINE.pool is not None:
            await db.stop_pool()
        await db.start_pool(
            settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
        )
    line = (
        f"isolation: {world.operations} operations across {len(world.tenants)} tenants, {len(world.leaks)} leaks "
        f"({world.api_calls} API requests, {world.service_calls} service/SQL calls, {world.cross_attempts} "
        f"cross-tenant attempts; pool of 1 connection, {len(world.pids)} successive backends as asyncpg renews a "
        f"connection every 50,000 queries; {time.perf_counter() - started:.0f}s)"
    )
    request.config.stash.setdefault(COUNTS, []).append(line)
    assert world.operations >= OPERATIONS
    assert world.leaks == []


@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # a seed does not shrink usefully; the failing one is reported
    suppress_health_check=list(HealthCheck),
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
async def test_no_tenant_sees_or_changes_another(world: World, seed: int) -> None:
    before = world.operations
    per_example = -(-OPERATIONS // EXAMPLES)
    await world.run(random.Random(seed), per_example)
    print(
        f"isolation: seed {seed}: {world.operations - before} operations, {world.operations} in all across "
        f"{len(world.tenants)} tenants, {len(world.leaks)} leaks; by kind {dict(sorted(world.kinds.items()))}"
    )
    assert world.leaks == [], "\n".join(world.leaks[:20])
