"""Host credit notes through the API (issue 15): an issued statement with a spot-indexed energy
reimbursement becomes a self-billing note GU-000001 (389): archived as PDF + XRechnung UBL and CII
(valid against the offline kit), e-mail queued to the host, a host_credit payable for the payout
run, the journal entry (expense, input VAT, partner payable); a second note for the same statement
is refused; a correction (the host turned out to be a small business) is GU-000002 naming
GU-000001 and adds up to the VAT taken back; an employee's home charging is a PDF-only note.

Figures (series day_ahead_cn 2026-04-01: 00:00Z 85.20, 01:00Z 80.00 EUR/MWh):
  C-1 00:30Z..01:30Z 10 kWh, meter 4000 Wh at 01:00: 4 × 0.1052 + 6 × 0.1000 = 1.0208 -> reimbursement 1.02
  revenue 10 × 0.50 = 5.00, host 10 % = 0.50; note net 1.52, VAT 19 % 0.29, payable 1.81
  employee E-1 03:30Z..04:30Z 4 kWh at 0.30 = 1.20 (not subject: no VAT)
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Env, publish_ruleset, requires_dsl
from tests.runtime.documents.conftest import KIT

pytestmark = requires_dsl

RULESET = """ruleset cnshare currency EUR timezone Europe/Berlin
series day_ahead_cn
tariff std "Standard" { vat 19%; energy 0.50 per kWh }
revenue_share host_cn {
  sites cn_hotel
  host gets 10% of net revenue
  reimburse energy at index(day_ahead_cn) + 0.02 per kWh
}
reimbursement car_cn "Company car" { energy at 0.30 per kWh }
"""
PRICES = "timestamp,price (EUR/MWh)\n2026-04-01T00:00:00Z,85.20\n2026-04-01T01:00:00Z,80.00\n"
HOST = {"kind": "site_host", "name": "Hotel Credit KG", "country_code": "DE", "vat_id": "DE129273398",
        "iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "email": "host@credit.test", "street": "Marktplatz 3",
        "postal_code": "88131", "city": "Lindau", "phone": "+49 8382 4711", "language": "de"}


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def setup(env: Env) -> dict[str, str]:
    c, a = env.client, env.a
    h = a.h()
    _ok(c.patch("/tenant", json={"legal_name": "Stadtwerke A GmbH", "street": "Hauptstr. 1", "postal_code": "10115",
                                 "city": "Berlin", "country": "DE", "vat_id": "DE136695976"}, headers=h))
    rs = publish_ruleset(c, a, "cnshare", RULESET)
    _ok(c.post("/price-series", json={"name": "day_ahead_cn", "unit": "per MWh"}, headers=h), 201)
    _ok(c.post("/price-series/day_ahead_cn/prices", content=PRICES, headers={**h, "Content-Type": "text/csv"}), 201)
    host = _ok(c.post("/partners", json=HOST, headers=h), 201)["id"]
    _ok(c.post("/locations", json={"code": "cn_hotel", "name": "Hotel Credit", "country": "DE",
                                   "timezone": "Europe/Berlin", "site_host_id": host, "ruleset_id": rs["id"]},
               headers=h), 201)
    _ok(c.post("/agreements", json={"partner_id": host, "kind": "revenue_share", "valid_from": "2026-01-01",
                                    "ruleset_name": "cnshare", "rule_name": "host_cn"}, headers=h), 201)
    employee = _ok(c.post("/partners", json={
        "kind": "employee", "name": "Erika Muster", "iban": "DE12500105170648489890", "email": "erika@credit.test",
        "street": "Gartenweg 2", "postal_code": "10117", "city": "Berlin"}, headers=h), 201)["id"]
    _ok(c.post("/locations", json={"code": "cn_home", "name": "Erika at home", "country": "DE",
                                   "timezone": "Europe/Berlin", "site_host_id": employee, "ruleset_id": rs["id"]},
               headers=h), 201)
    _ok(c.post("/agreements", json={"partner_id": employee, "kind": "reimbursement", "valid_from": "2026-01-01",
                                    "ruleset_name": "cnshare", "rule_name": "car_cn"}, headers=h), 201)
    res = _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": "C-1", "start": "2026-04-01T00:30:00Z", "end": "2026-04-01T01:30:00Z", "energy_kwh": "10",
         "location_id": "cn_hotel", "tariff": "std", "meter_values": [
             {"at": "2026-04-01T00:30:00Z", "energy_wh": "0"}, {"at": "2026-04-01T01:00:00Z", "energy_wh": "4000"},
             {"at": "2026-04-01T01:30:00Z", "energy_wh": "10000"}]},
        {"id": "CE-1", "start": "2026-04-01T03:30:00Z", "end": "2026-04-01T04:30:00Z", "energy_kwh": "4",
         "location_id": "cn_home", "tariff": "std"}]}, headers=h))
    assert res["created"] == 2, res
    st = _ok(c.post("/partner-statements", json={"partner_id": host, "month": "2026-04"}, headers=h), 201)
    est = _ok(c.post("/partner-statements", json={"partner_id": employee, "month": "2026-04"}, headers=h), 201)
    return {"host": host, "employee": employee, "statement": st["id"], "employee_statement": est["id"]}


def _pdf_text(env: Env, note: dict[str, Any]) -> str:
    """The note's archived PDF as text (pdftotext, reading order, whitespace folded), rendered to
    PNG beside it (``EVBILL_TEST_PNG_DIR``) for a look."""
    import os
    import subprocess
    import tempfile

    [d] = [d for d in note["documents"] if d["format"] == "pdf"]
    body = env.client.get(f"/documents/{d['id']}/content", headers=env.a.h()).content
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "note.pdf"
        pdf.write_bytes(body)
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        if os.environ.get("EVBILL_TEST_PNG_DIR"):
            subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf),
                            str(Path(os.environ["EVBILL_TEST_PNG_DIR"]) / note["number"])], check=True)
    return " ".join(text.split())


def _validator() -> Any:
    import sys

    if not (KIT / "validate.py").exists():
        pytest.skip(f"e-invoice kit not found at {KIT}")
    sys.path.insert(0, str(KIT))
    import validate as kit  # type: ignore[import-not-found]

    return kit.Validator()


def test_statement_becomes_a_credit_note_with_payable_and_journal(env: Env, setup: dict[str, str],
                                                                   tmp_path: Path) -> None:
    c, a = env.client, env.a
    r = c.post(f"/partner-statements/{setup['statement']}/credit-note", json={"issue_date": "2026-05-03"},
               headers=a.h("operator"))
    note = _ok(r, 201)
    assert note["number"].startswith("GU-") and note["vat_status"] == "registered"
    assert (Decimal(note["net"]), Decimal(note["tax"]), Decimal(note["gross"])) == (
        Decimal("1.52"), Decimal("0.29"), Decimal("1.81"))
    assert Decimal(note["payable"]) == Decimal("1.81") and note["payable_id"]
    assert sorted(d["format"] for d in note["documents"]) == ["pdf", "xrechnung-cii", "xrechnung-ubl"]
    assert {d["delivery_status"] for d in note["documents"]} == {"pending"}  # e-mail queued to the host
    v = _validator()
    for d in note["documents"]:
        body = c.get(f"/documents/{d['id']}/content", headers=a.h()).content
        path = tmp_path / d["filename"]
        path.write_bytes(body)
        if d["format"] != "pdf":
            rep = v.validate(str(path))
            assert rep.valid, rep.summary()
            assert b"389" in body and b"Gutschrift" in body
    # the e-mail to the host as it leaves: built from the archived bytes, all three attached
    from store.documents import deliveries_of, documents_by_number, message_builder

    with env.engine.connect() as conn:
        [delivery] = deliveries_of(conn, a.tenant_id, note["number"])
        docs = documents_by_number(conn, a.tenant_id, note["number"])
    msg = message_builder(env.engine)(delivery, docs)
    assert msg["To"] == "host@credit.test" and msg["Subject"] == f"Gutschrift {note['number']}"
    assert sorted(p.get_filename() for p in msg.iter_attachments()) == sorted(d["filename"] for d in note["documents"])
    # the second note of the same statement is refused; a partner sees its own notes only
    again = c.post(f"/partner-statements/{setup['statement']}/credit-note", json={}, headers=a.h())
    assert again.status_code == 409 and again.json()["code"] == "credit_note_exists"
    mine = _ok(c.get("/host-credit-notes", headers=a.h("partner")))["items"]
    assert all(n["partner_id"] != setup["host"] for n in mine)
    # the payable the payout run pays
    pays = _ok(c.get("/payouts/payables", params={"kind": "host_credit"}, headers=a.h()))["items"]
    p = next(x for x in pays if x["id"] == note["payable_id"])
    assert (p["amount"], p["status"], p["payee_kind"], p["iban"]) == ("1.81", "requested", "partner",
                                                                       "DE89370400440532013000")
    # the journal: expense 1.52 and input VAT 0.29 against the partner payable 1.81 (plain chart)
    entries = _ok(c.get("/accounting/journal", headers=a.h()))
    items = entries["items"] if isinstance(entries, dict) else entries
    entry = next(e for e in items if e["document"] == note["number"])
    lines = {(ln["account"], ln["side"]): ln["amount"] for ln in entry["lines"]}
    assert lines == {("5100", "debit"): "1.52", ("1500", "debit"): "0.29", ("2500", "credit"): "1.81"}


def test_a_correction_names_the_corrected_note(env: Env, setup: dict[str, str]) -> None:
    c, a = env.client, env.a
    first = _ok(c.get("/host-credit-notes", params={"statement_id": setup["statement"]}, headers=a.h()))["items"][0]
    _ok(c.patch(f"/partners/{setup['host']}", json={"vat_status": "small_business"}, headers=a.h()))
    fixed = _ok(c.post(f"/host-credit-notes/{first['id']}/corrections", json={"reason": "Kleinunternehmer"},
                       headers=a.h()), 201)
    assert fixed["corrects_number"] == first["number"] and fixed["vat_status"] == "small_business"
    assert int(fixed["number"][3:]) == int(first["number"][3:]) + 1  # one series, no gaps
    # taken back 1.52 + 0.29, stated again 1.52 without VAT: the host was paid 0.29 too much
    assert Decimal(fixed["payable"]) == Decimal("-0.29") and fixed["payable_id"] is None
    assert Decimal(fixed["tax"]) == Decimal("-0.29")
    assert _ok(c.get(f"/host-credit-notes/{fixed['number']}", headers=a.h()))["id"] == fixed["id"]
    missing = c.post("/host-credit-notes/hcn_nothing/corrections", json={"reason": "x"}, headers=a.h())
    assert missing.status_code == 404


def test_employee_reimbursement_is_a_pdf_note(env: Env, setup: dict[str, str]) -> None:
    c, a = env.client, env.a
    note = _ok(c.post(f"/partner-statements/{setup['employee_statement']}/credit-note", json={}, headers=a.h()), 201)
    assert note["vat_status"] == "not_subject" and [d["format"] for d in note["documents"]] == ["pdf"]
    assert (Decimal(note["net"]), Decimal(note["tax"])) == (Decimal("1.20"), Decimal(0))
    assert note["payable_id"]


def test_missing_details_are_named(env: Env) -> None:
    c, a = env.client, env.a
    bare = _ok(c.post("/partners", json={"kind": "site_host", "name": "Bare host"}, headers=a.h()), 201)["id"]
    _ok(c.post("/locations", json={"code": "cn_bare", "name": "Bare", "country": "DE", "timezone": "Europe/Berlin",
                                   "site_host_id": bare}, headers=a.h()), 201)
    _ok(c.post("/agreements", json={"partner_id": bare, "kind": "revenue_share", "valid_from": "2026-01-01",
                                    "terms": {"per_session": "1.00"}}, headers=a.h()), 201)
    _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": "CB-1", "start": "2026-04-02T10:00:00Z", "end": "2026-04-02T11:00:00Z", "energy_kwh": "3",
         "location_id": "cn_bare", "tariff": "std"}]}, headers=a.h()))
    st = _ok(c.post("/partner-statements", json={"partner_id": bare, "month": "2026-04", "accept_unrated": True},
                    headers=a.h()), 201)
    r = c.post(f"/partner-statements/{st['id']}/credit-note", json={}, headers=a.h())
    assert r.status_code in (409, 422), r.text
    assert r.json()["code"] in ("partner_details_missing", "nothing_to_credit")


def test_payout_run_pays_the_notes_and_the_bank_closes_them(env: Env, setup: dict[str, str]) -> None:
    """The payout run's store steps (the workflow's activities): the host's and the employee's notes
    in one pain.001 (XSD-valid), the journal moves them from the partner payable to the payout
    clearing account, the statement's debit marks them paid, a returned transfer owes it again."""
    from datetime import UTC, date, datetime

    from sqlalchemy import select

    from runtime.bank.camt import parse_camt
    from runtime.bank.pain001 import validate_pain001
    from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
    from store import accounting as AC
    from store import bank as B
    from store import payables as P

    c, a = env.client, env.a
    cred = _ok(c.post("/collections/creditor-accounts", json={
        "name": "Stadtwerke A GmbH", "iban": "DE02120300000000202051", "creditor_id": "DE98ZZZ09999999999"},
        headers=a.h()), 201)["id"]
    notes = {n["partner_id"]: n for n in _ok(c.get("/host-credit-notes", headers=a.h()))["items"] if n["payable_id"]}
    assert set(notes) >= {setup["host"], setup["employee"]}
    now = datetime(2026, 5, 10, 8, tzinfo=UTC)
    with env.engine.begin() as conn:
        g = P.gather(conn, a.tenant_id, cred, "wf-host-credits", date(2026, 5, 10), "usr_start")
        items = {r.payable_id: r for r in P.run_items(conn, g.run_id)}
        mine = {notes[p]["payable_id"] for p in (setup["host"], setup["employee"])}
        assert mine <= set(items) and {items[i].kind for i in mine} == {"host_credit"}
        run = P.submit_run(conn, a.tenant_id, g.run_id, "usr_appr", now)
        content = bytes(P.get_file(conn, a.tenant_id, run.file_id).content)
        validate_pain001(content)
        assert b"Gutschrift GU-" in content and b"DE12500105170648489890" in content
        je = AC.journal_entry.c
        paid_out = conn.execute(select(je.id, je.source_id).where(je.tenant_id == a.tenant_id,
                                                                  je.source_kind == "host_payout")).all()
        assert {r.source_id for r in paid_out} >= {items[i].id for i in mine}
        bal = AC.role_balances(conn, a.tenant_id)
        # both notes are out of the partner payable (the corrected host's -0.29 is still owed back)
        assert sum((v for (role, _acc, _cur), v in bal.items() if role == "partner_payable"), Decimal(0)) == \
            Decimal("0.29")
    host_item, emp_item = items[notes[setup["host"]]["payable_id"]], items[notes[setup["employee"]]["payable_id"]]
    total = host_item.amount + emp_item.amount
    debit = statement_xml(message_id="HC-1", statement_id="HC-S-1", sequence=1, created=now,
                          account_iban="DE02120300000000202051", currency="EUR", opening=Decimal(100), entries=[
                              SimEntry(total, False, date(2026, 5, 11), "HC-BATCH", bank_tx_code="PMNT/ICDT/ESCT",
                                       transactions=[SimTransaction(host_item.amount, host_item.end_to_end_id),
                                                     SimTransaction(emp_item.amount, emp_item.end_to_end_id)])])
    with env.engine.begin() as conn:
        res = B.import_statement(conn, a.tenant_id, parse_camt(debit)[0], "camt-hc")
        assert res.payouts_paid == 2
        assert {P.get_payable(conn, a.tenant_id, i).status for i in mine} == {"paid"}
    ret = statement_xml(message_id="HC-2", statement_id="HC-S-2", sequence=2, created=now,
                        account_iban="DE02120300000000202051", currency="EUR", opening=Decimal(100) - total, entries=[
                            SimEntry(emp_item.amount, True, date(2026, 5, 13), "HC-RT", bank_tx_code="PMNT/ICDT/RRTN",
                                     transactions=[SimTransaction(emp_item.amount, emp_item.end_to_end_id,
                                                                  return_reason="AC04")])])
    with env.engine.begin() as conn:
        res = B.import_statement(conn, a.tenant_id, parse_camt(ret)[0], "camt-hc-2")
        assert res.payouts_returned == 1
        assert P.get_payable(conn, a.tenant_id, emp_item.payable_id).status == "returned"
        bal = AC.role_balances(conn, a.tenant_id)
        assert sum((v for (role, _acc, _cur), v in bal.items() if role == "partner_payable"), Decimal(0)) == \
            Decimal("0.29") - emp_item.amount  # the employee is owed the 1.20 again


