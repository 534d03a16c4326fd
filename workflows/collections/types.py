"""The collection run's inputs and results (plain dataclasses: Temporal's JSON converter)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.approval_run import DecideInput, GatherInput, RunDecision, RunResult, RunStatus

CollectionRunResult = RunResult

__all__ = ["CollectionRunInput", "CollectionRunResult", "DecideInput", "GatherInput", "GatherOutput",
           "RunDecision", "RunStatus", "collection_workflow_id"]


def collection_workflow_id(tenant_id: str, creditor_account_id: str, key: str) -> str:
    """One run per tenant, creditor account and key (the day, or a caller's key): starting the same
    run again finds the first one."""
    return f"collection:{tenant_id}:{creditor_account_id}:{key}"


@dataclass
class CollectionRunInput:
    tenant_id: str
    creditor_account_id: str
    as_of: str  # ISO date: items due up to as_of + the creditor's lead time (empty: the day the run starts)
    started_by: str = "system"


@dataclass
class GatherOutput:
    run_id: str
    status: str  # awaiting_approval | empty | submitted | rejected (a run that already ended)
    items: int
    total: str
    currency: str
    started_by: str = ""
    # the first accounts left out (a result stays far below Temporal's payload limit however many
    # there are); ``skipped_count`` counts them all, the run's row lists them all
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
