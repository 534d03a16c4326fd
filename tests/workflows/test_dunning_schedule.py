"""The dunning sweep's schedule: created once and updated in place (on a real dev server: the
time-skipping test server has no schedules); its interval from EVBILL_DUNNING_SWEEP_SECONDS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from tests.workflows.conftest import DEV_SERVER
from workflows.dunning.schedules import (
    DUNNING_SWEEP_SCHEDULE_ID,
    dunning_sweep_interval,
    ensure_dunning_sweep_schedule,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_dunning_sweep_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVBILL_DUNNING_SWEEP_SECONDS", "900")
    assert dunning_sweep_interval() == timedelta(minutes=15)
    monkeypatch.setenv("EVBILL_DUNNING_SWEEP_SECONDS", "5")
    with pytest.raises(ValueError):
        dunning_sweep_interval()
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    try:
        sid = await ensure_dunning_sweep_schedule(env.client, "tq", timedelta(hours=1))
        assert sid == DUNNING_SWEEP_SCHEDULE_ID
        d = await env.client.get_schedule_handle(sid).describe()
        action = d.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "DunningSweepWorkflow"
        assert d.schedule.spec.intervals[0].every == timedelta(hours=1)
        await ensure_dunning_sweep_schedule(env.client, "tq", timedelta(minutes=30))
        d = await env.client.get_schedule_handle(sid).describe()
        assert d.schedule.spec.intervals[0].every == timedelta(minutes=30)
    finally:
        await env.shutdown()
