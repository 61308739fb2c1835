"""Checking the ledger against itself and against the documents it records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from billing import escrow_repository, ledger_repository
from controlplane.core.db import SystemReason, system_tx


@dataclass
class LedgerReport:
    journals: int = 0
    postings: int = 0
    unbalanced_journals: list[dict[str, Any]] = field(default_factory=list)
    receivable_differences: list[dict[str, Any]] = field(default_factory=list)
    invoices_without_journal: list[dict[str, Any]] = field(default_factory=list)
    escrow_differences: list[dict[str, Any]] = field(default_factory=list)
    payee_postings_without_release: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.unbalanced_journals
            or self.receivable_differences
            or self.invoices_without_journal
            or self.escrow_differences
            or self.payee_postings_without_release
        )


async def verify_ledger() -> LedgerReport:
    """Every journal sums to zero per currency; every issued invoice is booked; each tenant's receivable
    equals what its invoices say it owes (totals less credit notes and payments, plus refunds); each escrow
    holds funded - released - refunded; nothing reaches a payee except a milestone release."""
    async with system_tx(SystemReason.PLATFORM_JOB):
        counts = await ledger_repository.counts()
        return LedgerReport(
            journals=counts["journals"],
            postings=counts["postings"],
            unbalanced_journals=await ledger_repository.unbalanced_journals(),
            receivable_differences=await ledger_repository.receivable_differences(),
            invoices_without_journal=await ledger_repository.issued_without_journal(),
            escrow_differences=await escrow_repository.held_differences(),
            payee_postings_without_release=await escrow_repository.payee_postings_without_release(),
        )
