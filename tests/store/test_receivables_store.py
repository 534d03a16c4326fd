"""Open items in the database (SQLite and PostgreSQL): an invoice opens its item once, payments
spread and overpay into a credit balance that the next invoice uses, credit notes take off what
they correct, entries cannot be edited, and nothing is summed by SQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from store import receivables as R
from store.models import Tenant
from store.types import new_id

D = Decimal


def _tenant(engine: Engine) -> str:
    from sqlalchemy.orm import Session

    with Session(engine) as db:
        t = Tenant(id=new_id("ten"), name="t")
        db.add(t)
        db.commit()
        return t.id


def _inv(n: int, gross: str, due: date, kind: str = "invoice", corrects: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(id=f"inv_{n}", kind=kind, number=f"{'CN' if kind == 'credit_note' else 'INV'}-{n:06d}",
                           customer_id="cus_1", account_id="acc_1", currency="EUR", gross_total=D(gross),
                           issue_date=date(2026, 12, 1), due_date=due, corrects=list(corrects))


def test_items_payments_credit_balances_and_credit_notes(engine: Engine) -> None:
    t = _tenant(engine)
    with engine.begin() as conn:
        first = R.open_invoice_item(conn, t, _inv(1, "0.60", date(2026, 12, 15)))
        again = R.open_invoice_item(conn, t, _inv(1, "0.60", date(2026, 12, 15)))
        assert again.duplicate and again.event_id == first.event_id
        R.open_invoice_item(conn, t, _inv(2, "12.83", date(2026, 11, 15)))
        # 0.10, 0.20 and 0.30 add up exactly (SQLite would sum the text as floats)
        for i, amt in enumerate(("0.10", "0.20", "0.30")):
            R.book_payment(conn, t, key=f"p{i}", customer_id="cus_1", account_id="acc_1", amount=D(amt),
                           currency="EUR", booked_on=date(2026, 12, 2), reference=f"p{i}")
        states = {s.number: s.open for s in R.item_states(conn, t, account_id="acc_1")}
        assert states == {"INV-000002": D("12.23"), "INV-000001": D("0.60")}  # oldest due first
        over = R.book_payment(conn, t, key="p3", customer_id="cus_1", account_id="acc_1", amount=D("20.00"),
                              currency="EUR", booked_on=date(2026, 12, 3), reference="bank 1")
        assert over.left == D("7.17") and over.credit_item_id is not None
        assert R.book_payment(conn, t, key="p3", customer_id="cus_1", account_id="acc_1", amount=D("20.00"),
                              currency="EUR", booked_on=date(2026, 12, 3), reference="bank 1").duplicate
        # the next invoice uses the credit balance
        R.open_invoice_item(conn, t, _inv(3, "10.00", date(2027, 1, 15)))
        states = {s.number: (s.kind, s.open) for s in R.item_states(conn, t, account_id="acc_1")}
        assert states["INV-000003"] == ("invoice", D("2.83"))
        assert sorted(v for k, v in states.items() if v[0] == "credit_balance") == [("credit_balance", D(0))]
        # a credit note of 5.00 on INV-000003 takes off 2.83; 2.17 becomes a credit balance
        cn = R.open_invoice_item(conn, t, _inv(4, "5.00", date(2027, 1, 15), "credit_note", ("INV-000003",)))
        assert [(k, a) for _, k, a in cn.entries] == [("credit_note", D("2.83"))] and cn.left == D("2.17")
        assert sum((s.open for s in R.item_states(conn, t)), D(0)) == D("-2.17")
        aged = R.aged_receivables(conn, t, date(2026, 12, 31))
        assert aged == {"EUR": {"not_due": D(0), "0_30": D(0), "31_60": D(0), "61_90": D(0), "over_90": D(0)}}


def test_entries_are_append_only(engine: Engine) -> None:
    t = _tenant(engine)
    with engine.begin() as conn:
        R.open_invoice_item(conn, t, _inv(1, "9.99", date(2026, 12, 15)))
    for stmt in (update(R.receivable_entry).values(amount=D("0.01")), text("DELETE FROM receivable_entry"),
                 update(R.receivable_event).values(amount=D("0.01"))):
        with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as conn:
            conn.execute(stmt)
    with engine.begin() as conn:
        assert [s.open for s in R.item_states(conn, t)] == [D("9.99")]


def test_many_invoices_at_once_book_as_one_by_one(engine: Engine) -> None:
    """``open_invoice_items`` (month-end's run of invoices in one transaction) leaves the same open
    items and journal balances as ``open_invoice_item`` called for each; a
    credit note and an invoice booked before take the one-by-one path at their place."""
    from store import accounting as A

    def run(tenant: str, at_once: bool) -> tuple[dict[str, Decimal], dict[tuple[str, str, str], Decimal]]:
        def inv(n: int, gross: str, account: str, kind: str = "invoice",
                corrects: tuple[str, ...] = ()) -> SimpleNamespace:
            got = _inv(n, gross, date(2026, 12, 15), kind, corrects)
            got.id, got.account_id, got.customer_id = f"{tenant}_{n}", account, f"cus_{account}"
            return got

        with engine.begin() as conn:
            R.open_invoice_item(conn, tenant, inv(1, "10.00", "a"))
            # account b has a credit balance of 7.50 before the run
            R.book_payment(conn, tenant, key="pay", customer_id="cus_b", account_id="b", amount=D("7.50"),
                           currency="EUR", booked_on=date(2026, 12, 1), reference="bank")
        invs = [inv(1, "10.00", "a"), inv(2, "5.00", "b"), inv(3, "3.00", "b"), inv(4, "8.40", "a"),
                inv(5, "2.00", "a", "credit_note", ("INV-000004",)), inv(6, "1.00", "c"), inv(6, "1.00", "c")]
        with engine.begin() as conn:
            if at_once:
                booked = R.open_invoice_items(conn, tenant, invs)
            else:
                booked = [R.open_invoice_item(conn, tenant, i) for i in invs]
            assert [b.duplicate for b in booked] == [True, False, False, False, False, False, True]
            states = {f"{s.account_id} {s.kind} {s.number}": s.open for s in R.item_states(conn, tenant)}
            roles = A.role_balances(conn, tenant)
        return states, roles

    t1, t2 = _tenant(engine), _tenant(engine)
    one_by_one, at_once = run(t1, False), run(t2, True)
    # (one by one, b's credit is used in two events, one per invoice; at once in one)
    assert at_once == one_by_one
    states, roles = at_once
    # 7.50 of credit: 5.00 on INV-000002 and 2.50 on INV-000003
    assert states["b invoice INV-000002"] == 0 and states["b invoice INV-000003"] == D("0.50")
    assert states["a invoice INV-000004"] == D("6.40")
    assert roles[("debtor", "", "EUR")] == sum((v for k, v in states.items() if " invoice " in k), D(0))
