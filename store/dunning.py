"""Dunning in the database: cases, the stages they reached, letters, disputes and blocks.

A case is one customer's overdue items in one currency (``dunning_case``); while it is not closed
it holds the pair's ``open_key`` (unique per tenant), so a customer never has two open cases in a
currency. A stage is reached once per case (``dunning_stage``, unique by case and stage): the
fees, interest and flat fees it charges become open items of their own (``receivable_item`` kinds
``dunning_fee``, ``interest``, ``flat_fee``), each booked under an event key made of case, stage
and what it is, and the stage row is written in the same transaction. A retried activity, a
crashed worker or a replayed workflow therefore finds the stage reached and gets it back: never a
second fee or a second letter (``dunning_letter``, unique by case and stage, append-only).

Disputes (``receivable_dispute``) flag an item while they are open; a case whose policy pauses on
dispute waits. Blocks (``dunning_block``) are the escalation actions a stage took
(``block_tokens``, ``suspend_contract``, ``hand_over``); closing the case releases the first two
(a hand-over stays: the agency is told separately). The OCPP gateway asks ``customer_block``.

The rules (what is due, what it costs) are ``runtime.dunning``'s; this module stores them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    insert,
    select,
    update,
)

from runtime.dunning import CaseState, FeeCharge, InterestLine, OverdueItem, StagePlan
from runtime.money import ZERO
from store import receivables as R
from store.models import Contract, Customer, RulesetVersion, metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "BLOCKING_ACTIONS",
    "CaseRow",
    "blocks_of",
    "case",
    "case_item_states",
    "case_items",
    "case_state",
    "cases",
    "cases_with_item",
    "close_case",
    "customer_block",
    "customer_blocks",
    "customer_facts",
    "dispute_item",
    "dunning_block",
    "dunning_case",
    "dunning_handover",
    "dunning_letter",
    "dunning_stage",
    "escalate_stage",
    "handover",
    "handover_doc",
    "handovers_of",
    "hold_case",
    "item_account",
    "letter",
    "letter_doc",
    "letter_recipient",
    "letters_of",
    "open_case",
    "open_case_made",
    "open_case_workflows",
    "open_cases_paid_since",
    "open_disputes",
    "overdue_pairs",
    "reach_stage",
    "receivable_dispute",
    "refuse_stage",
    "request_approval",
    "resolve_dispute",
    "ruleset_source",
    "save_handover",
    "save_letter",
    "set_status",
    "stage_planned_on",
    "stage_row",
    "stages_of",
]

# actions undone when the customer has paid (a hand-over to an agency is not taken back here)
BLOCKING_ACTIONS = ("block_tokens", "suspend_contract")

dunning_case = Table(
    "dunning_case", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("customer_id", String(40), nullable=False),
    Column("account_id", String(40), nullable=False),  # fees and interest are booked to this account
    Column("currency", String(3), nullable=False),
    Column("open_key", String(100), nullable=True),  # customer:currency while not closed
    Column("workflow_id", String(200), nullable=False),
    Column("ruleset_version_id", String(40), nullable=True),  # the version in force when the case started
    Column("policy", String(100), nullable=False),
    Column("debtor", String(20), nullable=False),  # consumers | businesses
    Column("status", String(30), nullable=False),  # waiting | paused | awaiting_approval | done | closed
    Column("stage", Integer(), nullable=False),  # the last stage reached (0: none)
    Column("stage_on", Date(), nullable=True),
    Column("next_stage", Integer(), nullable=True),
    Column("next_on", Date(), nullable=True),
    Column("reason", String(200), nullable=False),
    Column("refused", Boolean(), nullable=False),
    Column("interest_until", JSON(), nullable=False),  # {item id: ISO date}
    Column("flat_fee_items", JSON(), nullable=False),  # invoice items charged the flat fee
    Column("started_on", Date(), nullable=False),
    Column("closed_on", Date(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("hold_reason", String(1000), nullable=True),  # paused by hand (the API) while set
    Column("held_by", String(40), nullable=True),
    UniqueConstraint("tenant_id", "open_key", name="uq_dunning_case_open"),
    Index("ix_dunning_case_customer", "tenant_id", "customer_id"),
    Index("ix_dunning_case_status", "tenant_id", "status"),
)

dunning_stage = Table(
    "dunning_stage", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("case_id", String(40), ForeignKey("dunning_case.id"), nullable=False),
    Column("stage", Integer(), nullable=False),
    Column("status", String(30), nullable=False),  # awaiting_approval | reached | refused
    Column("letter", String(20), nullable=False),  # reminder | dunning
    Column("planned_on", Date(), nullable=False),
    Column("reached_on", Date(), nullable=True),
    Column("pay_by", Date(), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("overdue", ExactDecimal(), nullable=False),
    Column("charged", ExactDecimal(), nullable=False),
    Column("total", ExactDecimal(), nullable=False),
    Column("detail", JSON(), nullable=False),  # items listed, fees, interest lines, actions
    Column("charge_items", JSON(), nullable=False),  # receivable items it opened
    Column("decided_by", String(40), nullable=False),
    Column("decision_reason", String(1000), nullable=False),
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # an approval task left open longer than the policy's ``escalate after``: given to this role
    Column("escalated_at", UTCDateTime(), nullable=True),
    Column("assigned_role", String(20), nullable=True),
    UniqueConstraint("case_id", "stage", name="uq_dunning_stage_case"),
)

dunning_letter = Table(
    "dunning_letter", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("case_id", String(40), ForeignKey("dunning_case.id"), nullable=False),
    Column("stage", Integer(), nullable=False),
    Column("language", String(10), nullable=False),
    Column("name", String(200), nullable=False),
    Column("content", LargeBinary(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("case_id", "stage", name="uq_dunning_letter_stage"),
)

receivable_dispute = Table(
    "receivable_dispute", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("item_id", String(40), ForeignKey("receivable_item.id"), nullable=False),
    Column("open_key", String(40), nullable=True),  # the item id while the dispute is open
    Column("reason", String(1000), nullable=False),
    Column("opened_by", String(40), nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("resolved_by", String(40), nullable=True),
    Column("resolution", String(1000), nullable=True),
    Column("resolved_at", UTCDateTime(), nullable=True),
    UniqueConstraint("tenant_id", "open_key", name="uq_receivable_dispute_open"),
    Index("ix_receivable_dispute_item", "tenant_id", "item_id"),
)

dunning_block = Table(
    "dunning_block", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("customer_id", String(40), nullable=False),
    Column("case_id", String(40), ForeignKey("dunning_case.id"), nullable=False),
    Column("action", String(30), nullable=False),  # block_tokens | suspend_contract | hand_over
    Column("stage", Integer(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("released_at", UTCDateTime(), nullable=True),
    Column("release_reason", String(200), nullable=True),
    Column("detail", JSON(), nullable=True),  # what the action changed (the contracts it suspended)
    UniqueConstraint("case_id", "action", name="uq_dunning_block_case_action"),
    Index("ix_dunning_block_customer", "tenant_id", "customer_id"),
)


dunning_handover = Table(
    "dunning_handover", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("case_id", String(40), ForeignKey("dunning_case.id"), nullable=False),
    Column("stage", Integer(), nullable=False),
    Column("format", String(10), nullable=False),  # csv | json
    Column("name", String(200), nullable=False),
    Column("content", LargeBinary(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("case_id", "stage", "format", name="uq_dunning_handover_stage"),
)

# the statements every wake-up of every case runs, built once (building one costs more than
# SQLite running it)
_Q_CASE = select(dunning_case).where(dunning_case.c.tenant_id == bindparam("t"), dunning_case.c.id == bindparam("i"))
_Q_STAGE = select(dunning_stage).where(dunning_stage.c.case_id == bindparam("c"),
                                       dunning_stage.c.stage == bindparam("n"))
_Q_DISPUTES = select(receivable_dispute).where(receivable_dispute.c.tenant_id == bindparam("t"),
                                               receivable_dispute.c.item_id.in_(bindparam("ids", expanding=True)),
                                               receivable_dispute.c.open_key.is_not(None))
_Q_CUSTOMER = select(Customer.id, Customer.number, Customer.kind, Customer.name,  # type: ignore[call-overload]
                     Customer.company_name, Customer.language, Customer.groups, Customer.street,
                     Customer.postal_code, Customer.city, Customer.country, Customer.email
                     ).where(Customer.tenant_id == bindparam("t"), Customer.id == bindparam("c"))
_I_CASE, _I_STAGE = insert(dunning_case), insert(dunning_stage)
_Q_SET_STATUS = (update(dunning_case)
                 .where(dunning_case.c.tenant_id == bindparam("t"), dunning_case.c.id == bindparam("i"),
                        dunning_case.c.open_key.is_not(None))
                 .values(status=bindparam("v_status"), next_stage=bindparam("v_next_stage"),
                         next_on=bindparam("v_next_on"), reason=bindparam("v_reason"),
                         updated_at=bindparam("v_updated_at")))

_Q_OPEN_CASE = select(dunning_case).where(dunning_case.c.tenant_id == bindparam("t"),
                                          dunning_case.c.open_key == bindparam("k"))
# the case moved on to the stage it reached (``reach_stage``)
_U_REACHED = (update(dunning_case).where(dunning_case.c.id == bindparam("i"))
              .values(stage=bindparam("v_stage"), stage_on=bindparam("v_stage_on"), status="waiting", next_stage=None,
                      next_on=None, reason="", interest_until=bindparam("v_interest_until"),
                      flat_fee_items=bindparam("v_flat_fee_items"), updated_at=bindparam("v_updated_at")))


@dataclass(frozen=True, slots=True)
class CaseRow:
    id: str
    tenant_id: str
    customer_id: str
    account_id: str
    currency: str
    workflow_id: str
    ruleset_version_id: str | None
    policy: str
    debtor: str
    status: str
    stage: int
    stage_on: date | None
    next_stage: int | None
    next_on: date | None
    reason: str
    refused: bool
    started_on: date
    closed_on: date | None
    hold_reason: str | None = None
    held_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "tenant_id"}  # type: ignore[attr-defined]


def _case_row(r: Any) -> CaseRow:
    return CaseRow(r.id, r.tenant_id, r.customer_id, r.account_id, r.currency, r.workflow_id, r.ruleset_version_id,
                   r.policy, r.debtor, r.status, r.stage, r.stage_on, r.next_stage, r.next_on, r.reason,
                   bool(r.refused), r.started_on, r.closed_on, r.hold_reason, r.held_by)


def _open_key(customer_id: str, currency: str) -> str:
    return f"{customer_id}:{currency}"


# ------------------------------------------------------------------ facts the workflow reads
def overdue_pairs(conn: Connection, tenant_id: str | None, as_of: date, *,
                  after: tuple[str, str, str] | None = None, limit: int | None = None) -> list[tuple[str, str, str]]:
    """(tenant, customer, currency) of every customer with an item overdue on ``as_of`` and no open
    case in that currency, sorted: what the sweep starts cases for (starting one twice is safe).
    ``after`` and ``limit`` page through them. What is open is added up per tenant and currency in
    two scans (``receivables.open_items``), not per item."""
    i = R.receivable_item.c
    stmt = select(i.tenant_id, i.currency).where(i.due_date < as_of, i.kind != "credit_balance").distinct()
    if tenant_id is not None:
        stmt = stmt.where(i.tenant_id == tenant_id)
    owing: set[tuple[str, str, str]] = set()
    for t, cur in conn.execute(stmt).all():
        owing |= {(t, s.customer_id, cur) for s in R.open_items(conn, t, cur)
                  if s.open > 0 and s.due_date < as_of and s.kind != "credit_balance"}
    if not owing:
        return []
    c = dunning_case.c
    busy_q = select(c.tenant_id, c.customer_id, c.currency).where(c.open_key.is_not(None))
    if tenant_id is not None:
        busy_q = busy_q.where(c.tenant_id == tenant_id)
    busy = {(r.tenant_id, r.customer_id, r.currency) for r in conn.execute(busy_q)}
    out = sorted(p for p in owing - busy if after is None or p > after)
    return out[:limit] if limit is not None else out


def open_disputes(conn: Connection, tenant_id: str, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not item_ids:
        return {}
    rows = conn.execute(_Q_DISPUTES, {"t": tenant_id, "ids": list(item_ids)}).all()
    return {r.item_id: {"id": r.id, "reason": r.reason, "opened_by": r.opened_by, "opened_at": r.opened_at}
            for r in rows}


def case_items(conn: Connection, tenant_id: str, customer_id: str, currency: str) -> list[OverdueItem]:
    """The customer's items in ``currency`` as dunning sees them (what is open, disputed or not)."""
    return case_item_states(conn, tenant_id, customer_id, currency)[0]