def test_what_the_host_owes_is_netted_where_the_agreement_says_so(env: Env, setup: dict[str, str]) -> None:
    """The correction left the host owing 0.29: with ``netting`` in its agreement's terms, its May
    note pays that much less (the payable), and a later note nets nothing more."""
    c, a = env.client, env.a
    h = a.h()
    [ag] = _ok(c.get("/agreements", params={"partner_id": setup["host"]}, headers=h))["items"]
    bad = c.patch(f"/agreements/{ag['id']}", json={"terms": {"netting": "yes"}}, headers=h)
    assert bad.status_code == 422 and bad.json()["code"] == "agreement_terms_invalid"
    _ok(c.patch(f"/agreements/{ag['id']}", json={"terms": {"netting": "true"}}, headers=h))
    _ok(c.post("/price-series/day_ahead_cn/prices", content="timestamp,price (EUR/MWh)\n2026-05-04T10:00:00Z,50.00\n",
               headers={**h, "Content-Type": "text/csv"}), 201)
    _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": "C-2", "start": "2026-05-04T10:00:00Z", "end": "2026-05-04T11:00:00Z", "energy_kwh": "10",
         "location_id": "cn_hotel", "tariff": "std"}]}, headers=h))
    st = _ok(c.post("/partner-statements", json={"partner_id": setup["host"], "month": "2026-05"}, headers=h), 201)
    note = _ok(c.post(f"/partner-statements/{st['id']}/credit-note", json={}, headers=h), 201)
    # 10 % of 5.00 = 0.50 + 10 kWh × (0.05 + 0.02) = 0.70: net 1.20, small business: no VAT
    assert (Decimal(note["payable"]), Decimal(note["netted"])) == (Decimal("1.20"), Decimal("0.29"))
    pays = _ok(c.get("/payouts/payables", params={"kind": "host_credit", "payee_id": setup["host"],
                                                  "status": "requested"}, headers=h))["items"]
    assert [(p["amount"], p["remittance"]) for p in pays if p["id"] == note["payable_id"]] == [
        ("0.91", f"Gutschrift {note['number']} {st['number']} abzgl. Verrechnung 0,29 EUR")]
    from store import host_credits as H

    with env.engine.connect() as conn:
        assert H._owed(conn, a.tenant_id, setup["host"]) == 0  # nothing left to net on the next note
    # the note itself shows the set-off: its amount, the correction it is netted with, what is paid
    text = _pdf_text(env, note)
    assert "Zahlbetrag 1,20 €" in text
    assert "Verrechnet mit Rückforderung aus Gutschrift GU-000002 -0,29 €" in text
    assert "Auszahlungsbetrag 0,91 €" in text
    assert "Den Betrag von 0,91 € überweisen wir" in text


