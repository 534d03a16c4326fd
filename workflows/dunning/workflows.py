"""``DunningWorkflow``: one customer's overdue items in one currency, taken through the policy's stages.

    check (activity: re-read the items, decide with runtime.dunning) ─┬─ close: nothing overdue at or
        ▲                                                              │  above the minimum: the case
        │                                                              │  closes, blocks are released
        ├── wait: a durable timer until the next stage's day ──────────┤
        ├── paused (an item disputed) / done (last stage, or refused) ─┤  wake on a signal or daily
        └── stage: approval? ─ awaiting_approval ─ approve ─ reach ─────┘  (fees, interest, letter:
                                               └─ reject ── refused        once per case and stage)

Every database touch is an activity called by name; each is one transaction and idempotent (a stage
is reached once per case, whatever retries or replays), so a worker killed at a stage boundary
never makes a second fee or letter. The signal ``changed`` (a payment matched, a credit note, a
dispute raised or resolved) makes the workflow re-read at once instead of at its next wake-up.
The case keeps the ruleset version in force when it started.

The workflow's day is ``workflow.now()``'s in the tenant's zone (the activity takes it and says so;
recorded histories from before took the UTC day), or, when the input names ``as_of``, that day at
the start and the UTC days after it as workflow time passes (a shift of whole days: ``evbill demo``
opens its case in the simulated month, on the embedded server's real clock).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.documents.types import DeliverDocumentInput, delivery_workflow_id
    from workflows.dunning.types import (
        CaseStatus,
        CheckInput,
        CloseInput,
        DunningInput,
        DunningResult,
        StageDecision,
        StageInput,
        StageOutput,
        StepOutput,
        SweepInput,
    )

__all__ = ["APPROVER_ROLES", "RECHECK", "DunningSweepWorkflow", "DunningWorkflow"]

APPROVER_ROLES = ("approver",)
# how often a paused or finished case re-reads its items without a signal
RECHECK = timedelta(days=1)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(seconds=60), maximum_attempts=0,
                     non_retryable_error_types=["ruleset_invalid", "stage_refused"])
# an activity of a killed worker is retried after this: one case's reads and writes and one letter
_SHORT = timedelta(seconds=45)
# a long case continues as new before its history grows large
_MAX_HISTORY = 2000


@workflow.defn
class DunningWorkflow:
    def __init__(self) -> None:
        self._state = "starting"
        self._case_id = ""
        self._stage = 0
        self._next_on = ""
        self._awaiting = 0
        self._reason = ""
        self._changed = False
        self._decision: tuple[str, StageDecision] | None = None
        self._escalate_at: dict[str, datetime] = {}  # "case:stage" -> when its approval task escalates
        self._escalated: set[str] = set()
        self._shift = timedelta(0)  # DunningInput.as_of: the workflow's days run this far from workflow.now()

    def _today(self) -> date:
        return (workflow.now() + self._shift).date()

    @workflow.run
    async def run(self, inp: DunningInput) -> DunningResult:
        wid = workflow.info().workflow_id
        self._case_id = inp.case_id
        if inp.as_of:
            self._shift = timedelta(days=(date.fromisoformat(inp.as_of) - workflow.now().date()).days)
        while True:
            if workflow.info().get_current_history_length() > _MAX_HISTORY:
                workflow.continue_as_new(DunningInput(inp.tenant_id, inp.customer_id, inp.currency, self._case_id,
                                                      self._today().isoformat() if inp.as_of else ""))
            today = self._today().isoformat()
            self._changed = False
            # the activity takes the tenant's day of this moment (and says which day it took); a case
            # on its own clock (as_of) keeps the days it was given
            check = CheckInput(inp.tenant_id, inp.customer_id, inp.currency, wid, self._case_id, today,
                               "" if inp.as_of else workflow.now().isoformat())
            # patch "wake": a new case records one marker for what "advance" and "advance-local"
            # recorded two of (the local dunning.advance below); histories from before have no
            # "wake" marker, so it is asked first and they replay on the branch they took (the SDK
            # keeps a patch's first answer for the whole run)
            advance: Any = None
            if workflow.patched("wake"):
                advance = workflow.execute_local_activity
            elif workflow.patched("advance"):
                # one activity per wake-up: it reaches the stages due that need no approval itself
                # (each once, letters included) and answers what comes next
                # patch "advance-local": as a local activity (recorded as a marker, no activity task
                # and no second workflow task per wake-up: a third of the server's work per case)
                advance = workflow.execute_local_activity if workflow.patched("advance-local") \
                    else workflow.execute_activity
            if advance is not None:
                step: StepOutput = await advance(
                    "dunning.advance", check, result_type=StepOutput, start_to_close_timeout=_SHORT,
                    retry_policy=_RETRY)
                self._stage = max(self._stage, step.case_stage)
            else:
                step = await workflow.execute_activity(
                    "dunning.check", check, result_type=StepOutput, start_to_close_timeout=_SHORT,
                    retry_policy=_RETRY)
            self._case_id = step.case_id or self._case_id
            self._reason = step.reason
            await self._deliver(inp.tenant_id, step.deliveries)
            today = step.today or today  # histories from before: the UTC day
            if step.kind == "close":
                released: list[str] = []
                if self._case_id:
                    released = await workflow.execute_activity(
                        "dunning.close", CloseInput(inp.tenant_id, self._case_id, today, step.reason or "paid"),
                        result_type=list[str], start_to_close_timeout=_SHORT, retry_policy=_RETRY)
                self._state = "closed"
                return DunningResult(self._case_id, "closed" if self._case_id else "no_case", self._stage,
                                     step.reason, released)
            if step.kind == "stage":
                await self._reach(inp, step, today)
                continue
            if step.kind == "wait":
                self._state, self._next_on = "waiting", step.on
                await self._sleep_until(step.on, step.wake_at)
                continue
            # paused (disputed) or done (every stage reached, or escalation refused): wait for news
            self._state, self._next_on = step.kind, ""
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=RECHECK)
            except TimeoutError:
                pass

    async def _reach(self, inp: DunningInput, step: StepOutput, today: str) -> None:
        arg = StageInput(inp.tenant_id, self._case_id, step.stage, today)
        if step.approval:
            out: StageOutput = await workflow.execute_activity(
                "dunning.request_approval", arg, result_type=StageOutput, start_to_close_timeout=_SHORT,
                retry_policy=_RETRY)
            if out.status == "awaiting_approval":
                self._state, self._awaiting = "awaiting_approval", step.stage
                # a payment while the task waits is news too: re-read, the task stays open if still due
                if step.escalate_after_days and workflow.patched("escalate-approval"):
                    await self._wait_or_escalate(arg, step.escalate_after_days)
                else:
                    await workflow.wait_condition(lambda: self._decision is not None or self._changed)
                if self._decision is None:
                    self._state = "waiting"
                    return
                kind, d = self._decision
                self._decision, self._awaiting = None, 0
                arg = StageInput(inp.tenant_id, self._case_id, step.stage, today, d.user_id, d.reason)
                if kind == "reject":
                    await workflow.execute_activity("dunning.refuse", arg, start_to_close_timeout=_SHORT,
                                                    retry_policy=_RETRY)
                    return
            elif out.status == "refused":
                return
        self._state = "reaching"
        res: StageOutput = await workflow.execute_activity(
            "dunning.reach", arg, result_type=StageOutput, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        self._stage = res.stage
        await self._deliver(inp.tenant_id, res.deliveries)

    async def _deliver(self, tenant_id: str, deliveries: list[str]) -> None:
        """The letters just archived leave by e-mail in workflows of their own (abandoned children:
        this case does not wait for the mail server), instead of at the delivery sweep's next round,
        which stays the fallback. Histories from before name no deliveries (the activities' results
        had no such field), so the patch is asked only when there are some."""
        if not deliveries or not workflow.patched("letter-delivery"):
            return
        for delivery_id in deliveries:
            try:
                await workflow.start_child_workflow(
                    "DocumentDeliveryWorkflow", DeliverDocumentInput(tenant_id, delivery_id),
                    id=delivery_workflow_id(tenant_id, delivery_id),
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON)
            except WorkflowAlreadyStartedError:
                pass  # this letter is already on its way

    async def _wait_or_escalate(self, arg: StageInput, days: int) -> None:
        """Wait for a decision or news; the task left open ``days`` (counted from when this workflow
        first waited for the stage) is escalated once, then the wait goes on without a limit."""
        key = f"{arg.case_id}:{arg.stage}"
        if key not in self._escalated:
            deadline = self._escalate_at.setdefault(key, workflow.now() + timedelta(days=days))
            left = deadline - workflow.now()
            if left > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self._decision is not None or self._changed, timeout=left)
                    return
                except TimeoutError:
                    pass
            await workflow.execute_activity("dunning.escalate", arg, result_type=bool, start_to_close_timeout=_SHORT,
                                            retry_policy=_RETRY)
            self._escalated.add(key)
        await workflow.wait_condition(lambda: self._decision is not None or self._changed)

    async def _sleep_until(self, day: str, wake_at: str = "") -> None:
        # the day begins in the tenant's zone (``wake_at``, from the activity), else at UTC midnight
        start = datetime.fromisoformat(wake_at) if wake_at else \
            datetime.combine(datetime.fromisoformat(day).date(), time(0, 0), tzinfo=UTC)
        wake = start - self._shift
        delay = wake - workflow.now()
        if delay <= timedelta(0):
            return
        try:
            await workflow.wait_condition(lambda: self._changed, timeout=delay)
        except TimeoutError:
            pass

    @workflow.signal
    def changed(self, reason: str) -> None:
        """Something about the customer's items changed (payment, credit note, dispute): re-read now."""
        self._changed = True

    def _require_waiting(self, d: StageDecision) -> None:
        if self._state != "awaiting_approval" or self._decision is not None:
            raise ApplicationError(f"the dunning case is not waiting for a decision (state: {self._state})",
                                   type="not_waiting")
        if d.role not in APPROVER_ROLES:
            raise ApplicationError(f"deciding a dunning stage needs the approver role, not '{d.role}'",
                                   type="forbidden")

    async def _decide(self, kind: str, d: StageDecision) -> str:
        self._decision = (kind, d)
        stage = self._awaiting
        await workflow.wait_condition(lambda: self._decision is None)
        return f"stage {stage} {'approved' if kind == 'approve' else 'rejected'}"

    @workflow.update
    async def approve(self, d: StageDecision) -> str:
        return await self._decide("approve", d)

    @approve.validator
    def _validate_approve(self, d: StageDecision) -> None:
        self._require_waiting(d)

    @workflow.update
    async def reject(self, d: StageDecision) -> str:
        return await self._decide("reject", d)

    @reject.validator
    def _validate_reject(self, d: StageDecision) -> None:
        self._require_waiting(d)
        if not d.reason.strip():
            raise ApplicationError("a rejection needs a reason", type="reason_required")

    @workflow.query
    def status(self) -> CaseStatus:
        return CaseStatus(self._state, self._case_id, self._stage, self._next_on, self._awaiting, self._reason)


@workflow.defn
class DunningSweepWorkflow:
    """One round: start a ``DunningWorkflow`` for every customer and currency with an overdue item
    and no open case, a page at a time (continuing as new after a full page). Started by a
    Temporal Schedule; starting a workflow that runs already is refused by its id, so a round
    started twice starts nothing twice."""

    @workflow.run
    async def run(self, inp: SweepInput) -> int:
        as_of = inp.as_of or workflow.now().date().isoformat()
        queue = inp.task_queue or workflow.info().task_queue
        # the activity starts the page's workflows with the worker's client, side by side: as child
        # workflows of this one they started a few per second (each start is recorded in its history)
        started, last = await workflow.execute_activity(
            "dunning.start_pending", SweepInput(as_of, inp.tenant_id, queue, inp.after, inp.page),
            result_type=list, start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(seconds=30),
            retry_policy=_RETRY)
        total = inp.started + int(started)
        if last:
            workflow.continue_as_new(SweepInput(as_of, inp.tenant_id, queue, list(last), inp.page, total))
        return total