def case_item_states(conn: Connection, tenant_id: str, customer_id: str, currency: str,
                     disputed: set[str] | None = None) -> tuple[list[OverdueItem], list[R.ItemState], set[str]]:
    """``case_items``, with the item states it was made from (accounts, credit balances) and the ids
    of the disputed items; ``disputed``: those of an earlier read in this transaction (no item can
    be disputed in between: only items read then are asked again)."""
    states = R.item_states(conn, tenant_id, customer_id=customer_id, currency=currency)
    if disputed is None:
        disputed = set(open_disputes(conn, tenant_id, [s.id for s in states]))
    items = [OverdueItem(s.id, s.number, s.kind, s.currency, s.open, s.due_date, s.id in disputed, s.amount,
                         s.issue_date) for s in states]
    return items, states, disputed


def customer_facts(conn: Connection, tenant_id: str, customer_id: str) -> Any:
    return conn.execute(_Q_CUSTOMER, {"t": tenant_id, "c": customer_id}).first()


def ruleset_source(conn: Connection, tenant_id: str, version_id: str) -> Any:
    """(id, source, dsl_name, version) of a published ruleset version."""
    v = RulesetVersion
    return conn.execute(select(v.id, v.source, v.dsl_name, v.version)  # type: ignore[call-overload]
                        .where(v.tenant_id == tenant_id, v.id == version_id)).first()