def test_two_issuers_at_once_draw_consecutive_numbers(env: Env, setup: dict[str, str]) -> None:
    """Two notes issued at the same moment on two connections: the issuer lock makes the second wait,
    so the numbers are consecutive, never the same, never a gap."""
    import threading
    from datetime import date

    from store import host_credits as H

    c, a = env.client, env.a
    h = a.h()
    statements = []
    for n in (1, 2):
        p = _ok(c.post("/partners", json={**HOST, "name": f"Parallel host {n}"}, headers=h), 201)["id"]
        _ok(c.post("/locations", json={"code": f"cn_par_{n}", "name": f"P{n}", "country": "DE",
                                       "timezone": "Europe/Berlin", "site_host_id": p}, headers=h), 201)
        _ok(c.post("/agreements", json={"partner_id": p, "kind": "revenue_share", "valid_from": "2026-01-01",
                                        "terms": {"per_session": "2.00"}}, headers=h), 201)
        _ok(c.post("/sessions/batch", json={"sessions": [
            {"id": f"CP-{n}", "start": "2026-04-03T10:00:00Z", "end": "2026-04-03T11:00:00Z", "energy_kwh": "3",
             "location_id": f"cn_par_{n}", "tariff": "std"}]}, headers=h))
        statements.append(_ok(c.post("/partner-statements", json={"partner_id": p, "month": "2026-04",
                                                                  "accept_unrated": True}, headers=h), 201)["id"])
    numbers: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def issue(statement_id: str) -> None:
        try:
            start.wait()
            with env.engine.begin() as conn:
                numbers.append(H.issue_note(conn, a.tenant_id, statement_id, issued_by="usr_par",
                                            issue_date=date(2026, 5, 3)).row.number)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(s,)) for s in statements]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with env.engine.connect() as conn:
        seqs = sorted(r.number_seq for r in H.list_notes(conn, a.tenant_id, limit=500))
    assert seqs == list(range(1, len(seqs) + 1))  # gapless over every note of the tenant
    assert len(set(numbers)) == 2


