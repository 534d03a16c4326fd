"""The dunning workflow's inputs and results (plain dataclasses: Temporal's JSON converter).

No ``from __future__ import annotations`` here: the converter reads each dataclass's field types
for every payload it decodes (``typing.get_type_hints``), and string annotations are compiled
again each time (103 -> 31 µs to decode a ``StepOutput``; a case's first wake-up decodes three).
"""

from dataclasses import dataclass, field

__all__ = ["CaseStatus", "CheckInput", "CloseInput", "DunningInput", "DunningResult", "StageDecision",
           "StageInput", "StageOutput", "StepOutput", "SweepInput", "dunning_workflow_id"]


def dunning_workflow_id(tenant_id: str, customer_id: str, currency: str) -> str:
    """One workflow per customer and currency at a time: starting it again while it runs finds the
    running one; after it ended (the case closed) the id may be used again for the next case."""
    return f"dunning:{tenant_id}:{customer_id}:{currency}"


@dataclass
class DunningInput:
    tenant_id: str
    customer_id: str
    currency: str
    case_id: str = ""  # set when the workflow continues as new with a case open
    # ISO date: the day the workflow's clock reads when it starts (empty: the workflow's own day).
    # Its days then run on from there with workflow time, timers included, shifted by whole days;
    # ``evbill demo`` runs its case in the demo's simulated month this way
    as_of: str = ""


@dataclass
class CheckInput:
    tenant_id: str
    customer_id: str
    currency: str
    workflow_id: str
    case_id: str
    today: str  # ISO date, the workflow's (the same on replay)
    # the workflow's moment (ISO, aware; as_of's shift applied): the activity takes the day in the
    # tenant's zone from it ("": histories from before, ``today`` is the UTC day)
    now: str = ""


@dataclass
class StepOutput:
    kind: str  # close | wait | paused | stage | done
    case_id: str = ""
    on: str = ""  # wait: the day to wake up
    stage: int = 0
    approval: bool = False
    overdue: str = "0"
    currency: str = ""
    reason: str = ""
    policy: str = ""
    ruleset_version_id: str = ""
    case_stage: int = 0  # the last stage the case reached (dunning.advance may have reached some)
    escalate_after_days: int = 0  # a stage needing approval: its task escalates when left open this long
    today: str = ""  # the day the activity decided on (the tenant's; "": the input's)
    wake_at: str = ""  # wait: the moment ``on`` begins in the tenant's zone (ISO, aware; "": UTC midnight)
    # the e-mails of the letters archived by this call, queued and kept from the delivery sweep for
    # a while: the workflow starts a DocumentDeliveryWorkflow for each (empty in older histories)
    deliveries: list[str] = field(default_factory=list)


@dataclass
class StageInput:
    tenant_id: str
    case_id: str
    stage: int
    today: str  # the day the stage became due (its letter's date)
    decided_by: str = "system"
    reason: str = ""


@dataclass
class StageOutput:
    stage: int
    status: str  # reached | awaiting_approval | refused
    charge_items: list[str] = field(default_factory=list)
    letter_id: str = ""
    duplicate: bool = False
    deliveries: list[str] = field(default_factory=list)  # as StepOutput's


@dataclass
class CloseInput:
    tenant_id: str
    case_id: str
    today: str
    reason: str


@dataclass
class StageDecision:
    user_id: str
    role: str
    reason: str = ""


@dataclass
class CaseStatus:
    state: str  # starting | waiting | paused | awaiting_approval | reaching | done | closed
    case_id: str
    stage: int
    next_on: str
    awaiting_stage: int
    reason: str


@dataclass
class DunningResult:
    case_id: str
    status: str  # closed | no_case
    stage: int
    reason: str
    released: list[str] = field(default_factory=list)


@dataclass
class SweepInput:
    as_of: str = ""  # ISO date; empty: the workflow's day
    tenant_id: str = ""  # empty: every tenant
    task_queue: str = ""  # where the started workflows run (empty: the sweep's own queue)
    after: list[str] = field(default_factory=list)  # the last pair a previous page started (continue-as-new)
    # pairs read per page (one activity starts them side by side, page after page for up to two
    # minutes; then the sweep continues as new, so the history stays small); each page reads every
    # overdue pair again: 500 cost the sweep's worker ~0.5 ms of CPU per started case at 20,000
    # (benchmarks/dunning.py), 2,000 a quarter
    page: int = 2000
    started: int = 0  # started by the pages before this one
