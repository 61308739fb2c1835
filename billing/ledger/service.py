"""Checking the ledger against itself and against the documents it records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from billing.disputes import repository as disputes_repository
from billing.escrow import repository as escrow_repository
from billing.ledger import repository
from billing.wallets import repository as wallets_repository
from controlplane.core.db import SystemReason, system_tx


@dataclass(frozen=True, slots=True)
class UnbalancedJournalFound:
    """A journal whose postings in `currency` do not sum to zero: `total` minor units off."""

    journal_id: uuid.UUID
    currency: str
    total: int


@dataclass(frozen=True, slots=True)
class ReceivableDifference:
    """A tenant whose receivable (`ledger`) disagrees with what its documents say it owes (`documents`)."""

    tenant_id: uuid.UUID
    currency: str
    ledger: int
    documents: int


@dataclass(frozen=True, slots=True)
class CreditLiabilityDifference:
    """A tenant whose credit liability (`ledger`, what the platform owes in purchased credit) disagrees with
    its purchased lots' remaining plus its unpaid credit purchases (`documents`)."""

    tenant_id: uuid.UUID
    currency: str
    ledger: int
    documents: int


@dataclass(frozen=True, slots=True)
class InvoiceWithoutJournal:
    """An issued invoice that no journal books."""

    id: uuid.UUID
    tenant_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class EscrowDifference:
    """An escrow whose held account (`ledger`) disagrees with funded - released - refunded (`documents`)."""

    escrow_id: uuid.UUID
    ledger: int
    documents: int


@dataclass(frozen=True, slots=True)
class StrayPayeePosting:
    """A posting into a payee's payable balance from a journal that is neither a release nor a payout."""

    id: uuid.UUID
    source_type: str


@dataclass(frozen=True, slots=True)
class DisputeDifference:
    """A dispute whose journals disagree with its row: in `journal` (`dispute_opened`, `dispute_closed`, or
    `other:<source>` for a dispute account posted by anything else), `account` holds `ledger` where the
    dispute's amount, fee and status say `expected` (in `currency`)."""

    dispute_id: uuid.UUID
    journal: str
    account: str
    currency: str
    ledger: int
    expected: int


@dataclass(frozen=True, slots=True)
class LedgerReport:
    """How many journals and postings were checked, and every difference found (none: `ok`)."""

    journals: int
    postings: int
    unbalanced_journals: list[UnbalancedJournalFound]
    receivable_differences: list[ReceivableDifference]
    invoices_without_journal: list[InvoiceWithoutJournal]
    escrow_differences: list[EscrowDifference]
    payee_postings_without_release: list[StrayPayeePosting]
    credit_liability_differences: list[CreditLiabilityDifference] = field(default_factory=list)
    dispute_differences: list[DisputeDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.unbalanced_journals
            or self.receivable_differences
            or self.invoices_without_journal
            or self.escrow_differences
            or self.payee_postings_without_release
            or self.credit_liability_differences
            or self.dispute_differences
        )


async def verify_ledger() -> LedgerReport:
    """Every journal sums to zero per currency; every issued invoice is booked; each tenant's receivable
    equals what its invoices say it owes (totals less credit notes, credits applied and payments, plus
    refunds); each tenant's credit liability equals its purchased lots' remaining (unexpired: the expiry run
    empties an expired lot) plus its unpaid credit purchases; each escrow holds funded - released - refunded;
    nothing reaches a payee except a milestone release; each dispute has exactly its opening journal while
    open and one closing journal once decided, each with the amounts its row and status say, and nothing else
    posts to a dispute account."""
    async with system_tx(SystemReason.PLATFORM_JOB):
        counts = await repository.counts()
        unbalanced = await repository.unbalanced_journals()
        receivables = await repository.receivable_differences()
        unbooked = await repository.issued_without_journal()
        escrows = await escrow_repository.held_differences()
        stray = await escrow_repository.payee_postings_without_release()
        liabilities = await wallets_repository.liability_differences()
        disputed = await disputes_repository.ledger_differences()
    # The sums come back as numeric; every one is a whole number of minor units.
    return LedgerReport(
        journals=counts["journals"],
        postings=counts["postings"],
        unbalanced_journals=[
            UnbalancedJournalFound(row["journal_id"], row["currency"], int(row["total"])) for row in unbalanced
        ],
        receivable_differences=[
            ReceivableDifference(row["tenant_id"], row["currency"], int(row["ledger"]), int(row["documents"]))
            for row in receivables
        ],
        invoices_without_journal=[InvoiceWithoutJournal(row["id"], row["tenant_id"]) for row in unbooked],
        escrow_differences=[
            EscrowDifference(row["escrow_id"], int(row["ledger"]), int(row["documents"])) for row in escrows
        ],
        payee_postings_without_release=[StrayPayeePosting(row["id"], row["source_type"]) for row in stray],
        credit_liability_differences=[
            CreditLiabilityDifference(row["tenant_id"], row["currency"], int(row["ledger"]), int(row["documents"]))
            for row in liabilities
        ],
        dispute_differences=[
            DisputeDifference(
                row["dispute_id"],
                row["journal"],
                row["account"],
                row["currency"],
                int(row["ledger"]),
                int(row["expected"]),
            )
            for row in disputed
        ],
    )
