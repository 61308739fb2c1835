"""The collection run (Celery beat, hourly): first attempts on newly finalized invoices, retries on the
dunning schedule, and giving up after the last one.

Each invoice is its own unit of work: whatever fails for one (Stripe refusing its charge, Stripe unreachable,
no card, a fault of ours) is recorded on it (its attempt's state and reason, `controlplane_collection_failures_total`,
the report) and the run goes on for the others. A refused charge is a failed attempt: it is retried on the
dunning schedule like a decline, so it is never tried ahead of healthy work and never more than the schedule
allows. Invoices never tried (of tenants with a card) come first in each run, and each tenant takes at most
`repository.PER_TENANT_PER_RUN` invoices of a run, so no tenant starves the others. Refunds whose
answer was lost are sent again (same key).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from billing.errors import NoPaymentMethod, PaymentProviderUnavailable
from billing.invoices.cycle import failure_reason, retry_delay
from billing.payments import dunning, repository
from billing.payments.dunning import Action
from billing.payments.gateway import StripeGateway
from billing.payments.refunds import resend_lost_refunds
from billing.payments.service import StepTaken, collect_attempt, give_up
from billing.wallets.application import CREDIT_PURCHASE
from billing.wallets.service import abandon_declined_purchase
from controlplane.core import metrics
from controlplane.core.db import SystemReason, system_tx, tenant_tx

log = logging.getLogger("controlplane.billing")
# A refund pending longer than this lost its answer (its request, with the SDK's retries, is long over).
LOST_REFUND_AFTER = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class CollectionReport:
    """What a collection run did, invoice by invoice."""

    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    uncollectible: int = 0
    without_payment_method: int = 0
    unreachable: list[str] = field(default_factory=list)  # invoice ids whose attempt stays pending
    refused: int = 0  # of the failed: Stripe refused the charge itself (an amount, a deleted card)
    errors: list[str] = field(default_factory=list)  # invoice ids that failed unexpectedly; retried next run
    refunds_resent: int = 0  # refunds whose answer was lost, sent again with their key and settled


@dataclass
class _Tally:
    """The run's counts while it runs; `report()` is what it answers."""

    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    uncollectible: int = 0
    without_payment_method: int = 0
    unreachable: list[str] = field(default_factory=list)
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    refunds_resent: int = 0

    def report(self) -> CollectionReport:
        return CollectionReport(
            attempted=self.attempted,
            succeeded=self.succeeded,
            failed=self.failed,
            uncollectible=self.uncollectible,
            without_payment_method=self.without_payment_method,
            unreachable=list(self.unreachable),
            refused=self.refused,
            errors=list(self.errors),
            refunds_resent=self.refunds_resent,
        )


async def collect_due_invoices(
    gateway: StripeGateway, as_of: datetime, schedule: Sequence[int], limit: int = 10_000
) -> CollectionReport:
    report = _Tally()
    async with system_tx(SystemReason.PLATFORM_JOB):
        candidates = await repository.collectable_invoices(as_of, limit)
    for row in candidates:
        try:
            await _collect_one(gateway, row, as_of, schedule, report)
        except Exception as error:
            metrics.stop_batch_on_outage("collect_invoices", error)
            # A fault of ours on one invoice: recorded on it and counted; its attempt (if any) stays pending and
            # is sent again, with its own key, after a back-off.
            log.exception("collecting invoice %s failed", row["id"])
            metrics.COLLECTION_FAILURES_TOTAL.labels(reason="error").inc()
            report.errors.append(str(row["id"]))
            reason, _ = failure_reason(error)
            retry_at = as_of + retry_delay(row["collection_attempts"] + 1)
            async with tenant_tx(row["tenant_id"]):
                await repository.record_collection_failure(row["id"], reason, retry_at)
            continue
        if row["collection_attempts"]:
            async with tenant_tx(row["tenant_id"]):
                await repository.clear_collection_failure(row["id"])
    settled, failed = await resend_lost_refunds(gateway, as_of - LOST_REFUND_AFTER)
    report.refunds_resent = settled
    if failed:
        metrics.COLLECTION_FAILURES_TOTAL.labels(reason="refund").inc(failed)
    return report.report()


async def _collect_one(
    gateway: StripeGateway, row: dict, as_of: datetime, schedule: Sequence[int], report: _Tally
) -> None:
    decision = dunning.decide(
        first_failure=row["first_failure"],
        last_step=row["last_step"],
        has_pending=row["has_pending"],
        as_of=as_of,
        schedule=schedule,
    )
    if decision.action is Action.WAIT:
        return
    if decision.action is Action.GIVE_UP:
        await _give_up(row, as_of, report)
        return
    if decision.step:
        metrics.DUNNING_STEPS_TOTAL.labels(step="retry").inc()
    report.attempted += 1
    try:
        payment, refused = await collect_attempt(
            gateway, row["tenant_id"], row["id"], dunning_step=decision.step, schedule=schedule
        )
    except StepTaken:
        report.attempted -= 1  # a concurrent run made this attempt
        return
    except NoPaymentMethod:
        metrics.COLLECTION_FAILURES_TOTAL.labels(reason="no_payment_method").inc()
        report.without_payment_method += 1
        start = row["first_failure"] or row["issued_at"]
        if start is not None and dunning.past_last_date(start, as_of, schedule):
            await _give_up(row, as_of, report)
        return
    except PaymentProviderUnavailable:
        metrics.COLLECTION_FAILURES_TOTAL.labels(reason="unreachable").inc()
        report.unreachable.append(str(row["id"]))  # pending: retried next run with the same key
        return
    if payment.status == "succeeded":
        report.succeeded += 1
        return
    report.failed += 1
    report.refused += refused
    if row["kind"] == CREDIT_PURCHASE:
        # A credit purchase is never dunned: its lost attempt, resent and declined, ends it (voided).
        async with tenant_tx(row["tenant_id"]):
            await abandon_declined_purchase(None, row["tenant_id"], row["id"])
        return
    if dunning.exhausted(payment.dunning_step, schedule):
        await _give_up(row, as_of, report)


async def _give_up(row: dict, as_of: datetime, report: _Tally) -> None:
    await give_up(row["tenant_id"], row["id"], as_of)
    report.uncollectible += 1
