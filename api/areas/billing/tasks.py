"""Finance tasks (held invoices with reasons and the comparison with the previous period),
approve / reject / adjust / reprice through the cycle workflow's Updates, manual holds and flags,
ad-hoc cycles and invoice reads.

The workflow's validators decide who may approve (approver role, four eyes); their refusals come
back as problems with the validator's stable code.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from litestar import Request
from pydantic import Field

from api.areas.billing.common import account_of, db_sessions, send_update, temporal_client
from api.auth import actor_of
from api.crud import CursorParam, LimitParam, ReadModel, WriteModel, route
from api.schemas import DecimalOut
from store import billing as B
from store import finance as F
from store.errors import Conflict, Forbidden, InvalidInput, NotFound

__all__ = ["Adjust", "Decision", "InvoiceRead", "adjust_task", "approve_task", "handlers", "reject_task"]


class FinanceTaskRead(ReadModel):
    id: str
    kind: Literal["invoice_hold", "batch_delivery"] = Field(
        description="invoice_hold: a held invoice to approve, reject or adjust; batch_delivery: a posting batch "
                    "whose SFTP delivery finally failed (subject_id; closes itself once it is delivered)")
    invoice_id: str | None
    subject_id: str | None = None
    account_id: str
    workflow_id: str
    status: str
    reasons: list[dict[str, str]]
    comparison: dict[str, str | None]
    escalation_level: int
    escalated_at: datetime | None
    created_at: datetime
    currency: str | None
    net_total: DecimalOut | None
    gross_total: DecimalOut | None
    period_start: date | None
    period_end: date | None


class FinanceTaskPage(ReadModel):
    items: list[FinanceTaskRead]
    next_cursor: str | None = None


class InvoiceLineRead(ReadModel):
    seq: int
    kind: str
    component: str
    description: str
    quantity: DecimalOut
    unit: str
    unit_price: DecimalOut
    net: DecimalOut
    tax_rate: DecimalOut
    session_id: str
    corrects: str


class InvoiceRead(ReadModel):
    id: str
    account_id: str
    kind: str
    status: str
    number: str | None
    currency: str
    local_start: date
    local_end: date
    issue_date: date
    due_date: date
    payment_terms: str
    net_total: DecimalOut
    tax_total: DecimalOut
    gross_total: DecimalOut
    tax_groups: list[dict[str, str]]
    hold_reasons: list[dict[str, str]]
    comparison: dict[str, str | None]
    corrects: list[str]
    rejected_reason: str
    lines: list[InvoiceLineRead] = Field(default_factory=list)


class Approve(WriteModel):
    note: str = Field(default="", max_length=500)


class Reject(WriteModel):
    reason: str = Field(min_length=1, max_length=1000)


class Adjust(WriteModel):
    description: str = Field(min_length=1, max_length=300)
    amount: Decimal = Field(description="net amount of the manual posting, negative for a credit")
    tax_rate: Decimal = Field(ge=0, le=100)


class Decision(ReadModel):
    task_id: str
    result: str
    net_total: str | None = None
    gross_total: str | None = None


class HoldCreate(WriteModel):
    kind: Literal["hold", "flag"] = "hold"
    name: str = Field(default="manual", min_length=1, max_length=100)
    reason: str = Field(default="", max_length=500)


class HoldRead(ReadModel):
    id: str
    account_id: str
    kind: str
    name: str
    reason: str
    placed_by: str
    placed_at: datetime
    released_by: str | None
    released_at: datetime | None
    # a hold holds the next invoice only: the draft it held, once it has held one
    consumed_by_invoice: str | None = None
    consumed_at: datetime | None = None


class AdHocCycle(WriteModel):
    start: date
    end: date


class CycleStarted(ReadModel):
    workflow_id: str
    cycle_key: str


def _task(db: Any, tenant_id: str, task_id: str) -> Any:
    row = F.finance_task_of(db.connection(), tenant_id, task_id)
    if row is None:
        raise NotFound("finance_task_not_found", f"finance task {task_id!r} not found")
    if row.status != "open":
        raise Conflict("task_closed", f"the finance task is already {row.status}")
    return row


_REFUSALS = {"forbidden": Forbidden, "four_eyes": Forbidden, "not_held": Conflict, "busy": Conflict,
             "not_manual": Conflict, "reason_required": InvalidInput, "invalid_amount": InvalidInput}


async def _update(request: Request[Any, Any, Any], task_id: str, name: str, arg: Any) -> tuple[Any, Any]:
    from workflows.billing.workflows import BillingCycleWorkflow

    actor = actor_of(request)
    with db_sessions(request) as db:
        task = _task(db, actor.tenant_id, task_id)
    if task.kind != "invoice_hold":
        raise Conflict("not_an_invoice_task", f"a {task.kind} task is not decided here: it closes itself once "
                                              "what it reports is done (a batch delivered)")
    handle = (await temporal_client(request)).get_workflow_handle(task.workflow_id)
    return task, await send_update(handle, getattr(BillingCycleWorkflow, name), arg, _REFUSALS, "billing")


@route("GET", "/billing/tasks", operation_id="list_finance_tasks", roles="billing_read",
       summary="Open finance tasks: held invoices with the reasons and the previous period's comparison, and "
               "posting batches whose delivery to the ERP finally failed (kind batch_delivery)")
def list_finance_tasks(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                       status: str | None = "open") -> FinanceTaskPage:
    from store.repo import decode_cursor, encode_cursor

    actor = actor_of(request)
    with db_sessions(request) as db:
        rows = F.finance_tasks(db.connection(), actor.tenant_id, status=status,
                               after_id=decode_cursor(cursor) if cursor else None, limit=limit + 1)
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].id)
    return FinanceTaskPage(items=[FinanceTaskRead.model_validate(dict(r._mapping)) for r in rows], next_cursor=nxt)


@route("GET", "/billing/invoices/{invoice_id:str}", operation_id="get_invoice", roles="billing_read",
       summary="An invoice (draft, held, finalized or rejected) with its lines")
def get_invoice(request: Request[Any, Any, Any], invoice_id: str) -> InvoiceRead:
    actor = actor_of(request)
    with db_sessions(request) as db:
        found = F.invoice_with_lines(db.connection(), actor.tenant_id, invoice_id)
    if found is None:
        raise NotFound("invoice_not_found", f"invoice {invoice_id!r} not found")
    row, lines = found
    data = dict(row._mapping)
    data["lines"] = [dict(ln._mapping) for ln in lines]
    return InvoiceRead.model_validate(data)


@route("POST", "/billing/tasks/{task_id:str}/approve", operation_id="approve_finance_task",
       roles="billing_decide", summary="Approve a held invoice (approver role; not the person who adjusted it)")
async def approve_finance_task(request: Request[Any, Any, Any], task_id: str, data: Approve) -> Decision:
    return await approve_task(request, task_id, data.note)


async def approve_task(request: Request[Any, Any, Any], task_id: str, note: str) -> Decision:
    """Approve through the cycle workflow's Update (its validator checks role and four eyes); the
    API's route and the console's form both come here."""
    from workflows.billing.types import ApproveInput

    actor = actor_of(request)
    task, res = await _update(request, task_id, "approve", ApproveInput(actor.user_id, actor.role, note))
    return _decided(request, task, str(res))


@route("POST", "/billing/tasks/{task_id:str}/reject", operation_id="reject_finance_task",
       roles="billing_decide", summary="Reject a held invoice with a reason (its sessions stay unbilled)")
async def reject_finance_task(request: Request[Any, Any, Any], task_id: str, data: Reject) -> Decision:
    return await reject_task(request, task_id, data.reason)


async def reject_task(request: Request[Any, Any, Any], task_id: str, reason: str) -> Decision:
    """Reject with a reason through the cycle workflow's Update (the API's route and the console)."""
    from workflows.billing.types import RejectInput

    actor = actor_of(request)
    task, res = await _update(request, task_id, "reject", RejectInput(actor.user_id, actor.role, reason))
    return _decided(request, task, str(res))


def _decided(request: Request[Any, Any, Any], task: Any, result: str) -> Decision:
    """The decision with the totals of the invoice it decided (as the draft stood when decided)."""
    with db_sessions(request) as db:
        inv = F.invoice_totals(db.connection(), task.invoice_id)
    if inv is None:
        return Decision(task_id=task.id, result=result)
    return Decision(task_id=task.id, result=result, net_total=str(inv.net_total), gross_total=str(inv.gross_total))


@route("POST", "/billing/tasks/{task_id:str}/adjust", operation_id="adjust_finance_task",
       roles="billing_adjust", summary="Add a manual posting to a held invoice (someone else must approve it)")
async def adjust_finance_task(request: Request[Any, Any, Any], task_id: str, data: Adjust) -> Decision:
    return await adjust_task(request, task_id, data)


async def adjust_task(request: Request[Any, Any, Any], task_id: str, data: Adjust) -> Decision:
    """A manual posting on the held draft through the cycle workflow's Update (its validator: the
    adjuster roles; the adjuster is then barred from approving it); the API's route and the console."""
    from workflows.billing.types import AdjustInput

    actor = actor_of(request)
    task, res = await _update(request, task_id, "adjust", AdjustInput(
        actor.user_id, actor.role, data.description, format(data.amount, "f"), format(data.tax_rate, "f")))
    return Decision(task_id=task.id, result="adjusted", net_total=res.net, gross_total=res.gross)


