"""``PayoutRunWorkflow``: one SEPA credit transfer run (pain.001.001.09) of one of the tenant's
accounts. It pays refunds now and, with issue 15, host credits and other payables: whatever is in
``store.payables`` as ``requested`` in the account's currency.

    gather payables (claimed, pain.001 built and XSD-checked) ── empty ── end
        └─ awaiting approval ─┬─ approve (approver; not the starter, not anyone who requested a
                              │   payable in it) ── submit: file archived, payables submitted
                              └─ reject ── payables requested again

Every database touch is an activity called by name; each is one transaction and idempotent (the
run is found by the workflow id), so a retried or crashed run never puts a payable into two files.
``PayoutSweepWorkflow`` is one round of the monthly schedule (a Temporal Schedule, see
``workflows.payouts.schedules``): a ``PayoutRunWorkflow`` per tenant and account whose payout day
(``PUT /payouts/schedule``) has come this month and that has requested payables, started by the
system, id ``payout:<tenant>:<account>:monthly-<YYYY-MM>`` (once per month; approved as any run).

The approval run itself (decisions as Updates whose validators refuse a wrong role or a fifth eye
before anything reaches history) is ``workflows.approval_run``, shared with ``CollectionRunWorkflow``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.approval_run import APPROVER_ROLES, ApprovalRunWorkflow
    from workflows.payouts.types import (
        GatherOutput,
        PayoutRunInput,
        PayoutRunResult,
        PayoutSweepInput,
        ScheduledRun,
    )

__all__ = ["APPROVER_ROLES", "PayoutRunWorkflow", "PayoutSweepWorkflow"]


@workflow.defn
class PayoutRunWorkflow(ApprovalRunWorkflow):
    PREFIX = "payouts"
    NOUN = "payout run"
    GATHER_OUTPUT = GatherOutput

    def __init__(self) -> None:
        super().__init__()
        self._requested_by: list[str] = []

    def _gathered(self, g: GatherOutput) -> None:
        self._requested_by = list(g.requested_by)

    def _excluded_approvers(self) -> tuple[Sequence[str], str]:
        return self._requested_by, "a person who requested a payment in the run cannot approve it"

    @workflow.run
    async def run(self, inp: PayoutRunInput) -> PayoutRunResult:
        return await self._run(inp)


@workflow.defn
class PayoutSweepWorkflow:
    @workflow.run
    async def run(self, inp: PayoutSweepInput) -> list[str]:
        at = inp.at or workflow.now().isoformat()
        due: list[ScheduledRun] = await workflow.execute_activity(
            "payouts.due_runs", PayoutSweepInput(at, inp.task_queue), result_type=list[ScheduledRun],
            start_to_close_timeout=timedelta(minutes=5), retry_policy=RetryPolicy(maximum_attempts=5))
        started = []
        for r in due:
            try:
                await workflow.start_child_workflow(
                    PayoutRunWorkflow.run, PayoutRunInput(r.tenant_id, r.creditor_account_id, r.as_of, "system"),
                    id=r.workflow_id, task_queue=inp.task_queue or workflow.info().task_queue,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON)
                started.append(r.workflow_id)
            except WorkflowAlreadyStartedError:
                pass  # this month's run of the account is there already (waiting for approval, or done)
        return started
