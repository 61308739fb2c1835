"""The revenue report from the MRR history (issue 18, "Definitions"): worked examples by hand, then properties."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.analytics.report import (
    CAUSES,
    FIELD_NAMES,
    Change,
    Month,
    MonthFigures,
    csv_rows,
    revenue_report,
)

PROPERTY = settings(max_examples=200, deadline=None)
A, B, C, D, E = (uuid.UUID(int=n) for n in range(1, 6))


def utc(year: int, month: int, day: int = 1, hour: int = 0, minute: int = 0, microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, 0, microsecond, tzinfo=UTC)


def change(tenant: uuid.UUID, at: datetime, mrr: int, cause: str = "subscription_changed") -> Change:
    return Change(tenant, at, mrr, cause)


def month_of(changes: list[Change], text: str, now: datetime | None = None) -> MonthFigures:
    """One month's figures; `now` defaults to well after every example."""
    month = Month.parse(text)
    [figures] = revenue_report(changes, month, month, now or utc(2030, 1, 1))
    return figures


# -- months ---------------------------------------------------------------------------------------------


def test_months_parse_print_and_step_across_years() -> None:
    assert Month.parse("2026-01") == Month(2026, 1)
    assert str(Month(2026, 1)) == "2026-01"
    assert Month(2025, 12).next() == Month(2026, 1)
    assert Month(2026, 1).previous() == Month(2025, 12)
    assert Month(2026, 3).start == datetime(2026, 3, 1, tzinfo=UTC)
    assert Month(2025, 12) < Month(2026, 1) < Month(2026, 2)
    # 00:30 on 1 March at UTC+1 is still February in UTC.
    assert Month.of(datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))) == Month(2026, 2)


@pytest.mark.parametrize(
    "text",
    [
        "2026-1",
        "2026-13",
        "2026-00",
        "1999-12",
        "26-01",
        "2026-01\n",
        " 2026-01",
        "\uff12\uff10\uff12\uff16-01",
        "2026/01",
        "",
    ],
)
def test_anything_but_yyyy_mm_from_2000_is_not_a_month(text: str) -> None:
    with pytest.raises(ValueError):
        Month.parse(text)


def test_a_month_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError):
        Month.of(datetime(2026, 1, 1))


# -- changes and the range asked for --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "mrr", "cause"),
    [
        (datetime(2026, 1, 1), 100, "import"),  # naive
        (utc(2026, 1), -1, "import"),
        (utc(2026, 1), True, "import"),
        (utc(2026, 1), 100, "upgrade"),
    ],
)
def test_a_change_is_aware_non_negative_and_of_a_known_cause(at: datetime, mrr: int, cause: str) -> None:
    with pytest.raises(ValueError):
        Change(A, at, mrr, cause)


def test_the_report_refuses_future_months_reversed_ranges_unsorted_changes_and_a_naive_now() -> None:
    now = utc(2026, 3, 15)
    with pytest.raises(ValueError, match="after the current month"):
        revenue_report([], Month(2026, 3), Month(2026, 4), now)
    with pytest.raises(ValueError, match="starts"):
        revenue_report([], Month(2026, 3), Month(2026, 2), now)
    with pytest.raises(ValueError, match="sorted"):
        revenue_report(
            [change(A, utc(2026, 2, 2), 100), change(B, utc(2026, 2, 1), 100)], Month(2026, 2), Month(2026, 2), now
        )
    with pytest.raises(ValueError, match="aware"):
        revenue_report([], Month(2026, 2), Month(2026, 2), datetime(2026, 3, 15))


# -- worked examples --------------------------------------------------------------------------------------


