"""Billing: finance tasks (held invoices with reasons and the comparison with the previous period),
approve / reject / adjust through the cycle workflow's Updates, manual holds and flags, ad-hoc
cycles, invoice reads, an account's service items and period discounts, and the Schedules that
start each account's cycles.

Controllers validate, call the workflow or the store, and return a schema; the workflow's
validators decide who may approve (approver role, four eyes), and their refusals come back as
problems with the validator's stable code.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Request, Router
from litestar.params import Parameter
from pydantic import Field
from sqlalchemy import insert, select, update

from api.auth import ROLE_SETS, actor_of
from api.crud import CursorParam, LimitParam, ReadModel, WriteModel, route
from api.schemas import Currency, DecimalOut, update_of
from dsl.diagnostics import suggest
from store import billing as B
from store.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from store.models import BillingAccount
from store.types import new_id

__all__ = ["ScheduleResync", "follow_schedules", "resync_after_publish", "router", "temporal_client"]

log = logging.getLogger("evbill.billing.api")

# who may do what in billing (registered next to the others so the role matrix sees them)
ROLE_SETS.setdefault("billing_read", ("admin", "operator", "approver", "auditor", "analyst"))
ROLE_SETS.setdefault("billing_decide", ("approver", "admin"))  # the workflow's validator has the last word
ROLE_SETS.setdefault("billing_adjust", ("approver", "operator", "admin"))
ROLE_SETS.setdefault("billing_hold", ("approver", "operator", "admin"))
ROLE_SETS.setdefault("billing_write", ("admin", "operator"))  # service items and discounts


class FinanceTaskRead(ReadModel):
    id: str
    invoice_id: str
    account_id: str
    workflow_id: str
    status: str
    reasons: list[dict[str, str]]
    comparison: dict[str, str | None]
    escalation_level: int
    escalated_at: datetime | None
    created_at: datetime
    currency: str
    net_total: DecimalOut
    gross_total: DecimalOut
    period_start: date
    period_end: date


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
    lines: list[InvoiceLineRead] = []


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


async def temporal_client(request: Request[Any, Any, Any]) -> Any:
    """The app's Temporal client: set by ``evbill serve`` (or a test) on ``app.state.temporal``,
    else connected once to ``TEMPORAL_ADDRESS``."""
    return await _app_client(request.app)


def _temporal_configured(app: Any) -> bool:
    return getattr(app.state, "temporal", None) is not None or bool(os.environ.get("TEMPORAL_ADDRESS", "").strip())


async def _app_client(app: Any) -> Any:
    client = getattr(app.state, "temporal", None)
    if client is None:
        address = os.environ.get("TEMPORAL_ADDRESS", "").strip()
        if not address:
            raise DomainError("temporal_unavailable", "no Temporal server is configured (TEMPORAL_ADDRESS)")
        from temporalio.client import Client

        client = await asyncio.wait_for(Client.connect(address), 10)
        app.state.temporal = client
    return client


def _task_queue(app: Any) -> str:
    from workflows.billing.types import TASK_QUEUE

    return getattr(app.state, "billing_task_queue", None) or TASK_QUEUE


def _sessions(request: Request[Any, Any, Any], write: bool = False) -> Any:
    return request.app.state.sessions() if write else request.app.state.read_sessions()


def _task(db: Any, tenant_id: str, task_id: str) -> Any:
    row = db.execute(select(B.finance_task).where(B.finance_task.c.id == task_id,
                                                  B.finance_task.c.tenant_id == tenant_id)).first()
    if row is None:
        raise NotFound("finance_task_not_found", f"finance task {task_id!r} not found")
    if row.status != "open":
        raise Conflict("task_closed", f"the finance task is already {row.status}")
    return row


_REFUSALS = {"forbidden": Forbidden, "four_eyes": Forbidden, "not_held": Conflict, "busy": Conflict,
             "not_manual": Conflict, "reason_required": InvalidInput, "invalid_amount": InvalidInput}


async def _update(request: Request[Any, Any, Any], task_id: str, name: str, arg: Any) -> tuple[Any, Any]:
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError

    from workflows.billing.workflows import BillingCycleWorkflow

    actor = actor_of(request)
    with _sessions(request) as db:
        task = _task(db, actor.tenant_id, task_id)
    client = await temporal_client(request)
    handle = client.get_workflow_handle(task.workflow_id)
    try:
        return task, await handle.execute_update(getattr(BillingCycleWorkflow, name), arg)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            kind = _REFUSALS.get(cause.type or "", Conflict)
            raise kind(cause.type or "refused", cause.message) from None
        raise


@route("GET", "/billing/tasks", operation_id="list_finance_tasks", roles="billing_read",
       summary="Open finance tasks: held invoices with the reasons and the previous period's comparison")
def list_finance_tasks(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                       status: str | None = "open") -> FinanceTaskPage:
    actor = actor_of(request)
    t, i = B.finance_task, B.invoice
    stmt = (select(t, i.c.currency, i.c.net_total, i.c.gross_total, i.c.local_start.label("period_start"),
                   i.c.local_end.label("period_end"))
            .join(i, i.c.id == t.c.invoice_id).where(t.c.tenant_id == actor.tenant_id))
    if status:
        stmt = stmt.where(t.c.status == status)
    if cursor:
        from store.repo import decode_cursor

        stmt = stmt.where(t.c.id > decode_cursor(cursor))
    with _sessions(request) as db:
        rows = db.execute(stmt.order_by(t.c.id).limit(limit + 1)).all()
    nxt = None
    if len(rows) > limit:
        from store.repo import encode_cursor

        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].id)
    return FinanceTaskPage(items=[FinanceTaskRead.model_validate(dict(r._mapping)) for r in rows], next_cursor=nxt)


@route("GET", "/billing/invoices/{invoice_id:str}", operation_id="get_invoice", roles="billing_read",
       summary="An invoice (draft, held, finalized or rejected) with its lines")
def get_invoice(request: Request[Any, Any, Any], invoice_id: str) -> InvoiceRead:
    actor = actor_of(request)
    with _sessions(request) as db:
        row = db.execute(select(B.invoice).where(B.invoice.c.id == invoice_id,
                                                 B.invoice.c.tenant_id == actor.tenant_id)).first()
        if row is None:
            raise NotFound("invoice_not_found", f"invoice {invoice_id!r} not found")
        lines = db.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == invoice_id)
                           .order_by(B.invoice_line.c.seq)).all()
    data = dict(row._mapping)
    data["lines"] = [dict(ln._mapping) for ln in lines]
    return InvoiceRead.model_validate(data)


@route("POST", "/billing/tasks/{task_id:str}/approve", operation_id="approve_finance_task",
       roles="billing_decide", summary="Approve a held invoice (approver role; not the person who adjusted it)")
async def approve_finance_task(request: Request[Any, Any, Any], task_id: str, data: Approve) -> Decision:
    from workflows.billing.types import ApproveInput

    actor = actor_of(request)
    task, res = await _update(request, task_id, "approve", ApproveInput(actor.user_id, actor.role, data.note))
    return _decided(request, task, str(res))


@route("POST", "/billing/tasks/{task_id:str}/reject", operation_id="reject_finance_task",
       roles="billing_decide", summary="Reject a held invoice with a reason (its sessions stay unbilled)")
async def reject_finance_task(request: Request[Any, Any, Any], task_id: str, data: Reject) -> Decision:
    from workflows.billing.types import RejectInput

    actor = actor_of(request)
    task, res = await _update(request, task_id, "reject", RejectInput(actor.user_id, actor.role, data.reason))
    return _decided(request, task, str(res))


def _decided(request: Request[Any, Any, Any], task: Any, result: str) -> Decision:
    """The decision with the totals of the invoice it decided (as the draft stood when decided)."""
    with _sessions(request) as db:
        inv = db.execute(select(B.invoice.c.net_total, B.invoice.c.gross_total)
                         .where(B.invoice.c.id == task.invoice_id)).first()
    if inv is None:
        return Decision(task_id=task.id, result=result)
    return Decision(task_id=task.id, result=result, net_total=str(inv.net_total), gross_total=str(inv.gross_total))


@route("POST", "/billing/tasks/{task_id:str}/adjust", operation_id="adjust_finance_task",
       roles="billing_adjust", summary="Add a manual posting to a held invoice (someone else must approve it)")
async def adjust_finance_task(request: Request[Any, Any, Any], task_id: str, data: Adjust) -> Decision:
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
        _account(db, actor.tenant_id, account_id)
        hid = B.place_hold(db.connection(), actor.tenant_id, account_id, data.kind, data.name, data.reason,
                           actor.user_id)
        from store.audit import append_audit

        append_audit(db, actor, "billing_hold.place", "billing_hold", hid, None, data.model_dump())
        db.commit()
        row = db.execute(select(B.billing_hold).where(B.billing_hold.c.id == hid)).one()
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
        tasks = db.execute(select(B.finance_task).where(B.finance_task.c.tenant_id == actor.tenant_id,
                                                        B.finance_task.c.account_id == row.account_id,
                                                        B.finance_task.c.status == "open")).all()
        after = db.execute(select(B.billing_hold).where(B.billing_hold.c.id == hold_id)).one()
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
    with _sessions(request) as db:
        acct = _account(db, actor.tenant_id, account_id)
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


# ---------------------------------------------------------------- service items and discounts
Amount = Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,12})?$", max_length=25, examples=["9.00"])]
Rate = Annotated[str, Field(pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$", max_length=8, examples=["19"],
                            description="percent")]
Per = Literal["month", "quarter", "year", "each"]
ServiceName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$", max_length=100,
                                   examples=["supervision.ac_charger"])]


class ServiceItemCreate(WriteModel):
    """Either ``service`` (a ruleset's ``<block>.<item>``, priced by the ruleset version each cycle
    uses) or an explicit ``unit_price`` with ``per`` and ``tax_rate``."""

    service: ServiceName | None = Field(None, description="a ruleset service, '<block>.<item>'")
    description: str = Field("", max_length=300, description="invoice text; default: the ruleset's")
    quantity: Amount = "1"
    unit_price: Amount | None = Field(None, description="net, in the account's currency, per 'per'")
    per: Per | None = Field(None, description="what unit_price covers; 'each' is a one-off charge")
    tax_rate: Rate | None = None
    currency: Currency | None = Field(None, description="if given, must be the account's currency")
    valid_from: date
    valid_to: date | None = Field(None, description="exclusive; none: until ended")


ServiceItemUpdate = update_of(ServiceItemCreate, "ServiceItemUpdate")


class ServiceItemRead(ReadModel):
    id: str
    account_id: str
    service: str | None
    description: str
    quantity: DecimalOut
    unit_price: DecimalOut | None
    per: str | None
    tax_rate: DecimalOut | None
    currency: str
    valid_from: date
    valid_to: date | None


class ServiceItemPage(ReadModel):
    items: list[ServiceItemRead]
    next_cursor: str | None = None


class DiscountCreate(WriteModel):
    """A discount on every invoice of its validity: ``percent`` of each VAT group's subtotal, or a
    fixed ``amount`` off the group of ``tax_rate`` (default: the largest group)."""

    description: str = Field(min_length=1, max_length=300)
    percent: Rate | None = None
    amount: Amount | None = Field(None, description="net, in the account's currency")
    tax_rate: Rate | None = Field(None, description="for a fixed amount: the VAT group it reduces")
    currency: Currency | None = Field(None, description="if given, must be the account's currency")
    valid_from: date
    valid_to: date | None = Field(None, description="exclusive; none: until ended")


class DiscountRead(ReadModel):
    id: str
    account_id: str
    description: str
    percent: DecimalOut | None
    amount: DecimalOut | None
    tax_rate: DecimalOut | None
    currency: str
    valid_from: date
    valid_to: date | None


class DiscountPage(ReadModel):
    items: list[DiscountRead]
    next_cursor: str | None = None


class End(WriteModel):
    valid_to: date | None = Field(None, description="the first day it no longer applies; default: today "
                                                    "in the account's time zone")


def _check_currency(acct: Any, currency: str | None) -> None:
    if currency is not None and currency != acct.currency:
        raise InvalidInput("currency_mismatch", f"the billing account is billed in {acct.currency}, not {currency}")


def _check_validity(valid_from: date, valid_to: date | None) -> None:
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidInput("end_before_start", "valid_to must be after valid_from")


def _ruleset_services(db: Any, tenant_id: str, on: date) -> dict[str, Any]:
    """The services of the tenant's ruleset version in force on ``on`` and of every later one."""
    from dsl.compiler import compile_ruleset
    from dsl.policies import interpret_policies
    from store.models import RulesetVersion

    rv = RulesetVersion.__table__  # type: ignore[attr-defined]
    rows = db.execute(select(rv.c.id, rv.c.source, rv.c.dsl_name, rv.c.effective_from)
                      .where(rv.c.tenant_id == tenant_id).order_by(rv.c.effective_from, rv.c.published_at)).all()
    cut = datetime.combine(min(on, date(9999, 12, 30)), datetime.min.time(), tzinfo=UTC)
    first = max([i for i, r in enumerate(rows) if r.effective_from <= cut], default=0)
    out: dict[str, Any] = {}
    for r in rows[first:]:
        res = compile_ruleset(r.source, f"{r.dsl_name or r.id}.evb")
        if res.ruleset is not None:
            out.update(interpret_policies(res.ruleset.ast)[0].services)
    return out


