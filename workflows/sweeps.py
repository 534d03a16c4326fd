"""What the sweeps' Schedules share (dunning, posting batches): an interval read from the
environment, and a Schedule that starts one workflow every interval, never two rounds side by
side, created or brought up to date in place (idempotent, so every ``evbill serve`` keeps it)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

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

__all__ = ["ensure_interval_schedule", "interval_from_env"]


def interval_from_env(name: str, default: int, lo: int = 60, hi: int = 86400) -> timedelta:
    """``name`` as a number of seconds from ``lo`` to ``hi`` (``default`` when unset or empty)."""
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if not lo <= seconds <= hi:
        raise ValueError(f"{name} must be a number of seconds ({lo}-{hi}), not {raw!r}")
    return timedelta(seconds=seconds)


async def ensure_interval_schedule(client: Client, schedule_id: str, run: Any, arg: Any, *, workflow_id: str,
                                   task_queue: str, every: timedelta) -> str:
    """Create the Schedule that starts ``run(arg)`` every ``every``, or update it in place."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(run, arg, id=workflow_id, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP))
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        def upd(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(upd)
    return schedule_id