def test_what_the_host_owes_as_a_customer_is_netted(env: Env, setup: dict[str, str]) -> None:
    """A host whose agreement says ``netting`` and who also owes as a customer (two clearing
    invoices on its ``evbill:partner:<id>`` record, 0.50 due first, 5.00 later): its note of 2.38
    settles the 0.50 and 1.88 of the 5.00 (a ``partner_netting`` event, entries ``netting``), no
    transfer is left to pay; the journal posts the partner payable against the debtor, each entry
    balanced; issuing is once per statement, so nothing is settled twice."""
    from datetime import date

    from sqlalchemy import select

    from store import accounting as AC
    from store import receivables as R
    from store.clearing import partner_account
    from store.models import Partner

    c, a = env.client, env.a
    h = a.h()
    p = _ok(c.post("/partners", json={**HOST, "name": "Netting host KG"}, headers=h), 201)["id"]
    _ok(c.post("/locations", json={"code": "cn_net", "name": "Net", "country": "DE", "timezone": "Europe/Berlin",
                                   "site_host_id": p}, headers=h), 201)
    _ok(c.post("/agreements", json={"partner_id": p, "kind": "revenue_share", "valid_from": "2026-01-01",
                                    "terms": {"per_session": "2.00", "netting": "true"}}, headers=h), 201)
    _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": "CN-NET-1", "start": "2026-04-05T10:00:00Z", "end": "2026-04-05T11:00:00Z", "energy_kwh": "3",
         "location_id": "cn_net", "tariff": "std"}]}, headers=h))
    st = _ok(c.post("/partner-statements", json={"partner_id": p, "month": "2026-04", "accept_unrated": True},
                    headers=h), 201)
    with env.engine.begin() as conn:
        partner = conn.execute(select(Partner.__table__).where(Partner.__table__.c.id == p)).one()  # type: ignore[attr-defined]
        cus, acc = partner_account(conn, a.tenant_id, partner, "EUR")
        items = [R.open_charge_item(conn, a.tenant_id, key=f"test-net:{n}", kind="clearing_invoice", customer_id=cus,
                                    account_id=acc, currency="EUR", amount=Decimal(gross), issue_date=date(2026, 4, 1),
                                    due_date=due, number=f"CL-NET-{n}",
                                    detail={"tax_groups": [{"rate": "19", "net": net, "tax": tax}]})
                 for n, gross, net, tax, due in ((1, "0.50", "0.42", "0.08", date(2026, 4, 10)),
                                                 (2, "5.00", "4.20", "0.80", date(2026, 4, 30)))]
        before = AC.role_balances(conn, a.tenant_id)
    note = _ok(c.post(f"/partner-statements/{st['id']}/credit-note", json={"issue_date": "2026-05-03"}, headers=h),
               201)
    assert (Decimal(note["payable"]), Decimal(note["netted"]), Decimal(note["netted_receivables"])) == (
        Decimal("2.38"), Decimal(0), Decimal("2.38"))
    assert note["payable_id"] is None  # nothing left to transfer
    # on the note: the gross credit, each invoice set off with its number and amount, nothing paid
    text = _pdf_text(env, note)
    assert "Gesamtbetrag 2,38 €" in text and "Zahlbetrag 2,38 €" in text
    assert "Verrechnet mit Rechnung CL-NET-1 -0,50 €" in text
    assert "Verrechnet mit Rechnung CL-NET-2 -1,88 €" in text
    assert "Auszahlungsbetrag 0,00 €" in text
    assert "eine Überweisung erfolgt nicht" in text
    assert not {"Set off", "Amount", "transferred", "invoice"} & set(text.replace(".", " ").split())
    # the note's document rebuilt from the store shows the same set-off
    from store import host_credits as H

    with env.engine.connect() as conn:
        rebuilt = H.note_document(conn, a.tenant_id, H.get_note(conn, a.tenant_id, note["id"]))
    assert [(x.kind, x.number, x.amount) for x in rebuilt.set_off] == [
        ("invoice", "CL-NET-1", Decimal("0.50")), ("invoice", "CL-NET-2", Decimal("1.88"))]
    with env.engine.connect() as conn:
        opened = {s.id: s.open for s in R.item_states(conn, a.tenant_id, customer_id=cus, currency="EUR")}
        assert [opened[i] for i in items] == [Decimal("0.00"), Decimal("3.12")]
        ev = R.event(conn, a.tenant_id, f"host_netting:{note['id']}:{acc}")
        assert ev is not None and ev.kind == "partner_netting" and {k for _i, k, _a in ev.entries} == {"netting"}
        after = AC.role_balances(conn, a.tenant_id)
        delta = {k: after.get(k, Decimal(0)) - before.get(k, Decimal(0)) for k in after}
        assert sum((v for (role, _v, _c), v in delta.items() if role == "partner_payable"), Decimal(0)) == 0
        assert sum((v for (role, _v, _c), v in delta.items() if role == "debtor"), Decimal(0)) == Decimal("-2.38")
        jl = AC.journal_line.c
        # every entry balanced, per currency (amounts added up here, never by SQL)
        totals: dict[tuple[str, str], Decimal] = {}
        for eid, side, amount, cur in conn.execute(select(jl.entry_id, jl.side, jl.amount, jl.currency)
                                                   .where(jl.tenant_id == a.tenant_id)):
            k = (eid, cur)
            totals[k] = totals.get(k, Decimal(0)) + (amount if side == "debit" else -amount)
        assert totals and all(v == 0 for v in totals.values())
    again = c.post(f"/partner-statements/{st['id']}/credit-note", json={}, headers=h)
    assert again.status_code == 409


