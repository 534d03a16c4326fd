"""Energy reimbursement and commissions priced per session, and the settlement invariant:
host share + reimbursement + commissions + the CPO's remainder = the sessions' net revenue,
exactly before rounding and to the cent line by line after (issue 15)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from decimal import localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.compiler import compile_ruleset
from dsl.revenue_share import revenue_share_terms
from runtime.money import ZERO
from runtime.rating import RatingContext
from runtime.series import BoundedSeries
from runtime.sessions import MeterValue, SessionFacts
from runtime.settlements import SettlementError
from runtime.statements import (
    SessionRevenue,
    ShareSegment,
    ShareTerms,
    build_statement,
    session_share,
    statement_period,
)

BERLIN = "Europe/Berlin"
APRIL = statement_period(BERLIN, month="2026-04")
T0 = datetime(2026, 3, 31, 22, tzinfo=UTC)  # 1 April 00:00 in Berlin


def _series(values: list[str], name: str = "spot") -> BoundedSeries:
    return BoundedSeries.of(name, [(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1), D(v))
                                   for i, v in enumerate(values)])


def _terms(block: str, head: str = "") -> ShareTerms:
    text = ("ruleset t currency EUR timezone Europe/Berlin\nseries spot\ngroups fleet\n" + head +
            "tariff a { vat 19%; energy 0.5 per kWh }\n" + block)
    terms, diags = revenue_share_terms(text, "h")
    assert terms is not None and not [d for d in diags if d.is_error], diags
    return terms


def test_reimbursement_splits_energy_exactly_as_rating_does() -> None:
    """The same indexed price as a tariff's energy price and as a reimbursement: the same amount,
    because both cut the session at the same meter values, time windows and series intervals."""
    src = """ruleset t currency EUR timezone Europe/Berlin