@route("POST", "/billing/tasks/{task_id:str}/reprice", operation_id="reprice_finance_task",
       roles="billing_adjust",
       summary="Assemble a held invoice again after its cause was fixed (a price published, a service item "
               "ended); it stays held for approval")
async def reprice_finance_task(request: Request[Any, Any, Any], task_id: str) -> Decision:
    from workflows.billing.types import RepriceInput

    actor = actor_of(request)
    task, res = await _update(request, task_id, "reprice", RepriceInput(actor.user_id, actor.role))
    with request.app.state.sessions() as db:
        from store.audit import append_audit

        append_audit(db, actor, "invoice.reprice", "billing_invoice", res.invoice_id, None,
                     {"task_id": task.id, "net": res.net, "gross": res.gross, "reasons": res.reasons})
        db.commit()
    return Decision(task_id=task.id, result="repriced", net_total=res.net, gross_total=res.gross)


@route("POST", "/billing/accounts/{account_id:str}/holds", operation_id="place_billing_hold", roles="billing_hold",
       status_code=201, summary="Hold the account's next invoice (kind hold) or flag it for the hold rules")
def place_billing_hold(request: Request[Any, Any, Any], account_id: str, data: HoldCreate) -> HoldRead:
    actor = actor_of(request)
    with request.app.state.sessions() as db:
        account_of(db, actor.tenant_id, account_id)
        hid = B.place_hold(db.connection(), actor.tenant_id, account_id, data.kind, data.name, data.reason,
                           actor.user_id)
        from store.audit import append_audit

        append_audit(db, actor, "billing_hold.place", "billing_hold", hid, None, data.model_dump())
        db.commit()
        row = F.hold(db.connection(), actor.tenant_id, hid)
    return HoldRead.model_validate(dict(row._mapping))


