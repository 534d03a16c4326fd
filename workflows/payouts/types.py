"""The payout run's inputs and results (plain dataclasses: Temporal's JSON converter)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.approval_run import DecideInput, GatherInput, RunDecision, RunResult, RunStatus

PayoutDecision = RunDecision
PayoutRunResult = RunResult
PayoutRunStatus = RunStatus

__all__ = ["DecideInput", "GatherInput", "GatherOutput", "PayoutDecision", "PayoutRunInput", "PayoutRunResult",
           "PayoutRunStatus", "PayoutSweepInput", "ScheduledRun", "payout_workflow_id",
           "scheduled_payout_key"]


def payout_workflow_id(tenant_id: str, creditor_account_id: str, key: str) -> str:
    """One run per tenant, paying account and key (the day, or a caller's key): starting the same
    run again finds the first one."""
    return f"payout:{tenant_id}:{creditor_account_id}:{key}"


@dataclass
class PayoutRunInput:
    tenant_id: str
    creditor_account_id: str  # the tenant's account the transfers leave from
    as_of: str  # ISO date (empty: the day the run starts)
    started_by: str = "system"


@dataclass
class GatherOutput:
    run_id: str
    status: str  # awaiting_approval | empty | submitted | rejected (a run that already ended)
    items: int
    total: str
    currency: str
    started_by: str = ""
    requested_by: list[str] = field(default_factory=list)


def scheduled_payout_key(month: str) -> str:
    """The key of the schedule's run of ``month`` (YYYY-MM): one per account and month."""
    return f"monthly-{month}"


@dataclass
class PayoutSweepInput:
    """One round of the monthly payout schedule: ``at`` (ISO, UTC) is the workflow's time, set by
    the workflow when empty; ``task_queue`` where the runs go."""

    at: str = ""
    task_queue: str = ""


@dataclass
class ScheduledRun:
    workflow_id: str
    tenant_id: str
    creditor_account_id: str
    as_of: str
