"""Schedules start month-end: a run schedule per tenant and calendar, created once and updated in
place, and the accounts' own schedules of before (on a real dev server: the time-skipping test
server has no schedules)."""

from __future__ import annotations

import pytest
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from tests.workflows.conftest import DEV_SERVER
from workflows.billing.worker import ensure_run_schedule, ensure_schedule, run_schedule_id, schedule_id

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_schedule_created_then_updated() -> None:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    try:
        sid = await ensure_run_schedule(env.client, "ten1", "monthly", 1, "Europe/Berlin", task_queue="tq")
        assert sid == run_schedule_id("ten1", "monthly", "Europe/Berlin")
        d = await env.client.get_schedule_handle(sid).describe()
        action = d.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "BillingRunWorkflow"
        assert {(t.minute, t.hour in (22, 23), t.day in (28, 29, 30, 31)) for t in d.info.next_action_times[:3]} \
            == {(5, True, True)}
        await ensure_run_schedule(env.client, "ten1", "monthly", 7, "Europe/Berlin", task_queue="tq")
        cal = (await env.client.get_schedule_handle(sid).describe()).schedule.spec.calendars[0]
        assert cal.day_of_month[0].start == 7
        # an account's own schedule, as before the runs
        sid = await ensure_schedule(env.client, "ten1", "acc1", "monthly", 1, "Europe/Berlin", task_queue="tq")
        assert sid == schedule_id("ten1", "acc1")
        d = await env.client.get_schedule_handle(sid).describe()
        cal = d.schedule.spec.calendars[0]
        assert d.schedule.spec.time_zone_name == "Europe/Berlin"
        assert [(r.start, r.end) for r in cal.day_of_month] == [(1, 1)] and cal.hour[0].start == 0
        action = d.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "BillingCycleWorkflow"
        # the next runs fall on local midnights + 5 min of the 1st, whatever the DST offset
        nxt = d.info.next_action_times[:3]
        assert all(t.astimezone().tzinfo is not None for t in nxt)
        assert {(t.minute, t.hour in (22, 23)) for t in nxt} == {(5, True)}
        # a quarterly account on the 5th: the same schedule id, updated
        await ensure_schedule(env.client, "ten1", "acc1", "quarterly", 5, "Europe/Lisbon", task_queue="tq")
        d = await env.client.get_schedule_handle(sid).describe()
        cal = d.schedule.spec.calendars[0]
        assert cal.day_of_month[0].start == 5 and (cal.month[0].start, cal.month[0].end, cal.month[0].step) == (1, 10, 3)
        assert d.schedule.spec.time_zone_name == "Europe/Lisbon"
    finally:
        await env.shutdown()