# ------------------------------------------------------------------ cases
def open_case(conn: Connection, tenant_id: str, *, customer_id: str, account_id: str, currency: str,
              workflow_id: str, ruleset_version_id: str | None, policy: str, debtor: str, today: date) -> CaseRow:
    """The customer's open case in ``currency``, made if there is none (the workflow's first step)."""
    return open_case_made(conn, tenant_id, customer_id=customer_id, account_id=account_id, currency=currency,
                          workflow_id=workflow_id, ruleset_version_id=ruleset_version_id, policy=policy,
                          debtor=debtor, today=today)[0]


def open_case_made(conn: Connection, tenant_id: str, *, customer_id: str, account_id: str, currency: str,
                   workflow_id: str, ruleset_version_id: str | None, policy: str, debtor: str,
                   today: date) -> tuple[CaseRow, bool]:
    """``open_case``, and whether it made the case now (then it has no stages yet)."""
    key = _open_key(customer_id, currency)
    row = conn.execute(_Q_OPEN_CASE, {"t": tenant_id, "k": key}).first()
    if row is not None:
        return _case_row(row), False
    now = utcnow()
    values = dict(
        id=new_id("dun"), tenant_id=tenant_id, customer_id=customer_id, account_id=account_id, currency=currency,
        open_key=key, workflow_id=workflow_id, ruleset_version_id=ruleset_version_id, policy=policy, debtor=debtor,
        status="waiting", stage=0, stage_on=None, next_stage=None, next_on=None, reason="", refused=False,
        interest_until={}, flat_fee_items=[], started_on=today, closed_on=None, created_at=now, updated_at=now,
        hold_reason=None, held_by=None)
    conn.execute(_I_CASE, values)
    return _case_row(SimpleNamespace(**values)), True


def case(conn: Connection, tenant_id: str, case_id: str) -> CaseRow:
    row = conn.execute(_Q_CASE, {"t": tenant_id, "i": case_id}).first()
    if row is None:
        raise LookupError(f"dunning case {case_id} not found")
    return _case_row(row)


def cases(conn: Connection, tenant_id: str, *, customer_id: str | None = None, status: str | None = None,
          after: str | None = None, limit: int = 50) -> list[CaseRow]:
    """Cases by id (newest last), ``after`` a cursor id."""
    c = dunning_case.c
    stmt = select(dunning_case).where(c.tenant_id == tenant_id)
    if customer_id:
        stmt = stmt.where(c.customer_id == customer_id)
    if status == "open":
        stmt = stmt.where(c.open_key.is_not(None))
    elif status == "escalated":  # approval tasks left open past the policy's 'escalate after'
        stmt = stmt.where(c.status == "awaiting_approval", c.reason == "approval_escalated")
    elif status:
        stmt = stmt.where(c.status == status)
    if after:
        stmt = stmt.where(c.id > after)
    return [_case_row(r) for r in conn.execute(stmt.order_by(c.id).limit(limit)).all()]


def case_state(conn: Connection, tenant_id: str, case_id: str) -> CaseState:
    """What the case reached, as ``runtime.dunning`` reads it."""
    r = conn.execute(_Q_CASE, {"t": tenant_id, "i": case_id}).one()
    until = tuple(sorted((k, date.fromisoformat(v)) for k, v in (r.interest_until or {}).items()))
    return CaseState(r.stage, r.stage_on, until, tuple(r.flat_fee_items or ()), bool(r.refused))


def set_status(conn: Connection, tenant_id: str, case_id: str, status: str, *, next_stage: int | None = None,
               next_on: date | None = None, reason: str = "") -> None:
    conn.execute(_Q_SET_STATUS, {"t": tenant_id, "i": case_id, "v_status": status, "v_next_stage": next_stage,
                                 "v_next_on": next_on, "v_reason": reason[:200], "v_updated_at": utcnow()})


def hold_case(conn: Connection, tenant_id: str, case_id: str, reason: str | None, by: str) -> bool:
    """Pause an open case by hand (``reason``) or resume it (None); False when the case is closed
    or already so. The workflow honours it at its next check (the API signals it at once)."""
    c = dunning_case.c
    cond = c.hold_reason.is_(None) if reason is not None else c.hold_reason.is_not(None)
    res = conn.execute(update(dunning_case).where(c.tenant_id == tenant_id, c.id == case_id,
                                                  c.open_key.is_not(None), cond)
                       .values(hold_reason=None if reason is None else reason[:1000],
                               held_by=None if reason is None else by[:40], updated_at=utcnow()))
    return bool(res.rowcount)


