"""The dunning policy as the runtime applies it: stage dates, minimum, grace, dispute, fees with their
tax treatment, default interest over the base rate (data with validity dates), the flat fee."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.compiler import compile_ruleset
from runtime.dunning import (
    GERMAN_BASE_RATES,
    BaseRate,
    BaseRateUnknown,
    CaseState,
    DunningPolicy,
    DunningStage,
    OverdueItem,
    base_rate_on,
    debtor_kind,
    interest_for,
    next_step,
    plan_stage,
    select_policy,
)
from runtime.money import CurrencyMismatch

RULESET = """ruleset t currency EUR timezone Europe/Berlin
groups fleet
tariff a "A" { vat 19%
 energy 0.40 per kWh }
dunning standard "Standard" {
  stage 1 after 7 days reminder
  stage 2 after 14 days fee 5.00
  stage 3 after 14 days fee 10.00 vat 19%, approval required then block_tokens and hand_over
  ignore below 5.00
  grace 3 days
  interest 9 points over base rate for businesses
  interest 5 points over base rate for consumers
  base rate 2.00% valid 2026-01-01..2026-07-01
  base rate -1.5% valid 2026-07-01..2027-01-01
  flat fee 40 for businesses
  pause on dispute
  escalate after 2 days
}
dunning fleet "Fleet on net 60" {
  stage 1 after 30 days fee 0 untaxed
  stage 2 after 10 days from due_date
  for group fleet
}
"""


@pytest.fixture(scope="module")
def policies() -> tuple[DunningPolicy, ...]:
    res = compile_ruleset(RULESET, "t.evb")
    assert res.ruleset is not None, res.render()
    return res.ruleset.policies.dunning


def item(iid: str, open_: str, due: date, kind: str = "invoice", disputed: bool = False) -> OverdueItem:
    return OverdueItem(iid, f"INV-{iid}", kind, "EUR", D(open_), due, disputed, D(open_))


DUE = date(2026, 3, 1)


def test_the_block_is_read_into_a_typed_policy(policies: tuple[DunningPolicy, ...]) -> None:
    std, fleet = policies
    assert [(s.number, s.after_days, s.reminder, s.fee, s.fee_vat, s.approval, s.actions) for s in std.stages] == [
        (1, 7, True, None, None, False, ()), (2, 14, False, D("5.00"), None, False, ()),
        (3, 14, False, D("10.00"), D(19), True, ("block_tokens", "hand_over"))]
    assert (std.minimum, std.grace_days, std.pause_on_dispute, std.escalate_after_days, std.currency) == (
        D("5.00"), 3, True, 2, "EUR")
    assert std.interest_points("businesses") == 9 and std.interest_points("consumers") == 5
    assert std.flat_fee("businesses") == 40 and std.flat_fee("consumers") is None
    assert std.base_rates[-2:] == (BaseRate(D("2.00"), date(2026, 1, 1), date(2026, 7, 1)),
                                   BaseRate(D("-1.5"), date(2026, 7, 1), date(2027, 1, 1)))
    assert fleet.groups == ("fleet",) and fleet.stages[1].anchor == "due_date"
    assert select_policy(policies, ["fleet", "x"]) is fleet and select_policy(policies, ["x"]) is std
    assert debtor_kind("business") == "businesses" and debtor_kind("private") == "consumers"


def test_bad_base_rate_and_validity_are_reported() -> None:
    src = RULESET.replace("base rate 2.00% valid 2026-01-01..2026-07-01",
                          "base rate 80% valid 2026-07-01..2026-01-01")
    res = compile_ruleset(src, "t.evb")
    text = res.render()
    assert "base rate of 80% is out of range" in text and "ends before it starts" in text


def test_stage_dates_grace_and_anchors(policies: tuple[DunningPolicy, ...]) -> None:
    std = policies[0]
    items = [item("a", "100.00", DUE)]
    # grace 3 + 7 days: stage 1 on March 11
    assert next_step(std, items, DUE, CaseState()).kind == "wait"  # not overdue yet
    assert next_step(std, items, DUE + timedelta(days=3), CaseState()).reason == "not_yet_overdue"
    s = next_step(std, items, DUE + timedelta(days=4), CaseState())
    assert (s.kind, s.on, s.stage, s.overdue) == ("wait", date(2026, 3, 11), 1, D("100.00"))
    assert next_step(std, items, date(2026, 3, 11), CaseState()).kind == "stage"
    # stage 2 counts from the day stage 1 was reached (a late stage 1 moves stage 2)
    s2 = next_step(std, items, date(2026, 3, 20), CaseState(1, date(2026, 3, 15)))
    assert (s2.kind, s2.on, s2.stage) == ("wait", date(2026, 3, 29), 2)
    fleet = policies[1]
    f2 = next_step(fleet, items, date(2026, 4, 1), CaseState(1, date(2026, 3, 31)))
    assert (f2.kind, f2.stage) == ("stage", 2)  # 10 days from the due date are long past
    done = next_step(std, items, date(2026, 6, 1), CaseState(3, date(2026, 4, 10)))
    assert (done.kind, done.reason) == ("done", "last_stage_reached")
    refused = next_step(std, items, date(2026, 6, 1), CaseState(2, date(2026, 4, 10), refused=True))
    assert (refused.kind, refused.reason) == ("done", "approval_refused")


def test_minimum_dispute_and_paid_items(policies: tuple[DunningPolicy, ...]) -> None:
    std = policies[0]
    day = date(2026, 4, 1)
    assert next_step(std, [item("a", "4.99", DUE)], day, CaseState(1, DUE)).reason == "below_minimum"
    assert next_step(std, [item("a", "5.00", DUE)], day, CaseState()).kind == "stage"
    assert next_step(std, [item("a", "0", DUE)], day, CaseState()).reason == "nothing_overdue"
    assert next_step(std, [item("a", "50", DUE), item("b", "50", DUE, disputed=True)], day,
                     CaseState()).kind == "paused"
    # a fee item counts towards what is overdue; a credit balance does not
    s = next_step(std, [item("a", "3", DUE), item("f", "5.00", DUE, "dunning_fee"),
                        item("c", "-20", DUE, "credit_balance")], day, CaseState(1, DUE))
    assert (s.kind, s.overdue) == ("stage", D("8.00"))
    with pytest.raises(CurrencyMismatch):
        next_step(std, [OverdueItem("x", "X", "invoice", "USD", D(1), DUE)], day, CaseState())


def test_without_pause_a_disputed_item_is_left_out(policies: tuple[DunningPolicy, ...]) -> None:
    fleet = policies[1]
    plan = plan_stage(fleet, 1, [item("a", "50", DUE), item("b", "70", DUE, disputed=True)], date(2026, 4, 1),
                      CaseState(), "consumers")
    assert [i.id for i in plan.items] == ["a"] and plan.overdue == D(50)
    assert plan.fee is None  # fee 0 charges nothing


def test_stage_plan_fees_interest_and_flat_fee(policies: tuple[DunningPolicy, ...]) -> None:
    std = policies[0]
    items = [item("a", "1000.00", DUE), item("b", "200.00", DUE + timedelta(days=5))]
    p1 = plan_stage(std, 1, items, date(2026, 3, 11), CaseState(), "businesses")
    assert p1.letter == "reminder" and p1.fee is None and p1.flat_fees == ()  # a reminder charges no flat fee
    # interest for the days 2 ... 11 March at 2.00 + 9 = 11 % on 1,000.00: 10 days
    [ia, ib] = p1.interest
    assert (ia.start, ia.end, ia.basis) == (date(2026, 3, 2), date(2026, 3, 11), D("1000.00") * 11 * 10)
    assert ia.amount == D("3.01") and ia.currency == "EUR"
    assert (ib.start, ib.end) == (date(2026, 3, 7), date(2026, 3, 11)) and ib.amount == D("0.30")
    assert p1.pay_by == date(2026, 3, 25)
    case = CaseState(1, date(2026, 3, 11), p1.interest_until)
    p2 = plan_stage(std, 2, items, date(2026, 3, 25), case, "businesses")
    assert p2.fee is not None and (p2.fee.gross, p2.fee.treatment) == (D("5.00"), "not_taxable")
    assert [(f.item_id, f.gross) for f in p2.flat_fees] == [("a", D("40.00")), ("b", D("40.00"))]
    assert p2.interest[0].start == date(2026, 3, 12)  # no day is charged twice
    assert p2.total == D("1200.00") + D("5.00") + D("80.00") + sum(i.amount for i in p2.interest)
    case3 = CaseState(2, date(2026, 3, 25), p2.interest_until, ("a", "b"))
    p3 = plan_stage(std, 3, items, date(2026, 4, 8), case3, "businesses")
    assert p3.fee is not None and (p3.fee.net, p3.fee.vat, p3.fee.gross, p3.fee.treatment) == (
        D("10.00"), D("1.90"), D("11.90"), "taxable")
    assert p3.flat_fees == () and p3.approval and p3.actions == ("block_tokens", "hand_over")
    assert p3.pay_by == date(2026, 4, 22)
    consumer = plan_stage(std, 2, items, date(2026, 3, 25), case, "consumers")
    assert consumer.flat_fees == () and consumer.interest[0].pieces[0].rate == D("7.00")


def test_earlier_charges_still_open_are_listed_and_owed(policies: tuple[DunningPolicy, ...]) -> None:
    """Stage 2's fee falls due on its letter's pay-by day, the very day stage 3 is reached: not
    overdue, yet owed. The stage 3 letter lists it and its total includes it; a paid or disputed
    fee is not listed, and a fee alone never starts a stage (that stays the overdue items' call)."""
    std = policies[0]
    day3 = date(2026, 4, 8)
    invoice = item("a", "100.00", DUE)
    fee2 = OverdueItem("f2", "D-1-2", "dunning_fee", "EUR", D("5.00"), day3, False, D("5.00"), date(2026, 3, 25))
    case3 = CaseState(2, date(2026, 3, 25), (), ("a",))
    p3 = plan_stage(std, 3, [fee2, invoice], day3, case3, "consumers")
    assert [i.id for i in p3.items] == ["a", "f2"]
    assert p3.overdue == D("105.00") and p3.total == D("105.00") + p3.charged
    paid = plan_stage(std, 3, [replace(fee2, open=D(0)), invoice], day3, case3, "consumers")
    disputed = plan_stage(std, 3, [replace(fee2, disputed=True), invoice], day3, case3, "consumers")
    assert [i.id for i in paid.items] == [i.id for i in disputed.items] == ["a"]
    assert next_step(std, [fee2], day3, case3).kind != "stage"


def test_interest_splits_where_the_base_rate_changes(policies: tuple[DunningPolicy, ...]) -> None:
    std = policies[0]
    line = interest_for(item("a", "365.00", DUE), D(5), date(2026, 6, 29), date(2026, 7, 2), std.base_rates)
    assert line is not None
    assert [(p.start, p.end, p.days, p.rate) for p in line.pieces] == [
        (date(2026, 6, 29), date(2026, 6, 30), 2, D("7.00")), (date(2026, 7, 1), date(2026, 7, 2), 2, D("3.5"))]
    assert line.basis == D("365.00") * (D(7) * 2 + D("3.5") * 2)
    assert line.amount == D("0.21")
    with pytest.raises(BaseRateUnknown):
        interest_for(item("a", "1", DUE), D(5), date(2027, 1, 1), date(2027, 1, 2), std.base_rates)
    assert base_rate_on(date(2025, 8, 1), GERMAN_BASE_RATES) == D("1.27")
    assert interest_for(item("a", "1", DUE), D(5), date(2026, 3, 2), date(2026, 3, 1), std.base_rates) is None


def test_a_policys_base_rate_overrides_the_shipped_table() -> None:
    rates = GERMAN_BASE_RATES + (BaseRate(D(9), date(2025, 7, 1), date(2025, 8, 1)),)
    assert base_rate_on(date(2025, 7, 15), rates) == D(9) and base_rate_on(date(2025, 8, 1), rates) == D("1.27")


_days = st.integers(min_value=0, max_value=120)
_amounts = st.decimals(min_value=D("0.01"), max_value=D(100000), places=2)


@settings(max_examples=200, deadline=None)
@given(amount=_amounts, split=st.integers(min_value=1, max_value=100), length=st.integers(min_value=2, max_value=150),
       points=st.sampled_from([D(5), D(9), D("8.5")]))
def test_interest_is_additive_over_periods(amount: D, split: int, length: int, points: D) -> None:
    """Charging interest in two stages gives the same exact amount as once over the whole time,
    each rounded line is within half a cent of its exact amount, and interest never goes negative."""
    rates = GERMAN_BASE_RATES + (BaseRate(D("2.00"), date(2026, 1, 1), None),)
    it = item("a", str(amount), date(2025, 10, 1))
    start = date(2025, 11, 1)
    cut = start + timedelta(days=min(split, length - 1))
    end = start + timedelta(days=length)
    whole = interest_for(it, points, start, end, rates)
    first = interest_for(it, points, start, cut - timedelta(days=1), rates)
    second = interest_for(it, points, cut, end, rates)
    assert whole is not None and first is not None and second is not None
    assert first.basis + second.basis == whole.basis
    assert sum(p.days for p in whole.pieces) == (end - start).days + 1
    for line in (whole, first, second):
        assert abs(line.amount - line.exact) <= D("0.005") and line.amount >= 0
        assert line.amount == line.amount.quantize(D("0.01"))


@settings(max_examples=200, deadline=None)
@given(opens=st.lists(st.tuples(_amounts, _days, st.booleans()), min_size=1, max_size=8),
       today_offset=st.integers(min_value=0, max_value=200), stage=st.integers(min_value=0, max_value=3))
def test_next_step_is_consistent(opens: list[tuple[D, int, bool]], today_offset: int, stage: int) -> None:
    """A stage is due only when what is overdue reaches the minimum, on or after its date; a case
    with nothing overdue never waits for a stage."""
    pol = DunningPolicy("p", (DunningStage(1, 7, reminder=True), DunningStage(2, 14, fee=D("5.00")),
                              DunningStage(3, 14, fee=D("10.00"))), minimum=D("20.00"), grace_days=2)
    items = [item(f"i{n}", str(a), DUE + timedelta(days=d), disputed=disp) for n, (a, d, disp) in enumerate(opens)]
    today = DUE + timedelta(days=today_offset)
    case = CaseState(stage, today - timedelta(days=5) if stage else None)
    s = next_step(pol, items, today, case)
    overdue = sum((i.open for i in items if not i.disputed and i.due_date + timedelta(days=2) < today), D(0))
    if s.kind == "stage":
        assert overdue >= D("20.00") and s.stage == stage + 1 and s.overdue == overdue
        plan = plan_stage(pol, s.stage, items, today, case, "consumers")
        assert plan.overdue == overdue and plan.total == overdue + plan.charged
        assert all(not i.disputed for i in plan.items)
    elif s.kind == "wait":
        assert s.on is not None and s.on > today
    elif s.kind == "close":
        assert overdue < D("20.00")
    else:
        assert s.kind == "done" and stage == 3
