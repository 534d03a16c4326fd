"""Billing cycles on the time-skipping test server: months, DST, a leap day, holds and finance
decisions (approve, reject, adjust, escalate), four eyes, manual holds, re-rating."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from store import billing as B
from tests.workflows.seed import expected_net, insert_sessions, rerate_session, seed_tenant
from workflows.billing.types import (
    AdjustInput,
    ApproveInput,
    BillingCycleInput,
    BillingCycleResult,
    RejectInput,
    ReleaseHoldInput,
)
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")
BERLIN_DEC_1 = "2026-12-01T00:05:00+01:00"


async def run_cycle(env: WorkflowEnvironment, engine: Engine, tq: str, inp: BillingCycleInput) -> BillingCycleResult:
    async with build_worker(env.client, engine, tq):
        return await env.client.execute_workflow(BillingCycleWorkflow.run, inp, id=f"wf-{uuid.uuid4().hex}",
                                                 task_queue=tq)


def invoices(engine: Engine, tenant: str) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == tenant)
                                 .order_by(B.invoice.c.local_start, B.invoice.c.account_id)))


def lines(engine: Engine, invoice_id: str) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == invoice_id)
                                 .order_by(B.invoice_line.c.seq)))


async def test_one_month_is_finalized_with_the_first_number(env: WorkflowEnvironment, engine: Engine,
                                                          task_queue: str) -> None:
    s = seed_tenant(engine, "t1", 1)
    acc = s.account_ids[0]
    kwhs = [D("10.123"), D("7.5"), D("22.01")]
    insert_sessions(engine, s, [(acc, f"s{i}", datetime(2026, 11, 3 + i, 10, tzinfo=UTC), k)
                                for i, k in enumerate(kwhs)]
                    # outside the period: October's last hour in Berlin is still October, December is later
                    + [(acc, "dec", datetime(2026, 12, 1, 0, 0, tzinfo=UTC), D(5))])
    res = await run_cycle(env, engine, task_queue, BillingCycleInput("t1", acc, as_of=BERLIN_DEC_1))
    assert res.status == "finalized" and res.number == "INV-000001"
    [inv] = invoices(engine, "t1")
    assert inv.net_total == expected_net(kwhs) and inv.sessions == 3
    # dated the day it was finalized (workflow time, in the tenant's zone), due 14 days later
    issued = inv.finalized_at.astimezone(ZoneInfo("Europe/Berlin")).date()
    assert str(inv.local_start) == "2026-11-01" and inv.issue_date == issued
    assert inv.due_date == issued + timedelta(days=14)
    assert inv.tax_total == (inv.net_total * D("0.19")).quantize(D("0.01"))
    assert [ln.kind for ln in lines(engine, inv.id)][-1] == "fee"


async def test_cycles_across_months_dst_and_a_leap_day(env: WorkflowEnvironment, engine: Engine,
                                                       task_queue: str) -> None:
    s = seed_tenant(engine, "t2", 1)
    acc = s.account_ids[0]
    # one session right after each local midnight that starts a month (Berlin: UTC+1 in winter,
    # UTC+2 in summer) and one on the leap day; the DST switches are inside March and October
    starts = [datetime(2028, 1, 31, 23, 30, tzinfo=UTC),  # Feb 1 00:30 local
              datetime(2028, 2, 29, 12, tzinfo=UTC),  # leap day
              datetime(2028, 2, 29, 23, 30, tzinfo=UTC),  # Mar 1 00:30 local
              datetime(2028, 3, 26, 1, 30, tzinfo=UTC),  # the night summer time starts
              datetime(2028, 3, 31, 22, 30, tzinfo=UTC),  # Apr 1 00:30 local (UTC+2)
              datetime(2028, 10, 29, 1, 30, tzinfo=UTC),  # the night winter time returns
              datetime(2028, 10, 31, 23, 30, tzinfo=UTC)]  # Nov 1 00:30 local (UTC+1)
    insert_sessions(engine, s, [(acc, f"s{i}", st, D(10 + i)) for i, st in enumerate(starts)])
    async with build_worker(env.client, engine, task_queue):
        for month in (3, 4, 5, 11):  # cut-offs that close February, March, April and October
            as_of = datetime(2028, month, 1, 0, 5, tzinfo=UTC).isoformat()
            res = await env.client.execute_workflow(
                BillingCycleWorkflow.run, BillingCycleInput("t2", acc, as_of=as_of), id=f"wf-{uuid.uuid4().hex}",
                task_queue=task_queue)
            assert res.status == "finalized"
    got = {str(i.local_start): (i.sessions, i.number, i.period_end - i.period_start) for i in invoices(engine, "t2")}
    assert got["2028-02-01"] == (2, "INV-000001", timedelta(days=29))
    assert got["2028-03-01"] == (2, "INV-000002", timedelta(days=31, hours=-1))
    assert got["2028-04-01"] == (1, "INV-000003", timedelta(days=30))
    assert got["2028-10-01"] == (1, "INV-000004", timedelta(days=31, hours=1))
    oct_ = next(i for i in invoices(engine, "t2") if str(i.local_start) == "2028-10-01")
    # the Nov 1 00:30 local session belongs to November, not October
    assert {ln.session_id for ln in lines(engine, oct_.id) if ln.session_id} == {"s5"}


async def start_held(env: WorkflowEnvironment, engine: Engine, tq: str, tenant: str, kwh: D,
                     **kw: object) -> tuple[object, str]:
    s = seed_tenant(engine, tenant, 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "big", datetime(2026, 11, 10, tzinfo=UTC), kwh)])
    h = await env.client.start_workflow(BillingCycleWorkflow.run,
                                        BillingCycleInput(tenant, acc, as_of=BERLIN_DEC_1, **kw),  # type: ignore[arg-type]
                                        id=f"wf-{uuid.uuid4().hex}", task_queue=tq)
    return h, acc


async def wait_state(h: object, state: str) -> None:
    import asyncio

    for _ in range(200):
        st = await h.query(BillingCycleWorkflow.status)  # type: ignore[attr-defined]
        if st.state == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {state}")


async def test_hold_then_approve(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    async with build_worker(env.client, engine, task_queue):
        h, _acc = await start_held(env, engine, task_queue, "t3", D(5000))
        await wait_state(h, "held")
        st = await h.query(BillingCycleWorkflow.status)  # type: ignore[attr-defined]
        assert st.reasons[0]["kind"] == "total"
        with engine.connect() as conn:
            task = conn.execute(select(B.finance_task)).one()
        assert task.status == "open" and task.reasons[0]["kind"] == "total"
        # an operator may not approve
        with pytest.raises(WorkflowUpdateFailedError):
            await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("op1", "operator"))  # type: ignore[attr-defined]
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver"))  # type: ignore[attr-defined]
        res = await h.result()  # type: ignore[attr-defined]
    assert res.status == "finalized" and res.number == "INV-000001" and res.decided_by == "ap1"
    with engine.connect() as conn:
        task = conn.execute(select(B.finance_task)).one()
    assert task.status == "approved" and task.decided_by == "ap1"


async def test_hold_then_reject(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    async with build_worker(env.client, engine, task_queue):
        h, _acc = await start_held(env, engine, task_queue, "t4", D(5000))
        await wait_state(h, "held")
        with pytest.raises(WorkflowUpdateFailedError):
            await h.execute_update(BillingCycleWorkflow.reject, RejectInput("ap1", "approver", " "))  # type: ignore[attr-defined]
        await h.execute_update(BillingCycleWorkflow.reject,  # type: ignore[attr-defined]
                               RejectInput("ap1", "approver", "meter fault at site 7"))
        res = await h.result()  # type: ignore[attr-defined]
    assert res.status == "rejected"
    [inv] = invoices(engine, "t4")
    assert inv.status == "rejected" and inv.number is None and inv.rejected_reason == "meter fault at site 7"


async def test_adjust_then_four_eyes(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    async with build_worker(env.client, engine, task_queue):
        h, _acc = await start_held(env, engine, task_queue, "t5", D(5000))
        await wait_state(h, "held")
        before = invoices(engine, "t5")[0].net_total
        d = await h.execute_update(BillingCycleWorkflow.adjust,  # type: ignore[attr-defined]
                                   AdjustInput("ap1", "approver", "goodwill for a broken charger", "-25.00", "19"))
        assert D(d.net) == before - D(25)
        # the adjuster cannot approve their own adjustment
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver"))  # type: ignore[attr-defined]
        assert "four eyes" in str(err.value.cause)
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap2", "approver"))  # type: ignore[attr-defined]
        res = await h.result()  # type: ignore[attr-defined]
    assert res.status == "finalized"
    [inv] = invoices(engine, "t5")
    assert inv.net_total == before - D(25) and inv.status == "finalized"
    assert [ln.kind for ln in lines(engine, inv.id)][-1] == "manual"
    # both people are in the tenant's audit chain, and the chain is intact
    from store.audit import verify_chain
    from store.models import AuditEntry, Tenant

    with engine.connect() as conn:
        from sqlalchemy.orm import Session

        db = Session(bind=conn)
        entries = list(db.execute(select(AuditEntry).where(AuditEntry.tenant_id == "t5")
                                  .order_by(AuditEntry.seq)).scalars())
        head = db.execute(select(Tenant.audit_head).where(Tenant.id == "t5")).scalar_one()
    assert [(e.action, e.actor_id, e.actor_role) for e in entries] == [
        ("invoice.adjust", "ap1", "approver"), ("finance_task.approved", "ap2", "approver")]
    assert verify_chain(entries, head) == []


async def test_unanswered_task_escalates(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    async with build_worker(env.client, engine, task_queue):
        h, _acc = await start_held(env, engine, task_queue, "t6", D(5000), escalate_after_s=3600)
        await wait_state(h, "held")
        await env.sleep(timedelta(hours=2, minutes=30))  # time-skipping: two escalations pass
        st = await h.query(BillingCycleWorkflow.status)  # type: ignore[attr-defined]
        assert st.escalation_level == 2
        with engine.connect() as conn:
            task = conn.execute(select(B.finance_task)).one()
        assert task.escalation_level == 2 and task.escalated_at is not None
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver"))  # type: ignore[attr-defined]
        assert (await h.result()).status == "finalized"  # type: ignore[attr-defined]


async def test_auto_release(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    async with build_worker(env.client, engine, task_queue):
        h, _acc = await start_held(env, engine, task_queue, "t7", D(5000), auto_release_after_s=3 * 86400,
                                  escalate_after_s=0)
        res = await h.result()  # type: ignore[attr-defined]
    assert res.status == "finalized" and res.decided_by == "system"


async def test_manual_hold_and_release(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    s = seed_tenant(engine, "t8", 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "small", datetime(2026, 11, 10, tzinfo=UTC), D(3))])
    with engine.begin() as conn:
        hid = B.place_hold(conn, "t8", acc, "hold", "manual", "customer disputes October", "op1")
    async with build_worker(env.client, engine, task_queue):
        h = await env.client.start_workflow(BillingCycleWorkflow.run, BillingCycleInput("t8", acc, as_of=BERLIN_DEC_1),
                                            id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
        await wait_state(h, "held")
        st = await h.query(BillingCycleWorkflow.status)
        assert [r["kind"] for r in st.reasons] == ["manual"]
        with engine.begin() as conn:
            B.release_hold(conn, "t8", hid, "ap1")
        await h.execute_update(BillingCycleWorkflow.release_hold, ReleaseHoldInput("ap1", "approver", hid))
        assert (await h.result()).status == "finalized"


async def test_rerating_and_late_sessions_become_adjustments(env: WorkflowEnvironment, engine: Engine,
                                                             task_queue: str) -> None:
    s = seed_tenant(engine, "t9", 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "a", datetime(2026, 11, 5, tzinfo=UTC), D(10))])
    async with build_worker(env.client, engine, task_queue):
        nov = await env.client.execute_workflow(BillingCycleWorkflow.run,
                                                BillingCycleInput("t9", acc, as_of=BERLIN_DEC_1),
                                                id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
        # a corrected ruleset re-rates November's session; a November session arrives late
        rerate_session(engine, s, acc, "a", datetime(2026, 11, 5, tzinfo=UTC), D(10), D("0.30"))
        insert_sessions(engine, s, [(acc, "late", datetime(2026, 11, 20, tzinfo=UTC), D(2))])
        dec = await env.client.execute_workflow(BillingCycleWorkflow.run,
                                                BillingCycleInput("t9", acc, as_of="2027-01-01T00:05:00+01:00"),
                                                id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
    assert (nov.number, dec.number) == ("INV-000001", "INV-000002")
    first, second = invoices(engine, "t9")
    assert first.net_total == D("0.50") + D("4.00") + D("4.99")  # unchanged: never edited
    ls = lines(engine, second.id)
    adj = [ln for ln in ls if ln.kind == "adjustment"]
    assert len(adj) == 1 and adj[0].net == D("-1.00") and adj[0].corrects == "INV-000001/a"
    assert {ln.session_id for ln in ls if ln.kind == "late"} == {"late"}
    assert second.corrects == ["INV-000001"]
    # a third cycle finds nothing left to correct
    async with build_worker(env.client, engine, task_queue):
        jan = await env.client.execute_workflow(BillingCycleWorkflow.run,
                                                BillingCycleInput("t9", acc, as_of="2027-02-01T00:05:00+01:00"),
                                                id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
    assert jan.status == "finalized"
    assert [ln.kind for ln in lines(engine, invoices(engine, "t9")[2].id)] == ["fee"]


async def test_rerun_of_a_finished_cycle_changes_nothing(env: WorkflowEnvironment, engine: Engine,
                                                         task_queue: str) -> None:
    s = seed_tenant(engine, "t10", 1)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, "a", datetime(2026, 11, 5, tzinfo=UTC), D(10))])
    a = await run_cycle(env, engine, task_queue, BillingCycleInput("t10", acc, as_of=BERLIN_DEC_1))
    b = await run_cycle(env, engine, task_queue, BillingCycleInput("t10", acc, as_of=BERLIN_DEC_1))
    assert a.number == b.number == "INV-000001" and len(invoices(engine, "t10")) == 1
