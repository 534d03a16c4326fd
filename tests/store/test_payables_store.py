"""Refunds in the store (SQLite and PostgreSQL): a refund of a credit balance or of what a credit
note left consumes that credit on the subledger at once (never more than there is, in the
account's currency, once per key), a payout run claims each payable once (the database refuses a
second live row), a rejected run gives its payables back, the approved pain.001 is archived
immutably and XSD-valid, the statement's debit marks the payable paid, and a returned transfer
opens the credit again, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtime.bank.camt import parse_camt
from runtime.bank.pain001 import validate_pain001
from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from runtime.money import CurrencyMismatch
from store import bank as B
from store import billing as BI
from store import collections as C
from store import payables as P
from store import receivables as R
from store.models import BillingAccount, Customer, Tenant
from store.types import new_id
from tests.store.conftest import fresh_engine

TENANT_IBAN = "DE02120300000000202051"
PAYEE_IBAN = "DE89370400440532013000"
NOW = datetime(2026, 12, 10, 8, tzinfo=UTC)
ON = date(2026, 12, 10)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine("sqlite", tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]


def _setup(engine: Engine) -> SimpleNamespace:
    tid = new_id("ten")
    sfx = tid[-6:]
    with Session(engine) as db:
        db.add(Tenant(id=tid, name="t"))
        db.flush()
        for n in (1, 2):
            db.add(Customer(id=f"cus_{n}_{sfx}", tenant_id=tid, name=f"Kundin {n}"))
            db.flush()
            db.execute(insert(BillingAccount.__table__).values(  # type: ignore[attr-defined]
                id=f"acc_{n}_{sfx}", tenant_id=tid, customer_id=f"cus_{n}_{sfx}", name="", currency="EUR",
                timezone="Europe/Berlin", billing_cycle="monthly", payment_terms="net 14", invoice_email="",
                street="", postal_code="", city="", country="DE", status="active", created_at=NOW))
        db.commit()
    cred = new_id("cra")
    cn_id = f"cn_{sfx}"
    with engine.begin() as conn:
        conn.execute(insert(C.creditor_account).values(
            id=cred, tenant_id=tid, name="Ladestrom GmbH", iban=TENANT_IBAN, bic="", creditor_id="DE98ZZZ09999999999",
            currency="EUR", lead_time_days=5, pain_version="pain.008.001.08", pass_return_charges=True,
            created_at=NOW))
        # account 1: INV-1 of 12.83, overpaid by a transfer of 20.00 -> a credit balance of 7.17
        R.open_invoice_item(conn, tid, SimpleNamespace(
            id=f"inv_1_{sfx}", kind="invoice", number="INV-000001", customer_id=f"cus_1_{sfx}",
            account_id=f"acc_1_{sfx}", currency="EUR", gross_total=D("12.83"), issue_date=ON, due_date=ON,
            corrects=[]))
        R.book_payment(conn, tid, key="bank:over", customer_id=f"cus_1_{sfx}", account_id=f"acc_1_{sfx}",
                       amount=D("20.00"), currency="EUR", booked_on=ON, reference="overpaid")
        # account 2: INV-2 of 40.00 corrected by CN-1 of 50.00 -> 10.00 to the customer's good
        R.open_invoice_item(conn, tid, SimpleNamespace(
            id=f"inv_2_{sfx}", kind="invoice", number="INV-000002", customer_id=f"cus_2_{sfx}",
            account_id=f"acc_2_{sfx}", currency="EUR", gross_total=D("40.00"), issue_date=ON, due_date=ON,
            corrects=[]))
        conn.execute(insert(BI.invoice).values(
            id=cn_id, tenant_id=tid, account_id=f"acc_2_{sfx}", customer_id=f"cus_2_{sfx}", cycle_key=f"cn-{sfx}",
            kind="credit_note", status="finalized", currency="EUR", period_start=NOW, period_end=NOW, local_start=ON,
            local_end=ON, timezone="Europe/Berlin", issue_date=ON, due_date=ON, payment_terms="", number="CN-000001",
            net_total=D("-42.02"), tax_total=D("-7.98"), gross_total=D("-50.00"), tax_groups=[], sessions=0,
            energy_kwh=D(0), hold_reasons=[], comparison={}, corrects=["INV-000002"], workflow_id="wf-cn",
            rejected_reason="", decided_by="", created_at=NOW))
        R.open_invoice_item(conn, tid, SimpleNamespace(
            id=cn_id, kind="credit_note", number="CN-000001", customer_id=f"cus_2_{sfx}", account_id=f"acc_2_{sfx}",
            currency="EUR", gross_total=D("-50.00"), issue_date=ON, due_date=None, corrects=["INV-000002"]))
    return SimpleNamespace(tid=tid, cred=cred, acc1=f"acc_1_{sfx}", acc2=f"acc_2_{sfx}", cn=cn_id)


def _refund(conn: object, s: SimpleNamespace, key: str, account: str, amount: str | None = None,
            credit_note: str | None = None, currency: str | None = None, by: str = "usr_req") -> tuple[object, bool]:
    return P.request_refund(conn, s.tid, key=key, account_id=account, currency=currency,  # type: ignore[arg-type]
                            amount=D(amount) if amount is not None else None, credit_note=credit_note,
                            iban=PAYEE_IBAN, bic="", payee_name="Kundin", remittance=f"Refund {key}", on=ON,
                            requested_by=by)


def _credit(conn: object, s: SimpleNamespace, account: str) -> D:
    return -sum((x.open for x in R.item_states(conn, s.tid, account_id=account)  # type: ignore[arg-type]
                 if x.kind == "credit_balance"), D(0))


def test_refund_requests_consume_credit_once_and_never_more(engine: Engine) -> None:
    s = _setup(engine)
    with engine.begin() as conn:
        assert _credit(conn, s, s.acc1) == D("7.17") and _credit(conn, s, s.acc2) == D("10.00")
        with pytest.raises(CurrencyMismatch):
            _refund(conn, s, "chf", s.acc1, "1.00", currency="CHF")
        with pytest.raises(P.InsufficientCredit):
            _refund(conn, s, "too-much", s.acc1, "7.18")
        p1, dup = _refund(conn, s, "r1", s.acc1)  # all there is
        assert not dup and (p1.amount, p1.status, p1.kind, p1.source_kind) == (D("7.17"), "requested", "refund",
                                                                                "credit_balance")
        again, dup = _refund(conn, s, "r1", s.acc1)
        assert dup and again.id == p1.id
        assert _credit(conn, s, s.acc1) == 0  # consumed at once
        with pytest.raises(P.InsufficientCredit):
            _refund(conn, s, "r1b", s.acc1, "0.01")
        # a credit note's credit, by id and by number, never more than it left
        p2, _ = _refund(conn, s, "r2", s.acc2, "4.00", credit_note=s.cn)
        with pytest.raises(P.InsufficientCredit):
            _refund(conn, s, "r3", s.acc2, "6.01", credit_note="CN-000001")
        p3, _ = _refund(conn, s, "r3", s.acc2, "6.00", credit_note="CN-000001")
        assert (p2.source_kind, p2.source_id, p3.source_id) == ("credit_note", s.cn, s.cn)
        with pytest.raises(P.PayableNotFound):
            _refund(conn, s, "r4", s.acc1, "1.00", credit_note="CN-999999")
        with pytest.raises(P.PayableNotFound):
            _refund(conn, s, "r5", "acc_nobody", "1.00")
        # every refund event's entries add up to its amount, all of kind refund, on credit items
        for p in (p1, p2, p3):
            ev = R.event(conn, s.tid, p.receivable_key)
            assert ev is not None and ev.kind == "refund"
            assert sum((a for _, _, a in ev.entries), D(0)) == p.amount and {k for _, k, _ in ev.entries} == {"refund"}
        # the next invoice finds no credit left to use
        R.open_invoice_item(conn, s.tid, SimpleNamespace(
            id=f"inv_3_{s.tid}", kind="invoice", number="INV-000003", customer_id="c", account_id=s.acc1,
            currency="EUR", gross_total=D("5.00"), issue_date=ON, due_date=ON, corrects=[]))
        [inv3] = [x for x in R.item_states(conn, s.tid, account_id=s.acc1) if x.number == "INV-000003"]
        assert inv3.open == D("5.00")
        page = P.list_payables(conn, s.tid, limit=2)
        assert [p.id for p in page] == [p1.id, p2.id]
        assert [p.id for p in P.list_payables(conn, s.tid, after_id=page[-1].id)] == [p3.id]


def test_a_run_pays_each_payable_once_and_the_bank_closes_the_loop(engine: Engine) -> None:
    s = _setup(engine)
    with engine.begin() as conn:
        p1, _ = _refund(conn, s, "r1", s.acc1)
        p2, _ = _refund(conn, s, "r2", s.acc2, "4.00", credit_note=s.cn, by="usr_req2")
        g = P.gather(conn, s.tid, s.cred, "wf-1", ON, "usr_start")
        assert (g.status, g.items, g.total, sorted(g.requested_by)) == ("awaiting_approval", 2, D("11.17"),
                                                                         ["usr_req", "usr_req2"])
        assert P.gather(conn, s.tid, s.cred, "wf-1", ON, "usr_start").run_id == g.run_id  # a retry: the same run
        assert P.gather(conn, s.tid, s.cred, "wf-2", ON, "usr_start").items == 0  # both live in the first run
        assert {p.status for p in P.list_payables(conn, s.tid)} == {"in_run"}
    # the database refuses a second live row for the same payable, whoever tries
    with pytest.raises(IntegrityError), engine.begin() as conn:
        row = conn.execute(select(P.payout_item).where(P.payout_item.c.run_id == g.run_id)).first()
        assert row is not None
        conn.execute(insert(P.payout_item).values({**dict(row._mapping), "id": new_id("poi"),
                                                   "end_to_end_id": "OTHER-T1"}))
    with engine.begin() as conn:
        P.reject_run(conn, s.tid, g.run_id, "usr_appr", "wrong IBAN checked")
        assert {p.status for p in P.list_payables(conn, s.tid)} == {"requested"}
        g3 = P.gather(conn, s.tid, s.cred, "wf-3", ON, "usr_start")
        assert g3.items == 2
        e2e = {r.payable_id: r.end_to_end_id for r in P.run_items(conn, g3.run_id)}
        assert all(v.endswith("-T2") for v in e2e.values())  # the second attempt of each
        run = P.submit_run(conn, s.tid, g3.run_id, "usr_appr", NOW)
        assert (run.status, run.items, run.total) == ("submitted", 2, D("11.17"))
        assert P.submit_run(conn, s.tid, g3.run_id, "usr_appr", NOW).file_id == run.file_id  # once
        f = P.get_file(conn, s.tid, run.file_id)
        validate_pain001(bytes(f.content))
        for v in e2e.values():
            assert f"<EndToEndId>{v}</EndToEndId>".encode() in f.content
        assert {p.status for p in P.list_payables(conn, s.tid)} == {"submitted"}
        assert len(conn.execute(select(P.payout_file.c.id).where(P.payout_file.c.tenant_id == s.tid)).all()) == 1
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(P.payout_file).where(P.payout_file.c.id == run.file_id).values(size=1))

    # the statement shows both debits: p1 paid; p2's transfer comes back (AC04) a few days later
    debit = statement_xml(message_id="B-1", statement_id="S-1", sequence=1, created=NOW, account_iban=TENANT_IBAN,
                          currency="EUR", opening=D(100), entries=[
                              SimEntry(D("11.17"), False, date(2026, 12, 11), "TRF-BATCH-1",
                                       bank_tx_code="PMNT/ICDT/ESCT",
                                       transactions=[SimTransaction(D("7.17"), e2e[p1.id]),
                                                     SimTransaction(D("4.00"), e2e[p2.id])])])
    with engine.begin() as conn:
        res = B.import_statement(conn, s.tid, parse_camt(debit)[0], "x")
        assert (res.matched, res.rules, res.payouts_paid) == (2, {"end_to_end_id": 2}, 2)
        assert {p.id: p.status for p in P.list_payables(conn, s.tid)} == {p1.id: "paid", p2.id: "paid"}
        assert P.get_payable(conn, s.tid, p1.id).paid_on == date(2026, 12, 11)
        entries = [e for e in B.list_entries(conn, s.tid) if not e.credit]
        assert {(e.status, e.rule) for e in entries} == {("matched", "end_to_end_id")}
        again = B.import_statement(conn, s.tid, parse_camt(debit)[0], "x")
        assert again.duplicates == 2 and again.payouts_paid == 0
    ret = statement_xml(message_id="B-2", statement_id="S-2", sequence=2, created=NOW, account_iban=TENANT_IBAN,
                        currency="EUR", opening=D("88.83"), entries=[
                            SimEntry(D("4.00"), True, date(2026, 12, 14), "RT-1", bank_tx_code="PMNT/ICDT/RRTN",
                                     transactions=[SimTransaction(D("4.00"), e2e[p2.id], return_reason="AC04")])])
    with engine.begin() as conn:
        res = B.import_statement(conn, s.tid, parse_camt(ret)[0], "y")
        assert (res.returns, res.payouts_returned) == (1, 1)
        back = P.get_payable(conn, s.tid, p2.id)
        assert (back.status, back.return_reason) == ("returned", "AC04")
        assert _credit(conn, s, s.acc2) == D("10.00")  # the 4.00 is the customer's again (6.00 never left)
        assert _credit(conn, s, s.acc1) == 0 and P.get_payable(conn, s.tid, p1.id).status == "paid"
        # the same return reported again under another reference opens nothing twice
        ret2 = ret.replace(b"RT-1", b"RT-1-AGAIN").replace(b"S-2", b"S-3").replace(b"B-2", b"B-3")
        res2 = B.import_statement(conn, s.tid, parse_camt(ret2)[0], "w")
        assert res2.returns == 1 and res2.payouts_returned == 0
        assert _credit(conn, s, s.acc2) == D("10.00")
        ev = R.event(conn, s.tid, f"refund_return:{p2.id}")
        assert ev is not None and [(k, a) for _, k, a in ev.entries] == [("refund_return", D("4.00"))]
        # the credit is refundable again (to a corrected IBAN)
        p4, _ = _refund(conn, s, "r4", s.acc2, "10.00", credit_note=s.cn)
        assert p4.amount == D("10.00")


_money = st.decimals(min_value=D("0.01"), max_value=D(200), places=2)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.one_of(
    st.tuples(st.just("invoice"), _money), st.tuples(st.just("payment"), _money),
    st.tuples(st.just("refund"), st.one_of(st.none(), _money)), st.tuples(st.just("refund_return"), st.integers(0, 9)),
), min_size=1, max_size=12))
def test_refunds_keep_the_subledger_balanced(sqlite_engine: Engine, events: list[tuple[str, object]]) -> None:
    """Through the store, for any sequence of invoices, payments, refund requests (all or part of
    the credit) and refunds sent back: what is open over the account = invoiced - paid + refunded -
    refunds returned; no credit item goes past zero; a refund is refused exactly when it asks for
    more than the credit there is; every booking's entries add up to its amount."""
    s = _setup(sqlite_engine)
    acc = s.acc1
    invoiced, paid = D("12.83"), D("20.00")  # what _setup booked on account 1
    refunded = returned = D(0)
    refunds: list[str] = []
    keys: list[str] = []
    with sqlite_engine.begin() as conn:
        for n, (kind, arg) in enumerate(events):
            if kind == "invoice":
                assert isinstance(arg, D)
                R.open_invoice_item(conn, s.tid, SimpleNamespace(
                    id=f"inv_p{n}_{s.tid}", kind="invoice", number=f"INV-P{n}", customer_id="c", account_id=acc,
                    currency="EUR", gross_total=arg, issue_date=ON, due_date=ON, corrects=[]))
                invoiced += arg
            elif kind == "payment":
                assert isinstance(arg, D)
                R.book_payment(conn, s.tid, key=f"p{n}", customer_id="c", account_id=acc, amount=arg, currency="EUR",
                               booked_on=ON, reference="p")
                paid += arg
                keys.append(f"p{n}")
            elif kind == "refund":
                available = _credit(conn, s, acc)
                want = available if arg is None else arg
                if want <= 0 or want > available:
                    with pytest.raises(P.InsufficientCredit):
                        _refund(conn, s, f"r{n}", acc, None if arg is None else str(arg))
                    continue
                p, _ = _refund(conn, s, f"r{n}", acc, None if arg is None else str(arg))
                assert p.amount == want and _credit(conn, s, acc) == available - want
                refunded += want
                refunds.append(p.receivable_key)
                keys.append(p.receivable_key)
            elif kind == "refund_return" and refunds:
                assert isinstance(arg, int)
                rkey = refunds.pop(arg % len(refunds))
                back = R.book_refund_return(conn, s.tid, key=f"back:{rkey}", refund_key=rkey, booked_on=ON,
                                            reference="AC04")
                returned += back.amount
                keys.append(f"back:{rkey}")
            states = R.item_states(conn, s.tid, account_id=acc)
            assert all(x.open <= 0 for x in states if x.kind == "credit_balance")
            assert all(x.open >= 0 for x in states if x.kind == "invoice")
            assert sum((x.open for x in states), D(0)) == invoiced - paid + refunded - returned
        for key in keys:
            ev = R.event(conn, s.tid, key)
            assert ev is not None and sum((a for _, _, a in ev.entries), D(0)) == ev.amount