def _check_service_item(db: Any, tenant_id: str, acct: Any, v: dict[str, Any]) -> None:
    """The rules a service item keeps, on the values it will have after the write."""
    _check_currency(acct, v.get("currency"))
    _check_validity(v["valid_from"], v.get("valid_to"))
    if Decimal(v["quantity"]) <= 0:
        raise InvalidInput("invalid_quantity", "quantity must be positive")
    own = [k for k in ("unit_price", "per", "tax_rate") if v.get(k) is not None]
    if v.get("service"):
        if own:
            raise InvalidInput("service_item_priced_twice",
                               f"an item priced by the ruleset service '{v['service']}' cannot carry {', '.join(own)}")
        known = _ruleset_services(db, tenant_id, v["valid_from"])
        if v["service"] not in known:
            hint = suggest(v["service"], known) or (f"services: {', '.join(sorted(known)[:8])}" if known
                                                     else "no published ruleset version has a service block")
            raise InvalidInput("unknown_service", f"no ruleset version in force from {v['valid_from']} on has "
                                                  f"the service '{v['service']}'; {hint}")
    else:
        missing = [k for k in ("unit_price", "per", "tax_rate") if v.get(k) is None]
        if missing:
            raise InvalidInput("service_item_price_missing",
                               f"an item without a ruleset service needs {', '.join(missing)}")
        if not v.get("description"):
            raise InvalidInput("service_item_description_missing", "an explicitly priced item needs a description")
    if v.get("tax_rate") is not None and Decimal(v["tax_rate"]) > 100:
        raise InvalidInput("invalid_tax_rate", "tax_rate is a percentage between 0 and 100")


