"""The journal in the database (SQLite and PostgreSQL): every receivable event posts one balanced
entry in its own transaction, per revenue kind and VAT rate; entries cannot be edited; a closed
period pushes a late event into the next open one; a chart without an account for a line refuses
the event; batches take each entry once and archive DATEV, CSV and JSON lines with their sha256."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from runtime.accounting.chart import Chart, ChartError, MappingMissing, template
from runtime.accounting.formats import BOOKING_COLUMNS
from runtime.accounting.journal import JournalEntry
from runtime.invoicing import InvoiceLine
from store import accounting as A
from store import billing as B
from store import receivables as R
from store.models import Customer
from tests.accounting_reader import read_extf
from tests.workflows.seed import seed_tenant

D = Decimal
AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _line(seq: int, kind: str, net: str, rate: str) -> InvoiceLine:
    return InvoiceLine(seq, kind, "energy" if kind == "session" else kind, f"{kind} {seq}", D(1), "each", D(net),
                       D(net), D(net), D(rate))


def _invoice(engine: Engine, tenant: str, account: str, customer: str, n: int, lines: list[InvoiceLine],
             kind: str = "invoice", corrects: tuple[str, ...] = (), treatment: dict[str, str] | None = None,
             finalize: bool = True) -> str:
    """A draft written as month-end writes it (lines, VAT groups; ``treatment`` on the 0 % group of
    an untaxed invoice), then finalized (unless ``finalize`` is false)."""
    from runtime.money import tax_groups

    groups = tax_groups(((ln.tax_rate, ln.net) for ln in lines), "EUR")
    net = sum((ln.net for ln in lines), D(0))
    tax = sum((g[2] for g in groups), D(0))
    iid = f"inv_{tenant}_{n}"
    with engine.begin() as conn:
        conn.execute(insert(B.invoice).values(
            id=iid, tenant_id=tenant, account_id=account, customer_id=customer, cycle_key=f"k{n}", kind=kind,
            status="draft", currency="EUR", period_start=AT, period_end=AT, local_start=date(2026, 11, 1),
            local_end=date(2026, 12, 1), timezone="Europe/Berlin", issue_date=date(2026, 12, 1),
            due_date=date(2026, 12, 15), payment_terms="net 14", net_total=net, tax_total=tax, gross_total=net + tax,
            tax_groups=[{"rate": format(r, "f"), "net": format(n_, "f"), "tax": format(t, "f"),
                         **(treatment or {} if r == 0 else {})} for r, n_, t in groups],
            sessions=0, energy_kwh=D(0), hold_reasons=[], comparison={}, corrects=list(corrects), workflow_id="w",
            rejected_reason="", decided_by="", created_at=AT))
        B.insert_lines(conn, tenant, iid, lines)
        B.ensure_series(conn, tenant, "INV", "INV-")
        B.ensure_series(conn, tenant, "CN", "CN-")
        if finalize:
            B.finalize_invoice(conn, tenant, iid, at=AT)
    return iid


def _entries(engine: Engine, tenant: str) -> list[JournalEntry]:
    with engine.connect() as conn:
        return [e for _i, e in sorted(A.entries(conn, tenant), key=lambda x: x[0])]  # in the order posted


def _signed(e: JournalEntry) -> dict[tuple[str, str, str], Decimal]:
    return {(ln.role, ln.revenue_kind, ln.vat): ln.signed for ln in e.lines}


def test_events_post_balanced_entries_in_their_transaction(engine: Engine) -> None:
    s = seed_tenant(engine, "jnl1", 1)
    acc = s.account_ids[0]
    cus = s.customer_of[acc]
    _invoice(engine, "jnl1", acc, cus, 1, [
        _line(1, "session", "10.00", "19"), _line(2, "fee", "5.00", "19"), _line(3, "service", "2.00", "7"),
        _line(4, "discount", "-1.00", "19")])
    [inv] = _entries(engine, "jnl1")
    # VAT per rate group: 19 % of 14.00 = 2.66, 7 % of 2.00 = 0.14; gross 18.80
    assert inv.source_kind == "invoice" and inv.document == "INV-000001"
    assert inv.document_date == inv.posting_date == date(2026, 12, 1)
    assert _signed(inv) == {
        ("debtor", "", ""): D("18.80"),
        ("revenue", "charging", "19"): D("-10.00"), ("revenue", "subscription", "19"): D("-5.00"),
        ("revenue", "service", "7"): D("-2.00"), ("revenue", "discount", "19"): D("1.00"),
        ("vat", "", "19"): D("-2.66"), ("vat", "", "7"): D("-0.14")}
    assert {ln.account for ln in inv.lines if ln.role == "debtor"} == {"1200"}  # the plain chart's control account

    with engine.begin() as conn:
        [item] = R.item_states(conn, "jnl1")
        # 20.00 paid: 18.80 settles the invoice, 1.20 becomes a credit balance
        R.book_payment(conn, "jnl1", key="p1", customer_id=cus, account_id=acc, amount=D("20.00"), currency="EUR",
                       booked_on=date(2026, 12, 5), reference="bank ref 1")
    pay = _entries(engine, "jnl1")[-1]
    assert pay.source_kind == "payment" and pay.document == "bank ref 1"
    assert _signed(pay) == {("bank", "", ""): D("20.00"), ("debtor", "", ""): D("-18.80"),
                            ("customer_credit", "", ""): D("-1.20")}
    with engine.begin() as conn:
        R.book_return(conn, "jnl1", key="r1", item_id=item.id, amount=D("18.80"), charge=D("3.00"),
                      booked_on=date(2026, 12, 8), reference="return 1")
    ret = _entries(engine, "jnl1")[-1]
    assert _signed(ret) == {("debtor", "", ""): D("21.80"), ("bank", "", ""): D("-18.80"),
                            ("return_charge", "", ""): D("-3.00")}
    # a credit note of 5.95 (5.00 net at 19 %) on the invoice; then the old credit balance is used
    _invoice(engine, "jnl1", acc, cus, 2, [_line(1, "session", "-5.00", "19")], "credit_note", ("INV-000001",))
    kinds = [e.source_kind for e in _entries(engine, "jnl1")]
    assert kinds == ["invoice", "payment", "return", "credit_note", "credit_applied"]
    cn, used = _entries(engine, "jnl1")[-2:]
    assert _signed(cn) == {("debtor", "", ""): D("-5.95"), ("revenue", "charging", "19"): D("5.00"),
                           ("vat", "", "19"): D("0.95")}
    assert _signed(used) == {("customer_credit", "", ""): D("1.20"), ("debtor", "", ""): D("-1.20")}
    with engine.connect() as conn:
        open_total = sum((st.open for st in R.item_states(conn, "jnl1")), D(0))
        roles = A.role_balances(conn, "jnl1")
    receivable = sum((v for (role, _v, _c), v in roles.items() if role in ("debtor", "customer_credit")), D(0))
    # 18.80 returned + 3.00 charge open again, 5.95 credited, the 1.20 credit balance used
    assert receivable == open_total == D("21.80") - D("5.95") - D("1.20")
    for e in _entries(engine, "jnl1"):
        assert sum((ln.signed for ln in e.lines), D(0)) == 0


def test_dunning_charges_and_refunds_post_balanced_entries(engine: Engine) -> None:
    """Issue 13's charges (a taxable fee, interest, the flat fee) and issue 12's refunds and their
    returned transfers post like the other events: balanced, and the journal's receivables stay
    equal to the open items."""
    s = seed_tenant(engine, "jnl6", 1)
    acc = s.account_ids[0]
    cus = s.customer_of[acc]
    _invoice(engine, "jnl6", acc, cus, 1, [_line(1, "session", "10.00", "19")])
    on, due = date(2026, 12, 20), date(2027, 1, 3)
    with engine.begin() as conn:
        R.open_charge_item(conn, "jnl6", key="d:fee", kind="dunning_fee", customer_id=cus, account_id=acc,
                           currency="EUR", amount=D("5.95"), issue_date=on, due_date=due, number="MG-1",
                           detail={"net": "5.00", "vat": "0.95", "vat_rate": "19", "treatment": "taxable"})
        R.open_charge_item(conn, "jnl6", key="d:int", kind="interest", customer_id=cus, account_id=acc,
                           currency="EUR", amount=D("0.12"), issue_date=on, due_date=due, number="VZ-1")
        R.open_charge_item(conn, "jnl6", key="d:flat", kind="flat_fee", customer_id=cus, account_id=acc,
                           currency="EUR", amount=D("40.00"), issue_date=on, due_date=due, number="PA-1")
    fee, interest, flat = _entries(engine, "jnl6")[-3:]
    assert _signed(fee) == {("debtor", "", ""): D("5.95"), ("dunning_income", "", ""): D("-5.00"),
                            ("vat", "", "19"): D("-0.95")}
    assert _signed(interest) == {("debtor", "", ""): D("0.12"), ("interest_income", "", ""): D("-0.12")}
    assert _signed(flat) == {("debtor", "", ""): D("40.00"), ("dunning_income", "", ""): D("-40.00")}
    # everything paid with 10.00 too much: a credit balance, refunded, its transfer returned
    with engine.begin() as conn:
        R.book_payment(conn, "jnl6", key="p1", customer_id=cus, account_id=acc, amount=D("67.97"), currency="EUR",
                       booked_on=date(2026, 12, 22), reference="bank ref 6")
        credits = [st.view() for st in R.item_states(conn, "jnl6") if st.open < 0]
        R.book_refund(conn, "jnl6", key="rf1", account_id=acc, currency="EUR", amount=D("10.00"), credits=credits,
                      booked_on=date(2026, 12, 23), reference="refund 1")
        R.book_refund_return(conn, "jnl6", key="rf1-back", refund_key="rf1", booked_on=date(2026, 12, 28),
                             reference="refund 1 returned")
    refund, back = _entries(engine, "jnl6")[-2:]
    assert refund.source_kind == "refund" and back.source_kind == "refund_return"
    assert _signed(refund) == {("customer_credit", "", ""): D("10.00"), ("payout", "", ""): D("-10.00")}
    assert _signed(back) == {("customer_credit", "", ""): D("-10.00"), ("payout", "", ""): D("10.00")}
    with engine.connect() as conn:
        open_total = sum((st.open for st in R.item_states(conn, "jnl6")), D(0))
        roles = A.role_balances(conn, "jnl6")
    receivable = sum((v for (role, _v, _c), v in roles.items() if role in ("debtor", "customer_credit")), D(0))
    assert receivable == open_total == D("-10.00")  # the returned refund's credit is the customer's again
    for e in _entries(engine, "jnl6"):
        assert sum((ln.signed for ln in e.lines), D(0)) == 0


def test_entries_are_append_only_and_corrections_are_new_entries(engine: Engine) -> None:
    s = seed_tenant(engine, "jnl2", 1)
    acc = s.account_ids[0]
    _invoice(engine, "jnl2", acc, s.customer_of[acc], 1, [_line(1, "session", "10.00", "19")])
    for stmt in (update(A.journal_line).values(amount=D("0.01")), text("DELETE FROM journal_line"),
                 update(A.journal_entry).values(posting_date=date(2026, 1, 1)), text("DELETE FROM journal_entry")):
        with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as conn:
            conn.execute(stmt)
    with engine.begin() as conn:
        [(eid, original)] = A.entries(conn, "jnl2")
        cid = A.correct_entry(conn, "jnl2", eid, "reversal of a wrong posting", date(2026, 12, 3))
        got = dict(A.entries(conn, "jnl2"))
    assert got[cid].corrects == eid and got[cid].document == original.document
    assert {k: -v for k, v in _signed(original).items()} == _signed(got[cid])
    with engine.connect() as conn:
        assert all(v == 0 for v in A.account_balances(conn, "jnl2").values())


def test_a_closed_period_pushes_late_events_into_the_next_open_one(engine: Engine) -> None:
    s = seed_tenant(engine, "jnl3", 1)
    acc = s.account_ids[0]
    with engine.begin() as conn:
        A.close_period(conn, "jnl3", "2026-12", "fin")
        A.close_period(conn, "jnl3", "2027-01", "fin")
        with pytest.raises(A.AccountingError):
            A.close_period(conn, "jnl3", "2026-12", "fin")
    _invoice(engine, "jnl3", acc, s.customer_of[acc], 1, [_line(1, "session", "10.00", "19")])
    [e] = _entries(engine, "jnl3")
    assert e.document_date == date(2026, 12, 1) and e.posting_date == date(2027, 2, 1)
    with engine.connect() as conn:
        assert A.entries(conn, "jnl3", period="2026-12") == []
        assert len(A.entries(conn, "jnl3", period="2027-02")) == 1
    with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as conn:
        conn.execute(text("DELETE FROM accounting_period"))  # reopening is not a thing


def test_personal_debtors_skr03_and_missing_mappings(engine: Engine) -> None:
    s = seed_tenant(engine, "jnl4", 2)
    a0, a1 = s.account_ids
    c = Customer.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(c).where(c.c.id == s.customer_of[a0]).values(number="K-10042"))
        conn.execute(update(c).where(c.c.id == s.customer_of[a1]).values(number="K-99"))  # out of range
        # SKR03 does not map 0 %: refused when set for a tenant whose rulesets use it, every gap named
        with pytest.raises(ChartError) as err:
            A.set_chart(conn, "jnl4", template("skr03"), ["19", "0"], "fin")
        assert len(err.value.missing) > 5 and all("VAT '0'" in m for m in err.value.missing)
        A.set_chart(conn, "jnl4", template("skr03"), ["19", "7"], "fin")
    _invoice(engine, "jnl4", a0, s.customer_of[a0], 1, [_line(1, "session", "10.00", "19")])
    _invoice(engine, "jnl4", a1, s.customer_of[a1], 2, [_line(1, "session", "10.00", "7")])
    e0, e1 = _entries(engine, "jnl4")
    assert {(ln.role, ln.account) for ln in e0.lines} == {("debtor", "10042"), ("revenue", "8400"), ("vat", "1776")}
    assert {(ln.role, ln.account) for ln in e1.lines} == {("debtor", "10043"), ("revenue", "8300"), ("vat", "1771")}
    # an invoice at a rate the chart does not map is refused with its finalization: no item, no entry
    with pytest.raises(MappingMissing):
        _invoice(engine, "jnl4", a0, s.customer_of[a0], 3, [_line(1, "session", "10.00", "0")])
    with engine.connect() as conn:
        assert len(R.item_states(conn, "jnl4")) == 2
        status = conn.execute(select(B.invoice.c.status).where(B.invoice.c.id == "inv_jnl4_3")).scalar()
    assert status is None and len(_entries(engine, "jnl4")) == 2


def test_batches_take_each_entry_once_and_archive_their_files(engine: Engine) -> None:
    s = seed_tenant(engine, "jnl5", 1)
    acc, cus = s.account_ids[0], s.customer_of[s.account_ids[0]]
    c = Customer.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        A.set_chart(conn, "jnl5", template("skr04"), ["19", "7"], "fin")
        conn.execute(update(c).where(c.c.id == cus).values(kind="business", company_name="Bäckerei Müller GmbH",
                                                           street="Hauptstraße 1", postal_code="50667", city="Köln"))
    _invoice(engine, "jnl5", acc, cus, 1, [_line(1, "session", "10.00", "19"), _line(2, "service", "4.00", "7")])
    with engine.begin() as conn:
        R.book_payment(conn, "jnl5", key="p1", customer_id=cus, account_id=acc, amount=D("16.18"), currency="EUR",
                       booked_on=date(2026, 12, 9), reference="SEPA 1")
        first = A.create_batch(conn, "jnl5", "2026-12", "fin", at=datetime(2027, 1, 2, 8, tzinfo=UTC))
        with pytest.raises(A.AccountingError) as err:
            A.create_batch(conn, "jnl5", "2026-12", "fin")
        assert err.value.code == "nothing_to_export"
    assert first["number"] == 1 and first["entries"] == 2
    assert {f["format"] for f in first["files"]} == {"datev", "datev_debtors", "csv", "jsonl"}
    with engine.begin() as conn:
        R.book_payment(conn, "jnl5", key="p2", customer_id=cus, account_id=acc, amount=D("1.00"), currency="EUR",
                       booked_on=date(2026, 12, 20), reference="SEPA 2")
        second = A.create_batch(conn, "jnl5", "2026-12", "fin")
        files = {f: A.batch_file(conn, "jnl5", first["id"], f) for f in ("datev", "datev_debtors", "csv", "jsonl")}
        taken = conn.execute(select(A.posting_batch_entry.c.entry_id)).scalars().all()
    assert second["number"] == 2 and second["entries"] == 1
    assert len(taken) == len(set(taken)) == 3
    for f in files.values():
        assert hashlib.sha256(f.content).hexdigest() == f.sha256
    assert first["sha256"] == files["jsonl"].sha256
    # the JSON lines name every field and carry the entries as posted
    objs = [json.loads(x) for x in files["jsonl"].content.decode().splitlines()]
    assert [o["source_kind"] for o in objs] == ["invoice", "payment"]
    assert objs[0]["document"] == "INV-000001" and objs[0]["lines"][0]["account"] == "10001"
    # the DATEV file read back field by field (tests/accounting_reader.py, written from the description)
    batch = read_extf(files["datev"].content)
    assert batch.header["Formatname"] == "Buchungsstapel" and batch.header["Datenkategorie"] == "21"
    assert batch.header["Versionsnummer"] == "700" and batch.header["Sachkontenlänge"] == "4"
    assert batch.header["Datum vom"] == "20261201" and batch.header["Datum bis"] == "20261231"
    assert batch.header["WJ-Beginn"] == "20260101" and batch.header["SKR"] == "04"
    assert batch.columns == list(BOOKING_COLUMNS)
    rows = [(r["Umsatz (ohne Soll/Haben-Kz)"], r["Soll/Haben-Kennzeichen"], r["Konto"],
             r["Gegenkonto (ohne BU-Schlüssel)"], r["Belegdatum"], r["Belegfeld 1"]) for r in batch.rows]
    # SKR04's revenue accounts compute VAT in DATEV: the rows carry the gross per rate (10.00 + 1.90,
    # 4.00 + 0.28; rates in ascending order), against the customer's personal account
    assert rows == [("4,28", "S", "10001", "4300", "0112", "INV-000001"),
                    ("11,90", "S", "10001", "4400", "0112", "INV-000001"),
                    ("16,18", "H", "10001", "1800", "0912", "SEPA-1")]
    deb = read_extf(files["datev_debtors"].content)
    assert deb.header["Datenkategorie"] == "16" and deb.header["Formatname"] == "Debitoren/Kreditoren"
    assert [(r["Konto"], r["Name (Adressatentyp Unternehmen)"], r["Adressatentyp"], r["Straße"], r["Ort"])
            for r in deb.rows] == [("10001", "Bäckerei Müller GmbH", "2", "Hauptstraße 1", "Köln")]
    # Windows-1252 on the wire: ä, ü and ß are one byte each
    raw = files["datev_debtors"].content
    assert "Bäckerei Müller".encode("cp1252") in raw and "Bäckerei".encode() not in raw


@pytest.mark.parametrize(("chart", "accounts"), [("skr03", {"AE": "8336", "O": "8338", "E": "8100"}),
                                                 ("skr04", {"AE": "4336", "O": "4338", "E": "4100"})])
def test_untaxed_treatments_post_to_their_revenue_accounts_without_vat(engine: Engine, chart: str,
                                                                        accounts: dict[str, str]) -> None:
    """An invoice billed without VAT by its treatment (reverse charge AE, a business outside the EU
    O, a ruleset's exemption E) books its revenue, discounts included, on the treatment's account
    and no VAT line; DATEV gets the net on that account, no BU key; credit notes reverse it there."""
    tenant = f"jnl_untaxed_{chart}"
    s = seed_tenant(engine, tenant, 3)
    with engine.begin() as conn:
        # a chart set for the treatments the tenant's rulesets can give
        A.set_chart(conn, tenant, template(chart), ["19", "AE", "O", "E"], "fin")
        # the templates map every treatment; a chart without them is refused with each gap named
        bare = template(chart).to_dict()
        bare["rules"] = [r for r in bare["rules"] if r["vat"] not in ("AE", "O", "E")]
        with pytest.raises(ChartError) as err:
            A.set_chart(conn, tenant, Chart.from_dict(bare), ["19", "O", "E"], "fin")
        assert err.value.missing and all("role 'revenue'" in m and ("VAT 'O'" in m or "VAT 'E'" in m)
                                         for m in err.value.missing)
        assert not any("role 'vat'" in m for m in err.value.missing)  # no VAT line to map for them
    treatments = {"AE": {"category": "AE", "vatex": "VATEX-EU-AE", "reason": ""},
                  "O": {"category": "O", "vatex": "VATEX-EU-O", "reason": ""},
                  "E": {"category": "E", "vatex": "VATEX-EU-132", "reason": "Steuerfrei nach § 4 Nr. 14 UStG"}}
    for n, (acc, treatment) in enumerate(zip(s.account_ids, treatments.values(), strict=True), 1):
        _invoice(engine, tenant, acc, s.customer_of[acc], n,
                 [_line(1, "session", "10.00", "0"), _line(2, "discount", "-1.00", "0")], treatment=treatment)
    _invoice(engine, tenant, s.account_ids[1], s.customer_of[s.account_ids[1]], 4,
             [_line(1, "session", "-2.00", "0")], kind="credit_note", treatment=treatments["O"])
    entries = _entries(engine, tenant)
    for e, cat in zip(entries, ("AE", "O", "E"), strict=False):
        assert {(ln.revenue_kind, ln.account, ln.vat, ln.side, ln.amount) for ln in e.lines
                if ln.role != "debtor"} == {("charging", accounts[cat], cat, "credit", D("10.00")),
                                            ("discount", accounts[cat], cat, "debit", D("1.00"))}
        assert not any(ln.role == "vat" for ln in e.lines) and all(not ln.bu_key for ln in e.lines)
    credit = entries[3]
    assert {(ln.role, ln.account, ln.side, ln.amount) for ln in credit.lines if ln.role == "revenue"} == {
        ("revenue", accounts["O"], "debit", D("2.00"))}
    with engine.begin() as conn:
        batch = A.create_batch(conn, tenant, "2026-12", "fin", at=datetime(2027, 1, 2, 8, tzinfo=UTC))
        rows = read_extf(A.batch_file(conn, tenant, batch["id"], "datev").content).rows
    got = sorted((r["Umsatz (ohne Soll/Haben-Kz)"], r["Soll/Haben-Kennzeichen"], r["Gegenkonto (ohne BU-Schlüssel)"],
                  r["BU-Schlüssel"]) for r in rows)
    assert got == sorted([(amount, side, accounts[cat], "") for cat in ("AE", "O", "E")
                          for amount, side in (("10,00", "S"), ("1,00", "H"))] + [("2,00", "H", accounts["O"], "")])