def test_reverse_charge_host_self_assessed_in_the_journal(env: Env, setup: dict[str, str]) -> None:
    """A host in Austria with a VAT id: reverse charge, the note bills no VAT (AE) and the tenant
    owes it: the journal posts 19 % of the net as self-assessed input VAT and as self-assessed
    output VAT (§ 13b UStG), the payable is the net, the entry balanced. On SKR04 the accounts are
    1407 / 3837 and the DATEV batch hands over the net with BU key 46 (DATEV posts both VAT
    amounts from it)."""
    from runtime.accounting.chart import template
    from store import accounting as AC
    from tests.accounting_reader import read_extf

    c, a = env.client, env.a
    h = a.h()
    p = _ok(c.post("/partners", json={**HOST, "name": "Gasthof Bregenz GmbH", "country_code": "AT",
                                      "vat_id": "ATU13585627", "postal_code": "6900", "city": "Bregenz",
                                      "iban": "AT611904300234573201", "bic": "BKAUATWWXXX"}, headers=h), 201)["id"]
    _ok(c.post("/locations", json={"code": "cn_rc", "name": "Bregenz", "country": "DE", "timezone": "Europe/Berlin",
                                   "site_host_id": p}, headers=h), 201)
    _ok(c.post("/agreements", json={"partner_id": p, "kind": "revenue_share", "valid_from": "2026-01-01",
                                    "terms": {"per_session": "50.00"}}, headers=h), 201)
    _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": f"CN-RC-{n}", "start": f"2026-04-0{n}T10:00:00Z", "end": f"2026-04-0{n}T11:00:00Z", "energy_kwh": "3",
         "location_id": "cn_rc", "tariff": "std"} for n in (6, 7)]}, headers=h))
    st = _ok(c.post("/partner-statements", json={"partner_id": p, "month": "2026-04", "accept_unrated": True},
                    headers=h), 201)
    note = _ok(c.post(f"/partner-statements/{st['id']}/credit-note", json={"issue_date": "2026-05-03"}, headers=h),
               201)
    assert note["vat_status"] == "reverse_charge"
    assert (Decimal(note["net"]), Decimal(note["tax"]), Decimal(note["payable"])) == (
        Decimal("100.00"), Decimal(0), Decimal("100.00"))
    entries = _ok(c.get("/accounting/journal", headers=a.h()))
    items = entries["items"] if isinstance(entries, dict) else entries
    entry = next(e for e in items if e["document"] == note["number"])
    lines = {(ln["account"], ln["side"]): ln["amount"] for ln in entry["lines"]}
    # plain chart: expense 5100, self-assessed input VAT 1510, self-assessed VAT 2210, payable 2500
    assert lines == {("5100", "debit"): "100.00", ("1510", "debit"): "19.00", ("2210", "credit"): "19.00",
                     ("2500", "credit"): "100.00"}
    assert sum(Decimal(ln["amount"]) * (1 if ln["side"] == "debit" else -1) for ln in entry["lines"]) == 0

    # the same note's event posted on SKR04 (a tenant of its own), batched for DATEV
    from datetime import date

    from tests.api.conftest import make_tenant

    tid = make_tenant(c, env.engine, "rcskr").tenant_id
    with env.engine.begin() as conn:
        AC.set_chart(conn, tid, template("skr04"), ["19", "7"], "fin")
        AC.post_events(conn, tid, [{"id": "hcn_rc_skr04", "kind": "host_credit_note", "currency": "EUR",
                                    "reference": note["number"], "booked_on": date(2026, 5, 3), "account_id": None,
                                    "detail": {"expense": "100.00", "input_vat": [], "partner_payable": "-100.00",
                                               "self_assessed": [["19", "19.00"]]}}], [])
        [(_, posted)] = AC.entries(conn, tid)
        batch = AC.create_batch(conn, tid, "2026-05", "fin")
        datev = AC.batch_file(conn, tid, batch["id"], "datev").content
    assert {(ln.account, ln.side, ln.amount, ln.bu_key) for ln in posted.lines} == {
        ("5900", "debit", Decimal("100.00"), ""), ("1407", "debit", Decimal("19.00"), "46"),
        ("3837", "credit", Decimal("19.00"), "46"), ("3300", "credit", Decimal("100.00"), "")}
    rows = [(r["Umsatz (ohne Soll/Haben-Kz)"], r["Soll/Haben-Kennzeichen"], r["Konto"],
             r["Gegenkonto (ohne BU-Schlüssel)"], r["BU-Schlüssel"]) for r in read_extf(datev).rows]
    assert rows == [("100,00", "S", "5900", "3300", "46")]