def close_case(conn: Connection, tenant_id: str, case_id: str, on: date, reason: str) -> list[str]:
    """Close the case (once) and release its blocks; returns the actions released."""
    c = dunning_case.c
    conn.execute(update(dunning_case).where(c.tenant_id == tenant_id, c.id == case_id, c.open_key.is_not(None))
                 .values(status="closed", open_key=None, closed_on=on, next_stage=None, next_on=None,
                         reason=reason[:200], updated_at=utcnow()))
    b = dunning_block.c
    live = conn.execute(select(b.id, b.action, b.detail).where(b.tenant_id == tenant_id, b.case_id == case_id,
                                                               b.released_at.is_(None),
                                                               b.action.in_(BLOCKING_ACTIONS))).all()
    if live:
        conn.execute(update(dunning_block).where(b.id.in_([r.id for r in live]))
                     .values(released_at=utcnow(), release_reason=reason[:200]))
        for r in live:
            if r.action == "suspend_contract":
                _restore_contracts(conn, case_id, (r.detail or {}).get("contracts", []))
    return sorted(r.action for r in live)


# ------------------------------------------------------------------ stages
def _plan_detail(plan: StagePlan) -> dict[str, Any]:
    def fee(f: FeeCharge) -> dict[str, Any]:
        return {"kind": f.kind, "net": str(f.net), "vat_rate": None if f.vat_rate is None else str(f.vat_rate),
                "vat": str(f.vat), "gross": str(f.gross), "currency": f.currency, "treatment": f.treatment,
                "item_id": f.item_id}

    def interest(i: InterestLine) -> dict[str, Any]:
        return {"item_id": i.item_id, "number": i.number, "principal": str(i.principal), "currency": i.currency,
                "start": i.start.isoformat(), "end": i.end.isoformat(), "exact": str(i.exact),
                "amount": str(i.amount),
                "pieces": [{"start": p.start.isoformat(), "end": p.end.isoformat(), "days": p.days,
                            "rate": str(p.rate)} for p in i.pieces]}

    return {"policy": plan.policy, "debtor": plan.debtor, "letter": plan.letter, "pay_by": plan.pay_by.isoformat(),
            "items": [{"id": i.id, "number": i.number, "kind": i.kind, "amount": str(i.amount), "open": str(i.open),
                       "due_date": i.due_date.isoformat(),
                       "issue_date": i.issue_date.isoformat() if i.issue_date else None} for i in plan.items],
            "fee": fee(plan.fee) if plan.fee else None, "flat_fees": [fee(f) for f in plan.flat_fees],
            "interest": [interest(i) for i in plan.interest], "actions": list(plan.actions),
            "approval": plan.approval}


def stages_of(conn: Connection, tenant_id: str, case_id: str) -> list[dict[str, Any]]:
    s = dunning_stage.c
    rows = conn.execute(select(dunning_stage).where(s.tenant_id == tenant_id, s.case_id == case_id)
                        .order_by(s.stage)).all()
    return [{"stage": r.stage, "status": r.status, "letter": r.letter, "planned_on": r.planned_on,
             "reached_on": r.reached_on, "pay_by": r.pay_by, "currency": r.currency, "overdue": r.overdue,
             "charged": r.charged, "total": r.total, "detail": r.detail, "charge_items": r.charge_items,
             "decided_by": r.decided_by or None, "decision_reason": r.decision_reason or None,
             "decided_at": r.decided_at, "escalated_at": r.escalated_at, "assigned_role": r.assigned_role}
            for r in rows]


def _stage(conn: Connection, case_id: str, stage: int) -> Any:
    return conn.execute(_Q_STAGE, {"c": case_id, "n": stage}).first()


def stage_planned_on(conn: Connection, case_id: str, stage: int) -> date | None:
    """The day a stage awaiting approval (or reached) became due."""
    row = _stage(conn, case_id, stage)
    return None if row is None else row.planned_on


def item_account(conn: Connection, tenant_id: str, item_id: str) -> str:
    i = R.receivable_item.c
    return str(conn.execute(select(i.account_id).where(i.tenant_id == tenant_id, i.id == item_id)).scalar_one())


def request_approval(conn: Connection, tenant_id: str, case_id: str, plan: StagePlan) -> str:
    """The stage as an approval task (once): what it would charge and send. Returns its status."""
    row = _stage(conn, case_id, plan.stage)
    if row is not None:
        return str(row.status)
    conn.execute(insert(dunning_stage).values(
        id=new_id("dst"), tenant_id=tenant_id, case_id=case_id, stage=plan.stage, status="awaiting_approval",
        letter=plan.letter, planned_on=plan.today, reached_on=None, pay_by=plan.pay_by, currency=plan.currency,
        overdue=plan.overdue, charged=plan.charged, total=plan.total, detail=_plan_detail(plan), charge_items=[],
        decided_by="", decision_reason="", decided_at=None, created_at=utcnow()))
    set_status(conn, tenant_id, case_id, "awaiting_approval", next_stage=plan.stage, next_on=plan.today,
               reason="approval_required")
    return "awaiting_approval"


def escalate_stage(conn: Connection, tenant_id: str, case_id: str, stage: int, role: str = "admin") -> bool:
    """The stage's approval task was left open too long: mark it escalated and give it to ``role``
    (once; the case's reason says so in the case list). False when it is no longer waiting."""
    s = dunning_stage.c
    res = conn.execute(update(dunning_stage).where(s.tenant_id == tenant_id, s.case_id == case_id, s.stage == stage,
                                                   s.status == "awaiting_approval", s.escalated_at.is_(None))
                       .values(escalated_at=utcnow(), assigned_role=role))
    if res.rowcount:
        c = dunning_case.c
        conn.execute(update(dunning_case).where(c.tenant_id == tenant_id, c.id == case_id,
                                                c.status == "awaiting_approval")
                     .values(reason="approval_escalated", updated_at=utcnow()))
    return bool(res.rowcount)