def _service_values(v: dict[str, Any]) -> dict[str, Any]:
    return dict(product=v.get("service") or "", description=v.get("description") or "",
                quantity=Decimal(v["quantity"]), unit_price=_dec(v.get("unit_price")), tax_rate=_dec(v.get("tax_rate")),
                unit=v.get("per") or "", valid_from=v["valid_from"], valid_to=v.get("valid_to"))


def _service_read(row: Any, currency: str) -> ServiceItemRead:
    return ServiceItemRead(id=row.id, account_id=row.account_id, service=row.product or None,
                           description=row.description, quantity=row.quantity, unit_price=row.unit_price,
                           per=row.unit or None, tax_rate=row.tax_rate, currency=currency,
                           valid_from=row.valid_from, valid_to=row.valid_to)


def _as_input(row: Any) -> dict[str, Any]:
    """A stored service item in the shape of ``ServiceItemCreate`` (for checks of an update)."""
    def s(x: Decimal | None) -> str | None:
        return None if x is None else format(x, "f")

    return dict(service=row.product or None, description=row.description, quantity=s(row.quantity),
                unit_price=s(row.unit_price), per=row.unit or None, tax_rate=s(row.tax_rate),
                valid_from=row.valid_from, valid_to=row.valid_to)


def _discount_read(row: Any, currency: str) -> DiscountRead:
    return DiscountRead(id=row.id, account_id=row.account_id, description=row.description, percent=row.percent,
                        amount=row.amount, tax_rate=row.tax_rate, currency=currency, valid_from=row.valid_from,
                        valid_to=row.valid_to)


