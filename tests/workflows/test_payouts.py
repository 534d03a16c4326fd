"""Refunds end to end on Temporal: two credit balances -> refunds requested through the API ->
a payout run started by one person and approved by another who requested none of its payments
(four eyes) -> the pain.001.001.09 archived and valid (the conformance kit's validate.py) -> the
bank's camt.053 debit marks both paid -> one transfer comes back (AC04) and its credit is the
customer's again; the same run started again, a later run, or a worker restart while the run waits
never puts a payable into a second file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from store import payables as P
from store.tenants import bootstrap_tenant, create_user, issue_key
from tests.workflows.recording import record_history
from tests.workflows.seed import seed_accounts
from tests.workflows.test_billing_api import api_client, h, keys
from workflows.billing.worker import build_worker
from workflows.payouts.types import PayoutRunResult
from workflows.payouts.workflows import PayoutRunWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

KIT = Path(os.environ.get("EVBILL_EINVOICE_KIT", "/work/shared/conformance/einvoice"))
XML = {"content-type": "application/xml"}
TENANT_IBAN = "DE02120300000000202051"
PAYEES = ("DE89370400440532013000", "DE75512108001245126199")


def kit_validate(tmp_path: Path, name: str, data: bytes) -> Any:
    sys.path.insert(0, str(KIT))
    try:
        from validate import Validator  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(KIT))
    path = tmp_path / name
    path.write_bytes(data)
    return Validator().validate(str(path))


async def _awaiting(env: WorkflowEnvironment, wid: str) -> str:
    handle = env.client.get_workflow_handle(wid)
    for _ in range(600):
        st = await handle.query(PayoutRunWorkflow.status)
        if st.state != "gathering":
            return str(st.run_id)
        await asyncio.sleep(0.05)
    raise AssertionError("the run never finished gathering")


def _approver(engine: Engine, tid: str, name: str) -> str:
    with Session(engine) as db:
        u = create_user(db, tid, f"{name}@t.test", "approver")
        db.flush()
        _, key = issue_key(db, tid, u.id, "approver")
        db.commit()
    return key


async def _credit(c: Any, headers: dict[str, str], acc: str, amount: str, key: str) -> None:
    r = await c.post("/receivables/payments", headers=headers, json={
        "account_id": acc, "amount": amount, "currency": "EUR", "booked_on": "2026-12-01", "idempotency_key": key})
    assert r.status_code == 201, r.text


@pytest.mark.skipif(not (KIT / "validate.py").exists(), reason="the conformance kit is not on this machine")
async def test_refund_run_paid_and_returned(env: WorkflowEnvironment, engine: Engine, task_queue: str,
                                            tmp_path: Path) -> None:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "payouts")
    tid = tenant.id
    k = keys(engine, tid)
    ap3 = h(_approver(engine, tid, "approver3"))
    s = seed_accounts(engine, tid, 2)
    a1, a2 = s.account_ids
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        op, op2, ap, ap2 = h(k["operator1"]), h(k["operator2"]), h(k["approver1"]), h(k["approver2"])
        cred = (await c.post("/collections/creditor-accounts", headers=op, json={
            "name": "Ladestrom GmbH", "iban": TENANT_IBAN, "creditor_id": "DE98ZZZ09999999999"})).json()
        # nothing open on either account: the payments become credit balances
        await _credit(c, op, a1, "12.83", "pay-1")
        await _credit(c, op, a2, "30.00", "pay-2")
        r1 = await c.post("/payouts/refunds", headers=op, json={
            "account_id": a1, "iban": PAYEES[0], "payee_name": "Jörg Müller", "idempotency_key": "refund-1"})
        assert r1.status_code == 201, r1.text
        r2 = await c.post("/payouts/refunds", headers=ap2, json={
            "account_id": a2, "amount": "20.00", "iban": PAYEES[1], "idempotency_key": "refund-2"})
        assert r2.status_code == 201, r2.text
        p1, p2 = r1.json(), r2.json()
        assert (p1["amount"], p2["amount"]) == ("12.83", "20.00")

        r = await c.post("/payouts/runs", headers=ap, json={"creditor_account_id": cred["id"], "as_of": "2026-12-02"})
        assert r.status_code == 202, r.text
        wid = r.json()["workflow_id"]
        run_id = await _awaiting(env, wid)
        run = (await c.get(f"/payouts/runs/{run_id}", headers=op)).json()
        assert run["status"] == "awaiting_approval" and run["items"] == 2 and run["total"] == "32.83", run
        assert {p["status"] for p in (await c.get("/payouts/payables", headers=op)).json()["items"]} == {"in_run"}
        # four eyes: not an operator, not the starter, not someone who requested a payment in it
        assert (await c.post(f"/payouts/runs/{run_id}/approve", headers=op2, json={})).status_code == 403
        for who in (ap, ap2):
            r = await c.post(f"/payouts/runs/{run_id}/approve", headers=who, json={})
            assert r.status_code == 403 and r.json()["code"] == "four_eyes", r.text
        r = await c.post(f"/payouts/runs/{run_id}/reject", headers=ap3, json={"reason": " "})
        assert r.status_code == 422 and r.json()["code"] == "reason_required", r.text
        again = await c.post("/payouts/runs", headers=op, json={"creditor_account_id": cred["id"],
                                                                "as_of": "2026-12-02"})
        assert again.json()["workflow_id"] == wid  # the same run, not a second one
        r = await c.post(f"/payouts/runs/{run_id}/approve", headers=ap3, json={"reason": "checked"})
        assert r.status_code == 201, r.text
        done = r.json()
        assert done["status"] == "submitted" and done["file_id"] and done["decided_by"]
        await env.client.get_workflow_handle(wid).result()
        await record_history(env.client.get_workflow_handle(wid), "payout_run_approved")
        f = await c.get(f"/payouts/files/{done['file_id']}", headers=op)
        assert f.status_code == 200
        pain = f.content
        assert f.headers["etag"] == f'"{hashlib.sha256(pain).hexdigest()}"'
        rep = kit_validate(tmp_path, "payout.xml", pain)
        assert rep.valid, rep.summary()
        assert b"pain.001.001.09" in pain and b"<CtrlSum>32.83</CtrlSum>" in pain and b"<Nm>Jorg Muller</Nm>" in pain
        detail = (await c.get(f"/payouts/runs/{run_id}", headers=op)).json()
        e2e = {i["payable_id"]: i["end_to_end_id"] for i in detail["payout_items"]}
        assert set(e2e) == {p1["id"], p2["id"]} and {i["status"] for i in detail["payout_items"]} == {"submitted"}
        for v in e2e.values():
            assert f"<EndToEndId>{v}</EndToEndId>".encode() in pain
        # a later run (another key) finds nothing to pay: both are in a submitted file
        r = await c.post("/payouts/runs", headers=op, json={"creditor_account_id": cred["id"], "as_of": "2026-12-02",
                                                            "key": "second"})
        res2 = await env.client.get_workflow_handle(r.json()["workflow_id"], result_type=PayoutRunResult).result()
        assert res2.status == "empty" and res2.items == 0
        audit = (await c.get("/audit", headers=h(k["auditor1"]), params={"entity": "payout_run",
                                                                          "entity_id": run_id})).json()["items"]
        assert {e["action"] for e in audit} >= {"payout_run.gather", "payout_run.approve"}

        # the bank debits both transfers in one batch entry, then p2 comes back (AC04)
        debit = statement_xml(message_id="BANK-P1", statement_id="ST-P1", sequence=1,
                              created=datetime(2026, 12, 4, 8, tzinfo=UTC), account_iban=TENANT_IBAN, currency="EUR",
                              opening=D(1000), entries=[SimEntry(
                                  D("32.83"), False, date(2026, 12, 3), "B-TRF-1", bank_tx_code="PMNT/ICDT/ESCT",
                                  transactions=[SimTransaction(D("12.83"), e2e[p1["id"]]),
                                                SimTransaction(D("20.00"), e2e[p2["id"]])])])
        r = await c.post("/bank-statements", content=debit, headers={**op, **XML})
        assert r.status_code == 201, r.text
        assert r.json()["matched"] == 2 and r.json()["payouts"] == {"paid": 2, "returned": 0}, r.text
        payables = {p["id"]: p for p in (await c.get("/payouts/payables", headers=op)).json()["items"]}
        assert {p["status"] for p in payables.values()} == {"paid"}
        ret = statement_xml(message_id="BANK-P2", statement_id="ST-P2", sequence=2,
                            created=datetime(2026, 12, 8, 8, tzinfo=UTC), account_iban=TENANT_IBAN, currency="EUR",
                            opening=D("967.17"), entries=[SimEntry(
                                D("20.00"), True, date(2026, 12, 7), "B-RT-1", bank_tx_code="PMNT/ICDT/RRTN",
                                transactions=[SimTransaction(D("20.00"), e2e[p2["id"]], return_reason="AC04")])])
        r = await c.post("/bank-statements", content=ret, headers={**op, **XML})
        assert r.status_code == 201 and r.json()["returns"] == 1, r.text
        back = (await c.get(f"/payouts/payables/{p2['id']}", headers=op)).json()
        assert (back["status"], back["return_reason"]) == ("returned", "AC04")
        credits = (await c.get("/receivables/items", headers=op, params={"account_id": a2, "status": "credit"})).json()
        assert credits["totals"] == {"EUR": "-30.00"}  # 10.00 never refunded + 20.00 back
        st = (await c.get(f"/customers/{s.customer_of[a2]}/account-statement", headers=op)).json()
        kinds = [ln["kind"] for ln in st["lines"]]
        assert kinds.count("refund") == 1 and kinds.count("refund_return") == 1
        assert D(st["closing_balance"]) == D("-30.00")
        # the customer's PDF statement (German) names both bookings
        pdf = await c.get(f"/customers/{s.customer_of[a2]}/account-statement", headers=op,
                          params={"format": "pdf", "as_of": "2026-12-10"})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf.content, capture_output=True,
                              check=True).stdout.decode()
        # "Erstattung" twice: the refund, and the returned refund (its label wraps onto a second line)
        assert text.count("Erstattung") == 2 and "zurückgekommen" in text, text
        assert "Ihr Guthaben: 30,00" in text, text
    with engine.connect() as conn:
        items = conn.execute(select(P.payout_item.c.payable_id, P.payout_item.c.status)
                             .where(P.payout_item.c.tenant_id == tid)).all()
    assert sorted(i.status for i in items) == ["paid", "returned"] and len({i.payable_id for i in items}) == 2


async def test_run_survives_a_worker_restart_and_never_doubles(env: WorkflowEnvironment, engine: Engine,
                                                               task_queue: str) -> None:
    """The worker stops while the run waits for approval; a new worker picks it up, the approval
    submits the payables once, and starting or approving the run again changes nothing."""
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "payouts-restart")
    tid = tenant.id
    k = keys(engine, tid)
    s = seed_accounts(engine, tid, 3)
    op, ap = h(k["operator1"]), h(k["approver1"])
    async with build_worker(env.client, engine, task_queue, max_cached_workflows=0), \
            api_client(env, engine, task_queue) as c:
        cred = (await c.post("/collections/creditor-accounts", headers=op, json={
            "name": "Ladestrom GmbH", "iban": TENANT_IBAN, "creditor_id": "DE98ZZZ09999999999"})).json()
        for n, acc in enumerate(s.account_ids):
            await _credit(c, op, acc, f"{n + 1}.00", f"pay-{n}")
            r = await c.post("/payouts/refunds", headers=op, json={
                "account_id": acc, "iban": PAYEES[n % 2], "idempotency_key": f"refund-{n}"})
            assert r.status_code == 201, r.text
        r = await c.post("/payouts/runs", headers=op, json={"creditor_account_id": cred["id"], "as_of": "2026-12-02"})
        wid = r.json()["workflow_id"]
        run_id = await _awaiting(env, wid)
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        again = await c.post("/payouts/runs", headers=op, json={"creditor_account_id": cred["id"],
                                                                "as_of": "2026-12-02"})
        assert again.json()["workflow_id"] == wid
        r = await c.post(f"/payouts/runs/{run_id}/approve", headers=ap, json={})
        assert r.status_code == 201 and r.json()["status"] == "submitted" and r.json()["items"] == 3, r.text
        assert r.json()["total"] == "6.00"
        assert (await c.post(f"/payouts/runs/{run_id}/approve", headers=ap, json={})).status_code == 409
    with engine.connect() as conn:
        rows = conn.execute(select(P.payout_item.c.payable_id, P.payout_item.c.status)
                            .where(P.payout_item.c.tenant_id == tid)).all()
        files = conn.execute(select(P.payout_file.c.id).where(P.payout_file.c.tenant_id == tid)).all()
    assert len(rows) == 3 and len({r.payable_id for r in rows}) == 3 and {r.status for r in rows} == {"submitted"}
    assert len(files) == 1