def refuse_stage(conn: Connection, tenant_id: str, case_id: str, stage: int, by: str, reason: str) -> None:
    """An approver refused the stage: nothing is charged or sent, the case escalates no further."""
    s = dunning_stage.c
    conn.execute(update(dunning_stage).where(s.case_id == case_id, s.stage == stage,
                                             s.status == "awaiting_approval")
                 .values(status="refused", decided_by=by, decision_reason=reason[:1000], decided_at=utcnow()))
    c = dunning_case.c
    conn.execute(update(dunning_case).where(c.tenant_id == tenant_id, c.id == case_id)
                 .values(refused=True, status="done", next_stage=None, next_on=None,
                         reason="approval_refused", updated_at=utcnow()))


def case_number(customer_number: str | None, cas: CaseRow) -> str:
    """The case's reference as its letters print it (``D-K-10002-261227``); a letter is that and its
    stage, and so are the charges it made (an interest item adds ``-Z``, a flat fee ``-P1``...)."""
    return f"D-{customer_number or cas.customer_id}-{cas.started_on.strftime('%y%m%d')}"


_Q_CUSTOMER_NUMBER = select(Customer.number).where(  # type: ignore[call-overload]
    Customer.tenant_id == bindparam("t"), Customer.id == bindparam("c"))


def _charge(conn: Connection, tenant_id: str, cas: CaseRow, stage: int, key: str, kind: str, amount: Decimal,
            on: date, due: date, suffix: str, detail: dict[str, Any], by: str,
            states: Sequence[R.ItemState] | None, reference: str) -> str:
    number = f"{reference}-{stage}{suffix}"
    return R.open_charge_item(conn, tenant_id, key=key, kind=kind, customer_id=cas.customer_id,
                              account_id=cas.account_id, currency=cas.currency, amount=amount, issue_date=on,
                              due_date=due, number=number, detail=detail, created_by=by, states=states)


_UNREAD: Any = object()


def stage_row(conn: Connection, case_id: str, stage: int) -> Any:
    """The stage's row (None before it was asked for approval or reached)."""
    return _stage(conn, case_id, stage)


def reach_stage(conn: Connection, tenant_id: str, case_id: str, plan: StagePlan, decided_by: str = "system",
                reason: str = "", *, cas: CaseRow | None = None, row: Any = _UNREAD,
                states: Sequence[R.ItemState] | None = None, state: CaseState | None = None) -> dict[str, Any]:
    """Reach ``plan.stage`` (once): open the fee, interest and flat-fee items, record the stage, take
    its actions, move the case on. Reaching it again returns what the first time stored.

    What the caller read in this transaction is not read again: ``cas`` the case (its customer,
    account and currency are what is used), ``row`` the stage's row (``stage_row``, None: there is
    none), ``states`` the customer's items in the case's currency (credit balances to use on the
    new items), ``state`` the case's ``CaseState`` (``case_state``, or a reach's result). The
    result's ``state`` is the case's ``CaseState`` after the stage."""
    if row is _UNREAD:
        row = _stage(conn, case_id, plan.stage)
    if row is not None and row.status == "reached":
        return {"stage": row.stage, "charge_items": row.charge_items, "duplicate": True}
    if row is not None and row.status == "refused":
        raise ValueError(f"stage {plan.stage} of case {case_id} was refused")
    if cas is None:
        cas = case(conn, tenant_id, case_id)
    if states is not None:
        states = [s for s in states if s.account_id == cas.account_id]
    base = f"dunning:{case_id}:{plan.stage}"
    items: list[str] = []
    interest = sum((i.amount for i in plan.interest), ZERO)
    reference = ""
    if (plan.fee is not None and plan.fee.gross > 0) or interest > 0 or plan.flat_fees:
        # the charges are numbered as the letter that makes them (read only when there are charges)
        reference = case_number(conn.execute(_Q_CUSTOMER_NUMBER, {"t": tenant_id, "c": cas.customer_id}).scalar(),
                                cas)
    if plan.fee is not None and plan.fee.gross > 0:
        items.append(_charge(conn, tenant_id, cas, plan.stage, f"{base}:fee", "dunning_fee", plan.fee.gross, plan.today,
                             plan.pay_by, "", {"net": str(plan.fee.net), "vat": str(plan.fee.vat),
                                               "vat_rate": None if plan.fee.vat_rate is None else str(plan.fee.vat_rate),
                                               "treatment": plan.fee.treatment}, decided_by, states, reference))
    if interest > 0:
        items.append(_charge(conn, tenant_id, cas, plan.stage, f"{base}:interest", "interest", interest, plan.today,
                             plan.pay_by, "-Z", {"lines": _plan_detail(plan)["interest"]}, decided_by, states,
                             reference))
    for n, f in enumerate(plan.flat_fees, start=1):
        items.append(_charge(conn, tenant_id, cas, plan.stage, f"{base}:flat:{f.item_id}", "flat_fee", f.gross,
                             plan.today, plan.pay_by, f"-P{n}", {"for_item": f.item_id}, decided_by, states,
                             reference))
    now = utcnow()
    values = dict(status="reached", reached_on=plan.today, pay_by=plan.pay_by, overdue=plan.overdue,
                  charged=plan.charged, total=plan.total, detail=_plan_detail(plan), charge_items=items,
                  decided_by=decided_by if row is not None else "", decision_reason=reason[:1000],
                  decided_at=now if row is not None else None)
    if row is None:
        conn.execute(_I_STAGE, dict(
            id=new_id("dst"), tenant_id=tenant_id, case_id=case_id, stage=plan.stage, letter=plan.letter,
            planned_on=plan.today, currency=plan.currency, created_at=now, **values))
    else:
        conn.execute(update(dunning_stage).where(dunning_stage.c.id == row.id).values(**values))
    # the items the flat fee was charged for: the case's and this stage's
    flat = list(state.flat_fee_items) if state is not None else _case_flat(conn, case_id)
    if plan.flat_fees:
        flat = sorted(set(flat) | {f.item_id for f in plan.flat_fees})
    conn.execute(_U_REACHED, {"i": case_id, "v_stage": plan.stage, "v_stage_on": plan.today,
                              "v_interest_until": {k: v.isoformat() for k, v in plan.interest_until},
                              "v_flat_fee_items": flat, "v_updated_at": now})
    b = dunning_block.c
    for action in plan.actions:
        if conn.execute(select(b.id).where(b.case_id == case_id, b.action == action)).first() is None:
            detail = ({"contracts": _suspend_contracts(conn, tenant_id, cas.customer_id, case_id)}
                      if action == "suspend_contract" else None)
            conn.execute(insert(dunning_block).values(
                id=new_id("blk"), tenant_id=tenant_id, customer_id=cas.customer_id, case_id=case_id, action=action,
                stage=plan.stage, started_at=now, released_at=None, release_reason=None, detail=detail))
    return {"stage": plan.stage, "charge_items": items, "duplicate": False,
            "state": CaseState(plan.stage, plan.today, tuple(sorted(plan.interest_until)), tuple(flat),
                                state.refused if state is not None else bool(cas.refused))}


