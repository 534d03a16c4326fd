"""``BillingRunWorkflow``: month-end in batches. Clean accounts are finalized by batch activities
with gapless numbers; an account held for finance gets its own ``BillingCycleWorkflow`` (the id
``start_cycles`` gives), which a person approves as before; a batch retried after a crash mid-batch
makes no second invoice and no second collection entry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from store import billing as B
from store import receivables as R
from store.models import BillingAccount
from tests.store.conftest import BACKENDS, fresh_engine
from tests.workflows.seed import expected_net, insert_sessions, seed_tenant
from workflows.billing import activities as A
from workflows.billing.activities import BillingActivities
from workflows.billing.run import BillingRunWorkflow
from workflows.billing.types import (
    ApproveInput,
    AssembleBatchInput,
    BatchOutcome,
    BillingCycleResult,
    BillingRunInput,
    BillingRunResult,
    cycle_workflow_id,
)
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each test on SQLite and, with ``EVBILL_TEST_POSTGRES_URL``, on PostgreSQL (a schema of its own)."""
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    try:
        yield eng
    finally:
        cleanup()  # type: ignore[operator]
CUT_OFF = "2026-12-01T00:05:00+01:00"
NOV = datetime(2026, 11, 3, 10, tzinfo=UTC)


def seed(engine: Engine, tenant: str, n: int, big: tuple[int, ...] = ()) -> list[str]:
    """``n`` accounts with three sessions each; the accounts at ``big`` charge 3,000 kWh more, past
    the seed ruleset's ``hold when total > 1000.00``."""
    s = seed_tenant(engine, tenant, n)
    insert_sessions(engine, s, [(acc, f"{tenant}_{i}_{j}", NOV + timedelta(days=j, minutes=i),
                                 D(3000) if (i in big and j == 0) else D(i + 1) + D(j) / 4)
                                for i, acc in enumerate(s.account_ids) for j in range(3)])
    return s.account_ids


def invoices(engine: Engine, tenant: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == tenant)
                                 .order_by(B.invoice.c.account_id)))


def numbers(engine: Engine, tenant: str) -> list[int]:
    return sorted(r.number_seq for r in invoices(engine, tenant) if r.status == "finalized")


async def test_clean_accounts_in_batches_and_a_held_one_in_its_own_cycle(env: WorkflowEnvironment, engine: Engine,
                                                                        task_queue: str) -> None:
    ids = seed(engine, "r1", 7, big=(3,))
    async with build_worker(env.client, engine, task_queue):
        res = await env.client.execute_workflow(
            BillingRunWorkflow.run, BillingRunInput("r1", CUT_OFF, batch_size=3), id=f"run-{uuid.uuid4().hex}",
            task_queue=task_queue, result_type=BillingRunResult)
        held_wid = cycle_workflow_id("r1", ids[3], CUT_OFF)
        assert (res.accounts, res.finalized, res.empty, res.held, res.failed) == (7, 6, 0, [held_wid], [])
        rows = invoices(engine, "r1")
        assert len(rows) == 7  # one invoice per account
        assert numbers(engine, "r1") == [1, 2, 3, 4, 5, 6]
        clean = [r for r in rows if r.account_id != ids[3]]
        for i, r in enumerate(rows):
            if r.account_id != ids[3]:
                kwhs = [D(i + 1) + D(j) / 4 for j in range(3)]
                assert r.status == "finalized" and r.net_total == expected_net(kwhs) and r.sessions == 3
        assert len(clean) == 6
        # the held account waits in a cycle workflow of its own, which the finance task names
        handle = env.client.get_workflow_handle(held_wid, result_type=BillingCycleResult)
        status = await handle.query(BillingCycleWorkflow.status)
        for _ in range(100):  # "held" comes before the task is opened: wait for its id
            if status.task_id:
                break
            await asyncio.sleep(0.1)
            status = await handle.query(BillingCycleWorkflow.status)
        assert status.state == "held" and [r["kind"] for r in status.reasons] == ["total"]
        with engine.connect() as conn:
            task = conn.execute(select(B.finance_task).where(B.finance_task.c.tenant_id == "r1")).one()
        assert task.workflow_id == held_wid and task.account_id == ids[3]
        [held] = [r for r in rows if r.account_id == ids[3]]
        assert held.workflow_id == held_wid and held.id == status.invoice_id
        await handle.execute_update(BillingCycleWorkflow.approve, ApproveInput("u_approver", "approver"))
        out = await handle.result()
        assert out.status == "finalized" and out.number == "INV-000007"
    assert numbers(engine, "r1") == list(range(1, 8))
    assert len(invoices(engine, "r1")) == 7