def test_one_month_with_each_movement_kind() -> None:
    history = [
        # January: A 10000, B 5000 and C 3000 start paying; D pays 2000 and leaves again.
        change(A, utc(2026, 1, 5), 10_000, "subscription_created"),
        change(B, utc(2026, 1, 5), 5_000, "subscription_created"),
        change(C, utc(2026, 1, 5), 3_000, "subscription_created"),
        change(D, utc(2026, 1, 6), 2_000, "subscription_created"),
        change(D, utc(2026, 1, 20), 0, "subscription_canceled"),
        # February: one change of each kind.
        change(E, utc(2026, 2, 3), 4_000, "subscription_created"),  # new 4000
        change(A, utc(2026, 2, 4), 12_000, "subscription_changed"),  # expansion 12000 - 10000 = 2000
        change(B, utc(2026, 2, 5), 4_000, "subscription_changed"),  # contraction 5000 - 4000 = 1000
        change(C, utc(2026, 2, 6), 0, "subscription_canceled"),  # churn 3000
        change(D, utc(2026, 2, 7), 2_500, "subscription_created"),  # reactivation 2500 (D paid in January)
    ]
    february = month_of(history, "2026-02")
    assert february == MonthFigures(
        month="2026-02",
        mrr_start_minor=18_000,  # A 10000 + B 5000 + C 3000
        new_minor=4_000,
        expansion_minor=2_000,
        reactivation_minor=2_500,
        contraction_minor=1_000,
        churned_minor=3_000,
        mrr_end_minor=22_500,  # 18000 + 4000 + 2000 + 2500 - 1000 - 3000 = A 12000 + B 4000 + D 2500 + E 4000
        arr_minor=270_000,  # 12 x 22500
        customers_start=3,  # A, B, C
        customers_end=4,  # A, B, D, E
        new_customers=1,  # E
        reactivated_customers=1,  # D
        churned_customers=1,  # C
        logo_churn_rate="0.3333",  # 1 / 3
        gross_mrr_churn_rate="0.2222",  # (3000 + 1000) / 18000 = 0.22222
        net_mrr_churn_rate="-0.0278",  # (3000 + 1000 - 2000 - 2500) / 18000 = -500 / 18000 = -0.027777
        nrr="0.8889",  # (A 12000 + B 4000 + C 0) / 18000 = 16000 / 18000 = 0.88888
        grr="0.7778",  # (A capped at 10000 + B 4000 + C 0) / 18000 = 14000 / 18000 = 0.77777
        arpa_minor=5_625,  # 22500 / 4
        # Only February had customers at its start (January started with none): mean churn 1/3, 5625 / (1/3).
        clv_minor=16_875,
        trials_started=0,
        trials_converted=0,
        trials_canceled=0,
        trial_conversion_rate=None,
    )


def test_yearly_plans_count_their_monthly_share_as_recorded_and_arpa_rounds_half_up() -> None:
    # A yearly price of 99996 is recorded as 99996 / 12 = 8333 a month; B's 100008 / 12 = 8334.
    history = [change(A, utc(2026, 2, 10), 8_333, "subscription_created")]
    assert month_of(history, "2026-02").mrr_end_minor == 8_333
    assert month_of(history, "2026-02").arr_minor == 99_996  # 12 x 8333
    history.append(change(B, utc(2026, 3, 10), 8_334, "subscription_created"))
    march = month_of(history, "2026-03")
    assert march.mrr_end_minor == 16_667
    assert march.arpa_minor == 8_334  # 16667 / 2 = 8333.5, half up


def test_the_first_month_has_mrr_start_0_and_no_rates() -> None:
    history = [change(A, utc(2026, 3, 10), 8_333, "subscription_created")]
    march = month_of(history, "2026-03")
    assert (march.mrr_start_minor, march.new_minor, march.mrr_end_minor) == (0, 8_333, 8_333)
    assert (march.customers_start, march.customers_end, march.new_customers) == (0, 1, 1)
    # Every denominator is 0: no customers and no MRR at the start, no trial ended.
    assert march.logo_churn_rate is None
    assert march.gross_mrr_churn_rate is None
    assert march.net_mrr_churn_rate is None
    assert march.nrr is None
    assert march.grr is None
    assert march.trial_conversion_rate is None
    assert march.arpa_minor == 8_333
    assert march.clv_minor is None  # no month of the six had customers at its start