def _suspension(case_id: str) -> str:
    return f"dunning case {case_id}"


def _suspend_contracts(conn: Connection, tenant_id: str, customer_id: str, case_id: str) -> list[str]:
    """Suspend the customer's active contracts, the case named as the reason; their ids."""
    ct = Contract.__table__.c  # type: ignore[attr-defined]
    ids = sorted(str(r[0]) for r in conn.execute(select(ct.id).where(
        ct.tenant_id == tenant_id, ct.customer_id == customer_id, ct.status == "active")))
    if ids:
        conn.execute(update(Contract.__table__).where(ct.id.in_(ids))  # type: ignore[attr-defined]
                     .values(status="suspended", status_reason=_suspension(case_id)))
    return ids


def _restore_contracts(conn: Connection, case_id: str, ids: Sequence[str]) -> None:
    """Make the contracts a case suspended active again, unless someone changed them since."""
    if not ids:
        return
    ct = Contract.__table__.c  # type: ignore[attr-defined]
    conn.execute(update(Contract.__table__).where(  # type: ignore[attr-defined]
        ct.id.in_(list(ids)), ct.status == "suspended", ct.status_reason == _suspension(case_id))
        .values(status="active", status_reason=""))


def _case_flat(conn: Connection, case_id: str) -> list[str]:
    r = conn.execute(select(dunning_case.c.flat_fee_items).where(dunning_case.c.id == case_id)).one()
    return list(r.flat_fee_items or [])


def blocks_of(conn: Connection, tenant_id: str, case_id: str) -> list[dict[str, Any]]:
    b = dunning_block.c
    return [{"action": r.action, "stage": r.stage, "started_at": r.started_at, "released_at": r.released_at,
             "release_reason": r.release_reason, "detail": r.detail or {}}
            for r in conn.execute(select(dunning_block).where(b.tenant_id == tenant_id, b.case_id == case_id)
                                  .order_by(b.started_at, b.action)).all()]


def customer_block(conn: Any, tenant_id: str, customer_id: str, action: str = "block_tokens") -> str | None:
    """The case that blocks the customer's ``action`` now (its id), or None. ``conn``: a Connection
    or an ORM Session (the OCPP gateway's)."""
    b = dunning_block.c
    row = conn.execute(select(b.case_id).where(b.tenant_id == tenant_id, b.customer_id == customer_id,
                                               b.action == action, b.released_at.is_(None)).limit(1)).first()
    return None if row is None else str(row[0])


def customer_blocks(conn: Any, tenant_id: str, customer_id: str) -> dict[str, str]:
    """The customer's live blocking actions (``block_tokens``, ``suspend_contract``) and the case of
    each: one query, what the OCPP gateway asks at every start."""
    rows = conn.execute(_CUSTOMER_BLOCKS, {"tenant": tenant_id, "customer": customer_id}).all()
    return {str(r[0]): str(r[1]) for r in rows}


# built once: the gateway asks at every start
_CUSTOMER_BLOCKS = select(dunning_block.c.action, dunning_block.c.case_id).where(
    dunning_block.c.tenant_id == bindparam("tenant"), dunning_block.c.customer_id == bindparam("customer"),
    dunning_block.c.released_at.is_(None), dunning_block.c.action.in_(BLOCKING_ACTIONS))


# ------------------------------------------------------------------ disputes
def dispute_item(conn: Connection, tenant_id: str, item_id: str, reason: str, by: str) -> dict[str, Any]:
    """Flag the item as disputed (once while open); LookupError for an item of no one."""
    i = R.receivable_item.c
    if conn.execute(select(i.id).where(i.tenant_id == tenant_id, i.id == item_id)).first() is None:
        raise LookupError(f"open item {item_id} not found")
    open_ = open_disputes(conn, tenant_id, [item_id])
    if item_id in open_:
        return {"item_id": item_id, "disputed": True, **open_[item_id], "duplicate": True}
    did, now = new_id("dsp"), utcnow()
    conn.execute(insert(receivable_dispute).values(
        id=did, tenant_id=tenant_id, item_id=item_id, open_key=item_id, reason=reason[:1000], opened_by=by,
        opened_at=now, resolved_by=None, resolution=None, resolved_at=None))
    return {"item_id": item_id, "disputed": True, "id": did, "reason": reason, "opened_by": by, "opened_at": now,
            "duplicate": False}


def resolve_dispute(conn: Connection, tenant_id: str, item_id: str, resolution: str, by: str) -> bool:
    """End the item's open dispute; False when there was none."""
    d = receivable_dispute.c
    res = conn.execute(update(receivable_dispute).where(d.tenant_id == tenant_id, d.open_key == item_id)
                       .values(open_key=None, resolved_by=by, resolution=resolution[:1000], resolved_at=utcnow()))
    return bool(res.rowcount)


def cases_with_item(conn: Connection, tenant_id: str, item_id: str) -> list[CaseRow]:
    """The open case (if any) of the item's customer and currency: the one a dispute or a payment
    on the item concerns."""
    i = R.receivable_item.c
    it = conn.execute(select(i.customer_id, i.currency).where(i.tenant_id == tenant_id, i.id == item_id)).first()
    if it is None:
        return []
    c = dunning_case.c
    return [_case_row(r) for r in conn.execute(select(dunning_case).where(
        c.tenant_id == tenant_id, c.open_key == _open_key(it.customer_id, it.currency))).all()]


def open_case_workflows(conn: Connection, tenant_id: str, customer_id: str, currency: str) -> list[str]:
    """The workflow ids of the customer's open cases in ``currency`` (at most one)."""
    c = dunning_case.c
    return [str(r[0]) for r in conn.execute(select(c.workflow_id).where(
        c.tenant_id == tenant_id, c.open_key == _open_key(customer_id, currency)))]