def _check_discount(acct: Any, d: DiscountCreate) -> None:
    _check_currency(acct, d.currency)
    _check_validity(d.valid_from, d.valid_to)
    if (d.percent is None) == (d.amount is None):
        raise InvalidInput("discount_kind", "a discount is either a percent or a fixed amount (exactly one of them)")
    if d.percent is not None:
        if not 0 < Decimal(d.percent) <= 100:
            raise InvalidInput("invalid_percent", "percent must be above 0 and at most 100")
        if d.tax_rate is not None:
            raise InvalidInput("discount_tax_rate_with_percent",
                               "a percent discount reduces every VAT group; tax_rate is for fixed amounts")
    elif Decimal(d.amount or 0) <= 0:
        raise InvalidInput("invalid_amount", "amount must be positive")
    if d.tax_rate is not None and Decimal(d.tax_rate) > 100:
        raise InvalidInput("invalid_tax_rate", "tax_rate is a percentage between 0 and 100")


def _page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    from store.repo import encode_cursor

    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None


def _account_page(request: Request[Any, Any, Any], table: Any, account_id: str, limit: int, cursor: str | None,
                  active_on: date | None) -> tuple[Any, list[Any], str | None]:
    from store.repo import decode_cursor

    actor = actor_of(request)
    after = decode_cursor(cursor) if cursor else None
    with _sessions(request) as db:
        acct = _account(db, actor.tenant_id, account_id)
        rows = B.account_rows(db.connection(), table, actor.tenant_id, account_id, after_id=after, limit=limit + 1,
                              active_on=active_on)
    return (acct, *_page(rows, limit))


