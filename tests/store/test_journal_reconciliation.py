"""Reconciliation over random event sequences (hypothesis), on SQLite and PostgreSQL: whatever
happens — invoices at several VAT rates, credit notes, payments that under- or overpay, returns
with charges, credit balances used — the journal says what the subledger and the documents say:
receivable balances = open items; revenue = invoice nets − credit-note nets; VAT payable per rate
= invoice VAT − credit-note VAT; the bank = payments − returns; every entry balances."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert

from runtime.money import tax_groups
from store import accounting as A
from store import receivables as R
from store.models import Tenant
from store.types import new_id, utcnow

D = Decimal
RATES = (D(19), D(7), D(0))
ACCOUNTS = ("acc_a", "acc_b")
_n = itertools.count(1)

cents = st.integers(min_value=1, max_value=50_000).map(lambda c: D(c).scaleb(-2))
invoice = st.tuples(st.just("invoice"), st.sampled_from(ACCOUNTS),
                    st.lists(st.tuples(st.sampled_from(RATES), cents), min_size=1, max_size=3))
credit_note = st.tuples(st.just("credit_note"), st.integers(min_value=0, max_value=20),
                        st.lists(st.tuples(st.sampled_from(RATES), cents), min_size=1, max_size=2))
payment = st.tuples(st.just("payment"), st.sampled_from(ACCOUNTS), cents)
returned = st.tuples(st.just("return"), st.integers(min_value=0, max_value=20), cents,
                     st.sampled_from([D(0), D("3.00")]))
events = st.lists(st.one_of(invoice, credit_note, payment, returned), min_size=1, max_size=14)


def _tenant(engine: Engine) -> str:
    tid = new_id("ten")
    with engine.begin() as conn:
        conn.execute(insert(Tenant.__table__).values(  # type: ignore[attr-defined]
            id=tid, name="t", legal_name="", street="", postal_code="", city="", country="DE", vat_id="",
            tax_number="", creditor_id="", iban="", bic="", email="", currency="EUR", timezone="Europe/Berlin",
            branding={}, audit_seq=0, audit_head="", created_at=utcnow()))
    return tid


def _doc(kind: str, account: str, nets: list[tuple[Decimal, Decimal]], day: date,
         corrects: tuple[str, ...] = ()) -> SimpleNamespace:
    sign = -1 if kind == "credit_note" else 1
    groups = tax_groups(((r, sign * n) for r, n in nets), "EUR")
    gross = sum((n + t for _r, n, t in groups), D(0))
    n = next(_n)
    return SimpleNamespace(
        id=f"inv_{n}", kind=kind, number=f"{'CN' if sign < 0 else 'INV'}-{n:06d}", customer_id=f"cus_{account}",
        account_id=account, currency="EUR", gross_total=gross, issue_date=day, due_date=day + timedelta(days=14),
        corrects=list(corrects),
        tax_groups=[{"rate": format(r, "f"), "net": format(n_, "f"), "tax": format(t, "f")} for r, n_, t in groups])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=events)
def test_journal_reconciles_with_open_items_and_documents(engine: Engine, seq: list[tuple]) -> None:  # type: ignore[type-arg]
    t = _tenant(engine)
    nets: dict[str, Decimal] = {}
    vat: dict[str, Decimal] = {}
    bank = charges = D(0)
    invoices: list[SimpleNamespace] = []
    day = date(2026, 12, 1)
    with engine.begin() as conn:
        for i, ev in enumerate(seq):
            day += timedelta(days=1)
            if ev[0] in ("invoice", "credit_note"):
                if ev[0] == "credit_note":
                    if not invoices:
                        continue
                    target = invoices[ev[1] % len(invoices)]
                    doc = _doc("credit_note", target.account_id, ev[2], day, (target.number,))
                else:
                    doc = _doc("invoice", ev[1], ev[2], day)
                    invoices.append(doc)
                R.open_invoice_item(conn, t, doc)
                for g in doc.tax_groups:
                    nets[g["rate"]] = nets.get(g["rate"], D(0)) + D(g["net"])
                    vat[g["rate"]] = vat.get(g["rate"], D(0)) + D(g["tax"])
            elif ev[0] == "payment":
                R.book_payment(conn, t, key=f"p{i}", customer_id=f"cus_{ev[1]}", account_id=ev[1], amount=ev[2],
                               currency="EUR", booked_on=day, reference=f"bank {i}")
                R.apply_credit_balances(conn, t, ev[1], "EUR", day)
                bank += ev[2]
            else:
                items = [s for s in R.item_states(conn, t) if s.kind == "invoice"]
                if not items:
                    continue
                item = items[ev[1] % len(items)]
                R.book_return(conn, t, key=f"r{i}", item_id=item.id, amount=ev[2], charge=ev[3], booked_on=day,
                              reference=f"return {i}")
                bank -= ev[2]
                charges += ev[3]
        open_items = sum((s.open for s in R.item_states(conn, t)), D(0))
        roles = A.role_balances(conn, t)
        journal = A.entries(conn, t)
    for _id, e in journal:
        assert sum((ln.signed for ln in e.lines), D(0)) == 0
    by_role: dict[str, Decimal] = {}
    for (role, _vat, _cur), v in roles.items():
        by_role[role] = by_role.get(role, D(0)) + v
    assert by_role.get("debtor", D(0)) + by_role.get("customer_credit", D(0)) == open_items
    assert by_role.get("revenue", D(0)) == -sum(nets.values(), D(0))
    for rate, tax in vat.items():
        assert roles.get(("vat", format(D(rate).normalize(), "f"), "EUR"), D(0)) == -tax
    assert by_role.get("bank", D(0)) == bank
    assert by_role.get("return_charge", D(0)) == -charges
    assert sum(by_role.values(), D(0)) == 0
