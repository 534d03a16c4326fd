"""POST /bank-statements and evbill bank import, as DESIGN.md's stable contract states them:
201 with the counts, the same statement again 200 with every entry a duplicate, a bad file 422
naming element and line with nothing imported; the worklist of unmatched entries, a manual match
that teaches the payer, and tenants kept apart."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace

from runtime.bank.matching import creditor_reference
from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from store import receivables as R
from tests.api.conftest import Env

ROOT = Path(__file__).resolve().parents[2]
IBAN = "DE89370400440532013000"
XML = {"content-type": "application/xml"}


def _items(env: Env) -> str:
    a = env.a
    acc = a.ids["billing_account_id"]
    with env.engine.begin() as conn:
        for n, gross in ((901, "12.83"), (902, "40.00")):
            R.open_invoice_item(conn, a.tenant_id, SimpleNamespace(
                id=f"inv_bank_{n}", kind="invoice", number=f"INV-{n:06d}", customer_id=a.ids["customer_id"],
                account_id=acc, currency="EUR", gross_total=D(gross), issue_date=date(2026, 12, 1),
                due_date=date(2026, 12, 15), corrects=[]))
    return acc


def _file(msg: str, seq: int, entries: list[SimEntry]) -> bytes:
    return statement_xml(message_id=msg, statement_id=f"ST-{seq}", sequence=seq,
                         created=datetime(2026, 12, 10, tzinfo=UTC), account_iban=IBAN, currency="EUR",
                         opening=D("500.00"), entries=entries)


def test_bank_statement_contract(env: Env) -> None:
    c, a, b = env.client, env.a, env.b
    acc = _items(env)
    day = date(2026, 12, 9)
    body = _file("M-1", 1, [
        SimEntry(D("12.83"), True, day, "B-1", [SimTransaction(D("12.83"), remittance="RE INV-000901")]),
        SimEntry(D("40.00"), True, day, "B-2", [SimTransaction(D("40.00"), creditor_ref=creditor_reference("INV-000902"))]),
        SimEntry(D("15.00"), True, day, "B-3", [SimTransaction(D("15.00"), debtor_name="Max Payer",
                                                               debtor_iban="DE75512108001245126199",
                                                               remittance="Laden")]),
    ])
    r = c.post("/bank-statements", content=body, headers={**a.h("operator"), **XML})
    assert r.status_code == 201, r.text
    out = r.json()
    assert {k: out[k] for k in ("format", "entries", "matched", "partially_matched", "unmatched", "returns",
                                "duplicates")} == {"format": "camt.053.001.08", "entries": 3, "matched": 2,
                                                   "partially_matched": 0, "unmatched": 1, "returns": 0,
                                                   "duplicates": 0}
    assert out["statement_id"] and out["rules"] == {"reference": 2}
    assert any("not registered" in w for w in out["warnings"])
    again = c.post("/bank-statements", content=body.replace(b"M-1", b"M-1-again"), headers={**a.h("operator"), **XML})
    assert again.status_code == 200 and again.json()["duplicates"] == again.json()["entries"] == 3
    assert again.json()["statement_id"] == out["statement_id"]
    # a broken file: 422 naming element and line, nothing imported
    broken = body.replace(b"<CdtDbtInd>CRDT</CdtDbtInd>", b"<CdtDbtInd>CREDIT</CdtDbtInd>", 1)
    r = c.post("/bank-statements", content=broken, headers={**a.h("operator"), **XML})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    err = r.json()["errors"][0]
    assert err["element"] == "CdtDbtInd" and err["line"] > 1, r.json()
    for bad in (b"", b"<Document>", b"<?xml version='1.0'?><x/>"):
        r = c.post("/bank-statements", content=bad, headers={**a.h("operator"), **XML})
        assert r.status_code == 422, (bad, r.text)
    assert c.post("/bank-statements", content=body, headers={**a.h("auditor"), **XML}).status_code == 403
    # the worklist, a manual match that teaches the payer; another tenant sees nothing of it
    unmatched = c.get("/bank-entries", params={"status": "unmatched"}, headers=a.h("approver")).json()["items"]
    assert [(e["debtor_name"], e["amount"]) for e in unmatched] == [("Max Payer", "15.00")]
    assert c.get("/bank-entries", params={"status": "unmatched"}, headers=b.h("admin")).json()["items"] == []
    assert c.post(f"/bank-entries/{unmatched[0]['id']}/match", json={"account_id": acc},
                  headers=b.h("admin")).status_code == 404
    r = c.post(f"/bank-entries/{unmatched[0]['id']}/match", json={"account_id": acc}, headers=a.h("operator"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "partially_matched" and r.json()["rule"] == "manual"  # an overpayment: credit
    assert c.post(f"/bank-entries/{unmatched[0]['id']}/match", json={"account_id": acc},
                  headers=a.h("operator")).status_code == 409
    nxt = _file("M-2", 2, [SimEntry(D("3.00"), True, date(2027, 1, 5), "B-9", [
        SimTransaction(D("3.00"), debtor_name="Max Payer", debtor_iban="DE75512108001245126199")])])
    r = c.post("/bank-statements", content=nxt, headers={**a.h("operator"), **XML})
    assert r.status_code == 201 and r.json()["rules"] == {"known_payer": 1}, r.text
    accounts = c.get("/bank-accounts", headers=a.h("operator")).json()["items"]
    assert [(x["iban"], x["confirmed"]) for x in accounts] == [(IBAN, False)]
    r = c.put("/bank-accounts", json={"iban": "DE89 3704 0044 0532 0130 00", "name": "Hausbank"}, headers=a.h("admin"))
    assert r.status_code == 200 and r.json()["confirmed"] is True
    assert c.put("/bank-accounts", json={"iban": "DE00123456780000000000"}, headers=a.h("admin")).status_code == 422


def test_evbill_bank_import_cli(tmp_path: Path) -> None:
    db = tmp_path / "evbill.db"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "EVBILL_DATABASE_URL": f"sqlite:///{db}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=120, env=env)

    assert run("tenants", "create", "Bank test").returncode == 0
    good = tmp_path / "s1.xml"
    good.write_bytes(_file("M-1", 1, [SimEntry(D("9.99"), True, date(2026, 12, 9), "B-1",
                                               [SimTransaction(D("9.99"), remittance="?")])]))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<Document/>")
    r = run("bank", "import", str(good), str(good))
    assert r.returncode == 0, r.stderr
    first, second = (json.loads(x) for x in r.stdout.splitlines())
    assert first["file"] == str(good) and (first["entries"], first["unmatched"], first["duplicates"]) == (1, 1, 0)
    assert (second["entries"], second["duplicates"]) == (1, 1)
    r = run("bank", "import", str(bad), str(good))
    assert r.returncode == 1
    refused, ok = (json.loads(x) for x in r.stdout.splitlines())
    assert refused["file"] == str(bad) and "error" in refused and ok["duplicates"] == 1
