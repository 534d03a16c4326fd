"""Defect 12: a manual hold holds the account's next invoice only. It is consumed by the draft it
held (recorded on the hold); the next cycle is not held by it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

import store.billing as B
from store.tenants import bootstrap_tenant
from tests.workflows.seed import insert_sessions, seed_accounts
from tests.workflows.test_billing_api import api_client, h, keys
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker, start_cycle

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_manual_hold_holds_the_next_invoice_only(env: WorkflowEnvironment, engine: Engine,
                                                       task_queue: str) -> None:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "hold-next")
    tid = tenant.id
    k = keys(engine, tid)
    s = seed_accounts(engine, tid, 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "hn_nov", datetime(2026, 11, 10, tzinfo=UTC), D(20)),
                                (acc, "hn_dec", datetime(2026, 12, 10, tzinfo=UTC), D(20))])
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        r = await c.post(f"/billing/accounts/{acc}/holds", json={"kind": "hold", "reason": "dispute"},
                         headers=h(k["operator1"]))
        assert r.status_code == 201, r.text
        hold_id = r.json()["id"]
        nov = await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
                                "hold-nov", task_queue)
        for _ in range(400):
            items = (await c.get("/billing/tasks", headers=h(k["auditor1"]))).json()["items"]
            if items:
                break
            await asyncio.sleep(0.05)
        [task] = items
        assert [x["kind"] for x in task["reasons"]] == ["manual"]
        with Session(engine) as db:
            hold = db.execute(select(B.billing_hold).where(B.billing_hold.c.id == hold_id)).one()
        assert hold.consumed_by_invoice == task["invoice_id"] and hold.consumed_at is not None
        r = await c.post(f"/billing/tasks/{task['id']}/approve", json={}, headers=h(k["approver1"]))
        assert r.status_code == 201, r.text
        assert (await nov.result()).status == "finalized"
        # the next cycle is not held by the hold the November invoice used up
        dec = await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2027-01-01T00:05:00+01:00"),
                                "hold-dec", task_queue)
        res = await asyncio.wait_for(dec.result(), 60)
        assert res.status == "finalized"
