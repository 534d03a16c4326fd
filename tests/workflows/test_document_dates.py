"""Issue 11, defect 7: an invoice is dated the day it is finalized, in the tenant's zone, not the
end of its billing period; it falls due after the payment terms from that day; a credit note is
dated the day it is made and nothing falls due after it. The service period stays the period.

A time-skipping test server of its own, so that its clock can be moved to a chosen moment
(a year ahead of the machine's clock) without moving the shared one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
import pytest_asyncio
from sqlalchemy import Engine, select, update
from temporalio.testing import WorkflowEnvironment

from store import billing as B
from store.models import Tenant
from tests.workflows.conftest import TEST_SERVER
from tests.workflows.seed import Seeded, insert_sessions, rerate_session, seed_tenant
from workflows.billing.types import ApproveInput, BillingCycleInput
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def own_env() -> AsyncIterator[WorkflowEnvironment]:
    e = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    try:
        yield e
    finally:
        await e.shutdown()


async def _sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    assert now < moment, f"the test server's clock ({now}) is already past {moment}"
    await env.sleep(moment - now)


async def test_invoice_is_dated_the_finalization_day_and_credit_note_the_day_it_is_made(
        own_env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    env = own_env
    s = seed_tenant(engine, "td", 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "big", datetime(2027, 11, 10, 9, tzinfo=UTC), D(5000))])
    # the clock moves only when told (waiting for a result would otherwise skip it ahead)
    with env.auto_time_skipping_disabled():
        async with build_worker(env.client, engine, task_queue):
            await _cycles(env, engine, task_queue, s, acc)


async def _cycles(env: WorkflowEnvironment, engine: Engine, task_queue: str, s: Seeded, acc: str) -> None:
    # November 2027 closes at midnight Dec 1 (Berlin); the total holds it for finance
    h = await env.client.start_workflow(
        BillingCycleWorkflow.run, BillingCycleInput("td", acc, as_of="2027-12-01T00:05:00+01:00"),
        id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
    for _ in range(200):
        if (await h.query(BillingCycleWorkflow.status)).state == "held":
            break
        await asyncio.sleep(0.05)
    # finance approves at 00:30 on Dec 2 in Berlin, still Dec 1 in UTC
    await _sleep_until(env, datetime(2027, 12, 1, 23, 30, tzinfo=UTC))
    await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver"))
    assert (await h.result()).status == "finalized"
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == "td")).one()
    assert (inv.kind, inv.local_start, inv.local_end) == ("invoice", date(2027, 11, 1), date(2027, 12, 1))
    assert inv.issue_date == date(2027, 12, 2)  # not the period's end (Dec 1), not the UTC day
    assert inv.due_date == date(2027, 12, 16)  # net 14 from the issue day

    # a corrected ruleset lowers the session's price; an ad-hoc cycle for "today" (what the API
    # starts: the period's end as cut-off) corrects it with a credit note
    rerate_session(engine, s, acc, "big", datetime(2027, 11, 10, 9, tzinfo=UTC), D(5000), D("0.30"))
    with engine.begin() as conn:  # the issuer's zone decides the day, not the account's
        conn.execute(update(Tenant.__table__).where(Tenant.__table__.c.id == "td")  # type: ignore[attr-defined]
                     .values(timezone="Asia/Tokyo"))
    from runtime.invoicing import ad_hoc_period

    period = ad_hoc_period(date(2027, 12, 2), date(2027, 12, 3), "Europe/Berlin")
    await _sleep_until(env, datetime(2027, 12, 2, 16, 0, tzinfo=UTC))  # Dec 2 17:00 Berlin, Dec 3 01:00 Tokyo
    res = await env.client.execute_workflow(
        BillingCycleWorkflow.run,
        BillingCycleInput("td", acc, as_of=period.end.isoformat(), period=period.to_dict(), cycle_key=period.key),
        id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
    assert res.status == "finalized" and res.kind == "credit_note"
    with engine.connect() as conn:
        cn = conn.execute(select(B.invoice).where(B.invoice.c.number == res.number)).one()
    # dated the day it was made in the tenant's zone (Tokyo: Dec 3 01:00), nothing due after it;
    # the moment recorded is the workflow's, not the machine's clock (a year behind here)
    assert cn.issue_date == date(2027, 12, 3) and cn.due_date == cn.issue_date
    assert abs(cn.finalized_at - datetime(2027, 12, 2, 16, 0, tzinfo=UTC)) < timedelta(minutes=5)
