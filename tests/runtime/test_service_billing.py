"""Service items over billing periods: prices scaled to the period, pro rata by days for items
starting or ending inside it, one-off charges once, validity windows, ruleset prices by name,
unpriced items as a hold reason, and the exact totals an invoice gets from them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.invoicing import (
    Comparison,
    HoldPolicy,
    PaymentTerms,
    PeriodDiscount,
    ServiceBill,
    ServicePrice,
    ServiceSubscription,
    UnpricedService,
    ad_hoc_period,
    assemble_invoice,
    bill_services,
    evaluate_holds,
    period_after,
    period_ending,
)
from runtime.money import quantize

NOV = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 12, 1, 12, tzinfo=UTC))
Q4 = period_ending("quarterly", 1, "Europe/Berlin", datetime(2027, 1, 1, 12, tzinfo=UTC))
CATALOGUE = {
    "supervision.ac_charger": ServicePrice("supervision.ac_charger", "AC supervision", D("9.00"), "month", D(19)),
    "supervision.sim": ServicePrice("supervision.sim", "SIM", D("24.00"), "year", D(19)),
    "supervision.rfid_card": ServicePrice("supervision.rfid_card", "RFID card", D("5.00"), "each", D(19)),
}


def sub(service: str = "", *, qty: str = "1", price: str | None = None, per: str = "", rate: str | None = None,
        start: date = date(2026, 1, 1), end: date | None = None, desc: str = "") -> ServiceSubscription:
    return ServiceSubscription("svc_1", service, desc, D(qty), None if price is None else D(price),
                               None if rate is None else D(rate), per, start, end)


def test_periods_are_what_the_tests_assume() -> None:
    assert (NOV.local_start, NOV.local_end, NOV.months) == (date(2026, 11, 1), date(2026, 12, 1), 1)
    assert (Q4.local_start, Q4.local_end, Q4.months) == (date(2026, 10, 1), date(2027, 1, 1), 3)


@pytest.mark.parametrize("s, period, unit_price, unit", [
    (sub("supervision.ac_charger"), NOV, D("9.00"), "month"),
    (sub("supervision.ac_charger"), Q4, D("27.00"), "quarter"),
    (sub("supervision.sim"), NOV, D(2), "month"),
    (sub("supervision.sim"), Q4, D(6), "quarter"),
    (sub(price="30.00", per="quarter", rate="19", desc="x"), NOV, D(10), "month"),
    (sub(price="100", per="year", rate="19", desc="x"), NOV, D(100) / 12, "month"),
    (sub("supervision.rfid_card", start=date(2026, 11, 30)), NOV, D("5.00"), "each"),
])
def test_price_per_period(s: ServiceSubscription, period: object, unit_price: D, unit: str) -> None:
    [item] = bill_services([s], period, CATALOGUE).items  # type: ignore[arg-type]
    assert (item.unit_price, item.unit) == (unit_price, unit)


@pytest.mark.parametrize("s", [
    sub("supervision.ac_charger", start=date(2026, 12, 1)),  # starts after the period
    sub("supervision.ac_charger", end=date(2026, 11, 1)),  # ended when it began
    sub("supervision.rfid_card", start=date(2026, 10, 31)),  # a one-off of the previous period
])
def test_not_billed(s: ServiceSubscription) -> None:
    assert bill_services([s], NOV, CATALOGUE) == ServiceBill()


def test_items_starting_or_ending_inside_the_period_are_prorated_by_days() -> None:
    # November has 30 days: from the 17th is 14 of them, to the 2nd (exclusive) is 1
    a, b, c, d = bill_services([sub("supervision.ac_charger", start=date(2026, 11, 17)),
                                sub("supervision.ac_charger", end=date(2026, 11, 2)),
                                sub("supervision.sim", qty="3", start=date(2026, 11, 10), end=date(2026, 11, 20)),
                                sub(price="30.00", per="quarter", rate="19", desc="Hotline", start=date(2026, 10, 1),
                                    end=date(2026, 11, 16))], NOV, CATALOGUE).items
    assert (a.unit_price, a.description) == (D("4.20"), "AC supervision (2026-11-17 to 2026-11-30, 14 of 30 days)")
    assert (b.unit_price, b.description) == (D("0.30"), "AC supervision (2026-11-01 to 2026-11-01, 1 of 30 days)")
    # 24.00 per year is 2.00 a month; 10 of 30 days of it, for three SIMs
    assert (c.quantity, c.unit_price, c.unit) == (D(3), D(2) / 3, "month")
    assert (d.unit_price, d.description) == (D(5), "Hotline (2026-11-01 to 2026-11-15, 15 of 30 days)")
    # a quarter by its 92 days
    [q] = bill_services([sub("supervision.ac_charger", start=date(2026, 12, 1))], Q4, CATALOGUE).items
    assert (q.unit_price, q.unit) == (D("27.00") * 31 / 92, "quarter")
    assert "(2026-12-01 to 2026-12-31, 31 of 92 days)" in q.description
    # rounded once, on the invoice line: 3 × 0.666... = 2.00; 27 × 31/92 = 9.0978... -> 9.10
    draft = assemble_invoice(account_id="a", currency="EUR", period=Q4, issue_date=date(2027, 1, 1),
                             terms=PaymentTerms(), period_lines=(), services=[q])
    assert [ln.net for ln in draft.lines] == [D("9.10")]


def test_prorate_none_bills_any_day_in_full_and_one_offs_are_never_prorated() -> None:
    cat = {"s.flat": ServicePrice("s.flat", "Flat", D("9.00"), "month", D(19), prorate="none"), **CATALOGUE}
    [a, b] = bill_services([sub("s.flat", start=date(2026, 11, 30)), sub("s.flat", end=date(2026, 11, 2))],
                           NOV, cat).items
    assert (a.unit_price, a.description) == (b.unit_price, b.description) == (D("9.00"), "Flat")
    [c] = bill_services([sub("supervision.rfid_card", start=date(2026, 11, 30), end=date(2026, 12, 1))],
                        NOV, cat).items
    assert (c.unit_price, c.unit) == (D("5.00"), "each")


def test_unpriced_items_are_returned_not_billed_and_ad_hoc() -> None:
    bill = bill_services([sub("supervision.ac_charger"), sub("supervision.dc_charger", desc="DC")], NOV, CATALOGUE)
    assert [i.unit_price for i in bill.items] == [D("9.00")]
    assert bill.unpriced == (UnpricedService("svc_1", "supervision.dc_charger", "DC"),)
    assert bill_services([sub("supervision.ac_charger")], NOV, None) == ServiceBill(
        (), (UnpricedService("svc_1", "supervision.ac_charger"),))
    # an ad-hoc period counts as one month, as the product fees do
    [item] = bill_services([sub("supervision.ac_charger")], ad_hoc_period(date(2026, 11, 3), date(2026, 11, 20),
                                                                           "Europe/Berlin"), CATALOGUE).items
    assert item.unit_price == D("9.00")


def test_an_unpriced_item_holds_the_draft_even_without_hold_rules() -> None:
    bill = bill_services([sub("supervision.dc_charger")], NOV, CATALOGUE)
    draft = assemble_invoice(account_id="a", currency="EUR", period=NOV, issue_date=date(2026, 12, 1),
                             terms=PaymentTerms(), period_lines=(), services=bill.items, unpriced=bill.unpriced)
    # nothing billed, yet not empty: finance has to see it
    assert draft.lines == () and not draft.empty and draft.net_total == D(0)
    policy = HoldPolicy(approval_required=False, auto_release_after=timedelta(hours=1))
    [reason] = evaluate_holds(draft, policy, Comparison(D(0), None, None, None), ruleset_version="rsv_7")
    d = reason.to_dict()
    assert (d["kind"], d["item_id"], d["service"], d["ruleset_version"]) == (
        "unpriced_service", "svc_1", "supervision.dc_charger", "rsv_7")
    assert "service item svc_1 names service 'supervision.dc_charger', which ruleset version rsv_7" in d["message"]
    assert evaluate_holds(draft, policy, Comparison(D(0), None, None, None))[0].to_dict()["ruleset_version"] == \
        "(none)"


def test_invoice_totals_with_services_and_discounts() -> None:
    items = bill_services([sub("supervision.ac_charger", qty="3"), sub("supervision.sim", qty="2"),
                           sub(price="100", per="year", rate="7", desc="Maintenance")], NOV, CATALOGUE).items
    draft = assemble_invoice(account_id="a", currency="EUR", period=NOV, issue_date=date(2026, 12, 1),
                             terms=PaymentTerms(), period_lines=(), services=items,
                             discounts=[PeriodDiscount("10% off", percent=D(10))])
    # 19%: 27.00 + 4.00 = 31.00, discount 3.10; 7%: 8.333.. -> 8.33, discount 0.833 -> 0.83
    assert [ln.net for ln in draft.lines] == [D("27.00"), D("4.00"), D("8.33"), D("-0.83"), D("-3.10")]
    assert draft.net_total == D("35.40")
    assert [(g.rate, g.net, g.tax) for g in draft.tax_groups] == [(D(7), D("7.50"), D("0.53")),
                                                                 (D(19), D("27.90"), D("5.30"))]
    assert draft.gross_total == D("41.23")


# ---------------------------------------------------------------- properties of proration
_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC")


@settings(max_examples=150, deadline=None)
@given(cycle=st.sampled_from(("monthly", "quarterly")), cut_off=st.integers(1, 28), zone=st.sampled_from(_ZONES),
       year=st.integers(2024, 2030), cents=st.integers(1, 10_000_000), per=st.sampled_from(("month", "quarter", "year")),
       qty=st.integers(1, 50), splits=st.lists(st.integers(1, 364), max_size=6, unique=True))
def test_prorated_parts_of_a_year_add_up_to_the_full_price(cycle: str, cut_off: int, zone: str, year: int,
                                                          cents: int, per: str, qty: int, splits: list[int]) -> None:
    """One service, changed (ended and started again) on random days of a year of consecutive
    periods: the prorated lines of every period add up to the period's full price within one minor
    unit per line, and a period the item covers whole is billed in full."""
    first = period_ending(cycle, cut_off, zone, datetime(year, 1, 1, 12, tzinfo=UTC))
    periods = [first]
    while len(periods) < (12 if cycle == "monthly" else 4):
        periods.append(period_after(periods[-1]))
    start, end = periods[0].local_start, periods[-1].local_end
    days = (end - start).days
    cuts = sorted({start + timedelta(days=d % days) for d in splits} - {start})
    bounds = [start, *cuts, end]
    price = D(cents) / 100
    subs = [ServiceSubscription(f"svc_{i}", "", "Supervision", D(qty), price, D(19), per, a, b)
            for i, (a, b) in enumerate(pairwise(bounds))]
    total_lines = 0
    for p in periods:
        items = bill_services(subs, p, None).items
        unit_full = price * p.months / {"month": 1, "quarter": 3, "year": 12}[per]
        full = D(qty) * unit_full
        draft = assemble_invoice(account_id="a", currency="EUR", period=p, issue_date=p.local_end,
                                 terms=PaymentTerms(), period_lines=(), services=items)
        assert abs(draft.net_total - quantize(full, 2)) <= D("0.01") * len(items)
        # the exact parts add up exactly (one division each)
        assert abs(sum((ln.net_unrounded for ln in draft.lines), D(0)) - full) < D("1e-18")
        whole = [s for s in subs if s.valid_from <= p.local_start and (s.valid_to or end) >= p.local_end]
        if whole:
            [item] = items
            assert (item.quantity, item.unit_price, item.description) == (D(qty), unit_full, "Supervision")
        total_lines += len(items)
    assert total_lines >= len(periods)
