"""``CollectionRunWorkflow``: one SEPA direct debit collection of one creditor account.

    gather items (proposed, pain.008 built and XSD-checked) ── empty ── end
        └─ awaiting approval ─┬─ approve (approver, not the starter) ── submit: rebuild from the
                              │                                          items still open, archive
                              └─ reject ── items released                the file, items submitted

Every database touch is an activity called by name (the sandbox never imports SQLAlchemy); each is
one transaction and idempotent (the run is found by the workflow id), so a retried or crashed run
never claims an item twice. Decisions arrive as Updates whose validators refuse a wrong role or
the person who started the run (four eyes) before anything reaches history.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.collections.types import (
        CollectionRunInput,
        CollectionRunResult,
        DecideInput,
        GatherInput,
        GatherOutput,
        RunDecision,
        RunStatus,
    )

__all__ = ["APPROVER_ROLES", "CollectionRunWorkflow"]

APPROVER_ROLES = ("approver",)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(seconds=30), maximum_attempts=0,
                     non_retryable_error_types=["creditor_account_not_found", "pain_invalid"])
_SHORT = timedelta(seconds=60)
# gathering and submitting a big run takes a while: a long start-to-close timeout, and heartbeats
# (every few seconds, see ``activities``) so that a dead worker's attempt is retried soon
_LONG = timedelta(minutes=15)
_HEARTBEAT = timedelta(seconds=10)


@workflow.defn
class CollectionRunWorkflow:
    def __init__(self) -> None:
        self._state = "gathering"
        self._run_id = ""
        self._started_by = ""
        self._decision: tuple[str, RunDecision] | None = None

    @workflow.run
    async def run(self, inp: CollectionRunInput) -> CollectionRunResult:
        self._started_by = inp.started_by
        # a scheduled run collects as of the day it starts (workflow time: the same on replay)
        as_of = inp.as_of or workflow.now().date().isoformat()
        g = await workflow.execute_activity(
            "collections.gather", GatherInput(inp.tenant_id, inp.creditor_account_id, workflow.info().workflow_id,
                                              as_of, inp.started_by),
            result_type=GatherOutput, start_to_close_timeout=_LONG, heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY)
        self._run_id = g.run_id
        if g.status != "awaiting_approval":
            self._state = g.status
            return CollectionRunResult(g.run_id, g.status, g.items, g.total)
        self._state = "awaiting_approval"
        await workflow.wait_condition(lambda: self._decision is not None)
        assert self._decision is not None
        kind, d = self._decision
        arg = DecideInput(inp.tenant_id, g.run_id, d.user_id, d.reason, workflow.now().isoformat())
        if kind == "reject":
            await workflow.execute_activity("collections.reject", arg, start_to_close_timeout=_SHORT,
                                            retry_policy=_RETRY)
            self._state = "rejected"
            return CollectionRunResult(g.run_id, "rejected", decided_by=d.user_id)
        self._state = "submitting"
        res: CollectionRunResult = await workflow.execute_activity(
            "collections.submit", arg, result_type=CollectionRunResult, start_to_close_timeout=_LONG,
            heartbeat_timeout=_HEARTBEAT, retry_policy=_RETRY)
        self._state = res.status
        return res

    def _require_waiting(self, role: str) -> None:
        # "gathering" is allowed here: a worker that replays the run (a new worker, an evicted
        # cache) applies the Update before the gathering activity's result, so the handler waits
        # for the state it decides on rather than the validator refusing what is about to be true
        if self._state not in ("gathering", "awaiting_approval") or self._decision is not None:
            raise ApplicationError(f"the collection run is not waiting for a decision (state: {self._state})",
                                   type="not_waiting")
        if role not in APPROVER_ROLES:
            raise ApplicationError(f"deciding a collection run needs the approver role, not '{role}'",
                                   type="forbidden")

    async def _decide(self, kind: str, d: RunDecision) -> str:
        await workflow.wait_condition(lambda: self._state != "gathering")
        if self._state != "awaiting_approval" or self._decision is not None:
            raise ApplicationError(f"the collection run is not waiting for a decision (state: {self._state})",
                                   type="not_waiting")
        self._decision = (kind, d)
        return "approved" if kind == "approve" else "rejected"

    @workflow.update
    async def approve(self, d: RunDecision) -> str:
        return await self._decide("approve", d)

    @approve.validator
    def _validate_approve(self, d: RunDecision) -> None:
        self._require_waiting(d.role)
        if d.user_id == self._started_by:
            raise ApplicationError("four eyes: the person who started the collection run cannot approve it",
                                   type="four_eyes")

    @workflow.update
    async def reject(self, d: RunDecision) -> str:
        return await self._decide("reject", d)

    @reject.validator
    def _validate_reject(self, d: RunDecision) -> None:
        self._require_waiting(d.role)
        if not d.reason.strip():
            raise ApplicationError("a rejection needs a reason", type="reason_required")

    @workflow.query
    def status(self) -> RunStatus:
        return RunStatus(self._state, self._run_id, self._started_by)
