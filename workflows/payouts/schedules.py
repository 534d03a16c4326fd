"""The Schedule of monthly payout runs (``PayoutSweepWorkflow``), kept by ``evbill serve``: every
``EVBILL_PAYOUT_SWEEP_SECONDS`` (default 3600) one round starts, for each tenant whose payout day
(``PUT /payouts/schedule``) has come this month, a payout run per account with requested payables;
one per account and month (the workflow id names the month), so overlaps are skipped and a late
round catches up."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from workflows.payouts.types import PayoutSweepInput
from workflows.payouts.workflows import PayoutSweepWorkflow
from workflows.sweeps import ensure_interval_schedule, interval_from_env

__all__ = ["PAYOUT_SWEEP_SCHEDULE_ID", "ensure_payout_sweep_schedule", "payout_sweep_interval"]

PAYOUT_SWEEP_SCHEDULE_ID = "evbill-payouts-monthly"


def payout_sweep_interval() -> timedelta:
    """``EVBILL_PAYOUT_SWEEP_SECONDS`` (60 to 86400, default 3600)."""
    return interval_from_env("EVBILL_PAYOUT_SWEEP_SECONDS", 3600)


async def ensure_payout_sweep_schedule(client: Client, task_queue: str, every: timedelta | None = None) -> str:
    """Create the payout schedule, or bring it up to date; idempotent."""
    return await ensure_interval_schedule(client, PAYOUT_SWEEP_SCHEDULE_ID, PayoutSweepWorkflow.run,
                                          PayoutSweepInput(task_queue=task_queue), workflow_id="payout-sweep",
                                          task_queue=task_queue, every=every or payout_sweep_interval())