def _owned(db: Any, tenant_id: str, table: Any, row_id: str, what: str) -> tuple[Any, Any]:
    row = B.tenant_row(db.connection(), table, tenant_id, row_id)
    if row is None:
        raise NotFound(f"{what}_not_found", f"{what.replace('_', ' ')} {row_id!r} not found")
    return row, _account(db, tenant_id, row.account_id)


def _dec(x: str | None) -> Decimal | None:
    return None if x is None else Decimal(x)


def _add(request: Request[Any, Any, Any], table: Any, account_id: str, what: str, data: WriteModel,
         check: Callable[[Any, Any], dict[str, Any]]) -> tuple[Any, Any]:
    """Insert a service item or discount of the account (``check`` validates and gives the row's
    values), audit-logged in the same transaction."""
    from store.audit import append_audit

    actor = actor_of(request)
    with request.app.state.sessions() as db:
        acct = _account(db, actor.tenant_id, account_id)
        values = check(db, acct)
        rid = new_id("svc" if what == "service_item" else "dsc")
        db.execute(insert(table).values(id=rid, tenant_id=actor.tenant_id, account_id=account_id, **values))
        append_audit(db, actor, f"{what}.create", table.name, rid, None, data.model_dump())
        db.commit()
        return B.tenant_row(db.connection(), table, actor.tenant_id, rid), acct


def _end(request: Request[Any, Any, Any], table: Any, row_id: str, what: str, data: End) -> tuple[Any, Any]:
    """Set ``valid_to`` of a service item or discount (once), audit-logged."""
    from store.audit import append_audit

    actor = actor_of(request)
    with request.app.state.sessions() as db:
        row, acct = _owned(db, actor.tenant_id, table, row_id, what)
        if row.valid_to is not None:
            raise Conflict("already_ended", f"the {what.replace('_', ' ')} already ends on {row.valid_to}")
        end = data.valid_to or _today(acct.timezone)
        _check_validity(row.valid_from, end)
        db.execute(update(table).where(table.c.id == row_id).values(valid_to=end))
        append_audit(db, actor, f"{what}.end", table.name, row_id, {"valid_to": None}, {"valid_to": end})
        db.commit()
        return B.tenant_row(db.connection(), table, actor.tenant_id, row_id), acct


