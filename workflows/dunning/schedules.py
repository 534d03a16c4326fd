"""The Schedule that starts the dunning sweep (``DunningSweepWorkflow``), kept by ``evbill serve``:
every ``EVBILL_DUNNING_SWEEP_SECONDS`` (default 3600) one round starts a ``DunningWorkflow`` for
each customer and currency with an overdue item and no open case. A workflow already running for
the pair is found by its id and left alone, so rounds may overlap with nothing started twice
(overlaps are skipped all the same)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from workflows.dunning.types import SweepInput
from workflows.dunning.workflows import DunningSweepWorkflow
from workflows.sweeps import ensure_interval_schedule, interval_from_env

__all__ = ["DUNNING_SWEEP_SCHEDULE_ID", "dunning_sweep_interval", "ensure_dunning_sweep_schedule"]

DUNNING_SWEEP_SCHEDULE_ID = "evbill-dunning-sweep"


def dunning_sweep_interval() -> timedelta:
    """``EVBILL_DUNNING_SWEEP_SECONDS`` (60 to 86400, default 3600)."""
    return interval_from_env("EVBILL_DUNNING_SWEEP_SECONDS", 3600)


async def ensure_dunning_sweep_schedule(client: Client, task_queue: str, every: timedelta | None = None) -> str:
    """Create the sweep's schedule, or bring it up to date; idempotent."""
    return await ensure_interval_schedule(client, DUNNING_SWEEP_SCHEDULE_ID, DunningSweepWorkflow.run,
                                          SweepInput(task_queue=task_queue), workflow_id="dunning-sweep",
                                          task_queue=task_queue, every=every or dunning_sweep_interval())
