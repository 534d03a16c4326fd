"""A finalized invoice is a receivable: the cycle opens its item in the finalizing transaction, the
API lists it (open, then overdue), books a manual payment once per idempotency key, turns an
overpayment into a credit balance, shows the customer's account statement and the aging."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from store.tenants import bootstrap_tenant
from tests.workflows.seed import insert_sessions, seed_accounts
from tests.workflows.test_billing_api import api_client, h, keys
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker, start_cycle

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_invoice_to_open_item_to_payment(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "receivables")
    tid = tenant.id
    k = keys(engine, tid)
    s = seed_accounts(engine, tid, 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "rcv_1", datetime(2026, 11, 10, tzinfo=UTC), D(20))])
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        handle = await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
                                   "rcv-nov", task_queue)
        res = await handle.result()
        assert res.status == "finalized", res
        op = h(k["operator1"])
        r = await c.get("/receivables/items", params={"account_id": acc}, headers=op)
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        # the invoice is dated the workflow's day (the shared test server's clock may have moved on)
        r = await c.get("/receivables/items", params={"account_id": acc, "as_of": item["issue_date"]}, headers=op)
        [item] = r.json()["items"]
        gross = D(item["amount"])
        assert item["kind"] == "invoice" and item["number"] == res.number and D(item["open"]) == gross > 0
        assert item["status"] == "open" and r.json()["totals"] == {"EUR": item["open"]}
        due = date.fromisoformat(item["due_date"])
        later = (due + timedelta(days=70)).isoformat()
        late = (await c.get("/receivables/items", params={"status": "overdue", "as_of": later, "account_id": acc},
                            headers=op)).json()["items"]
        assert [i["id"] for i in late] == [item["id"]]
        aging = (await c.get("/receivables/aging", params={"as_of": later}, headers=op)).json()
        assert D(aging["currencies"]["EUR"]["61_90"]) == gross

        # paid on the day it was issued (the invoice is dated its finalization day)
        body = {"account_id": acc, "amount": str(gross + D("5.00")), "currency": "EUR", "booked_on": item["issue_date"],
                "reference": f"payment {res.number}", "invoice_numbers": [res.number], "idempotency_key": "tx-1"}
        first = await c.post("/receivables/payments", json=body, headers=op)
        assert first.status_code == 201, first.text
        paid = first.json()
        assert D(paid["credit_balance"]) == D("5.00") and paid["duplicate"] is False
        again = await c.post("/receivables/payments", json=body, headers=op)
        assert again.status_code == 200 and again.json()["event_id"] == paid["event_id"] and again.json()["duplicate"]
        items = (await c.get("/receivables/items", params={"account_id": acc, "status": "all"}, headers=op)).json()
        assert {(i["kind"], i["status"], D(i["open"])) for i in items["items"]} == {
            ("invoice", "settled", D(0)), ("credit_balance", "credit", D("-5.00"))}
        # refused: wrong currency, no such invoice, an auditor booking, a negative amount
        for bad, key, code in (({**body, "currency": "CHF"}, "operator1", 422),
                               ({**body, "invoice_numbers": ["INV-999999"], "idempotency_key": "tx-2"}, "operator1", 404),
                               ({**body, "idempotency_key": "tx-3"}, "auditor1", 403),
                               ({**body, "amount": "-1", "idempotency_key": "tx-4"}, "operator1", 400)):
            r = await c.post("/receivables/payments", json=bad, headers=h(k[key]))
            assert r.status_code == code, (bad, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        st = (await c.get(f"/customers/{s.customer_of[acc]}/account-statement", headers=op)).json()
        assert [(ln["kind"], D(ln["debit"]), D(ln["credit"])) for ln in st["lines"]] == [
            ("invoice", gross, D(0)), ("payment", D(0), gross), ("overpayment", D(0), D("5.00"))]
        assert D(st["closing_balance"]) == D("-5.00") and D(st["opening_balance"]) == 0
        # the payment is in the audit chain
        audit = (await c.get("/audit", headers=h(k["auditor1"]))).json()["items"]
        assert [e["action"] for e in audit].count("receivable.payment") == 1
