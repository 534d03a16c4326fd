"""Payloads of the billing workflow, its updates and activities: one dataclass each, so fields can
be added with defaults without breaking running histories. Amounts travel as decimal strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASK_QUEUE = "evbill-billing"


def cycle_workflow_id(tenant_id: str, account_id: str, key: str) -> str:
    """The id of an account's ``BillingCycleWorkflow`` for the cut-off ``key``: one per account and cut-off."""
    return f"billing:{tenant_id}:{account_id}:{key}"


def run_workflow_id(tenant_id: str, key: str) -> str:
    """The id of a tenant's ``BillingRunWorkflow`` for the cut-off ``key``: one run per tenant and cut-off."""
    return f"billing-run:{tenant_id}:{key}"


def run_schedule_id(tenant_id: str, cycle: str, timezone: str) -> str:
    """The id of the Schedule that starts the tenant's ``BillingRunWorkflow`` at every cut-off of
    the accounts billed on ``cycle`` in ``timezone`` (one schedule per tenant and calendar)."""
    return f"billing-run-schedule:{tenant_id}:{cycle}:{timezone}"


@dataclass
class BillingCycleInput:
    tenant_id: str
    account_id: str
    # the cut-off moment (ISO, aware); None: the workflow's start time (what a Schedule fires at)
    as_of: str | None = None
    # an explicit period (ad-hoc cycles): Period.to_dict(); None: derived from the billing policy
    period: dict[str, str] | None = None
    cycle_key: str | None = None
    # overrides of the hold policy's waiting times (tests and operators)
    escalate_after_s: int | None = None
    auto_release_after_s: int | None = None
    max_escalations: int = 3


@dataclass
class BillingRunInput:
    """Month-end of many accounts in one workflow: batches of ``batch_size`` accounts assembled and
    finalized by activities, an account whose draft waits for a person handed to a
    ``BillingCycleWorkflow`` of its own (``cycle_workflow_id``)."""

    tenant_id: str
    # the cut-off moment (ISO, aware); None: the workflow's start time (what a Schedule fires at)
    as_of: str | None = None
    # these accounts only; None: every active account of the tenant whose cycle is ``cycle``
    account_ids: list[str] | None = None
    cycle: str = "monthly"
    batch_size: int = 100
    # passed on to the cycles of held accounts (as BillingCycleInput's)
    escalate_after_s: int | None = None
    auto_release_after_s: int | None = None
    max_escalations: int = 3
    # with ``account_ids`` None: only the accounts whose cut-offs fall in this zone (the billing
    # policy's zone, else the account's), as a run schedule of the tenant's calendar starts it;
    # "": every zone
    timezone: str = ""


@dataclass
class AccountPageInput:
    tenant_id: str
    cycle: str
    after: str
    limit: int
    timezone: str = ""  # "": accounts of every zone


@dataclass
class AccountPage:
    account_ids: list[str]
    last: str  # the last account id looked at ("" when there was none): the next page starts after it


@dataclass
class AssembleBatchInput:
    tenant_id: str
    account_ids: list[str]
    as_of: str
    now: str  # the run's workflow time: the documents' issue date


@dataclass
class BatchOutcome:
    """What a batch did: accounts finalized (now or by an earlier attempt) and handed over; those
    whose draft waits for a person or that failed go to a cycle workflow of their own."""

    finalized: int = 0
    empty: int = 0
    rejected: int = 0
    held: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # account_id, type, message
    dunning_workflows: list[str] = field(default_factory=list)


@dataclass
class BillingRunResult:
    accounts: int = 0
    finalized: int = 0
    empty: int = 0
    rejected: int = 0
    held: list[str] = field(default_factory=list)  # the cycle workflows started for held accounts
    failed: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ScheduleSyncInput:
    """Resync the tenant's schedules once ``at`` (ISO, aware) has come: the ruleset version
    ``version_id`` changes a billing policy from then on. ``task_queue``: the cycles' queue."""

    tenant_id: str
    at: str
    task_queue: str = TASK_QUEUE
    version_id: str = ""


@dataclass
class BillingCycleResult:
    invoice_id: str
    status: str  # finalized | rejected | empty
    number: str = ""
    kind: str = "invoice"
    gross: str = "0"
    decided_by: str = ""
    reason: str = ""


