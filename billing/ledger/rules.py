"""The double-entry ledger's rules: which accounts a money movement touches, and by how much. Pure.

A journal is a list of postings (account, signed minor units, currency) that sums to zero per currency:
debits are positive, credits negative. Receivables and cash are debit-normal; revenue, tax payable and
payables credit-normal. The shell writes each journal in the same transaction as the change it records.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from billing.errors import BillingInvalid, UnbalancedJournal
from billing.money import allocate

REVENUE = "revenue"
TAX_PAYABLE = "tax_payable"
CASH = "cash:stripe"
REFUNDS = "refunds"
# Granted credit, when it pays an invoice: what the platform gave away (debit-normal).
PROMOTION_EXPENSE = "promotion_expense"
# Purchased credit that expired unused: the liability is released to revenue (breakage, credit-normal).
CREDIT_BREAKAGE = "revenue:credit_breakage"
# Stripe's fee for handling a dispute, and a lost dispute's amount: the platform's expenses (debit-normal).
DISPUTE_FEES = "dispute_fees"
DISPUTE_LOSSES = "dispute_losses"


def escrow_held(escrow_id: uuid.UUID) -> str:
    return f"escrow_held:{escrow_id}"


def payee_payable(payee_type: str, payee_id: uuid.UUID) -> str:
    return f"payee_payable:{payee_type}:{payee_id}"


def receivable(tenant_id: uuid.UUID) -> str:
    return f"receivable:tenant:{tenant_id}"


def disputes_held(tenant_id: uuid.UUID) -> str:
    """What Stripe took back from the platform's balance for the tenant's disputes still open (debit-normal: a
    claim on Stripe until the dispute is decided). Per tenant, so each tenant's open disputes reconcile."""
    return f"disputes_held:tenant:{tenant_id}"


def credit_liability(tenant_id: uuid.UUID) -> str:
    """What the platform owes a tenant in purchased credit not yet applied (credit-normal)."""
    return f"credit_liability:tenant:{tenant_id}"


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount_minor: int
    currency: str


def balanced(postings: Iterable[Posting]) -> list[Posting]:
    """The postings without zero lines, once they are known to sum to zero in every currency."""
    sums: dict[str, int] = defaultdict(int)
    kept = []
    for posting in postings:
        sums[posting.currency] += posting.amount_minor
        if posting.amount_minor:
            kept.append(posting)
    unbalanced = {currency: total for currency, total in sums.items() if total}
    if unbalanced:
        raise UnbalancedJournal(f"postings leave {unbalanced} unbalanced")
    return kept


def invoice_issued(tenant_id: uuid.UUID, currency: str, subtotal: int, tax: int) -> list[Posting]:
    """The tenant owes the total; revenue and tax payable are earned."""
    return balanced(
        [
            Posting(receivable(tenant_id), subtotal + tax, currency),
            Posting(REVENUE, -subtotal, currency),
            Posting(TAX_PAYABLE, -tax, currency),
        ]
    )


def credit_parts(
    amount: int, subtotal: int, taxes: Sequence[int], already_reduced: int = 0
) -> tuple[int, tuple[int, ...]]:
    """How much of a credit note (`amount`, tax included) is revenue and how much each tax rate's, in the
    invoice's proportion [subtotal, tax_1, ..., tax_n]. The split is of everything credited so far, less the
    split of what was credited before, so several credit notes never take back more revenue or more of any
    rate than the invoice booked, and crediting the whole total takes back exactly each amount."""
    if subtotal < 0 or any(tax < 0 for tax in taxes) or subtotal + sum(taxes, 0) <= 0:
        raise BillingInvalid("only an invoice with a positive total can be reduced")
    before = _credited_split(already_reduced, subtotal, taxes)
    after = _credited_split(already_reduced + amount, subtotal, taxes)
    parts = [now - earlier for now, earlier in zip(after, before, strict=True)]
    return parts[0], tuple(parts[1:])


