"""The billing API against a running cycle: list the finance task, refuse a four-eyes violation,
adjust, approve, manual holds, an ad-hoc cycle, and role guards."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal as D

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from api.app import Settings, create_app
from store.tenants import bootstrap_tenant, create_user, issue_key
from tests.workflows.seed import insert_sessions, seed_accounts
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker, start_cycle
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


def keys(engine: Engine, tenant_id: str) -> dict[str, str]:
    out = {}
    with Session(engine) as db:
        for role in ("approver", "operator", "auditor"):
            for n in (1, 2):
                u = create_user(db, tenant_id, f"{role}{n}@t.test", role)
                db.flush()
                _, key = issue_key(db, tenant_id, u.id, role)
                out[f"{role}{n}"] = key
        db.commit()
    return out


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_client(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> httpx.AsyncClient:
    """The API on ``engine`` talking to the test's Temporal and task queue. httpx's ASGI transport
    runs the app on this event loop, where the Temporal client lives (Litestar's test clients run
    the app on a thread of their own)."""
    app = create_app(Settings(engine=engine, migrate=False))
    app.state.temporal = env.client
    app.state.billing_task_queue = task_queue
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_finance_task_through_the_api(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "api-billing")
    tid = tenant.id
    k = keys(engine, tid)
    s = seed_accounts(engine, tid, 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "api_big", datetime(2026, 11, 10, tzinfo=UTC), D(5000))])
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        handle = await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
                                   "api-nov", task_queue)
        for _ in range(200):
            r = await c.get("/billing/tasks", headers=h(k["auditor1"]))
            if r.json()["items"]:
                break
            await asyncio.sleep(0.05)
        [task] = r.json()["items"]
        # the task row is written by the hold activity; the workflow names it once that activity returned
        for _ in range(200):
            r = await c.get(f"/billing/cycles/{handle.id}", headers=h(k["auditor1"]))
            assert r.status_code == 200, r.text
            cyc = r.json()
            if cyc["task_id"]:
                break
            await asyncio.sleep(0.05)
        assert cyc["workflow_status"] == "running" and cyc["state"] == "held", cyc
        assert cyc["task_id"] == task["id"] and cyc["hold_reasons"][0]["kind"] == "total", cyc
        assert cyc["invoice"]["status"] == "held" and cyc["invoice"]["number"] is None, cyc
        # another tenant's cycle id, or none at all, is not found
        other = handle.id.replace(f"billing:{tid}:", "billing:ten_other:")
        for wid in (other, "nope", f"billing:{tid}:{acc}:never"):
            assert (await c.get(f"/billing/cycles/{wid}", headers=h(k["auditor1"]))).status_code == 404
        assert task["reasons"][0]["kind"] == "total" and task["comparison"]["previous_net"] is None
        tid_ = task["id"]
        # an auditor may read but not decide; an operator may adjust but not approve
        assert (await c.post(f"/billing/tasks/{tid_}/approve", json={}, headers=h(k["auditor1"]))).status_code == 403
        r = await c.post(f"/billing/tasks/{tid_}/adjust", headers=h(k["approver1"]),
                         json={"description": "goodwill", "amount": "-20.00", "tax_rate": "19"})
        assert r.status_code == 201, r.text
        assert D(r.json()["net_total"]) == D(task["net_total"]) - 20
        r = await c.post(f"/billing/tasks/{tid_}/approve", json={}, headers=h(k["approver1"]))
        assert r.status_code == 403 and r.json()["code"] == "four_eyes", r.text
        r = await c.post(f"/billing/tasks/{tid_}/reject", json={"reason": ""}, headers=h(k["approver2"]))
        assert r.status_code in (400, 422)
        r = await c.post(f"/billing/tasks/{tid_}/approve", json={"note": "ok"}, headers=h(k["approver2"]))
        assert r.status_code == 201, r.text
        # the answer carries the totals it approved (the adjusted draft's), not null
        assert D(r.json()["net_total"]) == D(task["net_total"]) - 20, r.text
        assert D(r.json()["gross_total"]) > D(r.json()["net_total"]), r.text
        res = await handle.result()
        assert res.status == "finalized"
        cyc = (await c.get(f"/billing/cycles/{handle.id}", headers=h(k["auditor1"]))).json()
        assert cyc["workflow_status"] == "completed" and cyc["state"] == "finalized", cyc
        assert cyc["invoice"]["number"] == res.number, cyc
        r = await c.get(f"/billing/invoices/{res.invoice_id}", headers=h(k["auditor1"]))
        inv = r.json()
        assert inv["number"] == res.number and inv["lines"][-1]["kind"] == "manual"
        # a decided task is gone from the open list
        assert (await c.get("/billing/tasks", headers=h(k["auditor1"]))).json()["items"] == []

        # manual hold: placed by an operator, released by an approver, which releases the task
        r = await c.post(f"/billing/accounts/{acc}/holds", json={"kind": "hold", "reason": "dispute"},
                         headers=h(k["operator1"]))
        assert r.status_code == 201, r.text
        hold_id = r.json()["id"]
        r = await c.post(f"/billing/accounts/{acc}/cycles", json={"start": "2026-12-01", "end": "2026-12-16"},
                         headers=h(k["operator1"]))
        assert r.status_code == 202, r.text
        wf = env.client.get_workflow_handle_for(BillingCycleWorkflow.run, r.json()["workflow_id"])
        for _ in range(200):
            if (await wf.query(BillingCycleWorkflow.status)).state == "held":
                break
            await asyncio.sleep(0.05)
        r = await c.post(f"/billing/holds/{hold_id}/release", headers=h(k["approver1"]))
        assert r.status_code == 201 and r.json()["released_by"], r.text
        adhoc = await wf.result()
        assert adhoc.status in ("finalized", "empty")
        cyc = (await c.get(f"/billing/cycles/{wf.id}", headers=h(k["auditor1"]))).json()
        assert cyc["state"] == adhoc.status and cyc["workflow_status"] == "completed", cyc
        assert (await c.get("/billing/invoices/nope", headers=h(k["auditor1"]))).status_code == 404

