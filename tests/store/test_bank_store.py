"""Importing camt statements (SQLite and PostgreSQL): matched credits are booked as payments once,
a statement again or under a new message id changes nothing, batch bookings are split, returns
counted, balances checked, and a manual match teaches the payer so the next statement matches
by itself."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from types import SimpleNamespace

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from runtime.bank.camt import parse_camt
from runtime.bank.matching import creditor_reference
from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from store import bank as B
from store import receivables as R
from store.models import BillingAccount, Customer, Tenant
from store.types import new_id

IBAN = "DE89370400440532013000"
NOW = datetime(2026, 12, 10, 8, tzinfo=UTC)


def _setup(engine: Engine) -> str:
    tid = new_id("ten")
    with Session(engine) as db:
        db.add(Tenant(id=tid, name="t"))
        db.flush()
        for n in (1, 2, 3):
            db.add(Customer(id=f"cus_{n}", tenant_id=tid, name=f"Customer {n}"))
            db.flush()
            db.execute(insert(BillingAccount.__table__).values(  # type: ignore[attr-defined]
                id=f"acc_{n}", tenant_id=tid, customer_id=f"cus_{n}", name="", currency="EUR",
                timezone="Europe/Berlin", billing_cycle="monthly", payment_terms="net 14", invoice_email="",
                street="", postal_code="", city="", country="DE", status="active", created_at=NOW))
        db.commit()
    with engine.begin() as conn:
        for n, gross in ((1, "12.83"), (2, "40.00"), (3, "25.50"), (4, "7.77")):
            acc = n if n < 4 else 3
            R.open_invoice_item(conn, tid, SimpleNamespace(
                id=f"inv_{n}", kind="invoice", number=f"INV-{n:06d}", customer_id=f"cus_{acc}",
                account_id=f"acc_{acc}", currency="EUR", gross_total=D(gross), issue_date=date(2026, 12, 1),
                due_date=date(2026, 12, 15), corrects=[]))
    return tid


def _file(msg: str, stmt: str, seq: int, entries: list[SimEntry]) -> bytes:
    return statement_xml(message_id=msg, statement_id=stmt, sequence=seq, created=NOW, account_iban=IBAN,
                         currency="EUR", opening=D("1000.00"), entries=entries)


def test_import_match_learn_and_idempotency(engine: Engine) -> None:
    t = _setup(engine)
    day = date(2026, 12, 9)
    first = _file("MSG-1", "STMT-1", 1, [
        SimEntry(D("12.83"), True, day, "R1", [SimTransaction(D("12.83"), debtor_name="Erika Mustermann",
                                                              debtor_iban="DE02120300000000202051",
                                                              remittance="Rechnung INV 0000 01")]),
        SimEntry(D("65.50"), True, day, "R2", [  # a batch: one entry, two transfers
            SimTransaction(D("40.00"), end_to_end_id="E-2", creditor_ref=creditor_reference("INV-000002")),
            SimTransaction(D("25.50"), end_to_end_id="E-3", remittance="inv-000003 danke")]),
        SimEntry(D("99.00"), True, day, "R3", [SimTransaction(D("99.00"), debtor_name="Hans Unbekannt",
                                                              debtor_iban="DE75512108001245126199",
                                                              remittance="Ladestrom")]),
        SimEntry(D("18.00"), False, day, "R4", [SimTransaction(D("15.00"), end_to_end_id="DD-1",
                                                               return_reason="MD06", charges=D("3.00"))]),
        SimEntry(D("4.90"), False, day, "R5", [SimTransaction(D("4.90"), remittance="Kontofuehrung")],
                 bank_tx_code="ACMT/MDOP/CHRG"),
    ])
    [st] = parse_camt(first)
    with engine.begin() as conn:
        res = B.import_statement(conn, t, st, "sha-1")
    assert (res.entries, res.matched, res.partially_matched, res.unmatched, res.returns, res.duplicates) == (6, 3, 0, 1, 1, 0)
    assert res.rules == {"reference": 3} and any("not registered" in w for w in res.warnings)
    with engine.begin() as conn:
        open_now = {s.number: s.open for s in R.item_states(conn, t)}
    assert open_now == {"INV-000001": 0, "INV-000002": 0, "INV-000003": 0, "INV-000004": D("7.77")}

    # the same statement again, and re-delivered under a new message id: nothing changes
    for again in (first, first.replace(b"MSG-1", b"MSG-1-REDELIVERED")):
        [st2] = parse_camt(again)
        with engine.begin() as conn:
            dup = B.import_statement(conn, t, st2, "sha-2")
        assert (dup.entries, dup.duplicates, dup.matched) == (6, 6, 0)
    # the same entries in a statement of another id (a camt.054 before the 053): entries are duplicates
    [st3] = parse_camt(_file("MSG-9", "STMT-OTHER", 9, [SimEntry(D("12.83"), True, day, "R1", [
        SimTransaction(D("12.83"), debtor_iban="DE02120300000000202051", remittance="Rechnung INV 0000 01")])]))
    with engine.begin() as conn:
        assert B.import_statement(conn, t, st3, "sha-3").duplicates == 1
        events = conn.execute(select(R.receivable_event.c.key).where(R.receivable_event.c.kind == "payment")).all()
    assert len(events) == 3

    # the unknown payer is matched by hand to account 3 (7.77 open, 91.23 over), and learned
    with engine.begin() as conn:
        [unmatched] = B.list_entries(conn, t, status="unmatched")
        B.match_entry_by_hand(conn, t, unmatched.id, "acc_3", [], "usr_1")
        [row] = B.list_entries(conn, t, status="partially_matched")
        assert row.rule == "manual" and row.account_id == "acc_3"
    with engine.begin() as conn:
        R.open_invoice_item(conn, t, SimpleNamespace(
            id="inv_5", kind="invoice", number="INV-000005", customer_id="cus_3", account_id="acc_3",
            currency="EUR", gross_total=D("120.00"), issue_date=date(2027, 1, 1), due_date=date(2027, 1, 15),
            corrects=[]))
    # the payer's next transfer, without any reference, matches by itself
    [nxt] = parse_camt(_file("MSG-2", "STMT-2", 2, [SimEntry(D("28.77"), True, date(2027, 1, 10), "R9", [
        SimTransaction(D("28.77"), debtor_name="Hans Unbekannt", debtor_iban="DE75512108001245126199",
                       remittance="Ladestrom Januar")])]))
    with engine.begin() as conn:
        res2 = B.import_statement(conn, t, nxt, "sha-4")
        assert (res2.matched, res2.rules) == (1, {"known_payer": 1})
        assert {s.number: s.open for s in R.item_states(conn, t, account_id="acc_3") if s.kind == "invoice"} == {
            "INV-000003": 0, "INV-000004": 0, "INV-000005": 0}


def test_balances_that_do_not_add_up_are_flagged(engine: Engine) -> None:
    t = _setup(engine)
    xml = _file("M", "S", 1, [SimEntry(D("1.00"), True, date(2026, 12, 9), "X1", [SimTransaction(D("1.00"))])])
    xml = xml.replace(b"<Amt Ccy=\"EUR\">1001.00</Amt>", b"<Amt Ccy=\"EUR\">1002.00</Amt>")
    [st] = parse_camt(xml)
    with engine.begin() as conn:
        res = B.import_statement(conn, t, st, "sha")
        review = conn.execute(select(B.bank_statement.c.review)).scalar_one()
    assert any("do not add up" in w for w in res.warnings) and "off by 1.00" in review


def test_many_entries_for_one_account_book_each_once_with_the_right_open_amounts(engine: Engine) -> None:
    """One statement, many transfers for the same account (the import books them in memory and
    writes them at the end): each entry is booked once, against what the entries before it left
    open; a reference to an invoice an earlier entry settled no longer matches; the same
    statement again changes nothing."""
    t = _setup(engine)
    day = date(2026, 12, 9)
    with engine.begin() as conn:
        for n in range(10, 30):  # 20 more invoices of account 3, 10.00 each, due one day apart
            R.open_invoice_item(conn, t, SimpleNamespace(
                id=f"inv_{n}", kind="invoice", number=f"INV-{n:06d}", customer_id="cus_3", account_id="acc_3",
                currency="EUR", gross_total=D("10.00"), issue_date=date(2026, 12, 1),
                due_date=date(2026, 12, n - 9), corrects=[]))
        B.register_account(conn, t, IBAN, "EUR", "main")
        conn.execute(insert(B.payer_link).values(id="pyl_1", tenant_id=t, kind="iban", value="DE75512108001245126199",
                                                 account_id="acc_3", learned_from="x", created_by="u",
                                                 created_at=NOW))
    payer = "DE75512108001245126199"
    entries = [SimEntry(D("10.00"), True, day, f"N{n}", [SimTransaction(D("10.00"), remittance=f"INV-{n:06d}")])
               for n in range(10, 20)]  # ten invoices by number
    entries += [SimEntry(D("4.00"), True, day, "P1", [SimTransaction(D("4.00"), remittance="INV-000020")]),
                SimEntry(D("6.00"), True, day, "P2", [SimTransaction(D("6.00"), remittance="INV-000020")]),
                # INV-000020 is settled now: naming it again does not match by reference; the payer does
                SimEntry(D("7.77"), True, day, "P3", [SimTransaction(D("7.77"), debtor_iban=payer,
                                                                     remittance="INV-000020")])]
    # the known payer, no reference, four times: oldest due first, each after the one before
    entries += [SimEntry(D("25.00"), True, day, f"K{k}", [SimTransaction(D("25.00"), debtor_iban=payer)])
                for k in range(4)]
    xml = _file("MSG-M", "STMT-M", 1, entries)
    [st] = parse_camt(xml)
    with engine.begin() as conn:
        before = {s.number: s for s in R.item_states(conn, t, account_id="acc_3")}
        res = B.import_statement(conn, t, st, "sha-m")
    assert (res.entries, res.duplicates, res.unmatched) == (17, 0, 0)
    assert res.rules == {"reference": 12, "known_payer": 5}
    with engine.begin() as conn:
        opens = {s.number: s.open for s in R.item_states(conn, t, account_id="acc_3")}
        keys = [r.key for r in conn.execute(select(R.receivable_event.c.key).where(
            R.receivable_event.c.tenant_id == t, R.receivable_event.c.kind == "payment")).all()]
        assert len(B.list_entries(conn, t, limit=1000)) == 17
    assert len(keys) == len(set(keys)) == 17  # every entry booked, once
    by_number = {f"INV-{n:06d}" for n in range(10, 21)}
    assert all(opens[n] == 0 for n in by_number)
    # the payer's 7.77 + 4 x 25.00 went to the account's other items, oldest due first
    left = D("107.77")
    for s in sorted((s for n, s in before.items() if n not in by_number), key=lambda s: (s.due_date, s.id)):
        take = min(s.open, left)
        left -= take
        assert opens[s.number] == s.open - take, s.number
    assert left == 0 and len(opens) == len(before)  # nothing over: no credit balance
    # the same statement again: nothing booked twice
    [again] = parse_camt(xml)
    with engine.begin() as conn:
        dup = B.import_statement(conn, t, again, "sha-m2")
        assert (dup.duplicates, dup.matched) == (17, 0)
        assert {s.number: s.open for s in R.item_states(conn, t, account_id="acc_3")} == opens