def _credited_split(credited: int, subtotal: int, taxes: Sequence[int]) -> list[int]:
    """`credited` split as [revenue, tax_1, ..., tax_n]: revenue against all the tax first, then each rate
    against the rates after it. One split among three parts or more by largest remainders is not monotone (a
    larger amount may give a part one unit less), so a later note could take back -1 of a rate; a chain of
    splits in two is (each is the half-up rounding of its share), so every note's parts are >= 0."""
    revenue, left = allocate(credited, [subtotal, sum(taxes, 0)]) if credited else (0, 0)
    parts = [revenue]
    weight_left = sum(taxes, 0)
    for tax in taxes[:-1]:
        weight_left -= tax
        part, left = allocate(left, [tax, weight_left]) if left else (0, 0)
        parts.append(part)
    if taxes:
        parts.append(left)
    return parts


def invoice_reduced(
    tenant_id: uuid.UUID,
    currency: str,
    amount: int,
    subtotal: int,
    tax: int | Sequence[int],
    already_reduced: int = 0,
    *,
    revenue_account: str = REVENUE,
) -> list[Posting]:
    """A credit note: `amount` (tax included) less owed, taken back from revenue and tax in the invoice's
    proportion (`credit_parts`). `tax` is each rate's amount on the invoice (an int: a single rate); tax
    payable takes back the sum of the rates' parts, the same parts the credit note shows. A refund's credit
    note books its revenue part to `refunds` (contra-revenue), so refunded revenue stays visible."""
    taxes = [tax] if isinstance(tax, int) else list(tax)
    revenue_part, tax_parts = credit_parts(amount, subtotal, taxes, already_reduced)
    return balanced(
        [
            Posting(receivable(tenant_id), -amount, currency),
            Posting(revenue_account, revenue_part, currency),
            Posting(TAX_PAYABLE, sum(tax_parts, 0), currency),
        ]
    )


def payment_received(tenant_id: uuid.UUID, currency: str, amount: int) -> list[Posting]:
    return balanced([Posting(CASH, amount, currency), Posting(receivable(tenant_id), -amount, currency)])


def reversal(postings: Iterable[Posting]) -> list[Posting]:
    """What undoes `postings` (a void): each account moved back by what it was moved."""
    return balanced(Posting(p.account, -p.amount_minor, p.currency) for p in postings)


def refund_paid(tenant_id: uuid.UUID, currency: str, amount: int) -> list[Posting]:
    """Money back to the tenant: it leaves cash; the credit note that goes with it already took it off
    what the tenant owes, so the receivable is restored by the refund."""
    return balanced([Posting(CASH, -amount, currency), Posting(receivable(tenant_id), amount, currency)])


def escrow_funded(escrow_id: uuid.UUID, currency: str, amount: int) -> list[Posting]:
    """The payer's money arrives and is held for the agreement (a liability until released or refunded)."""
    return balanced([Posting(CASH, amount, currency), Posting(escrow_held(escrow_id), -amount, currency)])


def escrow_released(
    escrow_id: uuid.UUID, payee_type: str, payee_id: uuid.UUID, currency: str, amount: int
) -> list[Posting]:
    """The only way into a payee's payable balance."""
    return balanced(
        [
            Posting(escrow_held(escrow_id), amount, currency),
            Posting(payee_payable(payee_type, payee_id), -amount, currency),
        ]
    )


def escrow_refunded(escrow_id: uuid.UUID, currency: str, amount: int) -> list[Posting]:
    return balanced([Posting(escrow_held(escrow_id), amount, currency), Posting(CASH, -amount, currency)])


def credit_purchase_issued(tenant_id: uuid.UUID, currency: str, amount: int) -> list[Posting]:
    """A `credit_purchase` invoice: the tenant owes it, and the platform owes the tenant the credit (a
    liability, not revenue: nothing is earned until the credit pays an invoice or expires). Never taxed."""
    return balanced(
        [Posting(receivable(tenant_id), amount, currency), Posting(credit_liability(tenant_id), -amount, currency)]
    )


def credits_applied(tenant_id: uuid.UUID, currency: str, purchased: int, granted: int) -> list[Posting]:
    """Credits pay part of an invoice: purchased credit settles it out of the liability, granted credit is
    a promotion expense; the receivable falls by both."""
    if purchased < 0 or granted < 0:
        raise BillingInvalid("credits applied are not negative")
    return balanced(
        [
            Posting(credit_liability(tenant_id), purchased, currency),
            Posting(PROMOTION_EXPENSE, granted, currency),
            Posting(receivable(tenant_id), -(purchased + granted), currency),
        ]
    )