def test_a_discount_ending_is_a_contraction_then_an_expansion() -> None:
    history = [
        change(A, utc(2026, 1, 5), 10_000, "subscription_created"),
        change(A, utc(2026, 2, 10), 8_000, "discount_applied"),  # 20 % off: contraction 2000
        change(A, utc(2026, 4, 10), 10_000, "discount_ended"),  # back to full price: expansion 2000
    ]
    february, march, april = revenue_report(history, Month(2026, 2), Month(2026, 4), utc(2030, 1, 1))
    assert (february.mrr_start_minor, february.contraction_minor, february.mrr_end_minor) == (10_000, 2_000, 8_000)
    assert february.gross_mrr_churn_rate == "0.2000"  # 2000 / 10000
    assert february.net_mrr_churn_rate == "0.2000"
    assert (february.nrr, february.grr) == ("0.8000", "0.8000")  # 8000 / 10000
    assert february.logo_churn_rate == "0.0000"  # nobody left
    assert february.clv_minor is None  # the mean churn over the counted months is 0
    # March: nothing moves.
    assert (march.mrr_start_minor, march.mrr_end_minor, march.contraction_minor, march.expansion_minor) == (
        8_000,
        8_000,
        0,
        0,
    )
    assert (march.net_mrr_churn_rate, march.nrr, march.grr) == ("0.0000", "1.0000", "1.0000")
    assert (april.mrr_start_minor, april.expansion_minor, april.mrr_end_minor) == (8_000, 2_000, 10_000)
    assert april.net_mrr_churn_rate == "-0.2500"  # (0 - 2000) / 8000
    assert april.nrr == "1.2500"  # 10000 / 8000
    assert april.grr == "1.0000"  # capped at the start: 8000 / 8000


def test_a_reactivation_is_a_paying_tenant_back_and_never_a_first_payment() -> None:
    history = [
        change(A, utc(2026, 1, 5), 5_000, "subscription_created"),
        change(A, utc(2026, 1, 31, 12), 0, "subscription_canceled"),
        change(B, utc(2026, 1, 10), 0, "trial_started"),  # B trials and never pays in January
        change(B, utc(2026, 1, 24), 0, "trial_canceled"),
        change(C, utc(2026, 1, 12), 7_000, "subscription_created"),
        change(C, utc(2026, 3, 10), 0, "subscription_paused"),  # C stops and resumes within March
        change(A, utc(2026, 3, 3), 6_000, "subscription_created"),  # A paid before: reactivation 6000
        change(B, utc(2026, 3, 4), 3_000, "subscription_created"),  # B never paid: new 3000
        change(C, utc(2026, 3, 20), 7_000, "subscription_resumed"),  # reactivation 7000
    ]
    history.sort(key=lambda entry: entry.at)
    march = month_of(history, "2026-03")
    assert march.mrr_start_minor == 7_000  # C only
    assert (march.new_minor, march.reactivation_minor, march.churned_minor) == (3_000, 13_000, 7_000)
    assert march.mrr_end_minor == 16_000  # 7000 + 3000 + 13000 - 7000 = A 6000 + B 3000 + C 7000
    assert (march.new_customers, march.reactivated_customers) == (1, 2)  # B; A and C
    assert march.churned_customers == 0  # C went to 0 but is paying again at the end of March
    assert march.logo_churn_rate == "0.0000"
    assert march.gross_mrr_churn_rate == "1.0000"  # 7000 / 7000
    assert march.net_mrr_churn_rate == "-0.8571"  # (7000 - 13000) / 7000 = -0.857142
    assert (march.nrr, march.grr) == ("1.0000", "1.0000")  # C: 7000 at the start and at the end


