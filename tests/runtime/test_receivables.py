"""The subledger's rules: open amounts are the signed sums of appended entries, allocation never
loses or invents a cent, and aging puts each open amount into exactly one bucket."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.money import CurrencyMismatch
from runtime.receivables import (
    AGING_BUCKETS,
    Entry,
    InsufficientCredit,
    ItemView,
    aging,
    allocate,
    available_credit,
    open_amount,
    take_credit,
)

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


def test_a_refund_takes_credit_oldest_first_and_never_more_than_there_is() -> None:
    credits = [ItemView("cr2", D("-3.00"), "EUR", date(2026, 12, 5)), ItemView("cr1", D("-2.50"), "EUR", date(2026, 12, 1)),
               ItemView("inv", D("9.00"), "EUR", date(2026, 11, 1))]  # an invoice is no credit
    assert available_credit(credits, "EUR") == D("5.50")
    a = take_credit(D("4.00"), "EUR", credits)
    assert [(e.item_id, e.kind, e.amount) for e in a.entries] == [("cr1", "refund", D("2.50")), ("cr2", "refund", D("1.50"))]
    assert a.allocated == D("4.00") and a.left == 0
    with pytest.raises(InsufficientCredit) as exc:
        take_credit(D("5.51"), "EUR", credits)
    assert exc.value.available == D("5.50")
    with pytest.raises(CurrencyMismatch):
        take_credit(D("1.00"), "CHF", credits)
    with pytest.raises(ValueError):
        take_credit(D("0"), "EUR", credits)
    # a refund puts the credit item back towards zero; its return takes it off again
    item = [Entry("cr1", "overpayment", D("2.50"), "EUR"), Entry("cr1", "refund", D("2.50"), "EUR")]
    assert open_amount(item, "EUR") == 0
    assert open_amount([*item, Entry("cr1", "refund_return", D("2.50"), "EUR")], "EUR") == D("-2.50")


money = st.decimals(min_value=D("0.01"), max_value=D("500"), places=2)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Decimal], list[tuple[str, object]]]:
    invoices = draw(st.lists(money, min_size=1, max_size=5))
    events = draw(st.lists(st.one_of(
        st.tuples(st.just("payment"), money),
        st.tuples(st.just("credit_note"), st.tuples(st.integers(0, 4), money)),
        st.tuples(st.just("return"), st.integers(0, 20)),
        st.tuples(st.just("return_charge"), st.tuples(st.integers(0, 4), money)),
        st.tuples(st.just("refund"), money),
        st.tuples(st.just("refund_return"), st.integers(0, 20)),
    ), max_size=25))
    return invoices, events


@settings(max_examples=200, deadline=None)
@given(histories())
def test_open_amounts_follow_the_events_and_every_event_balances(h: tuple[list[Decimal], list[tuple[str, object]]]) -> None:
    """For any sequence of payments (partial or over), credit notes, returns, return charges,
    refunds of credit balances and refunds whose transfer came back: each invoice's open amount =
    invoiced - credited - paid + returned + charges; what was left over sits on credit balance
    items, which a refund takes back towards zero and never past it (never more than the credit
    there is) and a returned refund opens again; over all items, open = invoiced - credited - paid
    + returned + charges + refunded - refunds returned; each event's entries add up to the event's
    amount."""
    invoices, events = h
    ids = [f"inv{i}" for i in range(len(invoices))]
    due = {iid: date(2026, 1, 1) + timedelta(days=i) for i, iid in enumerate(ids)}
    ledger: list[Entry] = [Entry(iid, "invoice", amt, "EUR") for iid, amt in zip(ids, invoices)]
    expect = dict(zip(ids, invoices))
    credits: list[str] = []  # the credit balance items, in the order they opened
    paid = credited = returned = charges = refunded = refund_returned = D(0)
    payments: list[list[Entry]] = []
    refunds: list[list[Entry]] = []

    def open_of(iid: str) -> Decimal:
        return open_amount([e for e in ledger if e.item_id == iid], "EUR")

    def views() -> list[ItemView]:
        return [ItemView(iid, open_of(iid), "EUR", due[iid]) for iid in ids]

    def credit_views() -> list[ItemView]:
        return [ItemView(c, open_of(c), "EUR", date(2026, 1, 1) + timedelta(days=n)) for n, c in enumerate(credits)]

    def leftover(amount: Decimal) -> None:
        if amount > 0:
            credits.append(f"cr{len(credits)}")
            ledger.append(Entry(credits[-1], "overpayment", amount, "EUR"))

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
            leftover(a.left)
            paid += arg
        elif kind == "credit_note":
            assert isinstance(arg, tuple)
            idx, amt = arg
            target = ids[idx % len(ids)]
            open_now = open_of(target)
            a = allocate(amt, "EUR", [v for v in views() if v.id == target], kind="credit_note")
            assert a.allocated == min(amt, max(open_now, D(0))) and a.allocated + a.left == amt
            for e in a.entries:
                expect[e.item_id] -= e.amount
            ledger.extend(a.entries)
            leftover(a.left)
            credited += amt
        elif kind == "return" and payments:
            assert isinstance(arg, int)
            for e in payments.pop(arg % len(payments)):
                ledger.append(Entry(e.item_id, "return", e.amount, "EUR"))
                expect[e.item_id] += e.amount
                returned += e.amount
        elif kind == "return_charge":
            assert isinstance(arg, tuple)
            idx, amt = arg
            ledger.append(Entry(ids[idx % len(ids)], "return_charge", amt, "EUR"))
            expect[ids[idx % len(ids)]] += amt
            charges += amt
        elif kind == "refund":
            assert isinstance(arg, Decimal)
            available = available_credit(credit_views(), "EUR")
            if arg > available:
                with pytest.raises(InsufficientCredit):
                    take_credit(arg, "EUR", credit_views())
                continue  # refused: nothing booked
            a = take_credit(arg, "EUR", credit_views())
            assert a.allocated == arg and a.left == 0  # balanced
            assert {e.kind for e in a.entries} == {"refund"}
            ledger.extend(a.entries)
            refunds.append(list(a.entries))
            refunded += arg
            assert available_credit(credit_views(), "EUR") == available - arg
        elif kind == "refund_return" and refunds:
            assert isinstance(arg, int)
            back = [Entry(e.item_id, "refund_return", e.amount, "EUR") for e in refunds.pop(arg % len(refunds))]
            ledger.extend(back)
            refund_returned += sum((e.amount for e in back), D(0))
        for v in views():
            assert v.open == expect[v.id]
            assert v.open >= 0  # allocation never takes an invoice below zero
        assert all(c.open <= 0 for c in credit_views())  # a refund never takes more than the credit
    total_invoiced = sum(invoices, D(0))
    everything = [*views(), *credit_views()]
    assert sum((v.open for v in everything), D(0)) == (
        total_invoiced - credited - paid + returned + charges + refunded - refund_returned)
    assert sum((v.open for v in views()), D(0)) == total_invoiced - sum(
        (e.amount for e in ledger if e.kind in ("payment", "credit_note")), D(0)) + sum(
        (e.amount for e in ledger if e.kind in ("return", "return_charge")), D(0))
    assert set(aging(views(), date(2026, 6, 1))) == set(AGING_BUCKETS)
