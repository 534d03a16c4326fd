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

Decisions arrive as Updates whose validators refuse a wrong role or a fifth eye before anything
reaches history (the same pattern as ``CollectionRunWorkflow``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.payouts.types import (
        DecideInput,
        GatherInput,
        GatherOutput,
        PayoutDecision,
        PayoutRunInput,
        PayoutRunResult,
        PayoutRunStatus,
        PayoutSweepInput,
        ScheduledRun,
    )

__all__ = ["APPROVER_ROLES", "PayoutRunWorkflow", "PayoutSweepWorkflow"]

APPROVER_ROLES = ("approver",)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(seconds=30), maximum_attempts=0,
                     non_retryable_error_types=["creditor_account_not_found", "pain_invalid"])
_SHORT = timedelta(seconds=60)


@workflow.defn
class PayoutRunWorkflow:
    def __init__(self) -> None:
        self._state = "gathering"
        self._run_id = ""
        self._started_by = ""
        self._requested_by: list[str] = []
        self._decision: tuple[str, PayoutDecision] | None = None

    @workflow.run
    async def run(self, inp: PayoutRunInput) -> PayoutRunResult:
        self._started_by = inp.started_by
        as_of = inp.as_of or workflow.now().date().isoformat()
        g = await workflow.execute_activity(
            "payouts.gather", GatherInput(inp.tenant_id, inp.creditor_account_id, workflow.info().workflow_id,
                                          as_of, inp.started_by),
            result_type=GatherOutput, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        self._run_id = g.run_id
        self._requested_by = list(g.requested_by)
        if g.status != "awaiting_approval":
            self._state = g.status
            return PayoutRunResult(g.run_id, g.status, g.items, g.total)
        self._state = "awaiting_approval"
        await workflow.wait_condition(lambda: self._decision is not None)
        assert self._decision is not None
        kind, d = self._decision
        arg = DecideInput(inp.tenant_id, g.run_id, d.user_id, d.reason, workflow.now().isoformat())
        if kind == "reject":
            await workflow.execute_activity("payouts.reject", arg, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
            self._state = "rejected"
            return PayoutRunResult(g.run_id, "rejected", decided_by=d.user_id)
        self._state = "submitting"
        res: PayoutRunResult = await workflow.execute_activity(
            "payouts.submit", arg, result_type=PayoutRunResult, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        self._state = res.status
        return res

    def _require_waiting(self, role: str) -> None:
        # "gathering" is allowed: a worker replaying the run applies the Update before the
        # gathering activity's result (see CollectionRunWorkflow)
        if self._state not in ("gathering", "awaiting_approval") or self._decision is not None:
            raise ApplicationError(f"the payout run is not waiting for a decision (state: {self._state})",
                                   type="not_waiting")
        if role not in APPROVER_ROLES:
            raise ApplicationError(f"deciding a payout run needs the approver role, not '{role}'", type="forbidden")

    async def _decide(self, kind: str, d: PayoutDecision) -> str:
        await workflow.wait_condition(lambda: self._state != "gathering")
        if self._state != "awaiting_approval" or self._decision is not None:
            raise ApplicationError(f"the payout run is not waiting for a decision (state: {self._state})",
                                   type="not_waiting")
        if kind == "approve" and d.user_id in self._requested_by:
            raise ApplicationError("four eyes: a person who requested a payment in the run cannot approve it",
                                   type="four_eyes")
        self._decision = (kind, d)
        return "approved" if kind == "approve" else "rejected"

    @workflow.update
    async def approve(self, d: PayoutDecision) -> str:
        return await self._decide("approve", d)

    @approve.validator
    def _validate_approve(self, d: PayoutDecision) -> None:
        self._require_waiting(d.role)
        if d.user_id == self._started_by:
            raise ApplicationError("four eyes: the person who started the payout run cannot approve it",
                                   type="four_eyes")
        if d.user_id in self._requested_by:
            raise ApplicationError("four eyes: a person who requested a payment in the run cannot approve it",
                                   type="four_eyes")

    @workflow.update
    async def reject(self, d: PayoutDecision) -> str:
        return await self._decide("reject", d)

    @reject.validator
    def _validate_reject(self, d: PayoutDecision) -> None:
        self._require_waiting(d.role)
        if not d.reason.strip():
            raise ApplicationError("a rejection needs a reason", type="reason_required")

    @workflow.query
    def status(self) -> PayoutRunStatus:
        return PayoutRunStatus(self._state, self._run_id, self._started_by)


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
