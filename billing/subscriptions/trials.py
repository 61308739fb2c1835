"""Trials: a tenant gets a plan's trial (by plan code, whatever the version) once and each plugin's trial once;
staff may grant one more (audited). The partial unique indexes of `trials` decide, so racing calls get one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from billing import hooks
from billing.catalogue import repository as catalogue_repository
from billing.errors import InvalidTrialGrant, PlanNotFound
from billing.subscriptions import trials_repository
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from tenants import audit
from tenants.roles import Permission
from tenants.service import check_access

TrialKind = Literal["plan", "plugin"]


async def claim_trial(tenant_id: uuid.UUID, kind: TrialKind, subject: str, used_by: uuid.UUID) -> bool:
    """Inside the caller's tenant transaction: whether `used_by` (a subscription or plugin install about to be
    written) may start with a trial of `subject` (a plan's code, or a plugin's id), recording it as used.

    The tenant's own trial first, then an open staff grant. A concurrent claim waits for the other's commit;
    if the caller's transaction rolls back, so does the claim."""
    now = datetime.now(UTC)
    if await trials_repository.use_own_trial(tenant_id, kind, subject, used_by, now):
        return True
    return await trials_repository.use_granted_trial(tenant_id, kind, subject, used_by, now)


@dataclass(frozen=True, slots=True)
class TrialGrant:
    id: uuid.UUID
    tenant_id: uuid.UUID
    plan_code: str | None
    plugin_id: uuid.UUID | None
    granted_by: uuid.UUID
    granted_at: datetime
    used_at: datetime | None


def _grant_of(row: dict[str, Any]) -> TrialGrant:
    plugin = row["kind"] == "plugin"
    return TrialGrant(
        id=row["id"],
        tenant_id=row["tenant_id"],
        plan_code=None if plugin else row["subject"],
        plugin_id=uuid.UUID(row["subject"]) if plugin else None,
        granted_by=row["granted_by"],
        granted_at=row["granted_at"],
        used_at=row["used_at"],
    )


async def grant_trial(
    actor: Principal, tenant_id: uuid.UUID, plan_code: str | None, plugin_id: uuid.UUID | None
) -> tuple[TrialGrant, bool]:
    """Staff: allow the tenant one more trial of a plan (by code) or a plugin. (grant, created): while a grant
    is unused, granting again answers with it, so a retry never allows two."""
    if (plan_code is None) == (plugin_id is None):
        raise InvalidTrialGrant("name exactly one of plan_code and plugin_id")
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_BILLING, method="POST")
        if plan_code is not None:
            if await catalogue_repository.latest_plan(plan_code) is None:
                raise PlanNotFound(f"no plan has the code {plan_code!r}")
            kind: TrialKind = "plan"
            subject = plan_code
        else:
            assert plugin_id is not None
            if not await hooks.check_plugin(plugin_id):
                raise InvalidTrialGrant("plugin trials cannot be granted here")
            kind, subject = "plugin", str(plugin_id)
        while (
            row := await trials_repository.insert_grant(tenant_id, kind, subject, actor.id, datetime.now(UTC))
        ) is None:
            existing = await trials_repository.open_grant(tenant_id, kind, subject)
            if existing is not None:
                return _grant_of(existing), False
            # Used by a concurrent claim since the insert was refused: a new grant may be written now.
        await audit.record(
            actor,
            tenant_id,
            "trial.granted",
            "trial",
            row["id"],
            after={"kind": kind, "subject": subject},
        )
        return _grant_of(row), True
