"""The numeric bounds of billing, in one place: the API schemas, the catalogue, usage checks and rating all
read them. Pure constants.

Money is stored as `bigint` minor units (at most 2^63 - 1, about 9.2 x 10^18). The bounds follow from the
arithmetic, so that nothing the API accepts can overflow a column or a sum downstream:

- an advance line is unit price x seats: MAX_UNIT_PRICE_MINOR (10^9) x MAX_SEATS (10^6) = 10^15 = MAX_LINE_MINOR;
  a flat amount, a tier's flat fee, a package price or a minimum is at most MAX_FLAT_MINOR (10^12);
- a metered line is units x unit price. Units are a sum of events, each at most MAX_USAGE_VALUE (10^9, twelve
  decimal places), so one event at the largest price is 10^18: a period's usage is not bounded by any one
  input. Rating therefore checks every line against MAX_LINE_MINOR and raises `AmountOutOfRange` beyond it;
  the billing cycle records that on the subscription alone;
- an invoice has at most 50 charges x (20 tiers x 2 pieces + a minimum), plus add-ons and pending items, so its
  subtotal is checked too: |subtotal| <= MAX_INVOICE_MINOR (10^17); tax is at most 100 % (MAX_TAX_BPS), so a
  total is at most 2 x 10^17, some 46 times below bigint, which leaves room for sums of invoices (balances,
  ledgers, statements) computed in bigint;
- a one-off amount (credit note, refund, escrow, milestone) is at most MAX_AMOUNT_MINOR (10^15).

Usage is bounded at ingestion, per metric, over the open window (from the subscription's `usage_from`, every
event stored since, whatever boundary it falls before): an event is refused (`usage_limit_exceeded`) when the
metric's aggregate would pass the smallest `billing.usage.rules.max_units` of the charges metering it on the plan, on
a scheduled plan and on the live add-ons (a metered plugin's own price); scheduling a plan, or changing to one,
is refused (`amount_out_of_range`) when the usage already stored from the window's start is beyond its bound.
The bound is conservative: `(MAX_LINE_MINOR - fixed) / price` where `price` is the
charge's largest price per unit (per unit; the dearest tier for graduated and volume; a package's price over
its size) and `fixed` what it may add whatever the units (every tier's flat fee, or one package), so every
window billed from those events rates each charge within MAX_LINE_MINOR and a cycle, a plan change, a
cancellation or an erasure never meets `AmountOutOfRange` through usage the API accepted. A percentage
charge whose events pay a fee whatever their value (a fixed fee, a per-event minimum) bounds the metric's sum
and its number of events together (`billing.usage.rules.fee_bound`: rate x sum + that fee x events within
MAX_LINE_MINOR). A `max` or `latest` value is bounded per event; a `unique_count` counts every event of the
batch as a new value (PostgreSQL's `->>` tells apart values such as `1E2` and `"1E+2"` that compare equal as
Python text).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

BIGINT_MAX = 2**63 - 1

MAX_SEATS = 1_000_000
MAX_UNIT_PRICE_MINOR = 10**9  # per seat, per unit, per tier unit; may be fractional (12 places)
MAX_FLAT_MINOR = 10**12  # flat, package, tier flat fee, minimum amount
MAX_UNITS = 10**15  # a tier's up_to, free units
MAX_PACKAGE_SIZE = 10**12
MAX_PLACES = 12  # decimal places of a price or a usage value

MAX_USAGE_VALUE = Decimal(10**9)  # one usage event's value (or the numeric property a metric reads)

MAX_LINE_MINOR = 10**15  # |a rated line|, rounded
MAX_INVOICE_MINOR = 10**17  # |an invoice's subtotal|
MAX_TAX_BPS = 10_000  # 100 %
MAX_AMOUNT_MINOR = 10**15  # a credit note, refund, escrow agreement or milestone
MAX_GRACE_HOURS = 720  # a tenant's invoice drafts are finalized within 30 days
# Moments a client may name (a subscription's start, a milestone's due date): far from datetime's own limits,
# so converting to UTC or adding periods (up to a year per boundary) never leaves them.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# A plan's (and a staff override's, in the tenants domain, which holds the same bounds) scale of the API rate
# limits, in percent of the settings' defaults; the database checks the same range.
DEFAULT_RATE_LIMIT_PERCENT = 100
MIN_RATE_LIMIT_PERCENT = 1
MAX_RATE_LIMIT_PERCENT = 100_000

assert MAX_UNIT_PRICE_MINOR * MAX_SEATS <= MAX_LINE_MINOR
assert MAX_FLAT_MINOR <= MAX_LINE_MINOR
assert 2 * MAX_INVOICE_MINOR * 40 < BIGINT_MAX