async def test_the_run_pages_through_the_monthly_accounts(env: WorkflowEnvironment, engine: Engine,
                                                         task_queue: str) -> None:
    ids = seed(engine, "r2", 5)
    acct = BillingAccount.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:  # an ad-hoc account and a closed one are not the run's
        conn.execute(update(acct).where(acct.c.id == ids[1]).values(billing_cycle="ad_hoc"))
        conn.execute(update(acct).where(acct.c.id == ids[2]).values(status="closed"))
    async with build_worker(env.client, engine, task_queue):
        res = await env.client.execute_workflow(
            BillingRunWorkflow.run, BillingRunInput("r2", CUT_OFF, batch_size=1), id=f"run-{uuid.uuid4().hex}",
            task_queue=task_queue, result_type=BillingRunResult)
    assert (res.accounts, res.finalized, res.held) == (3, 3, [])
    assert sorted(r.account_id for r in invoices(engine, "r2")) == [ids[0], ids[3], ids[4]]
    assert numbers(engine, "r2") == [1, 2, 3]


class _Crash(Exception):
    pass


async def test_a_batch_retried_after_a_crash_makes_no_second_invoice(engine: Engine, monkeypatch: pytest.MonkeyPatch
                                                                      ) -> None:
    """The first attempt dies after finalizing some accounts (one of them numbered but not yet
    handed over); the retry, as Temporal would send it with the last heartbeat, finishes the batch:
    one invoice per account, numbers gapless, each invoice scheduled for collection once, totals
    those of an uninterrupted batch."""
    ids = seed(engine, "r3", 6, big=(4,))
    ref_ids = seed(engine, "r3ref", 6, big=(4,))
    acts = BillingActivities(engine)
    inp = AssembleBatchInput("r3", ids, CUT_OFF, CUT_OFF)
    real = acts._hand_over
    calls: list[str] = []
    heartbeats: list[Any] = []

    def dying(tenant_id: str, draft: Any, **kw: Any) -> None:
        if len(calls) == 3:
            raise _Crash  # the 4th account is numbered, its documents are never handed over
        calls.append(draft.invoice_id)
        real(tenant_id, draft, **kw)

    def counted(tenant_id: str, draft: Any, **kw: Any) -> None:
        calls.append(draft.invoice_id)
        real(tenant_id, draft, **kw)

    monkeypatch.setattr(A, "_GROUP", 2)  # accounts written per transaction: three groups here

    monkeypatch.setattr(acts, "_hand_over", dying)
    first = ActivityEnvironment()
    first.on_heartbeat = lambda *d: heartbeats.append(d[0])
    with pytest.raises(_Crash):
        first.run(acts.assemble_batch, inp)
    # the second group (the 3rd and 4th accounts) was numbered, the 4th's hand-over died: the
    # heartbeats report three accounts done
    assert heartbeats[-1] == 3 and numbers(engine, "r3") == [1, 2, 3, 4]
    monkeypatch.setattr(acts, "_hand_over", counted)
    retry = ActivityEnvironment()
    retry.info = _with_heartbeat(retry.info, heartbeats[-1])
    out = retry.run(acts.assemble_batch, inp)
    assert isinstance(out, BatchOutcome)
    assert (out.finalized, out.held, out.failed) == (5, [ids[4]], [])
    # the retry handed over what the heartbeats did not report done: the 4th account and the 6th
    assert len(calls) == 5 and len(set(calls)) == 5
    # once more, as a late duplicate attempt would (its hand-overs are idempotent): nothing changes
    again = ActivityEnvironment().run(acts.assemble_batch, inp)
    assert (again.finalized, again.held) == (5, [ids[4]])
    rows = invoices(engine, "r3")
    assert len(rows) == 6 and numbers(engine, "r3") == [1, 2, 3, 4, 5]
    finalized = {r.id for r in rows if r.status == "finalized"}
    assert set(calls) == finalized
    with engine.connect() as conn:
        per_invoice = conn.execute(select(R.receivable_item.c.invoice_id, func.count())
                                   .where(R.receivable_item.c.tenant_id == "r3")
                                   .group_by(R.receivable_item.c.invoice_id)).all()
    assert {i for i, _ in per_invoice} == finalized and all(n == 1 for _, n in per_invoice)  # one open item each
    ActivityEnvironment().run(acts.assemble_batch, AssembleBatchInput("r3ref", ref_ids, CUT_OFF, CUT_OFF))

    def totals(tenant: str) -> list[tuple[Any, ...]]:
        return [(r.account_id.rsplit("_", 1)[1], r.status, r.number_seq, r.net_total, r.gross_total)
                for r in invoices(engine, tenant)]

    assert totals("r3") == totals("r3ref")