def test_an_upgrade_and_a_downgrade_on_the_same_day_are_two_movements() -> None:
    history = [
        change(A, utc(2026, 4, 20), 10_000, "subscription_created"),
        change(A, utc(2026, 5, 12, 9), 15_000),  # expansion 5000
        change(A, utc(2026, 5, 12, 15), 12_000),  # contraction 3000 (not a net expansion of 2000)
    ]
    may = month_of(history, "2026-05")
    assert (may.mrr_start_minor, may.expansion_minor, may.contraction_minor, may.mrr_end_minor) == (
        10_000,
        5_000,
        3_000,
        12_000,
    )
    assert may.gross_mrr_churn_rate == "0.3000"  # 3000 / 10000
    assert may.net_mrr_churn_rate == "-0.2000"  # (3000 - 5000) / 10000
    assert (may.nrr, may.grr) == ("1.2000", "1.0000")  # 12000 / 10000; capped 10000 / 10000
    # Two changes at the same instant are walked in the order given.
    same_instant = [*history[:1], change(A, utc(2026, 5, 12, 9), 15_000), change(A, utc(2026, 5, 12, 9), 12_000)]
    assert month_of(same_instant, "2026-05") == may


def test_a_trial_converted_and_one_canceled_convert_at_half() -> None:
    history = [
        change(A, utc(2026, 6, 1, 8), 0, "trial_started"),
        change(B, utc(2026, 6, 2, 8), 0, "trial_started"),
        change(A, utc(2026, 6, 15, 8), 3_000, "trial_converted"),  # new 3000
        change(B, utc(2026, 6, 16, 8), 0, "trial_canceled"),  # 0 -> 0: no movement
    ]
    june = month_of(history, "2026-06")
    assert (june.trials_started, june.trials_converted, june.trials_canceled) == (2, 1, 1)
    assert june.trial_conversion_rate == "0.5000"  # 1 / (1 + 1)
    assert (june.new_minor, june.new_customers, june.mrr_end_minor) == (3_000, 1, 3_000)


def test_a_change_at_00_00_on_the_1st_belongs_to_the_new_month() -> None:
    plus_one = timezone(timedelta(hours=1))
    history = [
        change(A, utc(2026, 1, 5), 10_000, "subscription_created"),
        change(B, utc(2026, 1, 5), 4_000, "subscription_created"),
        change(B, utc(2026, 1, 31, 23, 59) + timedelta(seconds=59, microseconds=999_999), 0),  # January's last instant
        change(A, datetime(2026, 2, 1, 1, 0, tzinfo=plus_one), 0, "subscription_canceled"),  # 00:00 UTC on 1 Feb
    ]
    january, february = revenue_report(history, Month(2026, 1), Month(2026, 2), utc(2030, 1, 1))
    assert (january.churned_minor, january.mrr_end_minor, january.customers_end) == (4_000, 10_000, 1)
    assert (february.mrr_start_minor, february.churned_minor, february.mrr_end_minor) == (10_000, 10_000, 0)
    assert (february.customers_start, february.churned_customers, february.logo_churn_rate) == (1, 1, "1.0000")


def test_the_current_month_ends_now_and_a_later_change_is_ignored() -> None:
    now = utc(2026, 3, 15, 12)
    history = [
        change(A, utc(2026, 2, 10), 10_000, "subscription_created"),
        change(A, utc(2026, 3, 10), 12_000),  # expansion 2000
        change(B, now, 5_000, "subscription_created"),  # exactly now: counts
        change(A, utc(2026, 3, 20), 0, "subscription_canceled"),  # after now: not yet
    ]
    march = month_of(history, "2026-03", now)
    assert (march.mrr_start_minor, march.expansion_minor, march.new_minor, march.churned_minor) == (
        10_000,
        2_000,
        5_000,
        0,
    )
    assert (march.mrr_end_minor, march.customers_end) == (17_000, 2)


