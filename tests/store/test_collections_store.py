"""SEPA collections in the store (SQLite and PostgreSQL): a run proposes each due item once, the
database refuses an item live in two collections, an item paid before approval leaves the file,
submission moves FRST -> RCUR and reports a changed IBAN as an amendment once, the bank's credit
books each item by its EndToEndId, a return (fee only in the booked amount) reopens the item with
the fee and flags the mandate, a returned first collection is first again, and mandates expire
after 36 months without a collection."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtime.bank.camt import parse_camt
from runtime.bank.pain008 import validate_pain008
from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from store import bank as B
from store import collections as C
from store import receivables as R
from store.models import BillingAccount, Customer, Tenant
from store.types import new_id

CREDITOR_IBAN = "DE02120300000000202051"
NOW = datetime(2026, 12, 10, 8, tzinfo=UTC)
AS_OF = date(2026, 12, 12)


def _setup(engine: Engine, *, pass_charges: bool = True) -> tuple[str, str, dict[str, str]]:
    tid = new_id("ten")
    with Session(engine) as db:
        db.add(Tenant(id=tid, name="t"))
        db.flush()
        for n in (1, 2):
            db.add(Customer(id=f"cus_{n}_{tid[-6:]}", tenant_id=tid, name=f"Kundin {n}"))
            db.flush()
            db.execute(insert(BillingAccount.__table__).values(  # type: ignore[attr-defined]
                id=f"acc_{n}_{tid[-6:]}", tenant_id=tid, customer_id=f"cus_{n}_{tid[-6:]}", name="", currency="EUR",
                timezone="Europe/Berlin", billing_cycle="monthly", payment_terms="net 14", invoice_email="",
                street="", postal_code="", city="", country="DE", status="active", created_at=NOW))
        db.commit()
    cred = new_id("cra")
    items: dict[str, str] = {}
    with engine.begin() as conn:
        conn.execute(insert(C.creditor_account).values(
            id=cred, tenant_id=tid, name="Ladestrom GmbH", iban=CREDITOR_IBAN, bic="", creditor_id="DE98ZZZ09999999999",
            currency="EUR", lead_time_days=5, pain_version="pain.008.001.08", pass_return_charges=pass_charges,
            created_at=NOW))
        for n, gross, due in ((1, "12.83", date(2026, 12, 15)), (2, "40.00", date(2026, 12, 14)),
                              (3, "9.99", date(2027, 1, 30))):
            acc = 1 if n != 2 else 2
            booked = R.open_invoice_item(conn, tid, SimpleNamespace(
                id=f"inv_{n}_{tid}", kind="invoice", number=f"INV-{n:06d}", customer_id=f"cus_{acc}_{tid[-6:]}",
                account_id=f"acc_{acc}_{tid[-6:]}", currency="EUR", gross_total=D(gross),
                issue_date=date(2026, 12, 1), due_date=due, corrects=[]))
            items[f"INV-{n:06d}"] = booked.entries[0][0]
        for n, iban in ((1, "DE89370400440532013000"), (2, "DE75512108001245126199")):
            C.insert_mandate(conn, tid, cred, f"acc_{n}_{tid[-6:]}", f"M-{n}", date(2026, 1, 5), f"Kundin {n}",
                             iban, "", "CORE")
    return tid, cred, items


def _file(conn: object, run_id: str) -> bytes:
    return bytes(conn.execute(select(C.collection_file.c.content).where(  # type: ignore[attr-defined]
        C.collection_file.c.run_id == run_id)).scalar_one())


def test_run_once_per_item_submit_credit_and_return(engine: Engine) -> None:
    tid, cred, items = _setup(engine)
    with engine.begin() as conn:
        g = C.gather(conn, tid, cred, "wf-1", AS_OF, "usr_a")
        assert (g.status, g.items, g.total) == ("awaiting_approval", 2, D("52.83"))  # INV-3 is not due yet
        assert C.gather(conn, tid, cred, "wf-1", AS_OF, "usr_a").run_id == g.run_id  # a retry: the same run
        g2 = C.gather(conn, tid, cred, "wf-2", AS_OF, "usr_a")
        assert g2.items == 0  # both live in the first run
    # the database refuses a second live row for the same item, whoever tries
    with pytest.raises(IntegrityError), engine.begin() as conn:
        row = conn.execute(select(C.collection_item).where(C.collection_item.c.run_id == g.run_id)).first()
        assert row is not None
        conn.execute(insert(C.collection_item).values({**dict(row._mapping), "id": new_id("cli"),
                                                       "end_to_end_id": "OTHER-1", "run_id": g2.run_id}))
    with engine.begin() as conn:
        # INV-2 is paid by transfer before approval: it leaves the file
        R.book_payment(conn, tid, key="manual:x", customer_id=f"cus_2_{tid[-6:]}", account_id=f"acc_2_{tid[-6:]}",
                       amount=D("40.00"), currency="EUR", booked_on=AS_OF, reference="INV-000002")
        run = C.submit_run(conn, tid, g.run_id, "usr_b", NOW)
        assert (run.status, run.items, run.total) == ("submitted", 1, D("12.83"))
        assert C.submit_run(conn, tid, g.run_id, "usr_b", NOW).file_id == run.file_id  # once
        pain = _file(conn, g.run_id)
        validate_pain008(pain, "pain.008.001.08")
        assert b"INV-000001-C1" in pain and b"INV-000002" not in pain and b"<SeqTp>FRST</SeqTp>" in pain
        statuses = {r.number: r.status for r in C.run_items(conn, g.run_id)}
        assert statuses == {"INV-000001": "submitted", "INV-000002": "dropped"}
        m1 = conn.execute(select(C.mandate).where(C.mandate.c.reference == "M-1", C.mandate.c.tenant_id == tid)).one()
        assert m1.sequence == "RCUR" and m1.last_collection_on == date(2026, 12, 15)
    # the archived file cannot be changed
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(C.collection_file).where(C.collection_file.c.run_id == g.run_id).values(size=1))

    # the bank credits the collection (one batch entry) and later returns it (AC04) with a 2.50 fee
    # that it only shows in the booked amount
    credit = statement_xml(message_id="B-1", statement_id="S-1", sequence=1, created=NOW, account_iban=CREDITOR_IBAN,
                           currency="EUR", opening=D(0), entries=[SimEntry(
                               D("12.83"), True, date(2026, 12, 15), "DD-BATCH-1", bank_tx_code="PMNT/RDDT/ESDD",
                               transactions=[SimTransaction(D("12.83"), "INV-000001-C1")])])
    with engine.begin() as conn:
        res = B.import_statement(conn, tid, parse_camt(credit)[0], "x")
        assert (res.matched, res.rules) == (1, {"end_to_end_id": 1})
        assert [s.open for s in R.item_states(conn, tid, item_ids=[items["INV-000001"]])] == [D(0)]
    ret = statement_xml(message_id="B-2", statement_id="S-2", sequence=2, created=NOW, account_iban=CREDITOR_IBAN,
                        currency="EUR", opening=D("12.83"), entries=[SimEntry(
                            D("15.33"), False, date(2026, 12, 18), "RT-1",
                            transactions=[SimTransaction(D("15.33"), "INV-000001-C1", return_reason="AC04")])])
    with engine.begin() as conn:
        res = B.import_statement(conn, tid, parse_camt(ret)[0], "y")
        assert res.returns == 1
        [state] = R.item_states(conn, tid, item_ids=[items["INV-000001"]])
        assert state.open == D("15.33")  # 12.83 owed again + the 2.50 fee
        m1 = conn.execute(select(C.mandate).where(C.mandate.c.reference == "M-1", C.mandate.c.tenant_id == tid)).one()
        assert (m1.status, m1.sequence) == ("needs_attention", "FRST") and m1.attention_reason.startswith("AC04")
        [entry] = [e for e in B.list_entries(conn, tid) if e.status == "return"]
        assert entry.account_id == f"acc_1_{tid[-6:]}" and entry.rule == "end_to_end_id"
        # the same statement again books nothing twice
        again = B.import_statement(conn, tid, parse_camt(ret)[0], "y")
        assert again.duplicates == again.entries == 1
        assert [s.open for s in R.item_states(conn, tid, item_ids=[items["INV-000001"]])] == [D("15.33")]
        # ... and the same return reported again under another bank reference owes nothing twice
        ret2 = ret.replace(b"RT-1", b"RT-1-AGAIN").replace(b"S-2", b"S-3").replace(b"B-2", b"B-3")
        B.import_statement(conn, tid, parse_camt(ret2)[0], "w")
        assert [s.open for s in R.item_states(conn, tid, item_ids=[items["INV-000001"]])] == [D("15.33")]

        # a new IBAN fixes AC04 and is reported as an amendment in the next collection, which is FRST again
        C.amend_mandate(conn, m1, iban="DE12500105170648489890")
        g3 = C.gather(conn, tid, cred, "wf-3", AS_OF, "usr_a")
        assert g3.items == 1
        C.submit_run(conn, tid, g3.run_id, "usr_b", NOW)
        pain = _file(conn, g3.run_id)
        assert b"INV-000001-C2" in pain and b"<AmdmntInd>true</AmdmntInd>" in pain
        assert b"<OrgnlDbtrAcct>" in pain and b"DE89370400440532013000" in pain and b"<SeqTp>FRST</SeqTp>" in pain
        m1 = conn.execute(select(C.mandate).where(C.mandate.c.id == m1.id)).one()
        assert (m1.original_iban, m1.sequence) == ("", "RCUR")  # reported once


def test_return_fee_absorbed_and_mandate_expiry(engine: Engine) -> None:
    tid, cred, items = _setup(engine, pass_charges=False)
    with engine.begin() as conn:
        # account 2's mandate was signed long ago and never used: expired, and the run says so
        conn.execute(update(C.mandate).where(C.mandate.c.tenant_id == tid, C.mandate.c.reference == "M-2")
                     .values(signed_on=date(2023, 1, 5)))
        g = C.gather(conn, tid, cred, "wf-1", AS_OF, "usr_a")
        assert g.items == 1 and [s["reason"] for s in g.skipped] == ["mandate expired (36 months without a collection)"]
        C.submit_run(conn, tid, g.run_id, "usr_b", NOW)
        st = statement_xml(message_id="B-1", statement_id="S-1", sequence=1, created=NOW, account_iban=CREDITOR_IBAN,
                           currency="EUR", opening=D(0), entries=[
                               SimEntry(D("12.83"), True, date(2026, 12, 15), "C-1",
                                        transactions=[SimTransaction(D("12.83"), "INV-000001-C1")]),
                               SimEntry(D("15.83"), False, date(2026, 12, 16), "R-1",
                                        transactions=[SimTransaction(D("15.83"), "INV-000001-C1",
                                                                     return_reason="MS02", charges=D("3.00"))])])
        B.import_statement(conn, tid, parse_camt(st)[0], "z")
        [state] = R.item_states(conn, tid, item_ids=[items["INV-000001"]])
        assert state.open == D("12.83")  # the tenant absorbs the fee
        m1 = conn.execute(select(C.mandate).where(C.mandate.c.tenant_id == tid, C.mandate.c.reference == "M-1")).one()
        assert m1.status == "active"  # MS02 does not flag the mandate


def test_final_and_one_off_mandates_collect_once(engine: Engine) -> None:
    tid, cred, _items = _setup(engine)
    with engine.begin() as conn:
        # account 1 revoked with a last collection (FNAL), account 2 a one-off mandate
        conn.execute(update(C.mandate).where(C.mandate.c.tenant_id == tid, C.mandate.c.reference == "M-1")
                     .values(sequence="FNAL"))
        conn.execute(update(C.mandate).where(C.mandate.c.tenant_id == tid, C.mandate.c.reference == "M-2")
                     .values(sequence="OOFF"))
        g = C.gather(conn, tid, cred, "wf-1", date(2027, 1, 28), "usr_a")
        assert g.items == 2  # one each, although account 1 has two items due
        C.submit_run(conn, tid, g.run_id, "usr_b", NOW)
        pain = _file(conn, g.run_id)
        assert b"<SeqTp>FNAL</SeqTp>" in pain and b"<SeqTp>OOFF</SeqTp>" in pain
        assert {m.status for m in conn.execute(select(C.mandate).where(C.mandate.c.tenant_id == tid)).all()} == {
            "revoked"}
        g2 = C.gather(conn, tid, cred, "wf-2", date(2027, 1, 28), "usr_a")
        assert g2.items == 0 and sorted(s["reason"] for s in g2.skipped) == ["mandate revoked", "mandate revoked"]


def test_a_statement_before_its_collection_is_submitted_books_once(engine: Engine) -> None:
    """The bank's credit for a collection arrives while the run still waits for approval (the
    item is only proposed): it is booked once, by the EndToEndId the run gave the item or else by
    the invoice number, and the approval then leaves the paid item out of the file; the same
    statement again, and again after the approval, changes nothing."""
    tid, cred, items = _setup(engine)
    with engine.begin() as conn:
        g = C.gather(conn, tid, cred, "wf-early", AS_OF, "usr_a")
        assert g.items == 2
        e2e = {r.number: r.end_to_end_id for r in C.run_items(conn, g.run_id)}
    credit = statement_xml(message_id="E-1", statement_id="SE-1", sequence=1, created=NOW, account_iban=CREDITOR_IBAN,
                           currency="EUR", opening=D(0), entries=[SimEntry(
                               D("12.83"), True, date(2026, 12, 15), "DD-EARLY-1", bank_tx_code="PMNT/RDDT/ESDD",
                               transactions=[SimTransaction(D("12.83"), e2e["INV-000001"],
                                                            remittance="INV-000001")])])
    with engine.begin() as conn:
        res = B.import_statement(conn, tid, parse_camt(credit)[0], "x")
        assert res.matched == 1 and res.unmatched == 0
        assert [s.open for s in R.item_states(conn, tid, item_ids=[items["INV-000001"]])] == [D(0)]
        assert B.import_statement(conn, tid, parse_camt(credit)[0], "x").duplicates == 1
        run = C.submit_run(conn, tid, g.run_id, "usr_b", NOW)
        # only INV-000002 is still owed: the paid item left the file before it was built
        assert (run.status, run.items, run.total) == ("submitted", 1, D("40.00"))
        assert {r.number: r.status for r in C.run_items(conn, g.run_id)} == {"INV-000001": "dropped",
                                                                              "INV-000002": "submitted"}
        assert e2e["INV-000001"].encode() not in _file(conn, g.run_id)
        assert B.import_statement(conn, tid, parse_camt(credit)[0], "x").duplicates == 1
        [state] = R.item_states(conn, tid, item_ids=[items["INV-000001"]])
        assert state.open == D(0)
