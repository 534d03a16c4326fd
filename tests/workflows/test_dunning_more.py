"""Issue 13's later parts on a time-skipping server of this module's own: a credit note finalized by
a ``BillingCycleWorkflow`` tells the customer's open case (it closes without the clock moving), an
approval task left open escalates, a case paused and resumed through its workflow."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import Engine, select
from temporalio.testing import WorkflowEnvironment

from store import billing as B
from store import dunning as DN
from store import receivables as R
from tests.workflows.conftest import TEST_SERVER
from tests.workflows.seed import RULESET, insert_sessions, rerate_session, seed_tenant
from tests.workflows.test_dunning import _until
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow
from workflows.dunning.types import DunningInput, dunning_workflow_id
from workflows.dunning.workflows import DunningWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

HISTORIES = Path(__file__).resolve().parent / "histories"

POLICY = """
dunning standard "Standard" {
  stage 1 after 7 days reminder
  stage 2 after 14 days fee 5.00
  stage 3 after 14 days fee 10.00, approval required then block_tokens
  ignore below 15.00
  escalate after 3 days
}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def menv() -> AsyncIterator[WorkflowEnvironment]:
    e = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    try:
        yield e
    finally:
        await e.shutdown()


async def test_a_credit_note_from_the_cycle_closes_the_case_at_once(menv: WorkflowEnvironment, engine: Engine,
                                                                    task_queue: str) -> None:
    env = menv
    tid = f"t{uuid.uuid4().hex[:8]}"
    s = seed_tenant(engine, tid, 1, ruleset=RULESET + POLICY)
    acc = s.account_ids[0]
    cust = s.customer_of[acc]
    from runtime.invoicing import ad_hoc_period

    now = await env.get_current_time()
    today = now.date()
    started = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) - timedelta(days=3)
    insert_sessions(engine, s, [(acc, "s1", started, D(500))])
    # the clock moves only when told: waiting for a cycle's result would otherwise run the case's timers
    with env.auto_time_skipping_disabled():
        async with build_worker(env.client, engine, task_queue):
            first = ad_hoc_period(today - timedelta(days=5), today - timedelta(days=1), "Europe/Berlin")
            res = await env.client.execute_workflow(
                BillingCycleWorkflow.run, BillingCycleInput(tid, acc, as_of=first.end.isoformat(),
                                                            period=first.to_dict(), cycle_key=first.key),
                id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
            assert (res.status, res.kind) == ("finalized", "invoice"), res
            with engine.connect() as conn:
                inv = conn.execute(select(B.invoice).where(B.invoice.c.number == res.number)).one()
            # the case runs on its own clock, stage 1 due: a reminder, then a wait of 14 days
            h = await env.client.start_workflow(
                DunningWorkflow.run, DunningInput(tid, cust, "EUR", as_of=(inv.due_date + timedelta(days=8)).isoformat()),
                id=dunning_workflow_id(tid, cust, "EUR"), task_queue=task_queue)
            st = await _until(h, "waiting", 1)
            # a corrected rating takes the energy off: the next cycle is a credit note
            rerate_session(engine, s, acc, "s1", started, D(500), D("0.00"))
            cn_id = f"wf-{uuid.uuid4().hex}"
            second = ad_hoc_period(today, today + timedelta(days=1), "Europe/Berlin")
            cn = await env.client.execute_workflow(
                BillingCycleWorkflow.run, BillingCycleInput(tid, acc, as_of=second.end.isoformat(),
                                                            period=second.to_dict(), cycle_key=second.key),
                id=cn_id, task_queue=task_queue)
            assert (cn.status, cn.kind) == ("finalized", "credit_note"), cn
            done = await asyncio.wait_for(h.result(), 30)
            if os.environ.get("EVBILL_RECORD_HISTORIES") == "1":  # test_replay.py replays it
                HISTORIES.joinpath("credit_note_tells_dunning_v7.json").write_text(
                    (await env.client.get_workflow_handle(cn_id).fetch_history()).to_json())
            assert (await env.get_current_time()).date() == today  # no clock moved: the signal woke it
    assert (done.status, done.stage, done.case_id) == ("closed", 1, st.case_id)
    with engine.connect() as conn:
        case = DN.case(conn, tid, st.case_id)
        left = sum((i.open for i in R.item_states(conn, tid) if i.open > 0), D(0))
        assert [x["stage"] for x in DN.stages_of(conn, tid, st.case_id)] == [1]
    assert case.status == "closed" and case.reason in ("below_minimum", "nothing_overdue")
    assert left < D("15.00")