def test_clv_is_arpa_over_the_mean_logo_churn_of_the_month_and_the_5_before() -> None:
    tenants = [uuid.UUID(int=100 + n) for n in range(10)]
    history = [change(tenant, utc(2025, 1, 1), 1_000, "subscription_created") for tenant in tenants]
    # Leaving on the 15th: one in February, one in April, two in July.
    for month, leaving in ((2, tenants[:1]), (4, tenants[1:2]), (7, tenants[2:4])):
        history += [change(tenant, utc(2025, month, 15), 0, "subscription_canceled") for tenant in leaving]
    report = revenue_report(history, Month(2025, 1), Month(2025, 8), utc(2030, 1, 1))
    # January starts with no customers (they arrive at 00:00 on the 1st, in January), so it never counts.
    assert [month.customers_start for month in report] == [0, 10, 9, 9, 8, 8, 8, 6]
    assert [month.logo_churn_rate for month in report] == [
        None, "0.1000", "0.0000", "0.1111", "0.0000", "0.0000", "0.2500", "0.0000",
    ]  # fmt: skip
    july, august = report[6], report[7]
    assert (july.arpa_minor, august.arpa_minor) == (1_000, 1_000)  # 6000 / 6 tenants
    # July: February to July, 1/10 + 0 + 1/9 + 0 + 0 + 2/8 = 83/180, mean 83/1080; 1000 / (83/1080) = 13012.05
    assert july.clv_minor == 13_012
    # August: March to August (February drops out), 0 + 1/9 + 0 + 0 + 1/4 + 0 = 13/36, mean 13/216;
    # 1000 / (13/216) = 16615.38 -> 16615. From the 4-place strings it would be 1000 / (0.3611 / 6) = 16615.9 -> 16616.
    assert august.clv_minor == 16_615
    # Asked for alone, August still sees the five months before it.
    assert revenue_report(history, Month(2025, 8), Month(2025, 8), utc(2030, 1, 1)) == [august]


def test_csv_has_a_header_and_one_crlf_line_per_month_with_null_as_empty() -> None:
    history = [change(A, utc(2026, 3, 10), 8_333, "subscription_created")]
    report = revenue_report(history, Month(2026, 3), Month(2026, 4), utc(2030, 1, 1))
    assert csv_rows(report) == (
        "month,mrr_start_minor,new_minor,expansion_minor,reactivation_minor,contraction_minor,churned_minor,"
        "mrr_end_minor,arr_minor,customers_start,customers_end,new_customers,reactivated_customers,"
        "churned_customers,logo_churn_rate,gross_mrr_churn_rate,net_mrr_churn_rate,nrr,grr,arpa_minor,clv_minor,"
        "trials_started,trials_converted,trials_canceled,trial_conversion_rate\r\n"
        "2026-03,0,8333,0,0,0,0,8333,99996,0,1,1,0,0,,,,,,8333,,0,0,0,\r\n"
        "2026-04,8333,0,0,0,0,0,8333,99996,1,1,0,0,0,0.0000,0.0000,0.0000,1.0000,1.0000,8333,,0,0,0,\r\n"
    )
    assert csv_rows([]) == ",".join(FIELD_NAMES) + "\r\n"


# -- properties ---------------------------------------------------------------------------------------------

BEGIN = utc(2025, 1, 1)
MONTH_STARTS = [utc(2025, month) for month in range(1, 8)]  # January to July 2025
SPAN_MINUTES = (utc(2025, 7, 1) - BEGIN) // timedelta(minutes=1)
TENANTS = [uuid.UUID(int=n) for n in range(1, 5)]

# Month boundaries are drawn often, so changes at exactly 00:00 on the 1st are common.
instants = st.one_of(
    st.sampled_from(MONTH_STARTS),
    st.integers(0, SPAN_MINUTES).map(lambda minutes: BEGIN + timedelta(minutes=minutes)),
)
mrr_values = st.one_of(st.just(0), st.sampled_from([1, 1_000, 8_333]), st.integers(1, 20_000))
histories = st.lists(
    st.builds(change, st.sampled_from(TENANTS), instants, mrr_values, st.sampled_from(CAUSES)), max_size=40
).map(lambda changes: sorted(changes, key=lambda entry: entry.at))


@st.composite
def reports(draw: st.DrawFn) -> tuple[list[Change], Month, Month, datetime]:
    history = draw(histories)
    now = draw(instants)
    months = [Month(2025, month) for month in range(1, Month.of(now).month + 1)]
    first = draw(st.sampled_from(months))
    last = draw(st.sampled_from([month for month in months if month >= first]))
    return history, first, last, now


