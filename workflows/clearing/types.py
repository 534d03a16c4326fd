"""The clearing workflow's inputs and results (plain dataclasses: Temporal's JSON converter)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BuildInput", "BuildOutput", "ClearingInput", "ClearingResult", "ClearingStatus", "DisputeRecord",
           "DisputeRequest", "InvoiceRequest", "ResolveRecord", "ResolveRequest", "SendInput", "clearing_workflow_id"]

# who may dispute a CDR besides the partner itself (its partner API key), and who resolves
DISPUTE_ROLES = ("partner", "admin", "operator", "approver")
RESOLVE_ROLES = ("admin", "approver")


def clearing_workflow_id(tenant_id: str, partner_id: str, month: str) -> str:
    """One clearing per tenant, eMSP partner and month: starting it again finds the first."""
    return f"clearing:{tenant_id}:{partner_id}:{month}"


@dataclass
class ClearingInput:
    tenant_id: str
    partner_id: str
    month: str  # YYYY-MM, in the tenant's zone
    started_by: str = "system"
    window_days: int = 7


@dataclass
class BuildInput:
    tenant_id: str
    partner_id: str
    month: str
    workflow_id: str
    started_by: str


@dataclass
class BuildOutput:
    statement_id: str
    status: str
    cdrs: int
    net: str
    currency: str


@dataclass
class SendInput:
    tenant_id: str
    statement_id: str
    sent_at: str  # workflow time, ISO
    window_ends_at: str


@dataclass
class DisputeRequest:
    user_id: str
    role: str
    partner_id: str  # the actor's partner ("" for finance)
    cdr_id: str
    reason: str
    proposed: str  # net, decimal string


@dataclass
class DisputeRecord:
    tenant_id: str
    statement_id: str
    request: DisputeRequest
    raised_at: str


@dataclass
class ResolveRequest:
    user_id: str
    role: str
    dispute_id: str
    resolution: str  # accept | keep | adjust
    amount: str = ""  # adjust: the net
    note: str = ""


@dataclass
class ResolveRecord:
    tenant_id: str
    statement_id: str
    request: ResolveRequest
    resolved_at: str


@dataclass
class InvoiceRequest:
    tenant_id: str
    statement_id: str
    issue_date: str  # workflow day, ISO


@dataclass
class ClearingResult:
    statement_id: str
    status: str  # invoiced | empty
    invoice_number: str = ""
    net: str = "0"
    gross: str = "0"
    disputes: int = 0


@dataclass
class ClearingStatus:
    state: str  # building | in_review | resolving | invoicing | invoiced | empty
    statement_id: str
    window_ends_at: str
    open_disputes: list[str]