@dataclass
class AssembleInput:
    tenant_id: str
    account_id: str
    as_of: str
    workflow_id: str
    period: dict[str, str] | None = None
    cycle_key: str | None = None
    # finalize in the same activity when no hold rule fires (one activity less per invoice)
    finalize_if_clean: bool = False
    # the workflow's time at this step (ISO, aware): the draft is dated that day in the tenant's
    # zone, and a clean draft finalized here is issued that day; "" (histories from before): the
    # activity's clock
    now: str = ""


@dataclass
class DraftSummary:
    invoice_id: str
    cycle_key: str
    status: str  # draft | held | finalized | rejected | empty
    kind: str
    currency: str
    net: str
    tax: str
    gross: str
    lines: int
    sessions: int
    period: dict[str, str]
    reasons: list[dict[str, str]] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)
    approval_required: bool = True
    auto_release_after_s: int | None = None
    escalate_after_s: int | None = None
    number: str = ""
    finalized_now: bool = False  # finalized by this very call (finalize_if_clean), not earlier
    # a credit note finalized by this call: the open dunning cases' workflows of its customer and
    # currency, for the cycle to tell (empty in histories from before)
    dunning_workflows: list[str] = field(default_factory=list)


@dataclass
class OpenTaskInput:
    tenant_id: str
    invoice_id: str
    account_id: str
    workflow_id: str
    reasons: list[dict[str, str]]
    comparison: dict[str, Any]


@dataclass
class EscalateInput:
    tenant_id: str
    task_id: str
    level: int


@dataclass
class CloseTaskInput:
    tenant_id: str
    task_id: str
    invoice_id: str
    status: str  # approved | rejected | released
    user_id: str
    reason: str = ""
    role: str = ""


@dataclass
class PostingInput:
    tenant_id: str
    invoice_id: str
    posting_id: str
    description: str
    amount: str
    tax_rate: str
    author_id: str
    author_role: str = ""


@dataclass
class FinalizeInput:
    tenant_id: str
    invoice_id: str
    decided_by: str = ""
    # the workflow's time of the decision (ISO, aware): the issue date is that day in the tenant's
    # zone; "" (histories from before): the activity's clock
    now: str = ""


@dataclass
class FinalizeOutput:
    invoice_id: str
    number: str
    kind: str
    gross: str
    already: bool = False
    dunning_workflows: list[str] = field(default_factory=list)  # as DraftSummary's


# --- the hand-over: later issues (documents: issue 6, payment collection) fill these in --------
@dataclass
class RenderDocumentsInput:
    tenant_id: str
    invoice_id: str
    number: str
    formats: list[str] = field(default_factory=lambda: ["pdf", "facturx"])


@dataclass
class CollectPaymentInput:
    tenant_id: str
    invoice_id: str
    number: str
    gross: str
    kind: str = "invoice"


@dataclass
class HandOverResult:
    # documents: issued | failed | pending; payments: scheduled | awaiting_transfer | awaiting_payment |
    # nothing_due | failed
    status: str
    detail: str = ""
    # documents: the e-mail queued for the invoice, when this worker delivers e-mail (else empty:
    # the delivery stays pending for the sweep of a worker that does)
    delivery_id: str = ""


# --- updates (finance decisions) ---------------------------------------------------------------
@dataclass
class ApproveInput:
    user_id: str
    role: str
    note: str = ""


@dataclass
class RejectInput:
    user_id: str
    role: str
    reason: str


@dataclass
class RepriceInput:
    """Assemble a held draft again, after finance fixed what held it (a price published, a
    service item ended); nothing is posted by hand, so it needs no second pair of eyes."""

    user_id: str
    role: str


@dataclass
class AdjustInput:
    user_id: str
    role: str
    description: str
    amount: str  # net, may be negative
    tax_rate: str


@dataclass
class ReleaseHoldInput:
    user_id: str
    role: str
    hold_id: str = ""


@dataclass
class CycleStatus:
    state: str  # assembling | held | finalizing | finalized | rejected | empty
    invoice_id: str = ""
    task_id: str = ""
    reasons: list[dict[str, str]] = field(default_factory=list)
    adjusters: list[str] = field(default_factory=list)
    escalation_level: int = 0
    net: str = ""
    gross: str = ""
    number: str = ""
