"""A file run that a second person approves: the part the collection run (pain.008) and the payout
run (pain.001) share.

    gather (claimed, file built and XSD-checked) ── empty ── end
        └─ awaiting approval ─┬─ approve (approver; not the starter, not a fifth eye) ── submit
                              └─ reject (a reason) ── released

Every database touch is an activity called by name (``<prefix>.gather``, ``.reject``, ``.submit``);
each is one transaction and idempotent (the run is found by the workflow id), so a retried or
crashed run never claims anything twice. Decisions arrive as Updates whose validators refuse a wrong
role or the person who started the run (four eyes) before anything reaches history; a subclass may
name more people who cannot approve (``_excluded_approvers``). A subclass defines ``@workflow.run``
(Temporal wants it on the class itself) and calls ``_run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

__all__ = ["APPROVER_ROLES", "ApprovalRunWorkflow", "DecideInput", "GatherInput", "RunDecision", "RunResult",
           "RunStatus"]

APPROVER_ROLES = ("approver",)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=30), maximum_attempts=0,
                    non_retryable_error_types=["creditor_account_not_found", "pain_invalid"])
SHORT = timedelta(seconds=60)


@dataclass
class GatherInput:
    tenant_id: str
    creditor_account_id: str
    workflow_id: str
    as_of: str
    started_by: str


@dataclass
class RunDecision:
    user_id: str
    role: str
    reason: str = ""


@dataclass
class DecideInput:
    tenant_id: str
    run_id: str
    user_id: str
    reason: str
    now: str  # the file's creation time (workflow time, the same on replay)


@dataclass
class RunResult:
    run_id: str
    status: str  # submitted | rejected | empty
    items: int = 0
    total: str = "0"
    file_id: str = ""
    sha256: str = ""
    decided_by: str = ""


@dataclass
class RunStatus:
    state: str
    run_id: str
    started_by: str


class RunInput(Protocol):
    tenant_id: str
    creditor_account_id: str
    as_of: str
    started_by: str


class GatherResult(Protocol):
    run_id: str
    status: str
    items: int
    total: str


class ApprovalRunWorkflow:
    """Subclasses set the activities' prefix, the run's name in messages, the gather result's type
    and the activities' options."""

    PREFIX: ClassVar[str]
    NOUN: ClassVar[str]  # "collection run": in the refusals a person reads
    GATHER_OUTPUT: ClassVar[type[Any]]
    GATHER_OPTIONS: ClassVar[dict[str, Any]] = {"start_to_close_timeout": SHORT}
    SUBMIT_OPTIONS: ClassVar[dict[str, Any]] = {"start_to_close_timeout": SHORT}

    def __init__(self) -> None:
        self._state = "gathering"
        self._run_id = ""
        self._started_by = ""
        self._decision: tuple[str, RunDecision] | None = None

    def _gathered(self, g: Any) -> None:
        """What a subclass keeps of the gather result (the workflow's state for its validators)."""

    def _excluded_approvers(self) -> tuple[Sequence[str], str]:
        """Who else may not approve, and the refusal's words (nobody by default)."""
        return (), ""

    async def _run(self, inp: RunInput) -> RunResult:
        self._started_by = inp.started_by
        # a scheduled run works as of the day it starts (workflow time: the same on replay)
        as_of = inp.as_of or workflow.now().date().isoformat()
        g: GatherResult = await workflow.execute_activity(
            f"{self.PREFIX}.gather", GatherInput(inp.tenant_id, inp.creditor_account_id,
                                                 workflow.info().workflow_id, as_of, inp.started_by),
            result_type=self.GATHER_OUTPUT, retry_policy=RETRY, **self.GATHER_OPTIONS)
        self._run_id = g.run_id
        self._gathered(g)
        if g.status != "awaiting_approval":
            self._state = g.status
            return RunResult(g.run_id, g.status, g.items, g.total)
        self._state = "awaiting_approval"
        await workflow.wait_condition(lambda: self._decision is not None)
        assert self._decision is not None
        kind, d = self._decision
        arg = DecideInput(inp.tenant_id, g.run_id, d.user_id, d.reason, workflow.now().isoformat())
        if kind == "reject":
            await workflow.execute_activity(f"{self.PREFIX}.reject", arg, start_to_close_timeout=SHORT,
                                            retry_policy=RETRY)
            self._state = "rejected"
            return RunResult(g.run_id, "rejected", decided_by=d.user_id)
        self._state = "submitting"
        res: RunResult = await workflow.execute_activity(
            f"{self.PREFIX}.submit", arg, result_type=RunResult, retry_policy=RETRY, **self.SUBMIT_OPTIONS)
        self._state = res.status
        return res

    def _not_waiting(self) -> ApplicationError:
        return ApplicationError(f"the {self.NOUN} is not waiting for a decision (state: {self._state})",
                                type="not_waiting")

    def _require_waiting(self, role: str) -> None:
        # "gathering" is allowed here: a worker that replays the run (a new worker, an evicted
        # cache) applies the Update before the gathering activity's result, so the handler waits
        # for the state it decides on rather than the validator refusing what is about to be true
        if self._state not in ("gathering", "awaiting_approval") or self._decision is not None:
            raise self._not_waiting()
        if role not in APPROVER_ROLES:
            raise ApplicationError(f"deciding a {self.NOUN} needs the approver role, not '{role}'",
                                   type="forbidden")

    def _refuse_excluded(self, d: RunDecision) -> None:
        excluded, words = self._excluded_approvers()
        if d.user_id in excluded:
            raise ApplicationError(f"four eyes: {words}", type="four_eyes")

    async def _decide(self, kind: str, d: RunDecision) -> str:
        await workflow.wait_condition(lambda: self._state != "gathering")
        if self._state != "awaiting_approval" or self._decision is not None:
            raise self._not_waiting()
        if kind == "approve":
            # known only once gathered: a replayed Update was validated before the gather result
            self._refuse_excluded(d)
        self._decision = (kind, d)
        return "approved" if kind == "approve" else "rejected"

    @workflow.update
    async def approve(self, d: RunDecision) -> str:
        return await self._decide("approve", d)

    @approve.validator
    def _validate_approve(self, d: RunDecision) -> None:
        self._require_waiting(d.role)
        if d.user_id == self._started_by:
            raise ApplicationError(f"four eyes: the person who started the {self.NOUN} cannot approve it",
                                   type="four_eyes")
        self._refuse_excluded(d)

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