def _today(tzname: str) -> date:
    from zoneinfo import ZoneInfo

    try:
        return datetime.now(ZoneInfo(tzname)).date()
    except Exception:  # noqa: BLE001 - an account with an unusable zone ends on the UTC day
        return datetime.now(UTC).date()


ActiveOn = Annotated[date | None, Parameter(description="only what is valid on this day")]


@route("POST", "/billing/accounts/{account_id:str}/service-items", operation_id="create_service_item",
       roles="billing_write", status_code=201,
       summary="Add a service product to a billing account (a ruleset service by name, or an explicit price)")
def create_service_item(request: Request[Any, Any, Any], account_id: str, data: ServiceItemCreate) -> ServiceItemRead:
    def check(db: Any, acct: Any) -> dict[str, Any]:
        _check_service_item(db, acct.tenant_id, acct, data.model_dump())
        return _service_values(data.model_dump())

    row, acct = _add(request, B.service_item, account_id, "service_item", data, check)
    return _service_read(row, acct.currency)


@route("GET", "/billing/accounts/{account_id:str}/service-items", operation_id="list_service_items",
       roles="billing_read", summary="A billing account's service items, oldest first")
def list_service_items(request: Request[Any, Any, Any], account_id: str, limit: LimitParam = 50,
                       cursor: CursorParam = None, active_on: ActiveOn = None) -> ServiceItemPage:
    acct, rows, nxt = _account_page(request, B.service_item, account_id, limit, cursor, active_on)
    return ServiceItemPage(items=[_service_read(r, acct.currency) for r in rows], next_cursor=nxt)


@route("PATCH", "/billing/service-items/{service_item_id:str}", operation_id="update_service_item",
       roles="billing_write", summary="Change a service item (invoices already finalized stay as they are)")
def update_service_item(request: Request[Any, Any, Any], service_item_id: str,
                        data: ServiceItemUpdate) -> ServiceItemRead:  # type: ignore[valid-type]
    from store.audit import append_audit

    actor = actor_of(request)
    changes = data.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
    with request.app.state.sessions() as db:
        row, acct = _owned(db, actor.tenant_id, B.service_item, service_item_id, "service_item")
        before = _as_input(row)
        after = {**before, **changes}
        if changes.get("service"):  # naming a ruleset service drops the item's own price
            after.update({k: changes.get(k) for k in ("unit_price", "per", "tax_rate")})
        for k in ("quantity", "valid_from", "description"):
            if after.get(k) is None:
                after[k] = before[k]
        _check_service_item(db, actor.tenant_id, acct, after)
        db.execute(update(B.service_item).where(B.service_item.c.id == service_item_id)
                   .values(**_service_values(after)))
        append_audit(db, actor, "service_item.update", "billing_service_item", service_item_id, before, after)
        db.commit()
        row = B.tenant_row(db.connection(), B.service_item, actor.tenant_id, service_item_id)
    return _service_read(row, acct.currency)


@route("POST", "/billing/service-items/{service_item_id:str}/end", operation_id="end_service_item",
       roles="billing_write", summary="End a service item: it is not billed for periods from valid_to on")
def end_service_item(request: Request[Any, Any, Any], service_item_id: str, data: End) -> ServiceItemRead:
    row, acct = _end(request, B.service_item, service_item_id, "service_item", data)
    return _service_read(row, acct.currency)


@route("POST", "/billing/accounts/{account_id:str}/discounts", operation_id="create_discount",
       roles="billing_write", status_code=201,
       summary="Give a billing account a discount on each invoice of a validity (percent or a fixed amount)")
