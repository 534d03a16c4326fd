"""Partner statements as a pure function: grouping per currency and VAT rate, one rounding per
line, the share only on the agreement's days, fees pro rata, periods in the tenant's zone.
Every expected figure is worked out by hand in the comment next to it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from runtime.statements import (
    PriorSession,
    SessionRevenue,
    ShareSegment,
    ShareTerms,
    build_statement,
    statement_period,
)

BERLIN = "Europe/Berlin"
MARCH = statement_period(BERLIN, month="2026-03")


def s(sid: str, day: int, kwh: str, *lines: tuple[str, str], cur: str = "EUR", site: str = "") -> SessionRevenue:
    return SessionRevenue(sid, date(2026, 3, day), cur, D(kwh), tuple((D(r), D(n)) for r, n in lines), site)


def test_periods_are_local_months_or_explicit_days() -> None:
    # March 2026 in Berlin: from 1 March 00:00 CET (UTC+1) to 1 April 00:00 CEST (UTC+2)
    assert (MARCH.start, MARCH.end) == (datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC))
    dec = statement_period(BERLIN, month="2026-12")
    assert (dec.local_start, dec.local_end) == (date(2026, 12, 1), date(2027, 1, 1))
    p = statement_period("America/New_York", start=date(2026, 3, 8), end=date(2026, 3, 9))
    assert p.end - p.start == datetime(2026, 3, 9, 4, tzinfo=UTC) - datetime(2026, 3, 8, 5, tzinfo=UTC)  # 23 h
    for kw in ({}, {"start": date(2026, 3, 1)}, {"month": "2026-3x"},
               {"month": "2026-03", "start": date(2026, 3, 1), "end": date(2026, 4, 1)},
               {"start": date(2026, 3, 2), "end": date(2026, 3, 1)},
               {"start": date(2026, 1, 1), "end": date(2027, 1, 3)},
               {"start": date(9999, 12, 30), "end": date(9999, 12, 31)}):
        with pytest.raises(ValueError):
            statement_period(BERLIN, **kw)  # type: ignore[arg-type]


def test_revenue_per_currency_and_rate_rounded_once_per_line() -> None:
    st = build_statement(period=MARCH, sessions=[
        s("a", 1, "10", ("19", "1.0025"), ("19", "2.0000")),   # 19 %: 3.0025
        s("b", 2, "5", ("19", "0.0025"), ("7", "0.125")),     # 19 %: +0.0025 -> 3.005 -> 3.01 (once, half-up)
        s("c", 3, "4", ("8.1", "2.50"), cur="CHF"),           # CHF 8.1 %: VAT 0.2025 -> 0.20
        s("d", 4, "1"),                                       # rated, nothing to pay: counted, no line
    ])
    got = [(ln.kind, ln.currency, ln.tax_rate, ln.sessions, ln.energy_kwh, ln.net, ln.tax, ln.gross) for ln in st.lines]
    assert got == [
        ("revenue", "CHF", D("8.1"), 1, D(4), D("2.50"), D("0.20"), D("2.70")),
        ("revenue", "EUR", D(7), 1, D(5), D("0.13"), D("0.01"), D("0.14")),   # 0.125 -> 0.13; 0.00875 -> 0.01
        # VAT on the exact 3.005: 0.57095 -> 0.57 (on the rounded 3.01 it would be 0.5719 -> 0.57 too)
        ("revenue", "EUR", D(19), 2, D(15), D("3.01"), D("0.57"), D("3.58")),
    ]
    assert [(t.currency, t.sessions, t.energy_kwh, t.net, t.tax, t.gross, t.payable) for t in st.totals] == [
        ("CHF", 1, D(4), D("2.50"), D("0.20"), D("2.70"), D(0)),
        ("EUR", 3, D(16), D("3.14"), D("0.58"), D("3.72"), D(0))]   # totals are sums of rounded lines
    assert st.notes == ("no share terms: the statement shows revenue only",)
    even = build_statement(period=MARCH, sessions=[s("b", 2, "5", ("7", "0.125"))], rounding="half_even")
    assert even.lines[0].net == D("0.12")


def test_share_only_on_the_agreements_days_and_fees_pro_rata() -> None:
    terms = ShareTerms("EUR", percent=D(30), per_kwh=D("0.02"), per_session=D("0.10"), monthly_fee=D("50.00"),
                       reimburse_per_kwh=D("0.2475"))
    sessions = [s("early", 16, "100", ("19", "40.00")),          # before the agreement starts: no share
                s("x", 17, "10", ("19", "4.90")), s("y", 31, "2.5", ("19", "1.225")),
                s("z", 20, "3", ("0", "1.111"), cur="CHF")]
    st = build_statement(period=MARCH, sessions=sessions, terms=terms, valid_from=date(2026, 3, 17))
    share = [(ln.kind, ln.currency, ln.sessions, ln.quantity, ln.net) for ln in st.lines if ln.kind != "revenue"]
    assert share == [
        ("share_percent", "CHF", 1, D("1.111"), D("0.33")),        # 0.3333 -> 0.33
        ("share_percent", "EUR", 2, D("6.125"), D("1.84")),        # 30 % of 6.125 = 1.8375 -> 1.84
        ("share_per_kwh", "EUR", 3, D("15.5"), D("0.31")),         # 15.5 kWh (CHF session too) × 0.02
        ("share_per_session", "EUR", 3, D(3), D("0.30")),
        ("share_monthly_fee", "EUR", 0, D(15), D("24.19")),        # 50 × 15/31 = 24.1935...
        ("reimbursement", "EUR", 3, D("15.5"), D("3.84")),         # 15.5 × 0.2475 = 3.83625 -> 3.84
    ]
    assert st.covered_sessions == 3 and st.sessions == 4
    assert {t.currency: t.payable for t in st.totals} == {"CHF": D("0.33"), "EUR": D("30.48")}  # 1.84+0.31+0.30+24.19+3.84
    assert st.notes == ("share earned from 2026-03-17 to 2026-03-31 (the agreement's validity)",)


def test_an_agreement_outside_the_period_earns_nothing() -> None:
    st = build_statement(period=MARCH, sessions=[s("x", 5, "1", ("19", "1"))], terms=ShareTerms("EUR", percent=D(10)),
                         valid_from=date(2026, 4, 1), unrated_sessions=2)
    assert [ln.kind for ln in st.lines] == ["revenue"] and st.covered_sessions == 0
    assert st.notes == ("the agreement is not valid in this period: no share",
                        "2 session(s) in the period are not rated and not included")


def test_fee_months_across_a_custom_period() -> None:
    # 15 Feb .. 10 Apr 2026 with the agreement ending 31 Mar: Feb 14/28, Mar 31/31
    p = statement_period(BERLIN, start=date(2026, 2, 15), end=date(2026, 4, 10))
    st = build_statement(period=p, sessions=[], terms=ShareTerms("EUR", monthly_fee=D(100)),
                         valid_to=date(2026, 3, 31))
    assert [(ln.description, ln.net) for ln in st.lines] == [
        ("monthly fee 2026-02 (14 of 28 days)", D("50.00")), ("monthly fee 2026-03", D("100.00"))]
    assert [(t.currency, t.payable) for t in st.totals] == [("EUR", D("150.00"))]


def test_a_share_limited_to_named_sites() -> None:
    # only hotel_* earns: 10 % of 4.00 + 2.50 = 0.65; the depot's revenue is still on the statement
    st = build_statement(period=MARCH, terms=ShareTerms("EUR", percent=D(10), sites=("hotel_*",)), sessions=[
        s("a", 2, "5", ("19", "4.00"), site="hotel_berlin"), s("b", 3, "5", ("19", "2.50"), site="hotel_bonn"),
        s("c", 4, "50", ("19", "30.00"), site="depot_hh")])
    assert [(ln.kind, ln.sessions, ln.net) for ln in st.lines] == [("revenue", 3, D("36.50")),
                                                                  ("share_percent", 2, D("0.65"))]
    assert st.covered_sessions == 2
    assert st.notes == ("1 session(s) at sites the share does not name (hotel_*) earn no share",)


def test_several_agreements_each_on_its_own_days() -> None:
    # "a" (5 March) under the first: 10 % of 4.00 = 0.40 and 20.00 × 15/31 = 9.677.. -> 9.68;
    # "b" (20 March) under the second: 0.05 × 8 kWh = 0.40 and 0.10 per session; 31 March has none
    first = ShareSegment("ag1", ShareTerms("EUR", percent=D(10), monthly_fee=D(20), source="first"),
                         date(2026, 1, 1), date(2026, 3, 16))
    second = ShareSegment("ag2", ShareTerms("EUR", per_kwh=D("0.05"), per_session=D("0.10"), source="second"),
                          date(2026, 3, 16), date(2026, 3, 31))
    st = build_statement(period=MARCH, segments=[first, second], sessions=[
        s("a", 5, "3", ("19", "4.00"), cur="EUR"), s("b", 20, "8", ("19", "2.00")), s("c", 31, "1", ("19", "1.00"))])
    assert [(ln.kind, ln.agreement_id, ln.net) for ln in st.lines if ln.kind != "revenue"] == [
        ("share_percent", "ag1", D("0.40")), ("share_monthly_fee", "ag1", D("9.68")),
        ("share_per_kwh", "ag2", D("0.40")), ("share_per_session", "ag2", D("0.10"))]
    assert [(a.agreement_id, a.local_start, a.local_end, a.sessions, a.payable) for a in st.agreements] == [
        ("ag1", date(2026, 3, 1), date(2026, 3, 16), 1, D("10.08")),
        ("ag2", date(2026, 3, 16), date(2026, 3, 31), 1, D("0.50"))]
    assert st.covered_sessions == 2 and st.totals[0].payable == D("10.58")
    # what each session earns, exactly, and under which agreement; "c" earns nothing but is stated
    assert [(x.session_id, x.agreement_id, x.share) for x in st.stated] == [
        ("a", "ag1", D("0.4")), ("b", "ag2", D("0.5")), ("c", None, D(0))]


def test_prior_sessions_settle_by_difference() -> None:
    terms = ShareTerms("EUR", percent=D("12.5"), per_kwh=D("0.015"))
    seg = ShareSegment("ag", terms, date(2026, 2, 1), date(2026, 3, 1))
    rerated = s("r", 1, "10", ("19", "5.123"))  # now 12.5 % of 5.123 + 0.15 = 0.790375
    late = s("l", 2, "2", ("19", "1.00"))       # 0.125 + 0.03 = 0.155
    same = s("u", 3, "1", ("19", "1.00"))       # re-rated to the same amount: nothing to settle
    st = build_statement(period=MARCH, sessions=[], segments=[], prior=[
        PriorSession(rerated, "PS-000007", seg, (("EUR", D("0.720875")),)),
        PriorSession(late, "PS-000007", seg),
        PriorSession(same, "PS-000007", seg, (("EUR", D("0.14")),))])
    assert [(ln.kind, ln.session_id, ln.refers_to, ln.net_unrounded, ln.net) for ln in st.lines] == [
        ("share_correction", "r", "PS-000007", D("0.0695"), D("0.07")),
        ("share_late_session", "l", "PS-000007", D("0.155"), D("0.16"))]
    assert [(x.session_id, x.share, x.refers_to) for x in st.stated] == [
        ("r", D("0.0695"), "PS-000007"), ("l", D("0.155"), "PS-000007"), ("u", D(0), "PS-000007")]
    assert st.corrections == 3 and st.totals[0].payable == D("0.23")
