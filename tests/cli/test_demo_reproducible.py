"""``evbill demo`` twice with the same seed: the same invoice numbers for the same customers, the
same amounts, and only the demo's artefacts left behind (no -wal, -shm or .writelock files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api import demo_console

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = {"documents", "sepa", "bank", "accounting", "dunning", "clearing", "evbill-demo.db", "temporal.db", "summary.csv", "summary.json",
             *(f"{kind}_{key}.{ext}" for kind, ext in (("rated", "jsonl"), ("periods", "json"))
               for key in ("public_cpo", "emp", "fleet", "depot", "dynamic"))}
# screenshots of the console's pages, where Chromium is installed (make system)
# and, with them, the ad-hoc charge's receipt (paid through the local card sandbox)
if demo_console.unavailable() is None:
    ARTEFACTS |= {"console", "adhoc"}


def _demo(out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "api.cli", "demo", "--out", str(out), "--sessions", "50", "--seed", "11"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, subprocess.CompletedProcess[str],
                                                                     dict[str, Any]]]:
    runs = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp(name) / "out"
        runs.append((out, *_demo(out)))
    return runs


def test_same_seed_same_numbers_and_amounts(two_runs: list[Any]) -> None:
    (_, _, a), (_, _, b) = two_runs
    invoices = a["system"]["invoices"]
    assert len(invoices) == 7 == a["invoices_finalized"]
    assert invoices == b["system"]["invoices"]  # number, customer, gross, kind, approved
    assert [i["number"] for i in invoices] == sorted(i["number"] for i in invoices)
    assert len({i["number"] for i in invoices}) == len(invoices)
    assert a == b  # everything the seed determines: scenarios, sessions, holds, documents


def test_only_artefacts_remain(two_runs: list[Any]) -> None:
    for out, _, _ in two_runs:
        names = {p.name for p in out.iterdir()}
        assert names == ARTEFACTS, names ^ ARTEFACTS
        leftovers = [p for p in out.rglob("*") if p.name.endswith(("-wal", "-shm", ".writelock"))]
        assert leftovers == []


def test_summary_says_what_each_document_is(two_runs: list[Any]) -> None:
    out, r, summary = two_runs[0]
    docs = summary["system"]["documents"]
    assert {d["number"] for d in docs} == {i["number"] for i in summary["system"]["invoices"]}
    assert all(d["kind"] and d["format"] and (out / "documents" / d["filename"]).is_file() for d in docs)
    line = next(x for x in r.stdout.splitlines() if "documents for 7 invoices" in x)
    xml = [d for d in docs if d["format"] == "xrechnung-ubl"]
    assert xml and f"XRechnung UBL for {xml[0]['customer']} ({xml[0]['number']})" in line
    pdfs = sum(d["format"] in ("pdf", "facturx-pdf") for d in docs)
    assert pdfs == 7 and len(docs) == 7 + len(xml) == summary["documents"]
    # the invoices are listed by number, one a line
    listed = [x.split()[0] for x in r.stdout.splitlines() if x.startswith("    INV-")]
    assert listed == [i["number"] for i in summary["system"]["invoices"]]


def test_console_screenshots(two_runs: list[Any]) -> None:
    out, r, summary = two_runs[0]
    if demo_console.unavailable() is not None:
        assert "console screenshots skipped" in r.stdout and "console" not in summary
        return
    shots = sorted(p.name for p in (out / "console").iterdir())
    # the console's pages, the public ad-hoc page of the first EVSE, the card sandbox's Checkout
    # page, the driver's receipt page and the console's ad-hoc charges after the charge
    assert shots == sorted([*(f"{name}.png" for name, _path, _what in demo_console.PAGES), "charge.png",
                            "checkout.png", "charge-receipt.png", "adhoc.png", "portal.png"])
    assert summary["console"] == {"screenshots": len(shots)}
    assert all((out / "console" / s).read_bytes().startswith(b"\x89PNG") for s in shots)


def test_card_payments_through_the_local_sandbox(two_runs: list[Any]) -> None:
    """No payment provider in the environment: the demo's ad-hoc page takes cards through the
    local card sandbox (api.payments.sandbox), said on stdout, and nothing of it stays running."""
    import re

    import httpx

    for _, r, summary in two_runs:
        assert summary["card_payments"] == "local sandbox"
        found = re.search(r"card payments: local sandbox at (http://127\.0\.0\.1:\d+), test card 4242 4242 4242 4242",
                          r.stdout)
        assert found, r.stdout[:2000]
        with pytest.raises(httpx.ConnectError):
            httpx.get(found.group(1) + "/pay/x", timeout=2)


def test_one_adhoc_charge_end_to_end(two_runs: list[Any]) -> None:
    """QR page -> the sandbox's Checkout page -> RemoteStart to the simulated charger -> stop from
    the page -> captured, the rest released -> the receipt PDF in out/adhoc/, the same on both runs."""
    import sqlite3
    from decimal import Decimal

    out, r, summary = two_runs[0]
    if demo_console.unavailable() is not None:
        assert "adhoc" not in summary
        return
    a = summary["adhoc"]
    assert a == two_runs[1][2]["adhoc"]
    assert (a["charges"], a["evse"], a["status"], a["currency"]) == (1, "DE*SWM*E1*1", "captured", "EUR")
    assert Decimal(a["energy_kwh"]) == 6  # 3 kWh metered, stopped at 6 kWh
    assert Decimal(0) < Decimal(a["captured"]) < Decimal(a["reserved"]) == Decimal("50.00")
    assert f"{a['captured']} EUR captured" in r.stdout
    pdf = out / "adhoc" / f"{a['receipt']}.pdf"
    assert a["receipt"].startswith("AH-") and pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert a["receipt"] in text and a["captured"].replace(".", ",") in text, text
    db = sqlite3.connect(out / "evbill-demo.db")
    try:
        # the ad-hoc session is stored and rated like every OCPP session, billed by its receipt
        [(status, token)] = db.execute("SELECT s.status, s.token_uid FROM charging_session s JOIN adhoc_charge a "
                                       "ON a.session_id = s.id").fetchall()
    finally:
        db.close()
    assert status == "rated" and token.startswith("AH")


def test_one_session_waits_unassigned(two_runs: list[Any]) -> None:
    """The month has one session of a card nobody knows (imported from a charger's offline log):
    it waits for review, billed to nobody; every other figure is as before (the other tests)."""
    import sqlite3

    out, r, summary = two_runs[0]
    assert summary["system"]["unassigned"] == {"sessions": 1, "external_id": "SWM-OFFLINE-0001",
                                               "token_uid": "DE-XYZ-C12345678-9", "reason": "unknown_token"}
    assert "waits unassigned for review" in r.stdout
    db = sqlite3.connect(out / "evbill-demo.db")
    try:
        rows = db.execute("SELECT id, external_id, token_uid, unassigned_reason, customer_id FROM "
                          "charging_session WHERE status = 'unassigned'").fetchall()
        # priced (the review shows what it would cost) but billed to nobody: on no invoice
        billed = db.execute("SELECT (SELECT count(*) FROM billing_invoice_line WHERE session_id = :s) + "
                            "(SELECT count(*) FROM billing_session WHERE session_id = :s)", {"s": rows[0][0]}).fetchone()
    finally:
        db.close()
    assert [row[1:] for row in rows] == [("SWM-OFFLINE-0001", "DE-XYZ-C12345678-9", "unknown_token", None)]
    assert billed == (0,)


def test_a_charging_point_reserved_accepted_used_and_priced(two_runs: list[Any]) -> None:
    """Issue 18 in the demo: the operator reserves the DC hub for a customer's card through the API
    while its simulated charger is connected, the charger accepts (ReserveNow), the customer starts
    with the reservation 15 minutes into the window and the session is rated with the reserved
    quarter of an hour as a German 'Reservierung' line; the same numbers on both runs."""
    import sqlite3
    from decimal import Decimal

    out, r, summary = two_runs[0]
    rsv = summary["reservations"]
    assert rsv == two_runs[1][2]["reservations"]
    assert (rsv["made"], rsv["accepted"], rsv["used"], rsv["start_authorized"], rsv["session_status"]) == (
        1, 1, 1, "Accepted", "rated")
    assert (rsv["evse"], rsv["reserved_minutes"], rsv["reservation_line"], rsv["currency"]) == (
        "DE*SWM*E3*1", 15, "Reservierung", "EUR")
    # public_cpo's 2.40 per h for the reserved quarter of an hour; 12 kWh at the 150 kW hub's 0.69
    assert Decimal(rsv["reservation_net"]) == Decimal("0.60") and Decimal(rsv["energy_kwh"]) == 12
    assert Decimal(rsv["session_net"]) == Decimal("0.60") + Decimal("8.28")
    assert Decimal(rsv["session_gross"]) == (Decimal(rsv["session_net"]) * Decimal("1.19")).quantize(Decimal("0.01"))
    assert "'Reservierung' 0.60 EUR" in r.stdout and "the connected charger accepted (ReserveNow)" in r.stdout
    db = sqlite3.connect(out / "evbill-demo.db")
    try:
        [(status, charger_status, token, contract)] = db.execute(
            "SELECT r.status, r.charger_status, s.token_uid, s.contract_id FROM reservation r "
            "JOIN ocpp_transaction t ON t.id = r.transaction_id "
            "JOIN charging_session s ON s.id = t.session_id").fetchall()
        [(quantity, unit_price)] = db.execute(
            "SELECT l.quantity, l.unit_price FROM rated_line l JOIN charging_session s "
            "ON s.current_rating_id = l.rating_id WHERE l.component = 'reservation'").fetchall()
    finally:
        db.close()
    assert (status, charger_status) == ("used", "Accepted") and token.startswith("04A1B2C3D4E5") and contract
    assert (Decimal(str(quantity)), Decimal(str(unit_price))) == (Decimal("0.25"), Decimal("2.40"))


def test_quiet_stderr(two_runs: list[Any]) -> None:
    # no third-party chatter and no INFO lines (a machine lacking something gets WARNING lines)
    for _, r, _ in two_runs:
        assert " INFO " not in r.stderr and " DEBUG " not in r.stderr and "alembic" not in r.stderr, r.stderr[-2000:]


def test_the_month_is_collected_and_reconciled(two_runs: list[Any]) -> None:
    """The demo's money after the invoices (issue 12): every direct-debit customer's invoice in one
    approved pain.008, the bank's camt.053 matching each collected item, one MD06 return with its
    fee, the public buyer's transfer by its invoice number, one unknown payer left for finance."""
    from decimal import Decimal

    from lxml import etree

    out, _, summary = two_runs[0]
    invoices = summary["system"]["invoices"]
    col, bank = summary["collections"], summary["bank"]
    assert col == {"items": len(invoices) - 1, "files": 1}  # the public buyer pays by transfer
    # every collected item matched; the public buyer's transfer, 10.00 too much, settles its invoice
    assert bank == {"entries": col["items"] + 3, "matched": col["items"], "unmatched": 1, "returns": 1}
    detail = summary["system"]["bank"]
    assert detail["rules"] == {"end_to_end_id": col["items"], "reference": 1}
    assert detail["partially_matched"] == 1
    transfer, refund = summary["system"]["collection"]["transfer"], summary["system"]["collection"]["refund"]
    assert Decimal(transfer["amount"]) - Decimal(transfer["invoiced"]) == Decimal(refund["amount"]) == Decimal("10.00")
    assert refund["status"] == "submitted" and summary["payouts"] == {"files": 1, "refunds": 1, "credit_notes": 1}
    returned = summary["system"]["collection"]["returned"]
    assert returned["reason"] == "MD06" and returned["fee"] == "3.00"
    gross = {i["number"]: i["gross"] for i in invoices}
    assert detail["open_after"] == {"EUR": str(Decimal(gross[returned["number"]]) + Decimal(returned["fee"]))}
    [pain] = (out / "sepa").glob("pain.008-*.xml")
    [refund_file] = (out / "sepa").glob("pain.001-*.xml")
    assert refund_file.name == refund["file"] and len(list((out / "sepa").iterdir())) == 2
    [camt] = (out / "bank").iterdir()
    xsd = ROOT / "runtime" / "bank" / "xsd"
    for f, schema in ((pain, "pain.008.001.08.xsd"), (refund_file, "pain.001.001.09.xsd"),
                      (camt, "camt.053.001.08.xsd")):
        etree.XMLSchema(etree.parse(str(xsd / schema))).assertValid(etree.parse(str(f)))


def test_the_month_is_booked_and_its_batch_exported(two_runs: list[Any]) -> None:
    """Issue 14 in the demo: every event of the month in the journal (SKR03, personal debtor
    accounts), balanced and equal to the open items, and the month's posting batch in
    out/accounting/ as DATEV Buchungsstapel and Debitoren (read back by the test's EXTF reader),
    CSV and JSON lines."""
    import json
    from decimal import Decimal

    from tests.accounting_reader import read_extf

    out, _, summary = two_runs[0]
    invoices = summary["system"]["invoices"]
    # an entry per invoice, per payment (matched, and the transfer paying too much), for the return and
    # for the refund (refunds post since the h14 merge), two for the host's credit note and its
    # payout (issue 15), and one per dunning fee (stages 2 and 3: the
    # reminder charges nothing), booked in January, after the December batch
    fees = [x for x in summary["system"]["dunning"]["stages"] if Decimal(x["charged"]) > 0]
    assert summary["journal"]["balanced"] is True
    december = (len(invoices) + summary["bank"]["matched"] + summary["system"]["bank"]["partially_matched"]
                + summary["bank"]["returns"] + summary["payouts"]["refunds"] + 2 * summary["payouts"]["credit_notes"])
    assert summary["journal"]["entries"] == december + len(fees) == december + 2
    acct = summary["system"]["accounting"]
    rec = acct["reconciliation"]["currencies"]["EUR"]
    assert Decimal(rec["receivables"]) == Decimal(rec["open_items"]) == \
        Decimal(summary["system"]["bank"]["open_after"]["EUR"]) + Decimal(summary["dunning"]["charged"])
    files = {p.name: p.read_bytes() for p in (out / "accounting").iterdir()}
    assert sorted(files) == sorted(acct["files"]) and len(files) == 4
    bookings = read_extf(next(v for k, v in files.items() if k.startswith("EXTF_Buchungsstapel")))
    debtors = read_extf(next(v for k, v in files.items() if k.startswith("EXTF_Debitoren")))
    assert bookings.header["SKR"] == "03" and debtors.header["Datenkategorie"] == "16"
    assert {r["Belegfeld 1"] for r in bookings.rows} >= {i["number"] for i in invoices}
    assert {r["Konto"] for r in bookings.rows if r["Gegenkonto (ohne BU-Schlüssel)"] == "8400"} == \
        {r["Konto"] for r in debtors.rows}
    lines = [json.loads(x) for x in next(v for k, v in files.items() if k.endswith(".jsonl")).splitlines()]
    assert len(lines) == acct["batch"]["entries"] == december
    assert all(x["reached_on"] > "2026-12-31" for x in fees)
    # the host's credit note on SKR03: Fremdleistungen and Vorsteuer against the trade payable
    hc = summary["system"]["host_credit"]
    [note] = [e for e in lines if e["source_kind"] == "host_credit_note"]
    assert note["document"] == hc["number"]
    assert {(ln["account"], ln["side"], ln["amount"]) for ln in note["lines"]} == {
        ("3100", "debit", hc["net"]), ("1576", "debit", hc["tax"]), ("1600", "credit", hc["gross"])}
    [paid] = [e for e in lines if e["source_kind"] == "host_payout"]
    assert {(ln["account"], ln["side"]) for ln in paid["lines"]} == {("1600", "debit"), ("1360", "credit")}


def test_the_unpaid_customer_is_dunned(two_runs: list[Any]) -> None:
    """Issue 13 in the demo: the customer whose debit came back (MD06) does not pay; its
    DunningWorkflow runs on the time-skipping test server the demo moves on: it opens a case on the
    day stage 1 falls due (7 days after the due date) and sends the reminder (no fee); 14 days later
    stage 2 charges 5.00; 14 days after that stage 3 waits for an approver, who approves it through
    the API; it charges 10.00 and blocks the customer's tokens, and a charger's Authorize over OCPP
    answers Blocked. Three letters in out/dunning/, each a PDF naming the invoice and what it
    charges."""
    from datetime import date, timedelta
    from decimal import Decimal

    out, r, summary = two_runs[0]
    assert summary["dunning"] == {"cases": 1, "letters": 3, "stages": 3, "approved": 1, "charged": "15.00",
                                  "blocked_tokens": 1, "authorize_refused": 1}
    dun = summary["system"]["dunning"]
    returned = summary["system"]["collection"]["returned"]
    assert dun["invoice"] == returned["number"] and dun["customer"] == returned["customer"]
    assert (dun["stage"], dun["status"], dun["policy"]) == (3, "done", "standard")
    stages = dun["stages"]
    assert [(x["stage"], x["status"], x["letter"], x["charged"], x["decided_by"]) for x in stages] == [
        (1, "reached", "reminder", "0", None), (2, "reached", "dunning", "5.00", None),
        (3, "reached", "dunning", "10.00", "approver")]
    days = [date.fromisoformat(x["reached_on"]) for x in stages]
    assert days[0] == date.fromisoformat(dun["started_on"])
    assert days[1] - days[0] == days[2] - days[1] == timedelta(days=14)  # the test server's clock, moved on
    gross = {i["number"]: i["gross"] for i in summary["system"]["invoices"]}
    open_on_it = Decimal(gross[dun["invoice"]]) + Decimal(returned["fee"])
    assert dun["items"] == sorted([f"{dun['invoice']} {open_on_it}", "dunning_fee 5.00", "dunning_fee 10.00"])
    assert dun["authorize"]["status"] == "Blocked"
    letters = sorted((out / "dunning").iterdir())
    assert sorted(dun["letters"]) == [p.name for p in letters] and len(letters) == 3
    texts = {}
    for letter in letters:
        assert letter.read_bytes().startswith(b"%PDF-")
        texts[letter.name] = subprocess.run(["pdftotext", "-layout", str(letter), "-"], capture_output=True,
                                            text=True, check=True).stdout
    first, second, third = (texts[n] for n in dun["letters"])
    de = format(open_on_it, "f").replace(".", ",")
    for text in (first, second, third):
        assert dun["invoice"] in text and f"{de} €" in text
        assert "Rücklastschrift" in text  # what is open beyond the invoice's amount is said
    assert "Zahlungserinnerung" in first and days[0].strftime("%d.%m.%Y") in first
    assert "1. Mahnung" in second and "5,00 €" in second and days[1].strftime("%d.%m.%Y") in second
    assert "2. Mahnung" in third and "10,00 €" in third and "gesperrt" in third
    assert "dunning: " in r.stdout and all(n in r.stdout for n in dun["letters"]) and "answered Blocked" in r.stdout


def test_the_site_host_is_credited_and_paid(two_runs: list[Any]) -> None:
    """Issue 15: the market square's host gets its November statement (10 % of the net revenue and
    its energy reimbursed at each hour's day-ahead price + 0.02 per kWh), the statement's
    self-billing credit note GU-000001 as PDF and XRechnung (valid), and the month's payout run,
    approved by finance, pays it with the refund in one pain.001."""
    import subprocess
    from decimal import Decimal

    from lxml import etree

    out, r, summary = two_runs[0]
    hc = summary["system"]["host_credit"]
    assert summary["payouts"]["credit_notes"] == 1
    assert (hc["number"], hc["statement"], hc["vat_status"]) == ("GU-000001", "PS-000001", "registered")
    assert hc["sessions"] == summary["system"]["sessions_rated"]
    assert "index(spot_de) + 0.02 per kWh" in hc["rule"] and Decimal(hc["reimbursed_kwh"]) > 0
    net, tax = Decimal(hc["net"]), Decimal(hc["tax"])
    assert Decimal(hc["share"]) + Decimal(hc["reimbursement"]) == net
    assert tax == (net * Decimal("0.19")).quantize(Decimal("0.01")) and Decimal(hc["gross"]) == net + tax
    assert sorted(hc["files"]) == ["GU-000001-xrechnung-cii.xml", "GU-000001-xrechnung-ubl.xml", "GU-000001.pdf"]
    assert all((out / "documents" / f).is_file() for f in hc["files"])
    text = subprocess.run(["pdftotext", "-layout", str(out / "documents" / "GU-000001.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    assert "Gutschrift GU-000001" in text and "Energieerstattung" in text and "Hotel Adler KG" in text
    ubl = etree.fromstring((out / "documents" / "GU-000001-xrechnung-ubl.xml").read_bytes())
    assert ubl.findtext("{*}InvoiceTypeCode") == "389"
    # the payout file: the refund and the host's credit, one transfer each
    pain = etree.fromstring((out / "sepa" / hc["paid_by"]).read_bytes())
    txs = {tx.findtext(".//{*}RmtInf/{*}Ustrd"): tx.findtext(".//{*}InstdAmt") for tx in pain.iter("{*}CdtTrfTxInf")}
    assert len(txs) == 2
    credit = next(k for k in txs if "GU-000001" in k)
    assert Decimal(txs[credit]) == Decimal(hc["gross"])
    assert "site host: Hotel Adler KG" in r.stdout and "GU-000001" in r.stdout


def test_the_emsp_clearing(two_runs: list[Any]) -> None:
    """Issue 15's eMSP clearing in the demo: the partner's month as XLSX and OCPI CDR JSON, one CDR
    disputed by the partner's key in the D-7 window and accepted by finance after it, the clearing
    invoice (reverse charge: a Dutch partner) as PDF and XRechnung, paid by a transfer naming its
    number, settled and booked (SKR03: the debtor against 8336, the bank against the debtor)."""
    import io
    from decimal import Decimal

    import openpyxl

    out, _, summary = two_runs[0]
    assert summary["clearing"] == {"statements": 1, "cdrs": 5, "disputes": 1, "invoice": "CLR-000001", "files": 5,
                                   "paid": 1, "journal_entries": 2, "commissions": 2, "commission_net": "2.83",
                                   "commissions_recomputed": 1}
    detail = summary["system"]["clearing"]
    d = detail["dispute"]
    assert d["resolution"] == "accept" and d["billed"] == d["proposed"] and d["raised_role"] == "partner"
    # the agreement's commission block (public_cpo's roaming_service): 0.20 per CDR, 2 % of the CDRs'
    # net, taken again of the net the accepted dispute left (its stated amount kept beside it)
    per, pct = detail["commissions"]
    assert (per["kind"], per["quantity"], per["net"], per["stated"]) == ("per_session", "5", "1.00", None)
    assert per["rule"] == "commission roaming_service, line 55: 0.20 per session"
    assert pct["kind"] == "percent" and pct["rule"] == "commission roaming_service, line 56: 2% of net revenue"
    cdr_net = Decimal(detail["net_total"]) - Decimal("1.00") - Decimal(pct["stated"]) - Decimal(d["ours"]) \
        + Decimal(d["proposed"])
    assert Decimal(pct["quantity"]) == cdr_net
    assert Decimal(pct["net"]) == (cdr_net * Decimal("0.02")).quantize(Decimal("0.01"))
    assert (pct["stated"], pct["net"]) == ("1.88", "1.83")
    assert Decimal(detail["invoice_net"]) == cdr_net + Decimal("1.00") + Decimal(pct["net"])
    assert detail["reverse_charge"] and detail["invoice_gross"] == detail["invoice_net"]
    assert detail["paid"] == {"amount": detail["invoice_gross"], "matched": 1, "rules": {"reference": 1},
                              "kind": "clearing_invoice", "open_after": "0.00"}
    gross = detail["invoice_gross"]
    [inv, pay] = detail["journal"]
    assert inv["kind"] == "clearing_invoice" and f"credit 8336 {gross}" in inv["lines"] and inv["balanced"]
    assert pay["kind"] == "payment" and f"debit 1200 {gross}" in pay["lines"] and pay["balanced"]
    folder = out / "clearing"
    assert sorted(p.name for p in folder.iterdir()) == detail["files"]
    wb = openpyxl.load_workbook(io.BytesIO((folder / "clearing-2026-11-RMB.xlsx").read_bytes()), read_only=True)
    assert len(list(wb["CDRs"].iter_rows(values_only=True))) == 1 + 5
    cdrs = json.loads((folder / "clearing-2026-11-RMB-cdrs.json").read_text())
    assert sorted(c["id"] for c in cdrs) == [f"RMB-000{i}" for i in range(1, 6)]
    assert (folder / "CLR-000001.pdf").read_bytes().startswith(b"%PDF")
    ubl = (folder / "CLR-000001-xrechnung-ubl.xml").read_bytes()
    assert b"<cbc:ID>AE</cbc:ID>" in ubl and ubl.count(b"<cac:InvoiceLine>") == 4
    assert b"Commission roaming_service: of 91.32 EUR net" in ubl and b"stated: 1.88 EUR" in ubl


def test_signed_sessions_verified_and_printed_for_the_transparency_software(two_runs: list[Any], tmp_path: Path) -> None:
    """The demo's legal-for-trade charger signs its sessions (OCMF); every one is verified, and an
    invoice's session statement carries a QR code that reads back as the Transparenzsoftware's XML
    whose records verify with the meter's key."""
    import zxingcpp
    from lxml import etree
    from PIL import Image

    from api.demo_system import SIGNING_METER_SEED, SIGNING_METER_SERIAL
    from runtime.ocmf import parse, verify
    from runtime.ocmf_meter import Meter

    out, r, summary = two_runs[0]
    e = summary["eichrecht"]
    assert e["signed_sessions"] > 0 and e["verified"] == e["signed_sessions"] and e["held"] == 0, e
    assert f"meter {SIGNING_METER_SERIAL} reported its public key" in r.stdout
    key = Meter(serial=SIGNING_METER_SERIAL, seed=SIGNING_METER_SEED).public_key_hex
    texts = {p.name: subprocess.run(["pdftotext", str(p), "-"], capture_output=True, text=True, check=True).stdout
             for p in sorted((out / "documents").glob("INV-*.pdf"))}
    signed_pdfs = [name for name, text in texts.items() if "Signierte Messdaten (Eichrecht)" in text]
    assert signed_pdfs, "no invoice prints signed meter data"
    pdf = out / "documents" / signed_pdfs[0]
    subprocess.run(["pdftoppm", "-r", "300", "-png", str(pdf), str(tmp_path / "p")], check=True)
    codes = [b.text for page in sorted(tmp_path.glob("p*.png"))
             for b in zxingcpp.read_barcodes(Image.open(page), formats=zxingcpp.BarcodeFormat.QRCode)]
    containers = [c for c in codes if c.startswith("<?xml")]
    assert containers, codes
    for xml in containers:
        values = etree.fromstring(xml.encode()).findall("value")
        assert [v.get("context") for v in values] == ["Transaction.Begin", "Transaction.End"]
        for v in values:
            assert v.findtext("publicKey") == key
            assert verify(parse(v.findtext("signedData") or ""), key) == ""  # "" = the signature holds
