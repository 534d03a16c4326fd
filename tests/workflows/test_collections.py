"""Collecting the money end to end: two finalized invoices -> a collection run started by one person
and approved by another (four eyes) -> the pain.008 archived and valid (the conformance kit's
validate.py) -> the bank's camt.053 with one batch credit settles each item by its EndToEndId -> a
return MD06 with a fee reopens one item with the fee and flags its mandate; the same run started
again, or a new run, never puts an item into a second file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from runtime.bank.simulate import SimEntry, SimTransaction, statement_xml
from store import collections as C
from store.models import Contract
from store.tenants import bootstrap_tenant
from tests.workflows.recording import record_history
from tests.workflows.seed import insert_sessions, seed_accounts
from tests.workflows.test_billing_api import api_client, h, keys
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker, start_cycle
from workflows.collections.types import CollectionRunInput, CollectionRunResult
from workflows.collections.workflows import CollectionRunWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

KIT = Path(os.environ.get("EVBILL_EINVOICE_KIT", "/work/shared/conformance/einvoice"))
XML = {"content-type": "application/xml"}
CREDITOR_IBAN = "DE02120300000000202051"


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
        st = await handle.query(CollectionRunWorkflow.status)
        if st.state != "gathering":
            return str(st.run_id)
        await asyncio.sleep(0.05)
    raise AssertionError("the run never finished gathering")


@pytest.mark.skipif(not (KIT / "validate.py").exists(), reason="the conformance kit is not on this machine")
async def test_collect_settle_return(env: WorkflowEnvironment, engine: Engine, task_queue: str,
                                     tmp_path: Path) -> None:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "collections")
    tid = tenant.id
    k = keys(engine, tid)
    s = seed_accounts(engine, tid, 2)
    a1, a2 = s.account_ids
    insert_sessions(engine, s, [(a1, "col_1", datetime(2026, 11, 10, tzinfo=UTC), D(20)),
                                (a2, "col_2", datetime(2026, 11, 12, tzinfo=UTC), D(30))])
    # account 2's mandate comes from its contract's fields (kept in sync by the run)
    with engine.begin() as conn:
        ct = Contract.__table__  # type: ignore[attr-defined]
        conn.execute(update(ct).where(ct.c.account_id == a2).values(
            mandate_reference="CONTRACT-M-2", mandate_signed_on=date(2026, 1, 5), debtor_iban="DE89370400440532013000"))
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        numbers = {}
        for acc in (a1, a2):
            res = await (await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
                                           "col-nov", task_queue)).result()
            assert res.status == "finalized", res
            numbers[acc] = res.number
        op, op2, ap, ap2 = h(k["operator1"]), h(k["operator2"]), h(k["approver1"]), h(k["approver2"])
        # invoices are dated when they are finalized, in workflow time, which the shared test server
        # moves on while other tests' timers are pending: give both items one due date
        from store.receivables import receivable_item

        due = date(2026, 12, 15)
        with engine.begin() as conn:
            conn.execute(update(receivable_item).where(receivable_item.c.tenant_id == tid).values(due_date=due))

        bad = await c.post("/collections/creditor-accounts", headers=op, json={
            "name": "Ladestrom GmbH", "iban": CREDITOR_IBAN, "creditor_id": "DE00ZZZ09999999999"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        r = await c.post("/collections/creditor-accounts", headers=op, json={
            "name": "Ladestrom GmbH", "iban": CREDITOR_IBAN, "creditor_id": "DE98ZZZ09999999999",
            "lead_time_days": 5})
        assert r.status_code == 201, r.text
        cred = r.json()
        assert cred["bic"]  # derived from the IBAN's bank code
        r = await c.post(f"/billing/accounts/{a1}/mandates", headers=op, json={
            "creditor_account_id": cred["id"], "reference": "M-1", "signed_on": "2026-10-01",
            "iban": "DE75512108001245126199"})
        assert r.status_code == 201, r.text
        m1 = r.json()
        assert m1["sequence"] == "FRST" and m1["status"] == "active"
        dup = await c.post(f"/billing/accounts/{a2}/mandates", headers=op, json={
            "creditor_account_id": cred["id"], "reference": "M-1", "signed_on": "2026-10-01",
            "iban": "DE75512108001245126199"})
        assert dup.status_code == 409  # unique per creditor
        bad_iban = await c.post(f"/billing/accounts/{a2}/mandates", headers=op, json={
            "creditor_account_id": cred["id"], "reference": "M-9", "signed_on": "2026-10-01",
            "iban": "DE75512108001245126198"})
        assert bad_iban.status_code == 422

        as_of = (due - timedelta(days=3)).isoformat()
        r = await c.post("/collections/runs", headers=ap2, json={"creditor_account_id": cred["id"], "as_of": as_of})
        assert r.status_code == 202, r.text
        wid = r.json()["workflow_id"]
        run_id = await _awaiting(env, wid)
        run = (await c.get(f"/collections/runs/{run_id}", headers=op)).json()
        assert run["status"] == "awaiting_approval" and run["items"] == 2, run
        # four eyes: not an operator, not the person who started it
        assert (await c.post(f"/collections/runs/{run_id}/approve", headers=op2, json={})).status_code == 403
        r = await c.post(f"/collections/runs/{run_id}/approve", headers=ap2, json={})
        assert r.status_code == 403 and r.json()["code"] == "four_eyes", r.text
        r = await c.post(f"/collections/runs/{run_id}/reject", headers=ap, json={"reason": " "})
        assert r.status_code == 422 and r.json()["code"] == "reason_required", r.text
        again = await c.post("/collections/runs", headers=ap, json={"creditor_account_id": cred["id"],
                                                                    "as_of": as_of})
        assert again.json()["workflow_id"] == wid  # the same run, not a second one
        r = await c.post(f"/collections/runs/{run_id}/approve", headers=ap, json={"reason": "checked"})
        assert r.status_code == 201, r.text  # as the billing tasks' decisions answer
        done = r.json()
        assert done["status"] == "submitted" and done["decided_by"] and done["file_id"]
        await env.client.get_workflow_handle(wid).result()
        await record_history(env.client.get_workflow_handle(wid), "collection_run_approved")
        f = await c.get(f"/collections/files/{done['file_id']}", headers=op)
        assert f.status_code == 200
        pain = f.content
        assert f.headers["etag"] == f'"{hashlib.sha256(pain).hexdigest()}"'
        rep = kit_validate(tmp_path, "collection.xml", pain)
        assert rep.valid, rep.summary()
        assert b"pain.008.001.08" in pain and pain.count(b"<SeqTp>FRST</SeqTp>") == 1  # one block, both FRST
        detail = (await c.get(f"/collections/runs/{run_id}", headers=op)).json()
        e2e = {i["account_id"]: i for i in detail["collection_items"]}
        assert {i["status"] for i in e2e.values()} == {"submitted"}
        assert e2e[a1]["end_to_end_id"] == f"{numbers[a1]}-C1"
        for i in e2e.values():
            assert f"<EndToEndId>{i['end_to_end_id']}</EndToEndId>".encode() in pain
            assert f"<Ustrd>{i['number']}</Ustrd>".encode() in pain
        assert b"CONTRACT-M-2" in pain  # the contract's mandate was created and collected
        assert (await c.get(f"/mandates/{m1['id']}", headers=op)).json()["sequence"] == "RCUR"

        # a later run (another key) finds nothing to collect: both items are in a submitted file
        r = await c.post("/collections/runs", headers=op, json={"creditor_account_id": cred["id"], "as_of": as_of,
                                                                "key": "second"})
        res2 = await env.client.get_workflow_handle(r.json()["workflow_id"], result_type=CollectionRunResult).result()
        assert res2.status == "empty" and res2.items == 0

        # the bank credits the collection as one batch entry with a transaction per item
        amounts = {acc: D(e2e[acc]["amount"]) for acc in (a1, a2)}
        camt = statement_xml(message_id="BANK-1", statement_id="ST-1", sequence=1,
                             created=datetime(2026, 12, 16, 8, tzinfo=UTC), account_iban=CREDITOR_IBAN,
                             currency="EUR", opening=D(0), entries=[SimEntry(
                                 sum(amounts.values(), D(0)), True, due, "B-DD-1", bank_tx_code="PMNT/RDDT/ESDD",
                                 transactions=[SimTransaction(amounts[acc], e2e[acc]["end_to_end_id"],
                                                              mandate_id="M-1" if acc == a1 else "CONTRACT-M-2")
                                               for acc in (a1, a2)])])
        r = await c.post("/bank-statements", content=camt, headers={**op, **XML})
        assert r.status_code == 201, r.text
        assert r.json()["matched"] == 2 and r.json()["rules"] == {"end_to_end_id": 2}
        states = {i["account_id"]: i for i in (await c.get("/receivables/items", headers=op,
                                                            params={"status": "all"})).json()["items"]}
        assert {states[a]["status"] for a in (a1, a2)} == {"settled"}

        # account 1's debtor disputes the debit (MD06); the bank charges 3.00 on top
        fee = D("3.00")
        ret = statement_xml(message_id="BANK-2", statement_id="ST-2", sequence=2,
                            created=datetime(2026, 12, 20, 8, tzinfo=UTC), account_iban=CREDITOR_IBAN,
                            currency="EUR", opening=sum(amounts.values(), D(0)), entries=[SimEntry(
                                amounts[a1] + fee, False, due + timedelta(days=4), "B-RT-1", transactions=[
                                    SimTransaction(amounts[a1] + fee, e2e[a1]["end_to_end_id"], return_reason="MD06",
                                                   charges=fee)])])
        r = await c.post("/bank-statements", content=ret, headers={**op, **XML})
        assert r.status_code == 201 and r.json()["returns"] == 1, r.text
        states = {i["account_id"]: i for i in (await c.get("/receivables/items", headers=op,
                                                            params={"status": "all"})).json()["items"]}
        assert D(states[a1]["open"]) == amounts[a1] + fee and states[a2]["status"] == "settled"
        m1_now = (await c.get(f"/mandates/{m1['id']}", headers=op)).json()
        assert m1_now["status"] == "needs_attention" and "MD06" in m1_now["attention_reason"]
        assert m1_now["sequence"] == "FRST"  # the returned first collection is first again
        st = (await c.get(f"/customers/{s.customer_of[a1]}/account-statement", headers=op)).json()
        # the return and its charge, one after the other (the invoice's own booking day is the shared
        # test server's, which may lie after the return's)
        kinds = [ln["kind"] for ln in st["lines"]]
        assert kinds.count("return") == 1 and kinds.count("return_charge") == 1
        assert kinds.index("return_charge") == kinds.index("return") + 1

        # the flagged mandate stops collections: a new run leaves account 1 out and says why
        r = await c.post("/collections/runs", headers=op, json={"creditor_account_id": cred["id"],
                                                                "as_of": as_of, "key": "third"})
        res3 = await env.client.get_workflow_handle(r.json()["workflow_id"], result_type=CollectionRunResult).result()
        assert res3.status == "empty"
        runs = (await c.get("/collections/runs", headers=op, params={"workflow_id": r.json()["workflow_id"]})).json()["items"]
        assert any(sk["account_id"] == a1 and "needs_attention" in sk["reason"] for sk in runs[0]["skipped"])
        # as a schedule starts it: no as_of (the run's own day), started by the system
        res4 = await env.client.execute_workflow(
            CollectionRunWorkflow.run, CollectionRunInput(tid, cred["id"], "", "system"), id=f"sched-{tid}",
            task_queue=task_queue, result_type=CollectionRunResult)
        assert res4.status == "empty"
    # every item is in exactly one file
    with engine.connect() as conn:
        rows = conn.execute(select(C.collection_item.c.item_id, C.collection_item.c.status)).all()
    assert sorted(r.status for r in rows) == ["collected", "returned"] and len({r.item_id for r in rows}) == 2


async def test_run_survives_a_worker_restart_and_never_doubles(env: WorkflowEnvironment, engine: Engine,
                                                               task_queue: str) -> None:
    """The worker stops while the run waits for approval; a new worker picks the run up, the
    approval submits the same items once, and starting the run again changes nothing."""
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "collections-restart")
    tid = tenant.id
    k = keys(engine, tid)
    s = seed_accounts(engine, tid, 3)
    insert_sessions(engine, s, [(acc, f"rs_{n}", datetime(2026, 11, 10, tzinfo=UTC), D(10 + n))
                                for n, acc in enumerate(s.account_ids)])
    # no workflow cache on the first worker: the test server does not move a stopped worker's
    # sticky tasks back to the shared queue, as a real server does after its sticky timeout
    async with build_worker(env.client, engine, task_queue, max_cached_workflows=0), \
            api_client(env, engine, task_queue) as c:
        for acc in s.account_ids:
            res = await (await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
                                           "rs-nov", task_queue)).result()
            assert res.status == "finalized"
        op, ap = h(k["operator1"]), h(k["approver1"])
        cred = (await c.post("/collections/creditor-accounts", headers=op, json={
            "name": "Ladestrom GmbH", "iban": CREDITOR_IBAN, "creditor_id": "DE98ZZZ09999999999",
            "lead_time_days": 30, "pain_version": "pain.008.001.02"})).json()
        for n, acc in enumerate(s.account_ids):
            r = await c.post(f"/billing/accounts/{acc}/mandates", headers=op, json={
                "creditor_account_id": cred["id"], "reference": f"M-R-{n}", "signed_on": "2026-10-01",
                "iban": "DE89370400440532013000", "scheme": "B2B" if n == 2 else "CORE"})
            assert r.status_code == 201, r.text
        # one due date (see above)
        from store.receivables import receivable_item

        with engine.begin() as conn:
            conn.execute(update(receivable_item).where(receivable_item.c.tenant_id == tid)
                         .values(due_date=date(2026, 12, 15)))
        as_of = "2026-12-12"
        r = await c.post("/collections/runs", headers=op, json={"creditor_account_id": cred["id"], "as_of": as_of})
        wid = r.json()["workflow_id"]
        run_id = await _awaiting(env, wid)
    # the first worker is gone; the run waits durably for its decision
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        again = await c.post("/collections/runs", headers=op, json={"creditor_account_id": cred["id"],
                                                                    "as_of": as_of})
        assert again.json()["workflow_id"] == wid
        r = await c.post(f"/collections/runs/{run_id}/approve", headers=ap, json={})
        assert r.status_code == 201 and r.json()["status"] == "submitted" and r.json()["items"] == 3, (
            r.text, (await c.get(f"/collections/runs/{run_id}", headers=op)).json(),
            (await c.get("/receivables/items", headers=op)).json())
        pain = (await c.get(f"/collections/files/{r.json()['file_id']}", headers=op)).content
        assert b"pain.008.001.02" in pain and b"<Cd>B2B</Cd>" in pain and b"<Cd>CORE</Cd>" in pain
        assert (await c.post(f"/collections/runs/{run_id}/approve", headers=ap, json={})).status_code == 409
    with engine.connect() as conn:
        rows = conn.execute(select(C.collection_item.c.item_id, C.collection_item.c.status)).all()
        files = conn.execute(select(C.collection_file.c.id)).all()
    assert len(rows) == 3 and len({r.item_id for r in rows}) == 3 and {r.status for r in rows} == {"submitted"}
    assert len(files) == 1
