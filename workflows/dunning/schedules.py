"""The Schedule that starts the dunning sweep (``DunningSweepWorkflow``), kept by ``evbill serve``:
every ``EVBILL_DUNNING_SWEEP_SECONDS`` (default 3600) one round starts a ``DunningWorkflow`` for
each customer and currency with an overdue item and no open case. A workflow already running for
the pair is found by its id and left alone, so rounds may overlap with nothing started twice
(overlaps are skipped all the same)."""

from __future__ import annotations

import os
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.dunning.types import SweepInput
from workflows.dunning.workflows import DunningSweepWorkflow

__all__ = ["DUNNING_SWEEP_SCHEDULE_ID", "dunning_sweep_interval", "ensure_dunning_sweep_schedule"]

DUNNING_SWEEP_SCHEDULE_ID = "evbill-dunning-sweep"


def dunning_sweep_interval() -> timedelta:
    """``EVBILL_DUNNING_SWEEP_SECONDS`` (60 to 86400, default 3600)."""
    raw = os.environ.get("EVBILL_DUNNING_SWEEP_SECONDS", "").strip() or "3600"
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if not 60 <= seconds <= 86400:
        raise ValueError(f"EVBILL_DUNNING_SWEEP_SECONDS must be a number of seconds (60-86400), not {raw!r}")
    return timedelta(seconds=seconds)


async def ensure_dunning_sweep_schedule(client: Client, task_queue: str, every: timedelta | None = None) -> str:
    """Create the sweep's schedule, or bring it up to date; idempotent."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(DunningSweepWorkflow.run, SweepInput(task_queue=task_queue),
                                           id="dunning-sweep", task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every or dunning_sweep_interval())]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP))
    try:
        await client.create_schedule(DUNNING_SWEEP_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        def upd(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(DUNNING_SWEEP_SCHEDULE_ID).update(upd)
    return DUNNING_SWEEP_SCHEDULE_ID
