"""The billing worker, the helpers that start cycles, and the Schedules that start them each cut-off.

``python -m workflows.billing.worker --address HOST:PORT [--task-queue Q] [--database-url URL]``
runs a worker until it is stopped (the crash test kills it with SIGKILL mid-run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from store.documents import SmtpSettings, smtp_settings_from_env
from workflows.billing.activities import BillingActivities
from workflows.billing.run import BillingRunWorkflow
from workflows.billing.types import (
    TASK_QUEUE,
    BillingCycleInput,
    BillingRunInput,
    BillingRunResult,
    cycle_workflow_id,
    run_schedule_id,
    run_workflow_id,
)
from workflows.billing.workflows import BillingCycleWorkflow
from workflows.heap import settle_gc

__all__ = [
    "build_worker",
    "cycle_workflow_id",
    "ensure_run_schedule",
    "ensure_schedule",
    "main",
    "run_schedule_id",
    "schedule_id",
    "start_cycle",
    "start_cycles",
    "start_run",
]

log = logging.getLogger("evbill.billing.worker")

# allocations between collections of the youngest generation (Python's default: 700): a billing
# run's group of 25 accounts allocates ~50,000 container objects that live until it is written
# (``workflows.heap``)
GC_YOUNG = 50_000


def build_worker(client: Client, engine: Engine, task_queue: str = TASK_QUEUE, *, threads: int = 8,
                 max_concurrent_activities: int | None = None, sandboxed: bool | None = None,
                 smtp: SmtpSettings | None = None, **kw: Any) -> Worker:
    """The billing worker, which also delivers the documents' e-mail through ``smtp`` (None: it
    sends none, deliveries stay pending). Workflows run outside the SDK's sandbox unless ``sandboxed`` (or
    ``EVBILL_WORKFLOW_SANDBOX=1``): the sandbox re-imports the workflow module for every workflow
    instance, which was a fifth of a worker's CPU at month-end. The workflow module imports nothing
    but temporalio and its dataclasses, and tests/workflows/test_replay.py replays every recorded
    history in the sandbox too, so code that the sandbox would refuse still fails the suite."""
    if sandboxed is None:
        sandboxed = os.environ.get("EVBILL_WORKFLOW_SANDBOX", "0") == "1"
    from workflows.accounting.activities import AccountingActivities
    from workflows.accounting.workflows import BatchDeliveryWorkflow, BatchSweepWorkflow
    from workflows.billing.schedule_sync import ScheduleSyncWorkflow
    from workflows.billing.schedules import ScheduleActivities  # it imports this module
    from workflows.clearing.activities import ClearingActivities
    from workflows.clearing.workflows import ClearingWorkflow
    from workflows.collections.activities import CollectionActivities
    from workflows.collections.workflows import CollectionRunWorkflow
    from workflows.documents.activities import DeliveryActivities
    from workflows.documents.workflows import DocumentDeliverySweepWorkflow, DocumentDeliveryWorkflow
    from workflows.dunning.activities import DunningActivities
    from workflows.dunning.workflows import DunningSweepWorkflow, DunningWorkflow
    from workflows.payouts.activities import PayoutActivities
    from workflows.payouts.workflows import PayoutRunWorkflow, PayoutSweepWorkflow

    acts = BillingActivities(engine, delivers_email=smtp is not None)
    runner: WorkflowRunner = SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()
    # a clean cycle's workflow task stays open while its local activities run, and they share the
    # activity threads: taking more tasks than the threads can serve within the workflow task
    # timeout (10 s) would have the server time tasks out and the worker redo finished steps
    # (200 slots did). Tasks the worker does not take wait on the server's task queue, where
    # waiting costs nothing. Every free slot keeps a poll open: with the SDK's default of five
    # polls a worker waited for tasks while its CPU idled (3,000 accounts, 6/12/24 slots with five
    # polls: 49.5-63.6 s; 12 to 24 slots with as many polls: 38.2-44.3 s)
    slots = 4 * threads
    kw.setdefault("max_concurrent_workflow_tasks", slots)
    kw.setdefault("max_concurrent_workflow_task_polls", slots)
    return Worker(client, task_queue=task_queue,
                  workflows=[BillingCycleWorkflow, BillingRunWorkflow, ScheduleSyncWorkflow, DocumentDeliveryWorkflow,
                             DocumentDeliverySweepWorkflow, CollectionRunWorkflow, PayoutRunWorkflow, DunningWorkflow,
                             DunningSweepWorkflow, BatchDeliveryWorkflow, ClearingWorkflow,
                             BatchSweepWorkflow, PayoutSweepWorkflow],
                  activities=acts.all() + ScheduleActivities(engine).all() + DeliveryActivities(engine, smtp).all()
                  + CollectionActivities(engine).all() + PayoutActivities(engine).all()
                  + DunningActivities(engine, client=client).all() + AccountingActivities(engine).all()
                  + ClearingActivities(engine).all(),
                  activity_executor=ThreadPoolExecutor(max_workers=threads),
                  max_concurrent_activities=max_concurrent_activities or threads,
                  max_concurrent_local_activities=slots, workflow_runner=runner, **kw)


async def start_cycle(client: Client, inp: BillingCycleInput, key: str, task_queue: str = TASK_QUEUE,
                      ) -> WorkflowHandle[Any, Any]:
    """Start one cycle; the workflow id names account and period, so starting it twice is refused
    by Temporal (the second caller gets the running or completed workflow's handle)."""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    wid = cycle_workflow_id(inp.tenant_id, inp.account_id, key)
    try:
        return await client.start_workflow(BillingCycleWorkflow.run, inp, id=wid, task_queue=task_queue,
                                           id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(wid)


async def start_cycles(client: Client, tenant_id: str, account_ids: Sequence[str], as_of: datetime,
                       task_queue: str = TASK_QUEUE, concurrency: int = 64, **overrides: Any) -> list[str]:
    """Month-end for many accounts at one cut-off (what the schedules do one by one)."""
    sem = asyncio.Semaphore(concurrency)
    key = as_of.isoformat()

    async def one(acc: str) -> str:
        async with sem:
            h = await start_cycle(client, BillingCycleInput(tenant_id, acc, as_of=key, **overrides), key, task_queue)
            return h.id

    return list(await asyncio.gather(*(one(a) for a in account_ids)))


async def start_run(client: Client, tenant_id: str, as_of: datetime, account_ids: Sequence[str] | None = None,
                    task_queue: str = TASK_QUEUE, batch_size: int = 100, **overrides: Any,
                    ) -> WorkflowHandle[BillingRunWorkflow, BillingRunResult]:
    """Month-end for the tenant's accounts at one cut-off in batches (``BillingRunWorkflow``): the
    accounts whose drafts need nobody are finalized by batch activities, the others get their own
    ``BillingCycleWorkflow`` (the id ``start_cycles`` would give them). ``account_ids`` None: every
    active monthly account. One run per tenant and cut-off: starting it again returns the first."""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    key = as_of.isoformat()
    wid = run_workflow_id(tenant_id, key)
    inp = BillingRunInput(tenant_id, key, list(account_ids) if account_ids is not None else None,
                          batch_size=batch_size, **overrides)
    try:
        return await client.start_workflow(BillingRunWorkflow.run, inp, id=wid, task_queue=task_queue,
                                           id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(wid, result_type=BillingRunResult)


def schedule_id(tenant_id: str, account_id: str) -> str:
    return f"billing-schedule:{tenant_id}:{account_id}"


def _spec(cycle: str, cut_off_day: int, timezone: str) -> ScheduleSpec:
    months = [ScheduleRange(1, 12)] if cycle == "monthly" else [ScheduleRange(1, 10, 3)]
    # fire shortly after local midnight of the cut-off day; the workflow bills the period that closed
    cal = ScheduleCalendarSpec(day_of_month=[ScheduleRange(cut_off_day)], month=months, hour=[ScheduleRange(0)],
                               minute=[ScheduleRange(5)], second=[ScheduleRange(0)])
    return ScheduleSpec(calendars=[cal], time_zone_name=timezone)


async def ensure_run_schedule(client: Client, tenant_id: str, cycle: str = "monthly", cut_off_day: int = 1,
                              timezone: str = "Europe/Berlin", task_queue: str = TASK_QUEUE) -> str:
    """Create or update the Schedule that starts one ``BillingRunWorkflow`` for the tenant's
    accounts billed on ``cycle`` in ``timezone`` at each cut-off (the run picks them by
    ``BillingRunInput.timezone``; Temporal suffixes the workflow id with the moment it fires)."""
    sid = run_schedule_id(tenant_id, cycle, timezone)
    action = ScheduleActionStartWorkflow(
        BillingRunWorkflow.run, BillingRunInput(tenant_id, None, None, cycle, timezone=timezone),
        id=f"billing-run:{tenant_id}:{cycle}:{timezone}:scheduled", task_queue=task_queue)
    await _put_schedule(client, sid, Schedule(action=action, spec=_spec(cycle, cut_off_day, timezone)))
    return sid


async def ensure_schedule(client: Client, tenant_id: str, account_id: str, cycle: str = "monthly",
                          cut_off_day: int = 1, timezone: str = "Europe/Berlin", task_queue: str = TASK_QUEUE,
                          escalate_after_s: int | None = None) -> str:
    """Create or update an account's own schedule, which starts a ``BillingCycleWorkflow`` per
    cut-off: how month-end was started before the run schedules (``ensure_run_schedule``); the
    schedule sync deletes such schedules and bills their accounts by the run schedules."""
    sid = schedule_id(tenant_id, account_id)
    action = ScheduleActionStartWorkflow(
        BillingCycleWorkflow.run, BillingCycleInput(tenant_id, account_id, escalate_after_s=escalate_after_s),
        id=f"billing:{tenant_id}:{account_id}:scheduled", task_queue=task_queue)
    await _put_schedule(client, sid, Schedule(action=action, spec=_spec(cycle, cut_off_day, timezone)))
    return sid


async def _put_schedule(client: Client, sid: str, schedule: Schedule) -> None:
    try:
        await client.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:
        def upd(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(upd)


async def run_worker(address: str, task_queue: str, database_url: str | None, threads: int,
                     namespace: str = "default", schema: str | None = None) -> None:
    from store.db import make_engine

    engine = make_engine(database_url, schema=schema)
    client = await Client.connect(address, namespace=namespace)
    smtp = smtp_settings_from_env()
    if smtp is not None:
        from workflows.billing.embedded import delivery_sweep_interval
        from workflows.documents.schedules import ensure_sweep_schedule

        await ensure_sweep_schedule(client, task_queue, delivery_sweep_interval())
    worker = build_worker(client, engine, task_queue, threads=threads, smtp=smtp)
    settle_gc(GC_YOUNG)
    log.info("billing worker on %s, task queue %s, e-mail %s", address, task_queue,
             f"through {smtp.host}:{smtp.port}" if smtp else "off (EVBILL_SMTP_HOST not set)")
    await worker.run()


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="evbill-billing-worker")
    ap.add_argument("--address", default=os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"))
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--task-queue", default=TASK_QUEUE)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--schema", default=None, help="PostgreSQL schema (tests and benchmarks)")
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args(list(argv) if argv is not None else None)
    # as api/logs.py sets up serve and demo (this layer may not import api): our own lines at
    # INFO, the libraries' (fontTools narrates every rendered invoice) from WARNING up
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("evbill").setLevel(os.environ.get("EVBILL_LOG_LEVEL", "INFO").upper())
    asyncio.run(run_worker(args.address, args.task_queue, args.database_url, args.threads, args.namespace,
                           args.schema))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
