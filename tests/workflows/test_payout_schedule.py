"""The monthly payout schedule on Temporal: a round of ``PayoutSweepWorkflow`` before the tenant's
payout day starts nothing; on the day it starts one ``PayoutRunWorkflow`` per account with
requested payables (started by "system", waiting for an approver like any run); later rounds of
the month start nothing again (the run of the month is there; a payable requested since waits for
next month's run), nor does a round for a tenant with the schedule off. The Schedule itself: tests/workflows/test_dunning_schedule.py."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from store import payables as P
from tests.store.test_payout_schedule_store import add_creditor_account, add_payable, add_tenant
from workflows.billing.worker import build_worker
from workflows.payouts.types import PayoutSweepInput, payout_workflow_id
from workflows.payouts.workflows import PayoutRunWorkflow, PayoutSweepWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _sweep(env: WorkflowEnvironment, task_queue: str, at: str) -> list[str]:
    started: list[str] = await env.client.execute_workflow(
        PayoutSweepWorkflow.run, PayoutSweepInput(at, task_queue), id=f"payout-sweep-{at}-{task_queue}",
        task_queue=task_queue, result_type=list[str])
    return started


async def test_a_round_starts_the_month_s_run_once(env: WorkflowEnvironment, engine: Engine,
                                                   task_queue: str) -> None:
    tid, off = f"psch_{task_queue[-6:]}", f"poff_{task_queue[-6:]}"
    with engine.begin() as conn:
        add_tenant(conn, tid)
        cra = add_creditor_account(conn, tid)
        pids = [add_payable(conn, tid, "12.50"), add_payable(conn, tid, "7.25")]
        P.set_payout_day(conn, tid, 10, "admin")
        add_tenant(conn, off)
        add_creditor_account(conn, off)
        add_payable(conn, off)
    async with build_worker(env.client, engine, task_queue):
        assert await _sweep(env, task_queue, "2026-12-09T12:00:00+00:00") == []
        wid = payout_workflow_id(tid, cra, "monthly-2026-12")
        assert await _sweep(env, task_queue, "2026-12-10T06:00:00+00:00") == [wid]
        handle = env.client.get_workflow_handle(wid)
        for _ in range(600):
            st = await handle.query(PayoutRunWorkflow.status)
            if st.state != "gathering":
                break
            await asyncio.sleep(0.05)
        assert (st.state, st.started_by) == ("awaiting_approval", "system")
        with engine.connect() as conn:
            run = P.get_run(conn, tid, st.run_id)
            assert (run.items, str(run.total), run.currency, run.as_of.isoformat()) == (2, "19.75", "EUR",
                                                                                        "2026-12-10")
            assert {P.get_payable(conn, tid, p).status for p in pids} == {"in_run"}
        # the rest of the month: the run is there, nothing starts again
        assert await _sweep(env, task_queue, "2026-12-11T06:00:00+00:00") == []
        with engine.begin() as conn:  # a payable requested after the run waits for next month's
            add_payable(conn, tid, "1.00")
        assert await _sweep(env, task_queue, "2026-12-20T06:00:00+00:00") == []
        with engine.connect() as conn:
            assert len(P.list_runs(conn, off, limit=10)) == 0
        # next month's day: its run, with what was requested since
        nxt = payout_workflow_id(tid, cra, "monthly-2027-01")
        assert await _sweep(env, task_queue, "2027-01-10T06:00:00+00:00") == [nxt]
        for wf in (wid, nxt):
            await env.client.get_workflow_handle(wf).cancel()
