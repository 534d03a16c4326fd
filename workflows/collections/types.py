"""The collection run's inputs and results (plain dataclasses: Temporal's JSON converter)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
class GatherInput:
    tenant_id: str
    creditor_account_id: str
    workflow_id: str
    as_of: str
    started_by: str


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
class CollectionRunResult:
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