def open_cases_paid_since(conn: Connection, tenant_id: str, since: Any) -> list[CaseRow]:
    """Open cases of customers whose accounts had a payment, credit note, credit or write-off booked at or after
    ``since`` (a bank import, a manual payment): the cases to tell at once. Scans the tenant's
    receivable events from ``since`` on (no index on their time yet)."""
    ev = R.receivable_event.c
    accounts = [r.account_id for r in conn.execute(
        select(ev.account_id).where(ev.tenant_id == tenant_id, ev.created_at >= since,
                                    ev.kind.in_(("payment", "credit_note", "credit_applied", "write_off"))).distinct())]
    if not accounts:
        return []
    i = R.receivable_item.c
    customers = [r.customer_id for r in conn.execute(
        select(i.customer_id).where(i.tenant_id == tenant_id, i.account_id.in_(accounts)).distinct())]
    if not customers:
        return []
    c = dunning_case.c
    return [_case_row(r) for r in conn.execute(select(dunning_case).where(
        c.tenant_id == tenant_id, c.open_key.is_not(None), c.customer_id.in_(customers)).order_by(c.id)).all()]


# ------------------------------------------------------------------ letters
def letter_doc(conn: Connection, tenant_id: str, case_id: str, stage: int) -> Any:
    """The letter of a reached stage as ``runtime.documents.dunning_letter.DunningLetterDoc``, in the
    customer's language with the tenant's branding (what the stage stored, nothing recomputed)."""
    from runtime.documents.dunning_letter import ChargeLine, DunningLetterDoc, LetterItem
    from runtime.documents.i18n import LANGUAGES
    from runtime.documents.model import Address
    from store.documents import _branding, tenant_seller
    from store.models import Tenant

    cas = case(conn, tenant_id, case_id)
    row = _stage(conn, case_id, stage)
    if row is None or row.status != "reached":
        raise LookupError(f"stage {stage} of case {case_id} was not reached")
    tt = Tenant.__table__  # type: ignore[attr-defined]
    t = conn.execute(select(tt).where(tt.c.id == tenant_id)).one()
    cust = conn.execute(select(Customer.__table__).where(  # type: ignore[attr-defined]
        Customer.__table__.c.id == cas.customer_id)).one()  # type: ignore[attr-defined]
    d = row.detail
    items = tuple(LetterItem(i["number"], i["kind"], date.fromisoformat(i["issue_date"]) if i.get("issue_date") else None,
                             date.fromisoformat(i["due_date"]), Decimal(i["amount"]), Decimal(i["open"]))
                  for i in d["items"])
    numbers = {i["id"]: i["number"] for i in d["items"]}
    charges: list[ChargeLine] = []
    if d.get("fee"):
        f = d["fee"]
        charges.append(ChargeLine("dunning_fee", Decimal(f["gross"]), Decimal(f["net"]),
                                  Decimal(f["vat_rate"]) if f["vat_rate"] is not None else None))
    for ln in d.get("interest", []):
        first = ln["pieces"][0] if ln["pieces"] else {}
        days = sum(int(p["days"]) for p in ln["pieces"])
        charges.append(ChargeLine("interest", Decimal(ln["amount"]), number=ln["number"],
                                  start=date.fromisoformat(ln["start"]), end=date.fromisoformat(ln["end"]), days=days,
                                  rate=Decimal(first["rate"]) if first else None))
    for f in d.get("flat_fees", []):
        charges.append(ChargeLine("flat_fee", Decimal(f["gross"]), number=numbers.get(f["item_id"], "")))
    earlier = conn.execute(select(dunning_stage.c.letter).where(
        dunning_stage.c.case_id == case_id, dunning_stage.c.stage <= stage,
        dunning_stage.c.status == "reached")).all()
    notice = sum(1 for r in earlier if r.letter == "dunning") if row.letter == "dunning" else 0
    language = cust.language if cust.language in LANGUAGES else "de"
    address = (Address(cust.street, cust.city, cust.postal_code, cust.country or t.country or "DE")
               if cust.street or cust.city else None)
    return DunningLetterDoc(
        language=language, currency=cas.currency, stage=stage, letter=row.letter, dated=row.reached_on,
        pay_by=row.pay_by, case_number=case_number(cust.number, cas),
        seller=tenant_seller(t), customer_name=cust.company_name or cust.name, customer_number=cust.number or "",
        address=address, items=items, charges=tuple(charges), overdue=row.overdue, charged=row.charged,
        total=row.total, actions=tuple(d.get("actions", [])), branding=_branding(t.branding), notice=notice,
        addressee=cust.name.strip() if cust.kind != "business" and not cust.company_name and cust.name else "")


def letter_recipient(conn: Connection, tenant_id: str, customer_id: str, account_id: str) -> str:
    """Where a letter is e-mailed: the billing account's invoice address, else the customer's ("": none)."""
    from store.models import BillingAccount

    ba = BillingAccount.__table__.c  # type: ignore[attr-defined]
    acct = conn.execute(select(ba.invoice_email).where(ba.tenant_id == tenant_id, ba.id == account_id)).first()
    if acct is not None and acct.invoice_email and "@" in acct.invoice_email:
        return str(acct.invoice_email)
    cust = customer_facts(conn, tenant_id, customer_id)
    return str(cust.email) if cust is not None and cust.email and "@" in cust.email else ""


def save_letter(conn: Connection, tenant_id: str, case_id: str, stage: int, language: str, name: str,
                content: bytes) -> dict[str, Any]:
    """Archive the stage's letter once; a second call returns the first letter's identity."""
    got = letter(conn, tenant_id, case_id, stage, with_content=False)
    if got is not None:
        return {**got, "duplicate": True}
    lid = new_id("dlt")
    sha = hashlib.sha256(content).hexdigest()
    now = utcnow()
    conn.execute(insert(dunning_letter).values(id=lid, tenant_id=tenant_id, case_id=case_id, stage=stage,
                                               language=language, name=name, content=content, sha256=sha,
                                               size=len(content), created_at=now))
    return {"id": lid, "stage": stage, "language": language, "name": name, "sha256": sha, "size": len(content),
            "created_at": now, "duplicate": False}


