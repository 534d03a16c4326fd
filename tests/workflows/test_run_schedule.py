"""Month-end as ``evbill serve`` starts it: the schedule sync makes one run schedule per tenant
and calendar, and the schedule, fired on a real Temporal dev server (the time-skipping test server
has no schedules), starts ONE ``BillingRunWorkflow`` that bills the calendar's accounts (and no
other zone's), with an account held for finance in a cycle workflow of its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from runtime.invoicing import period_ending
from store import billing as B
from store.models import BillingAccount
from tests.workflows.seed import expected_net, insert_sessions, seed_tenant
from workflows.billing.schedules import sync_schedules
from workflows.billing.types import ApproveInput, BillingCycleResult, BillingRunResult, run_schedule_id
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _fire(client: Client, sid: str) -> str:
    """Trigger the schedule now and return the id of the workflow it started."""
    handle = client.get_schedule_handle(sid)
    await handle.trigger()
    for _ in range(200):
        actions = (await handle.describe()).info.recent_actions
        if actions:
            return str(actions[-1].action.workflow_id)
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedule {sid} started nothing")


async def test_the_run_schedule_bills_its_calendar_in_one_run(dev: WorkflowEnvironment, engine: Engine,
                                                             task_queue: str) -> None:
    s = seed_tenant(engine, "rs1", 5)
    ids = s.account_ids
    acct = BillingAccount.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:  # another zone: its cut-off comes at another moment, by its own run
        conn.execute(update(acct).where(acct.c.id == ids[4]).values(timezone="America/New_York"))
    # the sessions fall in the period the schedule closes when it fires now (the run's cut-off is the
    # moment it starts: the period of the seed policy, monthly on the 1st, that ended last)
    period = period_ending("monthly", 1, "Europe/Berlin", datetime.now(UTC))
    start = period.start + timedelta(days=2)
    kwh = {a: [D(i + 1) + D(j) / 4 if not (i == 2 and j == 0) else D(3000) for j in range(3)]
           for i, a in enumerate(ids)}  # account 2 is past the seed's ``hold when total > 1000.00``
    insert_sessions(engine, s, [(a, f"rs1_{i}_{j}", start + timedelta(hours=j, minutes=i), kwh[a][j])
                                for i, a in enumerate(ids) for j in range(3)])

    counts = await sync_schedules(dev.client, engine, "rs1", task_queue)
    assert (counts["created"], counts["runs_created"], counts["failed"], counts["runs_failed"]) == (5, 2, 0, 0)
    async with build_worker(dev.client, engine, task_queue):
        wid = await _fire(dev.client, run_schedule_id("rs1", "monthly", "Europe/Berlin"))
        assert wid.startswith("billing-run:rs1:monthly:Europe/Berlin:scheduled")
        run = dev.client.get_workflow_handle(wid, result_type=BillingRunResult)
        res = await asyncio.wait_for(run.result(), 120)
        assert (res.accounts, res.finalized, res.empty, res.failed) == (4, 3, 0, [])
        [held_wid] = res.held
        assert held_wid.startswith(f"billing:rs1:{ids[2]}:")
        with engine.connect() as conn:
            rows = {r.account_id: r for r in conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == "rs1"))}
        assert sorted(rows) == ids[:4]  # one invoice per account of the calendar; New York's is not in it
        for a in (ids[0], ids[1], ids[3]):
            r = rows[a]
            assert r.status == "finalized" and r.net_total == expected_net(kwh[a]) and r.sessions == 3
            assert r.cycle_key == period.key
        assert sorted(r.number_seq for r in rows.values() if r.status == "finalized") == [1, 2, 3]
        # the held account's draft waits in its own cycle workflow; approved, it takes the next number
        cycle = dev.client.get_workflow_handle(held_wid, result_type=BillingCycleResult)
        for _ in range(200):
            status = await cycle.query(BillingCycleWorkflow.status)
            if status.task_id:
                break
            await asyncio.sleep(0.1)
        assert status.state == "held" and rows[ids[2]].workflow_id == held_wid
        await cycle.execute_update(BillingCycleWorkflow.approve, ApproveInput("u_approver", "approver"))
        out = await asyncio.wait_for(cycle.result(), 60)
        assert out.status == "finalized" and out.number == "INV-000004"
        # only the run and the held account's cycle ran: no workflow per account
        started: list[Any] = [w async for w in dev.client.list_workflows(f"TaskQueue = '{task_queue}'")]
        assert sorted(w.workflow_type for w in started) == ["BillingCycleWorkflow", "BillingRunWorkflow"]
        assert all(w.status == WorkflowExecutionStatus.COMPLETED for w in started)