@route("POST", "/billing/holds/{hold_id:str}/release", operation_id="release_billing_hold",
       roles="billing_decide", summary="Release a manual hold; a task held only by it is released too")
async def release_billing_hold(request: Request[Any, Any, Any], hold_id: str) -> HoldRead:
    from workflows.billing.types import ReleaseHoldInput

    actor = actor_of(request)
    with request.app.state.sessions() as db:
        row = B.release_hold(db.connection(), actor.tenant_id, hold_id, actor.user_id)
        if row is None:
            raise NotFound("billing_hold_not_found", f"hold {hold_id!r} not found")
        from store.audit import append_audit

        append_audit(db, actor, "billing_hold.release", "billing_hold", hold_id)
        db.commit()
        tasks = F.open_tasks_of_account(db.connection(), actor.tenant_id, row.account_id)
        after = F.hold(db.connection(), actor.tenant_id, hold_id)
    for task in tasks:
        if task.reasons and all(r.get("kind") == "manual" for r in task.reasons):
            await _update(request, task.id, "release_hold", ReleaseHoldInput(actor.user_id, actor.role, hold_id))
    return HoldRead.model_validate(dict(after._mapping))


@route("POST", "/billing/accounts/{account_id:str}/cycles", operation_id="start_ad_hoc_cycle",
       roles="billing_hold", status_code=202, summary="Start an ad-hoc billing cycle for a period")
async def start_ad_hoc_cycle(request: Request[Any, Any, Any], account_id: str, data: AdHocCycle) -> CycleStarted:
    from runtime.invoicing import ad_hoc_period
    from workflows.billing.types import BillingCycleInput
    from workflows.billing.worker import start_cycle

    actor = actor_of(request)
    with db_sessions(request) as db:
        acct = account_of(db, actor.tenant_id, account_id)
    usable_timezone(acct)
    try:
        period = ad_hoc_period(data.start, data.end, acct.timezone)
    except ValueError as exc:
        raise InvalidInput("invalid_period", str(exc)) from None
    client = await temporal_client(request)
    queue = getattr(request.app.state, "billing_task_queue", None)
    inp = BillingCycleInput(actor.tenant_id, account_id, as_of=period.end.isoformat(), period=period.to_dict(),
                            cycle_key=period.key)
    handle = await start_cycle(client, inp, period.key, **({"task_queue": queue} if queue else {}))
    return CycleStarted(workflow_id=handle.id, cycle_key=period.key)


def usable_timezone(acct: Any) -> None:
    """A cycle runs in its account's zone: one stored before zones were checked (``Mars/Olympus``)
    is the account's data to correct, answered as such, never a 500 from ``zoneinfo``."""
    from api.validation import check_timezone

    try:
        check_timezone(acct.timezone)
    except ValueError as exc:
        reason = str(exc).splitlines()[0]
        raise InvalidInput("account_timezone_invalid", f"billing account {acct.id!r} cannot be billed: {reason}; "
                                                       f"set its timezone (PATCH /billing-accounts/{acct.id})",
                           errors=[{"key": "timezone", "message": reason, "source": "billing_account",
                                    "code": "unknown_timezone"}]) from None


handlers = [list_finance_tasks, get_invoice, approve_finance_task, reject_finance_task, adjust_finance_task,
            reprice_finance_task, place_billing_hold, release_billing_hold, start_ad_hoc_cycle]