def letter(conn: Connection, tenant_id: str, case_id: str, stage: int, *, with_content: bool = True
           ) -> dict[str, Any] | None:
    lt = dunning_letter.c
    cols = [lt.id, lt.stage, lt.language, lt.name, lt.sha256, lt.size, lt.created_at]
    if with_content:
        cols.append(lt.content)
    r = conn.execute(select(*cols).where(lt.tenant_id == tenant_id, lt.case_id == case_id,
                                         lt.stage == stage)).first()
    return None if r is None else dict(r._mapping)


def letters_of(conn: Connection, tenant_id: str, case_id: str) -> list[dict[str, Any]]:
    lt = dunning_letter.c
    return [dict(r._mapping) for r in conn.execute(
        select(lt.id, lt.stage, lt.language, lt.name, lt.sha256, lt.size, lt.created_at)
        .where(lt.tenant_id == tenant_id, lt.case_id == case_id).order_by(lt.stage)).all()]



# ------------------------------------------------------------------ hand-over to a collection agency
def handover_doc(conn: Connection, tenant_id: str, case_id: str, stage: int) -> Any:
    """The case as ``runtime.documents.collection_handover.HandOver`` on the day ``stage`` was
    reached: the debtor's master data, the items still open (invoices, fees, interest), the stages
    with what they charged, the letters sent so far."""
    from runtime.documents.collection_handover import Claim, HandOver
    from store.models import Tenant

    cas = case(conn, tenant_id, case_id)
    row = _stage(conn, case_id, stage)
    if row is None or row.status != "reached":
        raise LookupError(f"stage {stage} of case {case_id} was not reached")
    cust = customer_facts(conn, tenant_id, cas.customer_id)
    tt = Tenant.__table__  # type: ignore[attr-defined]
    t = conn.execute(select(tt).where(tt.c.id == tenant_id)).one()
    items = [i for i in case_items(conn, tenant_id, cas.customer_id, cas.currency)
             if i.open > 0 and i.kind != "credit_balance"]
    claims = tuple(Claim(i.number, i.kind, i.issue_date.isoformat() if i.issue_date else "",
                         i.due_date.isoformat(), format(i.amount, "f"), format(i.open, "f"), i.currency)
                   for i in sorted(items, key=lambda i: (i.due_date, i.number)))
    stages = [x for x in stages_of(conn, tenant_id, case_id) if x["status"] == "reached" and x["stage"] <= stage]
    fees = tuple({"stage": x["stage"], **x["detail"]["fee"]} for x in stages if x["detail"].get("fee"))
    interest = tuple({"stage": x["stage"], **ln} for x in stages for ln in x["detail"].get("interest", []))
    letters = tuple({"stage": str(lt["stage"]), "name": lt["name"], "sent_on": lt["created_at"].date().isoformat(),
                     "sha256": lt["sha256"]} for lt in letters_of(conn, tenant_id, case_id) if lt["stage"] <= stage)
    debtor = {"number": cust.number or "", "name": cust.company_name or cust.name or "", "kind": cas.debtor,
              "street": cust.street or "", "postal_code": cust.postal_code or "", "city": cust.city or "",
              "country": cust.country or "", "email": cust.email or "", "language": cust.language or ""}
    return HandOver(
        case_id=case_id, case_number=f"D-{cust.number or cas.customer_id}-{cas.started_on.strftime('%y%m%d')}",
        stage=stage, handed_over_on=row.reached_on.isoformat(),
        creditor={"name": t.legal_name or t.name or "", "country": t.country or ""}, debtor=debtor, currency=cas.currency,
        claims=claims, total_open=format(sum((i.open for i in items), ZERO), "f"),
        stages=tuple({"stage": x["stage"], "letter": x["letter"], "reached_on": x["reached_on"].isoformat(),
                      "charged": format(x["charged"], "f"), "total": format(x["total"], "f")} for x in stages),
        letters=letters, fees=fees, interest=interest)


def save_handover(conn: Connection, tenant_id: str, case_id: str, stage: int, fmt: str, name: str,
                  content: bytes) -> dict[str, Any]:
    """Archive one export once per case, stage and format; again: the first one's identity."""
    got = handover(conn, tenant_id, case_id, stage, fmt, with_content=False)
    if got is not None:
        return {**got, "duplicate": True}
    hid, now, sha = new_id("dho"), utcnow(), hashlib.sha256(content).hexdigest()
    conn.execute(insert(dunning_handover).values(id=hid, tenant_id=tenant_id, case_id=case_id, stage=stage,
                                                 format=fmt, name=name, content=content, sha256=sha,
                                                 size=len(content), created_at=now))
    return {"id": hid, "stage": stage, "format": fmt, "name": name, "sha256": sha, "size": len(content),
            "created_at": now, "duplicate": False}


def handover(conn: Connection, tenant_id: str, case_id: str, stage: int | None, fmt: str, *,
             with_content: bool = True) -> dict[str, Any] | None:
    """The export of ``stage`` (None: the latest) in ``fmt``."""
    h = dunning_handover.c
    cols = [h.id, h.stage, h.format, h.name, h.sha256, h.size, h.created_at]
    if with_content:
        cols.append(h.content)
    stmt = select(*cols).where(h.tenant_id == tenant_id, h.case_id == case_id, h.format == fmt)
    if stage is not None:
        stmt = stmt.where(h.stage == stage)
    r = conn.execute(stmt.order_by(h.stage.desc()).limit(1)).first()
    return None if r is None else dict(r._mapping)


def handovers_of(conn: Connection, tenant_id: str, case_id: str) -> list[dict[str, Any]]:
    h = dunning_handover.c
    return [dict(r._mapping) for r in conn.execute(
        select(h.id, h.stage, h.format, h.name, h.sha256, h.size, h.created_at)
        .where(h.tenant_id == tenant_id, h.case_id == case_id).order_by(h.stage, h.format)).all()]


def invoice_case_workflows(conn: Connection, tenant_id: str, invoice_id: str) -> list[str]:
    """The workflows of the open dunning cases of an invoice's customer in its currency."""
    from store.billing import invoice

    row = conn.execute(select(invoice.c.customer_id, invoice.c.currency)
                       .where(invoice.c.tenant_id == tenant_id, invoice.c.id == invoice_id)).first()
    return [] if row is None else open_case_workflows(conn, tenant_id, row.customer_id, row.currency)