def credits_restored(tenant_id: uuid.UUID, currency: str, purchased: int, granted: int) -> list[Posting]:
    """Credits applied to an invoice go back to the wallet (a cancellation's unused time): the reverse of
    `credits_applied` for the part given back; the receivable rises by both (a credit note then takes it
    off with the revenue and tax)."""
    return [
        Posting(p.account, -p.amount_minor, p.currency)
        for p in credits_applied(tenant_id, currency, purchased, granted)
    ]


def credit_expired(tenant_id: uuid.UUID, currency: str, source: str, amount: int) -> list[Posting]:
    """Unused credit expires: purchased credit's liability is released to breakage revenue; granted credit
    was never booked, so its expiry books nothing."""
    if amount < 0:
        raise BillingInvalid("an expired amount is not negative")
    if source != "purchased":
        return []
    return balanced(
        [Posting(credit_liability(tenant_id), amount, currency), Posting(CREDIT_BREAKAGE, -amount, currency)]
    )


def _dispute_amounts(amount: int, fee: int) -> None:
    if amount <= 0 or fee < 0:
        raise BillingInvalid("a dispute's amount is positive and its fee not negative")


def dispute_opened(tenant_id: uuid.UUID, currency: str, amount: int, fee_currency: str, fee: int) -> list[Posting]:
    """A card dispute: Stripe withdraws the disputed amount from the platform's balance (cash) until it is
    decided, held against the tenant's disputes, and charges its fee (an expense, in the currency Stripe
    charged it in, which may be the account's settlement currency rather than the charge's)."""
    _dispute_amounts(amount, fee)
    return balanced(
        [
            Posting(disputes_held(tenant_id), amount, currency),
            Posting(CASH, -amount, currency),
            Posting(DISPUTE_FEES, fee, fee_currency),
            Posting(CASH, -fee, fee_currency),
        ]
    )


def dispute_fee_charged(fee_currency: str, fee: int) -> list[Posting]:
    """Stripe's dispute fee told after the opening was booked (a later event's balance transaction, or an
    inquiry's): an expense out of cash, as the opening would have booked it."""
    if fee <= 0:
        raise BillingInvalid("a dispute fee booked on its own is positive")
    return balanced([Posting(DISPUTE_FEES, fee, fee_currency), Posting(CASH, -fee, fee_currency)])


def dispute_won(
    tenant_id: uuid.UUID, currency: str, amount: int, fee_currency: str, fee_returned: int
) -> list[Posting]:
    """Won (or closed with nothing withdrawn for good): the held amount returns to cash, and the part of the
    fee Stripe gave back (its reinstating balance transaction says so; usually none) leaves the expense."""
    _dispute_amounts(amount, fee_returned)
    return balanced(
        [
            Posting(CASH, amount, currency),
            Posting(disputes_held(tenant_id), -amount, currency),
            Posting(CASH, fee_returned, fee_currency),
            Posting(DISPUTE_FEES, -fee_returned, fee_currency),
        ]
    )


def dispute_lost(tenant_id: uuid.UUID, currency: str, amount: int, credits_taken: int = 0) -> list[Posting]:
    """Lost: the held amount is gone for good, an expense. The invoice's revenue and tax are not reversed (the
    service was delivered and invoiced; the loss is a cost of collecting), and the fee stays an expense. A
    disputed credit purchase's credits taken back from the wallet (`credits_taken`, at most the amount) are
    no longer owed: that much comes off the credit liability instead of being lost."""
    _dispute_amounts(amount, 0)
    if not 0 <= credits_taken <= amount:
        raise BillingInvalid("the credits a lost dispute takes back are at most its amount")
    return balanced(
        [
            Posting(DISPUTE_LOSSES, amount - credits_taken, currency),
            Posting(credit_liability(tenant_id), credits_taken, currency),
            Posting(disputes_held(tenant_id), -amount, currency),
        ]
    )
