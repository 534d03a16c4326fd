"""The Schedule of posting batches (``BatchSweepWorkflow``), kept by ``evbill serve``: every
``EVBILL_ACCOUNTING_BATCH_SWEEP_SECONDS`` (default 3600) one round cuts the batches of each tenant
whose cadence (``PUT /accounting/batch-schedule``: daily or monthly) makes a past day or month due,
and delivers every undelivered batch of a tenant with an SFTP target. A round finds nothing twice
(an entry is exported once; a delivery is one workflow per batch), so overlaps are skipped and a
late round catches up."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from workflows.accounting.types import BatchSweepInput
from workflows.accounting.workflows import BatchSweepWorkflow
from workflows.sweeps import ensure_interval_schedule, interval_from_env

__all__ = ["BATCH_SWEEP_SCHEDULE_ID", "batch_sweep_interval", "ensure_batch_sweep_schedule"]

BATCH_SWEEP_SCHEDULE_ID = "evbill-accounting-batches"


def batch_sweep_interval() -> timedelta:
    """``EVBILL_ACCOUNTING_BATCH_SWEEP_SECONDS`` (60 to 86400, default 3600)."""
    return interval_from_env("EVBILL_ACCOUNTING_BATCH_SWEEP_SECONDS", 3600)


async def ensure_batch_sweep_schedule(client: Client, task_queue: str, every: timedelta | None = None) -> str:
    """Create the batch schedule, or bring it up to date; idempotent."""
    return await ensure_interval_schedule(client, BATCH_SWEEP_SCHEDULE_ID, BatchSweepWorkflow.run,
                                          BatchSweepInput(task_queue=task_queue), workflow_id="accounting-batch-sweep",
                                          task_queue=task_queue, every=every or batch_sweep_interval())
