"""The sweeps' schedules (dunning, posting batches, monthly payouts): created once and updated in
place (on a real dev server: the time-skipping test server has no schedules); their intervals from
EVBILL_DUNNING_SWEEP_SECONDS, EVBILL_ACCOUNTING_BATCH_SWEEP_SECONDS and EVBILL_PAYOUT_SWEEP_SECONDS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from tests.workflows.conftest import DEV_SERVER
from workflows.accounting import schedules as batches
from workflows.dunning import schedules as dunning
from workflows.payouts import schedules as payouts

pytestmark = pytest.mark.asyncio(loop_scope="session")

SWEEPS = [
    ("EVBILL_DUNNING_SWEEP_SECONDS", dunning.dunning_sweep_interval, dunning.ensure_dunning_sweep_schedule,
     dunning.DUNNING_SWEEP_SCHEDULE_ID, "DunningSweepWorkflow"),
    ("EVBILL_ACCOUNTING_BATCH_SWEEP_SECONDS", batches.batch_sweep_interval, batches.ensure_batch_sweep_schedule,
     batches.BATCH_SWEEP_SCHEDULE_ID, "BatchSweepWorkflow"),
    ("EVBILL_PAYOUT_SWEEP_SECONDS", payouts.payout_sweep_interval, payouts.ensure_payout_sweep_schedule,
     payouts.PAYOUT_SWEEP_SCHEDULE_ID, "PayoutSweepWorkflow"),
]


@pytest.mark.parametrize(("variable", "interval", "ensure", "schedule_id", "workflow"), SWEEPS,
                         ids=["dunning", "batches", "payouts"])
async def test_sweep_schedule(monkeypatch: pytest.MonkeyPatch, variable: str, interval: Any, ensure: Any,
                              schedule_id: str, workflow: str) -> None:
    monkeypatch.setenv(variable, "900")
    assert interval() == timedelta(minutes=15)
    monkeypatch.setenv(variable, "5")
    with pytest.raises(ValueError):
        interval()
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    try:
        sid = await ensure(env.client, "tq", timedelta(hours=1))
        assert sid == schedule_id
        d = await env.client.get_schedule_handle(sid).describe()
        action = d.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == workflow
        assert d.schedule.spec.intervals[0].every == timedelta(hours=1)
        await ensure(env.client, "tq", timedelta(minutes=30))
        d = await env.client.get_schedule_handle(sid).describe()
        assert d.schedule.spec.intervals[0].every == timedelta(minutes=30)
    finally:
        await env.shutdown()