def create_discount(request: Request[Any, Any, Any], account_id: str, data: DiscountCreate) -> DiscountRead:
    def check(_db: Any, acct: Any) -> dict[str, Any]:
        _check_discount(acct, data)
        return dict(description=data.description, percent=_dec(data.percent), amount=_dec(data.amount),
                    tax_rate=_dec(data.tax_rate), valid_from=data.valid_from, valid_to=data.valid_to)

    row, acct = _add(request, B.account_discount, account_id, "discount", data, check)
    return _discount_read(row, acct.currency)


@route("GET", "/billing/accounts/{account_id:str}/discounts", operation_id="list_discounts",
       roles="billing_read", summary="A billing account's period discounts, oldest first")
def list_discounts(request: Request[Any, Any, Any], account_id: str, limit: LimitParam = 50,
                   cursor: CursorParam = None, active_on: ActiveOn = None) -> DiscountPage:
    acct, rows, nxt = _account_page(request, B.account_discount, account_id, limit, cursor, active_on)
    return DiscountPage(items=[_discount_read(r, acct.currency) for r in rows], next_cursor=nxt)


@route("POST", "/billing/discounts/{discount_id:str}/end", operation_id="end_discount",
       roles="billing_write", summary="End a discount: invoices of periods from valid_to on no longer get it")
def end_discount(request: Request[Any, Any, Any], discount_id: str, data: End) -> DiscountRead:
    row, acct = _end(request, B.account_discount, discount_id, "discount", data)
    return _discount_read(row, acct.currency)


# ---------------------------------------------------------------- schedules
class ScheduleSync(ReadModel):
    """How many accounts' schedules were created, updated, left as they were, paused (closed
    accounts), deleted (ad-hoc or deleted accounts), had none to touch, or failed."""

    created: int
    updated: int
    unchanged: int
    paused: int
    deleted: int
    absent: int
    failed: int


@route("POST", "/billing/schedules/sync", operation_id="sync_billing_schedules", roles="admin", status_code=200,
       summary="Reconcile the Temporal Schedules of all billing accounts (idempotent)")
async def sync_billing_schedules(request: Request[Any, Any, Any]) -> ScheduleSync:
    from workflows.billing.schedules import sync_schedules

    actor = actor_of(request)
    client = await temporal_client(request)
    counts = await sync_schedules(client, request.app.state.engine, actor.tenant_id, _task_queue(request.app))
    return ScheduleSync(**counts)


class ScheduleResync(ReadModel):
    """What publishing a ruleset version did to the tenant's billing Schedules: ``not_configured``
    (no Temporal server: nothing), ``not_needed`` (its billing policies' cycle, cut-off day and time
    zone are those of the version it follows), ``synced`` (in force now: resynced at once, with the
    counts of ``POST /billing/schedules/sync``), ``deferred`` (in force from ``effective_from``: a
    durable workflow resyncs then), ``failed`` (Temporal could not be reached: the version is
    published all the same; ``POST /billing/schedules/sync`` repairs)."""

    status: Literal["not_configured", "not_needed", "synced", "deferred", "failed"]
    detail: str
    effective_from: datetime | None = None
    counts: ScheduleSync | None = None


# a publication waits this long for an immediate resync before it answers with a warning
RESYNC_TIMEOUT_S = 60.0


