"""The subledger's rules: open amounts are the signed sums of appended entries, allocation never
loses or invents a cent, and aging puts each open amount into exactly one bucket."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.money import CurrencyMismatch
from runtime.receivables import AGING_BUCKETS, Entry, ItemView, aging, allocate, open_amount

D = Decimal


def test_partial_payment_then_overpayment_leaves_a_credit_balance() -> None:
    items = [ItemView("inv1", D("30.00"), "EUR", date(2026, 12, 15)), ItemView("inv2", D("12.83"), "EUR", date(2026, 11, 15))]
    a = allocate(D("20.00"), "EUR", items)
    assert [(e.item_id, e.amount) for e in a.entries] == [("inv2", D("12.83")), ("inv1", D("7.17"))]
    assert a.left == 0
    b = allocate(D("50.00"), "EUR", [ItemView("inv1", D("22.83"), "EUR", date(2026, 12, 15))])
    assert [(e.item_id, e.amount) for e in b.entries] == [("inv1", D("22.83"))] and b.left == D("27.17")


def test_remittance_targets_come_first_and_unknown_targets_are_refused() -> None:
    items = [ItemView("old", D("10"), "EUR", date(2026, 1, 1)), ItemView("new", D("10"), "EUR", date(2026, 2, 1))]
    a = allocate(D("10"), "EUR", items, targets=["new"])
    assert [(e.item_id, e.amount) for e in a.entries] == [("new", D("10"))]
    with pytest.raises(KeyError):
        allocate(D("10"), "EUR", items, targets=["nope"])


def test_currencies_never_mix() -> None:
    with pytest.raises(CurrencyMismatch):
        allocate(D("10"), "EUR", [ItemView("x", D("10"), "CHF", date(2026, 1, 1))])
    with pytest.raises(CurrencyMismatch):
        open_amount([Entry("x", "invoice", D("10"), "EUR"), Entry("x", "payment", D("1"), "CHF")], "EUR")


def test_aging_buckets_by_days_past_due() -> None:
    as_of = date(2026, 12, 31)
    items = [ItemView(str(n), D(n), "EUR", as_of - timedelta(days=n)) for n in (0, 1, 30, 31, 60, 61, 90, 91)]
    items.append(ItemView("credit", D("-5"), "EUR", date(2026, 1, 1)))
    assert aging(items, as_of) == {"not_due": D(0), "0_30": D(31), "31_60": D(91), "61_90": D(151), "over_90": D(91)}


money = st.decimals(min_value=D("0.01"), max_value=D("500"), places=2)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Decimal], list[tuple[str, object]]]:
    invoices = draw(st.lists(money, min_size=1, max_size=5))
    events = draw(st.lists(st.one_of(
        st.tuples(st.just("payment"), money),
        st.tuples(st.just("credit_note"), st.tuples(st.integers(0, 4), money)),
        st.tuples(st.just("return"), st.integers(0, 20)),
        st.tuples(st.just("return_charge"), st.tuples(st.integers(0, 4), money)),
        st.tuples(st.just("refund"), st.just(None)),
    ), max_size=25))
    return invoices, events


@settings(max_examples=200, deadline=None)
@given(histories())
def test_open_amounts_follow_the_events_and_every_event_balances(h: tuple[list[Decimal], list[tuple[str, object]]]) -> None:
    """For any sequence of payments (partial or over), credit notes, returns, return charges and
    refunds: each invoice's open amount = invoiced - credited - paid + returned + charges, the
    credit balance holds what was overpaid less what was refunded, and each event's entries add up
    to the event's amount."""
    invoices, events = h
    ids = [f"inv{i}" for i in range(len(invoices))]
    due = {iid: date(2026, 1, 1) + timedelta(days=i) for i, iid in enumerate(ids)}
    ledger: list[Entry] = [Entry(iid, "invoice", amt, "EUR") for iid, amt in zip(ids, invoices)]
    expect = dict(zip(ids, invoices))
    credit = D(0)  # what the customer has to its good
    payments: list[list[Entry]] = []

    def views() -> list[ItemView]:
        return [ItemView(iid, open_amount([e for e in ledger if e.item_id == iid], "EUR"), "EUR", due[iid])
                for iid in ids]

    for kind, arg in events:
        if kind == "payment":
            assert isinstance(arg, Decimal)
            a = allocate(arg, "EUR", views())
            assert a.allocated + a.left == arg  # balanced: nothing lost, nothing made up
            assert all(e.amount > 0 for e in a.entries)
            for e in a.entries:
                expect[e.item_id] -= e.amount
            ledger.extend(a.entries)
            payments.append(list(a.entries))
            credit += a.left
        elif kind == "credit_note":
            assert isinstance(arg, tuple)
            idx, amt = arg
            target = ids[idx % len(ids)]
            open_now = next(v.open for v in views() if v.id == target)
            a = allocate(amt, "EUR", [v for v in views() if v.id == target], kind="credit_note")
            assert a.allocated == min(amt, max(open_now, D(0))) and a.allocated + a.left == amt
            for e in a.entries:
                expect[e.item_id] -= e.amount
            ledger.extend(a.entries)
            credit += a.left
        elif kind == "return" and payments:
            assert isinstance(arg, int)
            returned = payments.pop(arg % len(payments))
            for e in returned:
                ledger.append(Entry(e.item_id, "return", e.amount, "EUR"))
                expect[e.item_id] += e.amount
        elif kind == "return_charge":
            assert isinstance(arg, tuple)
            idx, amt = arg
            ledger.append(Entry(ids[idx % len(ids)], "return_charge", amt, "EUR"))
            expect[ids[idx % len(ids)]] += amt
        elif kind == "refund":
            credit = D(0)  # the whole credit balance is paid out
        for v in views():
            assert v.open == expect[v.id]
            assert v.open >= 0  # allocation never takes an invoice below zero
        assert credit >= 0
    total_invoiced = sum(invoices, D(0))
    assert sum((v.open for v in views()), D(0)) == total_invoiced - sum(
        (e.amount for e in ledger if e.kind in ("payment", "credit_note")), D(0)) + sum(
        (e.amount for e in ledger if e.kind in ("return", "return_charge")), D(0))
    assert set(aging(views(), date(2026, 6, 1))) == set(AGING_BUCKETS)
