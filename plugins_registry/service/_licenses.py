"""Licenses: read, refresh, renew on payment, convert trials and expire what was not paid for."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from billing import service as billing
from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.errors import InvalidInput
from controlplane.core.pagination import MAX_PAGE_SIZE, PageRequest, encode_cursor, page_of
from controlplane.core.views import Page, view_of
from plugins_registry import licensing, repository
from plugins_registry.errors import LicenseNotActive, LicenseNotFound
from plugins_registry.pricing import parse_pricing
from plugins_registry.service._events import record
from plugins_registry.service._history import record_step, trial_end
from plugins_registry.service._signing import Licensing, fresh, resign
from plugins_registry.service._views import LicenseView, license_view
from tenants.roles import Permission
from tenants.service import tenant_for_resource

BATCH = 500
# A license the expiry job failed on is tried again after this pause, not on every run.
EXPIRY_RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    """One run of the expiry job: trials converted to paid licenses, and licenses expired."""

    converted: int = 0
    expired: int = 0


@dataclass(frozen=True, slots=True)
class RevokedLicenseView:
    id: uuid.UUID
    revoked_at: datetime
    expires_at: datetime | None


async def tenant_of_license(
    principal: Principal, license_id: uuid.UUID, permission: Permission, method: str
) -> uuid.UUID:
    """The license's tenant once `principal` is authorized there; a foreign license looks like a missing one."""
    return await tenant_for_resource(
        principal, lambda: repository.license_tenant(license_id), LicenseNotFound, permission, method
    )


async def get_license(actor: Principal, issuer: Licensing, license_id: uuid.UUID) -> LicenseView:
    tenant_id = await tenant_of_license(actor, license_id, Permission.READ_PLUGINS, "GET")
    async with tenant_tx(tenant_id):
        row = await repository.get_license(license_id, lock=True)
        if row is None:
            raise LicenseNotFound()
        return license_view(await fresh(issuer.signer, row))


async def list_licenses(
    issuer: Licensing, tenant_id: uuid.UUID, page: PageRequest, plugin: str | None = None
) -> Page[LicenseView]:
    """The tenant's licenses, oldest first (revoked and expired ones too); only the plugin's when `plugin` (a
    slug) is given. The caller has checked READ_PLUGINS in the tenant, as for every tenant list."""
    async with tenant_tx(tenant_id):
        rows, cursor = page_of(await repository.list_licenses(tenant_id, page, plugin), page)
        return Page([license_view(await fresh(issuer.signer, row)) for row in rows], cursor)


async def latest_licenses(issuer: Licensing, tenant_id: uuid.UUID, plugin: str, limit: int) -> list[LicenseView]:
    """The tenant's newest `limit` licenses of one plugin (a slug), newest first, revoked and expired ones too.
    The caller has checked READ_PLUGINS in the tenant, as for `list_licenses`."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    async with tenant_tx(tenant_id):
        rows = await repository.latest_licenses(tenant_id, plugin, limit)
        return [license_view(await fresh(issuer.signer, row)) for row in rows]


async def _paid_through(tenant_id: uuid.UUID, grace: timedelta) -> datetime | None:
    """How long the tenant's live subscription pays for a paid plugin's license, if it has one."""
    subscription = await billing.live_subscription(tenant_id)
    if subscription is None:
        return None
    return licensing.paid_through(subscription.current_period_end, grace)


async def refresh(actor: Principal, issuer: Licensing, license_id: uuid.UUID) -> LicenseView:
    """A new token for the license as it stands (seats, version range, and a paid license's end renewed
    from the subscription). A revoked or expired license is not refreshed."""
    tenant_id = await tenant_of_license(actor, license_id, Permission.MANAGE_PLUGINS, "POST")
    async with tenant_tx(tenant_id):
        row = await repository.get_license(license_id, lock=True)
        if row is None:
            raise LicenseNotFound()
        now = datetime.now(UTC)
        if row["status"] != "active" or (row["expires_at"] is not None and row["expires_at"] <= now):
            raise LicenseNotActive(f"the license is {row['status']}; install the plugin again or settle the bill")
        if not row["trial"] and row["expires_at"] is not None:
            through = await _paid_through(tenant_id, timedelta(seconds=row["renewal_grace_seconds"]))
            if through is not None and through > row["expires_at"]:
                row = await repository.update_license(license_id, {"expires_at": through})
        row = await resign(issuer.signer, row)
        await record(
            actor,
            tenant_id,
            "license.refreshed",
            "license",
            license_id,
            {"slug": row["slug"], "license_id": str(license_id)},
        )
        return license_view(row)


async def renew_on_payment(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> None:
    """Billing's invoice-paid hook, inside the payment's transaction: paid licenses run to the end of the
    subscription's period (plus their grace). No OpenBao call here: tokens are re-signed on their next read."""
    for row in await repository.active_licenses(tenant_id, lock=True):
        if row["trial"] or row["expires_at"] is None:
            continue
        through = await _paid_through(tenant_id, timedelta(seconds=row["renewal_grace_seconds"]))
        if through is None or through <= row["expires_at"]:
            continue
        await repository.update_license(row["id"], {"expires_at": through, "token_stale": True})
        await record(
            None,
            tenant_id,
            "license.renewed",
            "license",
            row["id"],
            {"slug": row["slug"], "license_id": str(row["id"]), "expires_at": through, "invoice_id": str(invoice_id)},
        )