async def resync_after_publish(app: Any, tenant_id: str, version_id: str) -> ScheduleResync:
    """Resync the tenant's schedules after ``version_id`` was published (and committed), when it
    changes a billing policy: now if it is in force now, else when it takes effect. Never raises:
    the publication stands whatever Temporal says."""
    from workflows.billing.schedules import billing_policy_change, sync_schedules

    if not _temporal_configured(app):
        return ScheduleResync(status="not_configured", detail="no Temporal server is configured: schedules unchanged")
    change = await asyncio.to_thread(billing_policy_change, app.state.engine, tenant_id, version_id)
    if change is None:
        return ScheduleResync(status="not_needed",
                              detail="the billing policies' cycle, cut-off day and time zone are unchanged")
    queue = _task_queue(app)
    try:
        client = await _app_client(app)
        if change.effective_from <= datetime.now(UTC):
            counts = await asyncio.wait_for(sync_schedules(client, app.state.engine, tenant_id, queue),
                                            RESYNC_TIMEOUT_S)
            return ScheduleResync(status="synced", detail="the tenant's billing schedules follow the new policy",
                                  effective_from=change.effective_from, counts=ScheduleSync(**counts))
        await _start_deferred_sync(client, tenant_id, version_id, change.effective_from, queue)
    except Exception as exc:  # noqa: BLE001 - the version is published; the manual sync repairs
        log.warning("ruleset version %s changes billing policies; schedules not resynced: %r", version_id, exc)
        return ScheduleResync(status="failed", effective_from=change.effective_from,
                              detail=f"billing schedules not resynced ({type(exc).__name__}: {exc}); "
                                     "run POST /billing/schedules/sync once Temporal is reachable"
                                     + ("" if change.effective_from <= datetime.now(UTC)
                                        else " and again after the version takes effect"))
    return ScheduleResync(status="deferred", effective_from=change.effective_from,
                          detail="the billing schedules are resynced when the version takes effect")


async def _start_deferred_sync(client: Any, tenant_id: str, version_id: str, at: datetime, queue: str) -> None:
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from workflows.billing.schedule_sync import ScheduleSyncWorkflow, schedule_sync_workflow_id
    from workflows.billing.types import ScheduleSyncInput

    try:
        await client.start_workflow(ScheduleSyncWorkflow.run, ScheduleSyncInput(tenant_id, at.isoformat(), queue,
                                                                                 version_id),
                                    id=schedule_sync_workflow_id(tenant_id, version_id), task_queue=queue)
    except WorkflowAlreadyStartedError:
        pass  # a retried publication: the version's sync is already waiting


def follow_schedules(app: Any) -> Any:
    """ASGI middleware for the billing-account routes: after a successful write, the account's
    Temporal Schedule follows it (created or updated for an active account, paused when it is
    closed, deleted with it). Without a Temporal server configured it does nothing at all; a
    schedule that cannot be written is logged (``POST /billing/schedules/sync`` repairs it) and never
    fails the account write, which is committed by then."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") == "GET" or not _temporal_configured(scope["app"]):
            await app(scope, receive, send)
            return
        sent: list[Any] = []

        async def keep(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, keep)
        try:
            await _follow_written(scope, sent)
        except Exception as exc:  # noqa: BLE001 - see above: the write stands, sync repairs the schedule
            log.warning("billing account schedule not updated: %s", exc)
        for message in sent:
            await send(message)

    return middleware


async def _follow_written(scope: Any, sent: list[Any]) -> None:
    import json

    from workflows.billing.schedules import follow_account, plan_schedules

    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None or not 200 <= start["status"] < 300:
        return
    account_id = scope.get("path_params", {}).get("billing_account_id")
    if account_id is None:  # a create: the new id is in the response
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        account_id = json.loads(body)["id"]
    app, tenant_id = scope["app"], scope["user"].tenant_id
    [plan] = await asyncio.to_thread(plan_schedules, app.state.engine, tenant_id, [account_id])
    client = await _app_client(app)
    outcome = await follow_account(client, tenant_id, plan, _task_queue(app))
    log.info("billing account %s: schedule %s", account_id, outcome)


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


def _account(db: Any, tenant_id: str, account_id: str) -> Any:
    acct = db.execute(select(BillingAccount.__table__).where(  # type: ignore[attr-defined]
        BillingAccount.__table__.c.id == account_id,  # type: ignore[attr-defined]
        BillingAccount.__table__.c.tenant_id == tenant_id)).first()  # type: ignore[attr-defined]
    if acct is None:
        raise NotFound("billing_account_not_found", f"billing account {account_id!r} not found")
    return acct


router = Router(path="/", route_handlers=[list_finance_tasks, get_invoice, approve_finance_task,
                                          reject_finance_task, adjust_finance_task, reprice_finance_task,
                                          place_billing_hold,
                                          release_billing_hold, start_ad_hoc_cycle, create_service_item,
                                          list_service_items, update_service_item, end_service_item,
                                          create_discount, list_discounts, end_discount, sync_billing_schedules],
                tags=["billing"])