series spot
tariff a { vat 0%
  energy index(spot) + 0.02 per kWh
  when time 01:30..02:15 { energy 0.40 per kWh }
}
revenue_share h {
  reimburse energy at 0.40 per kWh when time 01:30..02:15
  reimburse energy at index(spot) + 0.02 per kWh
}
"""
    res = compile_ruleset(src)
    assert res.ruleset is not None, res.render()
    terms, _ = revenue_share_terms(src, "h")
    assert terms is not None and terms.reimburse is not None
    ser = _series(["0.0852", "0.0800", "-0.0031", "0.0700"])
    facts = SessionFacts("m", T0 + timedelta(minutes=40), T0 + timedelta(hours=2, minutes=50), D("17.3"),
                         meter_values=(MeterValue(T0 + timedelta(minutes=40), D(0)),
                                       MeterValue(T0 + timedelta(hours=1, minutes=5), D(4100)),
                                       MeterValue(T0 + timedelta(hours=2, minutes=20), D(12000)),
                                       MeterValue(T0 + timedelta(hours=2, minutes=50), D(17300))))
    rated = res.ruleset.rate(facts, RatingContext(series={"spot": ser}), "a")
    stretches = terms.reimburse.price("m", date(2026, 4, 1), D("17.3"), facts, {"spot": ser})
    assert sum((x.amount for x in stretches), ZERO) == sum((ln.net for ln in rated.lines), ZERO)
    assert sum((x.kwh for x in stretches), ZERO) == D("17.3")
    # the session runs 00:40..02:50 local: 01:30..02:15 at the window's price, the rest at the series
    window = [x for x in stretches if x.rule == 0]
    assert [(x.start_ms - x.end_ms) // 60000 for x in window] == [-30, -15]  # cut at 02:00 (series) too
    assert all(x.unit_price == D("0.40") for x in window)


def test_a_gap_in_the_series_names_the_session_and_the_interval() -> None:
    terms = _terms("revenue_share h { reimburse energy at index(spot) + 0.02 per kWh }")
    ser = BoundedSeries.of("spot", [(T0, T0 + timedelta(hours=1), D("0.1")),
                                    (T0 + timedelta(hours=2), T0 + timedelta(hours=3), D("0.1"))])
    facts = SessionFacts("g", T0 + timedelta(minutes=30), T0 + timedelta(hours=1, minutes=30), D(10))
    s = SessionRevenue("g", date(2026, 4, 1), "EUR", D(10), ((D(19), D(5)),), facts=facts)
    with pytest.raises(SettlementError) as exc:
        build_statement(period=APRIL, sessions=[s], terms=terms, series={"spot": ser})
    assert exc.value.session_id == "g"
    assert "2026-03-31T23:00:00Z..2026-03-31T23:30:00Z (5 kWh)" in str(exc.value)
    assert "nothing is imported for 2026-03-31T23:00Z..2026-04-01T00:00Z" in str(exc.value)


def test_commissions_combine_and_trace_their_rules() -> None:
    terms = _terms("revenue_share h {\n host gets 10% of net revenue\n commission c\n}\n"
                   "commission c {\n 0.30 per session\n 0.01 per kWh for group fleet\n 2% of net revenue\n"
                   " 30.00 per month\n charge host\n valid 2026-04-16..\n}\n")
    f = SessionFacts("x", T0, T0 + timedelta(hours=1), D(10), customer_groups=frozenset({"fleet"}))
    sessions = [SessionRevenue("x", date(2026, 4, 20), "EUR", D(10), ((D(19), D(5)),), facts=f),
                SessionRevenue("y", date(2026, 4, 21), "EUR", D(4), ((D(19), D(2)),),
                               facts=SessionFacts("y", T0, T0 + timedelta(hours=1), D(4))),
                SessionRevenue("z", date(2026, 4, 2), "EUR", D(4), ((D(19), D(2)),),  # before the validity
                               facts=SessionFacts("z", T0, T0 + timedelta(hours=1), D(4)))]
    draft = build_statement(period=APRIL, sessions=sessions, terms=terms)
    got = [(ln.description, ln.quantity, ln.net_unrounded, ln.net) for ln in draft.lines if ln.kind == "commission"]
    assert got == [
        ("commission c: 0.30 per session, charged to the partner", D(2), D("-0.60"), D("-0.60")),
        ("commission c: 0.01 per kWh for group fleet, charged to the partner", D(10), D("-0.10"), D("-0.10")),
        ("commission c: 2% of net revenue, charged to the partner", D(7), D("-0.14"), D("-0.14")),
        ("commission c: 30.00 per month 2026-04 (15 of 30 days), charged to the partner", D(15), D("-15.000"),
         D("-15.00"))]
    assert [ln.trace[0]["rule"] for ln in draft.lines if ln.kind == "commission"][:2] == [
        "commission c, line 10: 0.30 per session", "commission c, line 11: 0.01 per kWh for group fleet"]
    # per session, the stated share includes the session's commissions (corrections settle them)
    assert session_share(terms, sessions[0]) == {"EUR": D("0.5") - D("0.30") - D("0.10") - D("0.10")}


# ---------------------------------------------------------------- the settlement invariant
HOURS = 24 * 30
PER = st.sampled_from(["0.30 per session", "0.01 per kWh", "2% of net revenue", "12.50 per month",
                       "0.05 per kWh for group fleet", "0.20 per transaction for site b"])


@st.composite
def _agreement(draw: st.DrawFn) -> ShareTerms:
    share = []
    if draw(st.booleans()):
        share.append(f"host gets {draw(st.sampled_from(['0', '12.5', '30', '33.3']))}% of net revenue")
    if draw(st.booleans()):
        share.append("host gets 0.015 per kWh")
    if draw(st.booleans()):
        share.append("host gets 49.90 per month")
    reimb = draw(st.sampled_from(["", "reimburse energy at 0.25 per kWh",
                                  "reimburse energy at index(spot) + 0.02 per kWh",
                                  "reimburse energy at index(spot) * 1.1 per kWh when time 22:00..06:00\n"
                                  "reimburse energy at 0.18 per kWh"]))
    blocks = []
    refs = []
    for i in range(draw(st.integers(0, 2))):
        rules = draw(st.lists(PER, min_size=1, max_size=3, unique=True))
        party = draw(st.sampled_from(["charge host", "pay host"]))
        blocks.append(f"commission c{i} {{\n" + "\n".join(rules) + f"\n{party}\n}}\n")
        refs.append(f"c{i}")
    body = "\n".join(share + ([reimb] if reimb else []) + ([f"commission {', '.join(refs)}"] if refs else []))
    return _terms(f"revenue_share h {{\n{body}\n}}\n" + "".join(blocks))


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[ShareSegment], list[SessionRevenue], BoundedSeries]:
    """One agreement for the month, or two: the second from a drawn day on."""
    first = draw(_agreement())
    split = draw(st.one_of(st.none(), st.integers(2, 30)))
    if split is None:
        segments = [ShareSegment("ag", first, APRIL.local_start, APRIL.local_end)]
    else:
        cut = date(2026, 4, split)
        segments = [ShareSegment("ag1", first, APRIL.local_start, cut),
                    ShareSegment("ag2", draw(_agreement()), cut, APRIL.local_end)]
    day = draw(st.lists(st.decimals(min_value=D("-0.5"), max_value=D("0.9"), places=5), min_size=24, max_size=24))
    ser = _series([str(day[i % 24]) for i in range(HOURS)])
    sessions = []
    for k in range(draw(st.integers(0, 8))):
        start = T0 + timedelta(minutes=draw(st.integers(0, (HOURS - 5) * 60)))
        minutes = draw(st.integers(1, 240))
        kwh = draw(st.decimals(min_value=D("0.001"), max_value=D(80), places=3))
        lines = tuple((D(r), draw(st.decimals(min_value=D(0), max_value=D(60), places=6)))
                      for r in draw(st.lists(st.sampled_from(["19", "7"]), min_size=1, max_size=2)))
        site = draw(st.sampled_from(["a", "b"]))
        groups = frozenset({"fleet"}) if draw(st.booleans()) else frozenset()
        facts = SessionFacts(f"s{k}", start, start + timedelta(minutes=minutes), kwh, site_id=site,
                             customer_groups=groups)
        sessions.append(SessionRevenue(f"s{k}", _local(start), "EUR", kwh, lines, site, f"r{k}", facts))
    return segments, sessions, ser


def _local(t: datetime) -> date:
    from zoneinfo import ZoneInfo

    return t.astimezone(ZoneInfo(BERLIN)).date()


@settings(max_examples=80, deadline=None)
@given(_case())
def test_share_reimbursement_commissions_and_remainder_make_up_the_net_revenue(
        case: tuple[list[ShareSegment], list[SessionRevenue], BoundedSeries]) -> None:
    segments, sessions, ser = case
    draft = build_statement(period=APRIL, sessions=sessions, segments=segments, series={"spot": ser})
    revenue = [ln for ln in draft.lines if ln.kind == "revenue"]
    parts = [ln for ln in draft.lines if ln.kind != "revenue"]
    assert {ln.kind for ln in parts} <= {"share_percent", "share_per_kwh", "share_monthly_fee", "reimbursement",
                                         "commission"}
    # the parts are exact to the decimal context's 28 digits; every sum below is taken with room to
    # spare, so an identity is not cut short by the context's own rounding (summed in another order,
    # 28-digit sums of the same parts may differ in their last digit)
    with localcontext() as wide:
        wide.prec = 80
        net_exact = sum((s.net for s in sessions), ZERO)
        assert sum((ln.net_unrounded for ln in revenue), ZERO) == net_exact
        host = sum((ln.net_unrounded for ln in parts if ln.kind.startswith("share_")), ZERO)
        reimb = sum((ln.net_unrounded for ln in parts if ln.kind == "reimbursement"), ZERO)
        comm = sum((ln.net_unrounded for ln in parts if ln.kind == "commission"), ZERO)
        remainder = net_exact - host - reimb - comm
        assert host + reimb + comm + remainder == net_exact
        assert remainder == net_exact - (host + reimb + comm)
        # per session, what the lines hold (the monthly parts belong to no session): exactly, but for
        # the 28th digit of the decimal context when a stretch's energy was divided pro rata by time
        monthly = sum((ln.net_unrounded for ln in parts if ln.unit.startswith("days of")), ZERO)
        stated = sum((x.share for x in draft.stated), ZERO)
        exact = all(g.terms is None or g.terms.reimburse is None or not g.terms.reimburse.cuts.any
                    for g in segments)
        assert stated + monthly == host + reimb + comm if exact else abs(stated + monthly - host - reimb - comm) < D("1e-20")
    # reimbursed energy: every kWh of every session its agreement reimburses, once (the last price
    # has no condition; to the 28 digits of the decimal context: pro-rata stretches are divided by time)
    reimbursed = [s for s in sessions for g in segments if g.holds(s.local_date) and g.terms is not None
                  and (g.terms.reimburse is not None or g.terms.reimburse_per_kwh is not None)]
    assert abs(sum((ln.quantity for ln in parts if ln.kind == "reimbursement"), ZERO) - sum(
        (s.energy_kwh for s in reimbursed), ZERO)) < D("1e-20")
    # after rounding: each line within half a cent of its exact amount, totals are sums of lines
    for ln in draft.lines:
        assert abs(ln.net - ln.net_unrounded) <= D("0.005")
    (total,) = draft.totals or (None,)
    if total is not None:
        assert total.net == sum((ln.net for ln in revenue), ZERO)
        assert total.payable == sum((ln.net for ln in parts), ZERO)
        cpo = total.net - total.payable
        assert abs(cpo - remainder) <= D("0.005") * len(draft.lines)


def test_a_re_rated_session_corrects_its_reimbursement_and_commissions_later() -> None:
    """The stated share of a session includes its reimbursement and commissions; when its facts
    change (meter values corrected, re-rated), the next statement settles the difference."""
    from runtime.statements import PriorSession

    terms = _terms("revenue_share h {\n reimburse energy at index(spot) + 0.02 per kWh\n commission c\n}\n"
                   "commission c { 0.01 per kWh; charge host }\n")
    ser = _series(["0.10", "0.20", "0.30"])
    seg = ShareSegment("ag", terms, APRIL.local_start, APRIL.local_end)

    def rev(kwh_first_hour: str) -> SessionRevenue:
        facts = SessionFacts("x", T0 + timedelta(minutes=30), T0 + timedelta(hours=1, minutes=30), D(10),
                             meter_values=(MeterValue(T0 + timedelta(minutes=30), D(0)),
                                           MeterValue(T0 + timedelta(hours=1), D(kwh_first_hour) * 1000),
                                           MeterValue(T0 + timedelta(hours=1, minutes=30), D(10000))))
        return SessionRevenue("x", date(2026, 4, 1), "EUR", D(10), ((D(19), D(5)),), "", "r", facts)

    first = build_statement(period=APRIL, sessions=[rev("4")], segments=[seg], series={"spot": ser})
    # 4 × 0.12 + 6 × 0.22 = 1.80 reimbursed, 0.10 commission charged
    assert [x.share for x in first.stated] == [D("1.70")]
    may = statement_period(BERLIN, month="2026-05")
    later = build_statement(period=may, sessions=[], segments=[ShareSegment("ag", terms, may.local_start,
                                                                            may.local_end)],
                            prior=[PriorSession(rev("8"), "PS-000001", seg, (("EUR", D("1.70")),))],
                            series={"spot": ser})
    # 8 × 0.12 + 2 × 0.22 = 1.40, minus 0.10: the share falls by 0.40
    (corr,) = [ln for ln in later.lines if ln.kind == "share_correction"]
    assert (corr.net_unrounded, corr.refers_to) == (D("-0.40"), "PS-000001")
