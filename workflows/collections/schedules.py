"""A Temporal Schedule per creditor account that starts its collection run every working day."""

from __future__ import annotations

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
)
from temporalio.service import RPCError

from workflows.billing.types import TASK_QUEUE
from workflows.collections.types import CollectionRunInput, collection_workflow_id
from workflows.collections.workflows import CollectionRunWorkflow

__all__ = ["collection_schedule_id", "drop_collection_schedule", "ensure_collection_schedule"]


def collection_schedule_id(tenant_id: str, creditor_account_id: str) -> str:
    return f"collection-schedule:{tenant_id}:{creditor_account_id}"


async def ensure_collection_schedule(client: Client, tenant_id: str, creditor_account_id: str, hour: int = 6,
                                     timezone: str = "Europe/Berlin", task_queue: str = TASK_QUEUE) -> str:
    """Create or update the schedule: Monday to Friday at ``hour`` local time. Each run collects as
    of the day it starts (``as_of`` empty: the workflow's own date) and waits for approval like one
    started through the API; the system starts it, so any approver may approve it."""
    sid = collection_schedule_id(tenant_id, creditor_account_id)
    action = ScheduleActionStartWorkflow(
        CollectionRunWorkflow.run, CollectionRunInput(tenant_id, creditor_account_id, "", "system"),
        id=collection_workflow_id(tenant_id, creditor_account_id, "scheduled"), task_queue=task_queue)
    cal = ScheduleCalendarSpec(day_of_week=[ScheduleRange(1, 5)], hour=[ScheduleRange(hour)],
                               minute=[ScheduleRange(0)], second=[ScheduleRange(0)])
    schedule = Schedule(action=action, spec=ScheduleSpec(calendars=[cal], time_zone_name=timezone))
    try:
        await client.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:
        def upd(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(sid).update(upd)
    return sid


async def drop_collection_schedule(client: Client, tenant_id: str, creditor_account_id: str) -> bool:
    try:
        await client.get_schedule_handle(collection_schedule_id(tenant_id, creditor_account_id)).delete()
    except RPCError:
        return False  # there was none
    return True
