"""The Schedule that starts the delivery sweep, kept by ``evbill serve`` at start: created (or
brought up to date and resumed) when SMTP is configured, paused when it is not."""

from __future__ import annotations

import logging
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
from temporalio.service import RPCError, RPCStatusCode

from workflows.documents.types import SWEEP_SCHEDULE_ID, DeliverySweepInput
from workflows.documents.workflows import DocumentDeliverySweepWorkflow

__all__ = ["ensure_sweep_schedule", "pause_sweep_schedule"]

log = logging.getLogger("evbill.documents.delivery")


async def ensure_sweep_schedule(client: Client, task_queue: str, every: timedelta = timedelta(minutes=1)) -> str:
    """Create the sweep's schedule, or update and resume it; idempotent."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(DocumentDeliverySweepWorkflow.run,
                                           DeliverySweepInput(budget_s=max(every.total_seconds() * 0.75, 1.0)),
                                           id="document-delivery-sweep", task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # a round still running when the next is due: skip the next, never two side by side
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP))
    try:
        await client.create_schedule(SWEEP_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        def upd(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        handle = client.get_schedule_handle(SWEEP_SCHEDULE_ID)
        await handle.update(upd)
        if (await handle.describe()).schedule.state.paused:  # paused by a start without SMTP
            await handle.unpause(note="SMTP configured")
    return SWEEP_SCHEDULE_ID


async def pause_sweep_schedule(client: Client, note: str) -> bool:
    """Pause the sweep (a server started without SMTP); False when there is none."""
    handle = client.get_schedule_handle(SWEEP_SCHEDULE_ID)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    if not desc.schedule.state.paused:
        await handle.pause(note=note)
    return True
