"""Invoice assembly: rounding once per line, VAT per group, terms, periods (DST, leap day),
corrections as new lines, holds and the comparison with the previous period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.invoicing import (
    Comparison,
    Correction,
    HoldPolicy,
    HoldRule,
    LateSession,
    ManualPosting,
    PaymentTerms,
    PeriodDiscount,
    ServiceItem,
    ad_hoc_period,
    assemble_invoice,
    compare_periods,
    evaluate_holds,
    period_after,
    period_ending,
)
from runtime.rated import RatedLine

P = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 12, 1, 0, 30, tzinfo=UTC))


def line(net: str, rate: str = "19", sid: str = "s1", comp: str = "energy") -> RatedLine:
    return RatedLine(comp, comp, D(1), "kWh", D(net), D(net), D(rate), "EUR", "r", sid)


def test_period_ending_berlin_month() -> None:
    assert (P.local_start, P.local_end) == (date(2026, 11, 1), date(2026, 12, 1))
    assert P.start == datetime(2026, 10, 31, 23, tzinfo=UTC) and P.end == datetime(2026, 11, 30, 23, tzinfo=UTC)


def test_dst_month_is_an_hour_longer() -> None:
    oct_ = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 11, 1, 12, tzinfo=UTC))
    assert oct_.end - oct_.start == timedelta(days=31, hours=1)
    mar = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 4, 1, 12, tzinfo=UTC))
    assert mar.end - mar.start == timedelta(days=31, hours=-1)


def test_leap_february_and_quarters() -> None:
    feb = period_ending("monthly", 1, "UTC", datetime(2028, 3, 1, tzinfo=UTC))
    assert feb.end - feb.start == timedelta(days=29)
    q = period_ending("quarterly", 1, "UTC", datetime(2028, 5, 17, tzinfo=UTC))
    assert (q.local_start, q.local_end) == (date(2028, 1, 1), date(2028, 4, 1))
    nxt = period_after(q)
    assert (nxt.local_start, nxt.local_end) == (date(2028, 4, 1), date(2028, 7, 1))
    mid = period_ending("monthly", 15, "UTC", datetime(2028, 1, 10, tzinfo=UTC))
    assert (mid.local_start, mid.local_end) == (date(2027, 11, 15), date(2027, 12, 15))
    with pytest.raises(ValueError):
        ad_hoc_period(date(2028, 1, 2), date(2028, 1, 2), "UTC")


def test_payment_terms() -> None:
    assert PaymentTerms.parse("net 14").due_date(date(2026, 12, 1)) == date(2026, 12, 15)
    assert PaymentTerms.parse("end_of_month + 60").due_date(date(2028, 2, 3)) == date(2028, 4, 29)
    assert PaymentTerms.parse("eom+30") == PaymentTerms("end_of_month", 30)
    with pytest.raises(ValueError):
        PaymentTerms.parse("whenever")


def test_rounding_once_per_line_and_vat_per_group() -> None:
    lines = [line("0.333"), line("0.333"), line("0.333"), line("1.005", "7")]
    d = assemble_invoice(account_id="a", currency="EUR", period=P, issue_date=date(2026, 12, 1),
                         terms=PaymentTerms(), period_lines=lines)
    assert [ln.net for ln in d.lines] == [D("0.33"), D("0.33"), D("0.33"), D("1.01")]
    assert d.net_total == D("2.00")
    groups = {g.rate: (g.net, g.tax) for g in d.tax_groups}
    assert groups == {D(19): (D("0.99"), D("0.19")), D(7): (D("1.01"), D("0.07"))}
    assert d.gross_total == D("2.26") and d.due_date == date(2026, 12, 15) and d.kind == "invoice"


def test_services_discounts_postings_late_and_corrections() -> None:
    d = assemble_invoice(
        account_id="a", currency="EUR", period=P, issue_date=date(2026, 12, 1), terms=PaymentTerms("net", 30),
        period_lines=[line("10.00")],
        services=[ServiceItem("DC charger supervision", D(2), D("25.00"), D(19))],
        discounts=[PeriodDiscount("loyalty 10%", percent=D(10))],
        postings=[ManualPosting("p1", "goodwill", D("-5.00"), D(19), "u1")],
        late=[LateSession("s9", "r9", "monthly:2026-10-01..2026-11-01", (line("3.00", sid="s9"),))],
        corrections=[Correction("s5", "r5b", "r5a", "inv1", "INV-000007", {D(19): D("4.00")},
                                (line("3.50", sid="s5"),))],
    )
    kinds = [ln.kind for ln in d.lines]
    assert kinds == ["session", "service", "late", "adjustment", "discount", "manual"]
    adj = d.lines[3]
    assert adj.net == D("-0.50") and adj.corrects == "INV-000007/s5" and d.corrects == ("INV-000007",)
    # discount: 10% of 10 + 50 + 3 (not of the adjustment)
    assert d.lines[4].net == D("-6.30")
    assert d.net_total == D("51.20")


def test_negative_total_is_a_credit_note() -> None:
    d = assemble_invoice(account_id="a", currency="EUR", period=P, issue_date=date(2026, 12, 1),
                         terms=PaymentTerms(), period_lines=[],
                         corrections=[Correction("s5", "r2", "r1", "i1", "INV-1", {D(19): D("9.00")},
                                                 (line("4.00", sid="s5"),))])
    assert d.kind == "credit_note" and d.net_total == D("-5.00") and d.corrects == ("INV-1",)
    assert d.due_date == d.issue_date


def test_holds_and_comparison() -> None:
    d = assemble_invoice(account_id="a", currency="EUR", period=P, issue_date=date(2026, 12, 1),
                         terms=PaymentTerms(), period_lines=[line("6000")])
    pol = HoldPolicy(rules=(HoldRule("total", amount=D(5000)), HoldRule("jump", percent=D(50)),
                            HoldRule("flag", flag="review")))
    cmp_ = compare_periods(d.net_total, D(1000))
    assert cmp_ == Comparison(D("6000.00"), D(1000), D("5000.00"), D("500.00"))
    reasons = evaluate_holds(d, pol, cmp_, frozenset({"review"}), ["customer called"])
    assert [r.kind for r in reasons] == ["total", "jump", "flag", "manual"]
    assert evaluate_holds(d, HoldPolicy(), compare_periods(d.net_total, None)) == ()
    assert compare_periods(D(5), D(0)).change_percent is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.decimals("-50", "500", places=5), st.sampled_from(["0", "7", "19"])),
                max_size=30))
def test_totals_are_sums_of_rounded_lines(items: list[tuple[D, str]]) -> None:
    d = assemble_invoice(account_id="a", currency="EUR", period=P, issue_date=date(2026, 12, 1),
                         terms=PaymentTerms(), period_lines=[line(str(n), r) for n, r in items])
    assert d.net_total == sum((ln.net for ln in d.lines), D(0))
    assert all(ln.net == ln.net.quantize(D("0.01")) for ln in d.lines)
    assert sum((g.net for g in d.tax_groups), D(0)) == d.net_total
    assert d.gross_total == d.net_total + sum((g.tax for g in d.tax_groups), D(0))


def test_document_dates_are_the_finalization_day_in_the_issuer_zone() -> None:
    from runtime.invoicing import document_dates

    # 23:30 UTC on Dec 1 is already Dec 2 in Berlin: the period's end (Dec 1) is not the issue date
    at = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert document_dates("invoice", PaymentTerms("net", 14), at, "Europe/Berlin") == (date(2026, 12, 2),
                                                                                       date(2026, 12, 16))
    assert document_dates("invoice", PaymentTerms("end_of_month", 60), at, "Europe/Berlin") == (
        date(2026, 12, 2), date(2027, 3, 1))
    assert document_dates("invoice", PaymentTerms("net", 14), at, "America/New_York")[0] == date(2026, 12, 1)
    # a credit note is refunded: nothing falls due after its issue day
    assert document_dates("credit_note", PaymentTerms("net", 14), at, "Europe/Berlin") == (date(2026, 12, 2),
                                                                                           date(2026, 12, 2))
