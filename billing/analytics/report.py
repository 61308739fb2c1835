"""The revenue report computed from the MRR history alone. Pure: no I/O.

Input is every change of every tenant's MRR in one currency (`Change`: the MRR after the change, in minor units,
and when it takes effect), sorted by `at`. Months are calendar months in UTC. For each month M:

- **MRR at the start of M** is the value just before 00:00 on its 1st: a change at exactly that instant belongs
  to M. A closed month ends just before the 1st of the next; the current month ends at `now` (a change at
  exactly `now` counts, a later one is ignored).
- **Movements**: each change of a tenant in M, from its previous value `p` to its new value `n`, is
  `new` (`p = 0 < n` and the tenant never had MRR > 0 before), `reactivation` (`p = 0 < n` otherwise),
  `churn` of `p` (`p > 0 = n`), `expansion` of `n - p` (`n > p > 0`), `contraction` of `p - n` (`p > n > 0`),
  or nothing (`p = n`). Each change counts on its own: an upgrade and a downgrade on one day are an expansion
  and a contraction, not their net. `mrr_end = mrr_start + new + expansion + reactivation - contraction -
  churned` holds by construction (and is checked against the running total).
- **Customers** are tenants with MRR > 0. `new_customers` counts `new` movements (at most one per tenant,
  ever); `reactivated_customers` the distinct tenants with a reactivation; `churned_customers` the tenants with
  a churn in M whose MRR is still 0 at the end of M. Taken literally, that includes a tenant that started
  paying and stopped within M, so `logo_churn_rate` can exceed 1 in a month where many do.
- **Rates** are decimal strings with 4 places, rounded half up, or None when the denominator is 0:
  logo churn = churned_customers / customers_start; gross MRR churn = (churned + contraction) / mrr_start;
  net MRR churn = (churned + contraction - expansion - reactivation) / mrr_start (negative when expansion
  wins); NRR = (sum over tenants paying at the start of their MRR at the end) / mrr_start; GRR = the same sum
  with each tenant capped at its start MRR; trial conversion = converted / (converted + canceled), counting
  `trial_converted` and `trial_canceled` changes in M (`trials_started` counts `trial_started` changes).
- `arr = 12 * mrr_end`; `arpa = mrr_end / customers_end` rounded half up (None without customers);
  `clv = (mrr_end / customers_end) / mean(logo churn over M and the 5 months before it, counting only months
  with customers at their start)`, rounded half up; None without customers, when no month counts, or when
  the mean is 0. The earlier months are computed from the history even when they lie before `first`, so a
  month's figures never depend on the range asked for.

Exactness: every ratio is kept as an exact `Fraction` and rounded once, at the end, by ROUND_HALF_UP (ties away
from zero, billing.money's one rule) in integer arithmetic. In particular the CLV uses the exact churn rates
(not their 4-place strings) and the exact ARPA (not the rounded `arpa_minor`), so it is rounded once; a
`Decimal` division would round at 28 digits first (three thirds would not make 1).

Speed: one pass over the changes; per tenant only its current MRR (an int keyed by the UUID's int) and whether
it ever paid; per month only the tenants it touched.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from fractions import Fraction

CAUSES: tuple[str, ...] = (
    "backfill", "import", "subscription_created", "subscription_changed", "subscription_canceled",
    "subscription_paused", "subscription_resumed", "trial_started", "trial_converted", "trial_canceled",
    "discount_applied", "discount_ended", "addon_changed", "tenant_erased", "correction",
)  # fmt: skip
_KNOWN_CAUSES = frozenset(CAUSES)

CLV_MONTHS = 6  # the month itself and the 5 before it
RATE_PLACES = 4
_RATE_SCALE = 10**RATE_PLACES
_MONTH_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})")
_NEVER = datetime.max.replace(tzinfo=UTC)


def _is_aware(at: datetime) -> bool:
    return at.tzinfo is not None and at.utcoffset() is not None


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month in UTC."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not (1 <= self.year <= 9999 and 1 <= self.month <= 12):
            raise ValueError(f"no month {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str) -> Month:
        """`YYYY-MM` with a year from 2000 to 9999; anything else is a ValueError."""
        found = _MONTH_TEXT.fullmatch(text) if isinstance(text, str) else None
        if found is None:
            raise ValueError(f"{text!r} is not a month (YYYY-MM)")
        year, month = int(found[1]), int(found[2])
        if not (2000 <= year <= 9999 and 1 <= month <= 12):
            raise ValueError(f"{text!r} is not a month from 2000-01 to 9999-12")
        return cls(year, month)

    @classmethod
    def of(cls, at: datetime) -> Month:
        """The UTC month an aware instant falls in."""
        if not _is_aware(at):
            raise ValueError("a month is taken from an aware datetime")
        utc = at.astimezone(UTC)
        return cls(utc.year, utc.month)

    @property
    def start(self) -> datetime:
        """00:00 UTC on the 1st."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a tenant's MRR, as recorded."""

    tenant_id: uuid.UUID
    at: datetime  # when the change takes effect (aware, UTC)
    mrr_minor: int  # the tenant's MRR after the change, in the report's currency
    cause: str  # one of CAUSES

    def __post_init__(self) -> None:
        if not _is_aware(self.at):
            raise ValueError("a change takes effect at an aware datetime")
        if isinstance(self.mrr_minor, bool) or not isinstance(self.mrr_minor, int) or self.mrr_minor < 0:
            raise ValueError(f"MRR is a whole number of minor units >= 0, not {self.mrr_minor!r}")
        if self.cause not in _KNOWN_CAUSES:
            raise ValueError(f"unknown cause {self.cause!r}")


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """One month of the report; the fields in the order of the API (issue 18)."""

    month: str
    mrr_start_minor: int
    new_minor: int
    expansion_minor: int
    reactivation_minor: int
    contraction_minor: int
    churned_minor: int
    mrr_end_minor: int
    arr_minor: int
    customers_start: int
    customers_end: int
    new_customers: int
    reactivated_customers: int
    churned_customers: int
    logo_churn_rate: str | None
    gross_mrr_churn_rate: str | None
    net_mrr_churn_rate: str | None
    nrr: str | None
    grr: str | None
    arpa_minor: int | None
    clv_minor: int | None
    trials_started: int
    trials_converted: int
    trials_canceled: int
    trial_conversion_rate: str | None


FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in fields(MonthFigures))


def _round_half_up(value: Fraction) -> int:
    """ROUND_HALF_UP (a tie goes away from zero) of an exact fraction, in integer arithmetic."""
    magnitude = (2 * abs(value.numerator) + value.denominator) // (2 * value.denominator)
    return -magnitude if value < 0 else magnitude


def _ratio(numerator: int, denominator: int) -> Fraction | None:
    return Fraction(numerator, denominator) if denominator else None


def rate_text(rate: Fraction | None) -> str | None:
    """A rate as a decimal string with 4 places, rounded half up ("0.1250", "-0.0833", "1.0000")."""
    if rate is None:
        return None
    scaled = _round_half_up(rate * _RATE_SCALE)
    whole, places = divmod(abs(scaled), _RATE_SCALE)
    return f"{'-' if scaled < 0 else ''}{whole}.{places:0{RATE_PLACES}d}"


class _Tally:
    """What one month's changes add up to while the walk is inside it."""

    __slots__ = (
        "churned", "churned_tenants", "contraction", "customers_start", "expansion", "mrr_start", "new",
        "new_customers", "reactivated_tenants", "reactivation", "start_of_touched", "trials_canceled",
        "trials_converted", "trials_started",
    )  # fmt: skip

    def __init__(self, mrr_start: int, customers_start: int) -> None:
        self.mrr_start = mrr_start
        self.customers_start = customers_start
        self.new = self.expansion = self.reactivation = self.contraction = self.churned = 0
        self.new_customers = 0
        self.reactivated_tenants: set[int] = set()
        self.churned_tenants: set[int] = set()
        self.start_of_touched: dict[int, int] = {}  # tenant -> its MRR at the start of the month
        self.trials_started = self.trials_converted = self.trials_canceled = 0

    def record(self, tenant: int, before: int, after: int, cause: str, paid_before: bool) -> None:
        if cause == "trial_started":
            self.trials_started += 1
        elif cause == "trial_converted":
            self.trials_converted += 1
        elif cause == "trial_canceled":
            self.trials_canceled += 1
        if before == after:
            return
        # The first change that moves a tenant in the month starts from its value at the start of the month.
        self.start_of_touched.setdefault(tenant, before)
        if before == 0:
            if paid_before:
                self.reactivation += after
                self.reactivated_tenants.add(tenant)
            else:
                self.new += after
                self.new_customers += 1
        elif after == 0:
            self.churned += before
            self.churned_tenants.add(tenant)
        elif after > before:
            self.expansion += after - before
        else:
            self.contraction += before - after


@dataclass(frozen=True, slots=True)
class _Closed:
    """A month's figures before CLV, which needs the months before it."""

    figures: MonthFigures
    logo_churn: Fraction | None
    arpa: Fraction | None


