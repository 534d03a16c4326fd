"""The collection schedule: created once per creditor account and updated in place, starting a
CollectionRunWorkflow on working days (on a real dev server: the test server has no schedules)."""

from __future__ import annotations

import pytest
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from tests.workflows.conftest import DEV_SERVER
from workflows.collections.schedules import (
    collection_schedule_id,
    drop_collection_schedule,
    ensure_collection_schedule,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_collection_schedule_created_updated_dropped() -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    try:
        sid = await ensure_collection_schedule(env.client, "ten1", "cra1", 6, "Europe/Berlin", task_queue="tq")
        assert sid == collection_schedule_id("ten1", "cra1")
        d = await env.client.get_schedule_handle(sid).describe()
        cal = d.schedule.spec.calendars[0]
        assert [(r.start, r.end) for r in cal.day_of_week] == [(1, 5)] and cal.hour[0].start == 6
        action = d.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "CollectionRunWorkflow"
        assert all(t.weekday() < 5 or t.astimezone().weekday() < 5 for t in d.info.next_action_times[:5])
        await ensure_collection_schedule(env.client, "ten1", "cra1", 9, "Europe/Lisbon", task_queue="tq")
        d = await env.client.get_schedule_handle(sid).describe()
        assert d.schedule.spec.calendars[0].hour[0].start == 9 and d.schedule.spec.time_zone_name == "Europe/Lisbon"
        assert await drop_collection_schedule(env.client, "ten1", "cra1")
        assert not await drop_collection_schedule(env.client, "ten1", "cra1")
    finally:
        await env.shutdown()