def _with_heartbeat(info: Any, done: int) -> Any:
    import dataclasses

    return dataclasses.replace(info, heartbeat_details=[done])


async def test_the_groups_reads_bill_what_each_accounts_own_reads_bill(engine: Engine) -> None:
    """A batch reads per group what a cycle reads per account (the invoice at the cycle key, the
    previous net, open invoices, billed sessions, rated lines): a second month with a re-rated
    session, a late one and a current one comes out line for line as the per-account path makes it."""
    from tests.workflows.seed import rerate_session

    def month(tenant: str, as_of: str, batch: bool) -> None:
        acts = BillingActivities(engine)
        ids = [f"acc_{tenant}_{i:06d}" for i in range(4)]
        if batch:
            alone: list[str] = []
            acts._assemble_one = lambda inp, **kw: alone.append(inp.account_id)  # type: ignore[method-assign]
            ActivityEnvironment().run(acts.assemble_batch, AssembleBatchInput(tenant, ids, as_of, as_of))
            assert alone == []  # the group was written as read, no account went again on its own
        else:
            for a in ids:
                acts._assemble_one(A.AssembleInput(tenant, a, as_of, cycle_workflow_id(tenant, a, as_of),
                                                   finalize_if_clean=True, now=as_of), collect=True)

    def lines(tenant: str) -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            rows = conn.execute(select(B.invoice.c.account_id, B.invoice.c.cycle_key, B.invoice.c.status,
                                       B.invoice.c.net_total, B.invoice_line.c.kind, B.invoice_line.c.session_id,
                                       B.invoice_line.c.net, B.invoice_line.c.corrects)
                                .join(B.invoice_line, B.invoice_line.c.invoice_id == B.invoice.c.id)
                                .where(B.invoice.c.tenant_id == tenant)).all()
        return sorted((r[0].rsplit("_", 1)[1], *r[1:5], (r[5] or "").replace(tenant, "T"), r[6],
                       str(r[7]).replace(tenant, "T")) for r in rows)

    for tenant, batch in (("g1", True), ("g1ref", False)):
        s = seed_tenant(engine, tenant, 4)
        insert_sessions(engine, s, [(a, f"{tenant}_{i}_{j}", NOV + timedelta(days=j, minutes=i), D(i + 1) + D(j))
                                    for i, a in enumerate(s.account_ids) for j in range(2)])
        month(tenant, CUT_OFF, batch)
        acc = s.account_ids
        rerate_session(engine, s, acc[0], f"{tenant}_0_1", NOV + timedelta(days=1), D(2), D("0.30"))
        insert_sessions(engine, s, [(acc[1], f"{tenant}_late", datetime(2026, 11, 20, tzinfo=UTC), D(2)),
                                    (acc[2], f"{tenant}_dec", datetime(2026, 12, 10, tzinfo=UTC), D(5))])
        month(tenant, "2027-01-01T00:05:00+01:00", batch)
    got, ref = lines("g1"), lines("g1ref")
    assert got == ref
    december = {(r[0], r[4]) for r in got if r[1] != got[0][1]}
    assert {("000000", "adjustment"), ("000001", "late"), ("000002", "session")} <= december, december