def month_list(first: Month, last: Month) -> list[Month]:
    months = [first]
    while months[-1] < last:
        months.append(months[-1].next())
    return months


def naive_mrr_at_end(history: list[Change], month: Month, now: datetime) -> dict[uuid.UUID, int]:
    """Each tenant's MRR at the end of `month`, by replaying every change up to it."""
    current = Month.of(now)
    mrr: dict[uuid.UUID, int] = {}
    for entry in history:
        counts = entry.at <= now if month == current else entry.at < month.next().start
        if counts:
            mrr[entry.tenant_id] = entry.mrr_minor
    return mrr


@PROPERTY
@given(reports())
def test_each_month_reconciles_and_hands_its_end_to_the_next(case: tuple[list[Change], Month, Month, datetime]) -> None:
    history, first, last, now = case
    report = revenue_report(history, first, last, now)
    assert [month.month for month in report] == [str(month) for month in month_list(first, last)]
    for month in report:
        movements = (
            month.new_minor
            + month.expansion_minor
            + month.reactivation_minor
            - month.contraction_minor
            - month.churned_minor
        )
        assert month.mrr_end_minor == month.mrr_start_minor + movements
        assert min(month.new_minor, month.expansion_minor, month.reactivation_minor) >= 0
        assert min(month.contraction_minor, month.churned_minor) >= 0
    for earlier, later in itertools.pairwise(report):
        assert earlier.mrr_end_minor == later.mrr_start_minor
        assert earlier.customers_end == later.customers_start


@PROPERTY
@given(reports())
def test_mrr_end_is_the_sum_of_every_tenants_last_mrr_computed_naively(
    case: tuple[list[Change], Month, Month, datetime],
) -> None:
    history, first, last, now = case
    for month, figures in zip(month_list(first, last), revenue_report(history, first, last, now), strict=True):
        at_end = naive_mrr_at_end(history, month, now)
        at_start = naive_mrr_at_end(history, month.previous(), now)
        assert figures.mrr_end_minor == sum(at_end.values())
        assert figures.customers_end == sum(1 for mrr in at_end.values() if mrr > 0)
        payers = [tenant for tenant, mrr in at_start.items() if mrr > 0]
        assert figures.customers_start == len(payers)
        if figures.mrr_start_minor:
            retained = sum(at_end.get(tenant, 0) for tenant in payers)
            assert figures.nrr == _four_places(retained, figures.mrr_start_minor)
            capped = sum(min(at_end.get(tenant, 0), at_start[tenant]) for tenant in payers)
            assert figures.grr == _four_places(capped, figures.mrr_start_minor)


def _four_places(numerator: int, denominator: int) -> str:
    # Half up on non-negative integers: floor(x + 1/2), at 4 places.
    scaled = (2 * numerator * 10_000 + denominator) // (2 * denominator)
    return f"{scaled // 10_000}.{scaled % 10_000:04d}"


@PROPERTY
@given(reports(), histories)
def test_a_closed_month_is_the_same_after_later_changes_are_appended(
    case: tuple[list[Change], Month, Month, datetime], later: list[Change]
) -> None:
    history, first, last, _ = case
    # Close `last`: the history as it stood at 00:00 on the 1st of the next month, then more changes after it.
    closed_at = last.next().start
    before = [entry for entry in history if entry.at < closed_at]
    after_close = [
        Change(entry.tenant_id, entry.at + (closed_at - BEGIN), entry.mrr_minor, entry.cause) for entry in later
    ]
    then = revenue_report(before, first, last, closed_at)
    afterwards = revenue_report(before + after_close, first, last, utc(2026, 12, 31))
    assert afterwards == then


@PROPERTY
@given(reports())
def test_a_range_is_its_months_computed_alone(case: tuple[list[Change], Month, Month, datetime]) -> None:
    history, first, last, now = case
    alone = [revenue_report(history, month, month, now)[0] for month in month_list(first, last)]
    assert revenue_report(history, first, last, now) == alone