def _close(month: Month, tally: _Tally, mrr: dict[int, int], mrr_total: int, customers: int) -> _Closed:
    mrr_start = tally.mrr_start
    mrr_end = mrr_start + tally.new + tally.expansion + tally.reactivation - tally.contraction - tally.churned
    assert mrr_end == mrr_total, f"{month}: movements give {mrr_end}, the tenants' MRR sums to {mrr_total}"
    churned_customers = sum(1 for tenant in tally.churned_tenants if mrr[tenant] == 0)
    # Tenants the month did not touch keep their start MRR, so only the touched ones move NRR and GRR off 1.
    retained = capped = mrr_start
    for tenant, start in tally.start_of_touched.items():
        if start:
            difference = mrr[tenant] - start
            retained += difference
            if difference < 0:
                capped += difference
    logo_churn = _ratio(churned_customers, tally.customers_start)
    arpa = _ratio(mrr_end, customers)
    figures = MonthFigures(
        month=str(month),
        mrr_start_minor=mrr_start,
        new_minor=tally.new,
        expansion_minor=tally.expansion,
        reactivation_minor=tally.reactivation,
        contraction_minor=tally.contraction,
        churned_minor=tally.churned,
        mrr_end_minor=mrr_end,
        arr_minor=12 * mrr_end,
        customers_start=tally.customers_start,
        customers_end=customers,
        new_customers=tally.new_customers,
        reactivated_customers=len(tally.reactivated_tenants),
        churned_customers=churned_customers,
        logo_churn_rate=rate_text(logo_churn),
        gross_mrr_churn_rate=rate_text(_ratio(tally.churned + tally.contraction, mrr_start)),
        net_mrr_churn_rate=rate_text(
            _ratio(tally.churned + tally.contraction - tally.expansion - tally.reactivation, mrr_start)
        ),
        nrr=rate_text(_ratio(retained, mrr_start)),
        grr=rate_text(_ratio(capped, mrr_start)),
        arpa_minor=None if arpa is None else _round_half_up(arpa),
        clv_minor=None,
        trials_started=tally.trials_started,
        trials_converted=tally.trials_converted,
        trials_canceled=tally.trials_canceled,
        trial_conversion_rate=rate_text(_ratio(tally.trials_converted, tally.trials_converted + tally.trials_canceled)),
    )
    return _Closed(figures, logo_churn, arpa)


def _clv(arpa: Fraction | None, logo_churns: Sequence[Fraction | None]) -> int | None:
    counted = [rate for rate in logo_churns if rate is not None]
    if arpa is None or not counted or sum(counted) == 0:
        return None
    return _round_half_up(arpa * len(counted) / sum(counted))


def _months(first: Month, last: Month) -> list[Month]:
    months = [first]
    while months[-1] < last:
        months.append(months[-1].next())
    return months


def revenue_report(changes: Iterable[Change], first: Month, last: Month, now: datetime) -> list[MonthFigures]:
    """The figures of each month from `first` to `last`, from the history of one currency.

    `changes` are every change of every tenant in that currency, sorted by `at` (ties in recording order; a
    change out of order is a ValueError). Changes after `now` are ignored; a month after the current one is a
    ValueError; the current month ends at `now`.
    """
    if not _is_aware(now):
        raise ValueError("now must be an aware datetime")
    current = Month.of(now)
    if first > last:
        raise ValueError(f"the report starts ({first}) after it ends ({last})")
    if last > current:
        raise ValueError(f"{last} is after the current month {current}")

    # The report walks from 5 months before `first`, whose churn rates the CLV of `first` needs.
    window_start = first
    for _ in range(CLV_MONTHS - 1):
        if window_start == Month(1, 1):
            break
        window_start = window_start.previous()
    months = _months(window_start, last)
    # Month i runs from starts[i] up to starts[i + 1]; the last one to the end of time, as the walk stops first.
    starts = [month.start for month in months] + [_NEVER]
    # A closed last month ends before the 1st of the next; the current one at `now` inclusive.
    ends_before = last.next().start if last < current else None

    mrr: dict[int, int] = {}  # tenant (UUID as int) -> its MRR after the changes walked so far
    ever_paid: set[int] = set()  # tenants that have had MRR > 0
    mrr_total = 0
    customers = 0
    closed: list[_Closed] = []
    index = -1  # the month being walked; -1 while before the window
    tally: _Tally | None = None
    next_start = starts[0]
    previous_at: datetime | None = None

    for change in changes:
        at = change.at
        if previous_at is not None and at < previous_at:
            raise ValueError(f"changes must be sorted by time: {at.isoformat()} after {previous_at.isoformat()}")
        previous_at = at
        if at > now or (ends_before is not None and at >= ends_before):
            break
        while at >= next_start:
            if tally is not None:
                closed.append(_close(months[index], tally, mrr, mrr_total, customers))
            index += 1
            tally = _Tally(mrr_total, customers)
            next_start = starts[index + 1]

        tenant = change.tenant_id.int
        before = mrr.get(tenant, 0)
        after = change.mrr_minor
        if tally is not None:
            tally.record(tenant, before, after, change.cause, tenant in ever_paid)
        mrr[tenant] = after
        mrr_total += after - before
        if after:
            ever_paid.add(tenant)
        customers += (after > 0) - (before > 0)

    # Close the month the walk stopped in and every month after it (they had no changes).
    while True:
        if tally is not None:
            closed.append(_close(months[index], tally, mrr, mrr_total, customers))
        if index == len(months) - 1:
            break
        index += 1
        tally = _Tally(mrr_total, customers)

    report: list[MonthFigures] = []
    for position in range(months.index(first), len(months)):
        earlier = closed[max(0, position - CLV_MONTHS + 1) : position + 1]
        clv = _clv(closed[position].arpa, [entry.logo_churn for entry in earlier])
        report.append(replace(closed[position].figures, clv_minor=clv))
    return report


def csv_rows(figures: Sequence[MonthFigures]) -> str:
    """The report as CSV (RFC 4180: lines end in "\\r\\n"): a header of the field names, then one line per
    month in the same order; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FIELD_NAMES)
    for month in figures:
        writer.writerow(["" if value is None else value for value in (getattr(month, name) for name in FIELD_NAMES)])
    return buffer.getvalue()