async def expire_due(now: datetime | None = None) -> ExpiryReport:
    """The beat task: each active license past its end is converted (a trial of a paid plugin whose
    tenant has a live subscription) or expired. Safe to run twice; each license in its tenant's transaction.
    A license it fails on is recorded (`job_error`, `job_failed_at`, the failures metric) and tried again
    after `EXPIRY_RETRY_AFTER`; the others go on."""
    now = now or datetime.now(UTC)
    converted = expired = 0
    seen: set[uuid.UUID] = set()
    while True:
        async with system_tx(SystemReason.PLATFORM_JOB):
            due = await repository.due_licenses(now, EXPIRY_RETRY_AFTER, BATCH)
        if all(item["id"] in seen for item in due):  # only licenses this run already failed on (unrecorded)
            return ExpiryReport(converted, expired)
        seen.update(item["id"] for item in due)
        for item in due:
            try:
                async with tenant_tx(item["tenant_id"]):
                    outcome = await _expire_one(item["tenant_id"], item["id"], now)
            except Exception as error:
                metrics.stop_batch_on_outage("expire_licenses", error)
                reason = metrics.batch_item_failed("expire_licenses", error)
                try:
                    async with tenant_tx(item["tenant_id"]):
                        await repository.record_license_job_failure(item["id"], reason, now)
                except Exception as recording:  # counted; the license is due again next run
                    metrics.stop_batch_on_outage("expire_licenses", recording)
                    metrics.batch_item_failed("expire_licenses", recording)
                continue
            if outcome == "converted":
                converted += 1
            elif outcome == "expired":
                expired += 1
        if len(due) < BATCH:
            return ExpiryReport(converted, expired)


async def _expire_one(
    tenant_id: uuid.UUID, license_id: uuid.UUID, now: datetime
) -> Literal["converted", "expired"] | None:
    row = await repository.get_license(license_id, lock=True)
    if row is None or row["status"] != "active" or row["expires_at"] is None or row["expires_at"] > now:
        return None  # handled meanwhile
    if row["trial"]:
        plugin = await repository.get_plugin(row["slug"])
        assert plugin is not None
        through = await _paid_through(tenant_id, timedelta(seconds=row["renewal_grace_seconds"]))
        if parse_pricing(plugin["pricing"]).is_paid and through is not None and through > now:
            await repository.update_license(
                license_id,
                {"trial": False, "expires_at": through, "token_stale": True, "job_error": None, "job_failed_at": None},
            )
            await record_step(row, "trial_converted", trial_end(row, now))
            await record(
                None,
                tenant_id,
                "license.converted",
                "license",
                license_id,
                {"slug": row["slug"], "license_id": str(license_id), "expires_at": through},
            )
            return "converted"
    await repository.update_license(
        license_id, {"status": "expired", "expired_at": now, "job_error": None, "job_failed_at": None}
    )
    if row["trial"]:
        await record_step(row, "trial_ended", trial_end(row, now))
    await record(
        None, tenant_id, "license.expired", "license", license_id, {"slug": row["slug"], "license_id": str(license_id)}
    )
    return "expired"


async def revocations(
    after: datetime | None, cursor: tuple[datetime, uuid.UUID] | None, limit: int
) -> Page[RevokedLicenseView]:
    """Revoked licenses whose tokens have not expired yet: what a plugin that can go online checks. Paged on
    `(revoked_at, id)`, so revocations at the same instant are never skipped at a page's edge."""
    async with system_tx(SystemReason.REVOCATION_LIST):
        rows = await repository.revoked_licenses(after, cursor, limit + 1)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["revoked_at"], page[-1]["id"]) if len(rows) > limit else None
    return Page([view_of(RevokedLicenseView, row) for row in page], next_cursor)


async def revoke_for_erased_tenant(tenant_id: uuid.UUID, now: datetime) -> None:
    """Inside the erasure's tenant transaction (a tenants hook): every active license of the tenant is
    revoked and its seats released, so no check, activation or renewal serves it again. Idempotent."""
    for license_row in await repository.active_licenses(tenant_id, lock=True):
        await repository.update_license(
            license_row["id"], {"status": "revoked", "revoked_at": now, "revoke_reason": "tenant_erased"}
        )
        await repository.release_license_activations(license_row["id"], "tenant_erased", now)
        if license_row["trial"]:
            await record_step(license_row, "trial_ended", trial_end(license_row, now))
        await record(
            None,
            tenant_id,
            "license.revoked",
            "license",
            license_row["id"],
            {"license_id": str(license_row["id"]), "reason": "tenant_erased"},
        )
