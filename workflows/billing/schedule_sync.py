"""``ScheduleSyncWorkflow``: resync a tenant's billing Schedules when a ruleset version that changes
a billing policy (cycle, cut-off day, time zone) takes effect.

The API starts it when such a version is published with a future effective date (one workflow
per version, ``schedule_sync_workflow_id``); it waits durably until that moment and then runs the
``billing.sync_schedules`` activity (``workflows.billing.schedules.ScheduleActivities``), which
brings every account's schedule to the policy then in force. Orchestration only, like the cycle:
the wait is a timer, the sync an activity that is retried until Temporal and the database answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.billing.types import ScheduleSyncInput

__all__ = ["ScheduleSyncWorkflow", "schedule_sync_workflow_id"]


def schedule_sync_workflow_id(tenant_id: str, version_id: str) -> str:
    return f"billing-schedule-sync:{tenant_id}:{version_id}"


@workflow.defn
class ScheduleSyncWorkflow:
    @workflow.run
    async def run(self, inp: ScheduleSyncInput) -> dict[str, int]:
        wait = datetime.fromisoformat(inp.at) - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)
        return await workflow.execute_activity(
            "billing.sync_schedules", inp, result_type=dict[str, int], start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)))
