"""Money going out: refunds of credit balances and credit notes (payables), payout runs (a
``PayoutRunWorkflow`` each: one SEPA credit transfer file, pain.001.001.09, approved with four
eyes) and the archived files.

A refund request books the refund on the receivables subledger at once (the credit is consumed:
never more than there is, in the account's currency, once per idempotency key) and leaves a
payable ``requested``; the next payout run of the tenant's account pays it. The bank statement's
debit marks it paid; a transfer the payee's bank sends back puts the credit back. SQL lives in
``store.payables``; every change is in the audit chain.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from pydantic import Field

from api.areas.billing.common import decide_approval_run, start_approval_run
from api.auth import ROLE_SETS, actor_of
from api.crud import CursorParam, ReadModel, WriteModel, _problems, open_scope, route
from api.schemas import DecimalOut
from api.validation import Bic, Currency, Iban
from runtime.money import CurrencyMismatch
from store import payables as P
from store.errors import Conflict, InvalidInput, NotFound
from store.repo import decode_cursor, encode_cursor

__all__ = ["router"]

ROLE_SETS.setdefault("payouts_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("payouts_write", ("admin", "operator", "approver"))
ROLE_SETS.setdefault("payouts_schedule", ("admin",))  # when money leaves by itself: the tenant's admin
ROLE_SETS.setdefault("payouts_decide", ("approver", "admin"))  # the workflow decides: approvers only, never
# the starter nor anyone who requested a payment in the run (as collections)

Amount = Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,2})?$", examples=["12.50"])]


class RefundCreate(WriteModel):
    account_id: str = Field(min_length=1, max_length=64, description="the billing account whose credit is refunded")
    credit_note: str | None = Field(None, min_length=1, max_length=40,
                                    description="refund what this credit note (its id or number) left to the "
                                                "customer's good; without it, the account's credit balance")
    amount: Amount | None = Field(None, description="default: all the credit there is")
    currency: Currency | None = Field(None, description="checked against the account's currency")
    iban: Iban = Field("", description="the payee's account (default: the account's SEPA mandate)")
    bic: Bic = ""
    payee_name: str = Field("", max_length=70, description="default: the mandate's debtor, else the customer")
    remittance: str = Field("", max_length=140, description="what the payee reads (default: 'Refund' and the "
                                                            "credit note or customer)")
    booked_on: date | None = Field(None, description="the refund's booking day on the subledger (default today)")
    idempotency_key: str = Field(min_length=1, max_length=150,
                                 description="the same key again answers the first payable, 200")


class PayableRead(ReadModel):
    id: str
    kind: str
    payee_kind: str
    payee_id: str
    account_id: str | None
    payee_name: str
    iban: str
    bic: str
    amount: DecimalOut
    currency: str
    remittance: str
    source_kind: str
    source_id: str
    status: Literal["requested", "in_run", "submitted", "paid", "returned"]
    end_to_end_id: str
    paid_on: date | None
    return_reason: str
    requested_by: str
    created_at: datetime
    updated_at: datetime


class PayablePage(ReadModel):
    items: list[PayableRead]
    next_cursor: str | None = None


PayableStatus = Literal["requested", "in_run", "submitted", "paid", "returned"]


@route("POST", "/payouts/refunds", operation_id="request_refund", roles="payouts_write", status_code=201,
       summary="Refund a billing account's credit balance, or what a credit note left to the customer's good, by "
               "SEPA credit transfer: the credit is consumed now (never more than there is), the payable waits "
               "for the next payout run. Once per idempotency_key")
def request_refund(request: Request[Any, Any, Any], data: RefundCreate) -> Response[PayableRead]:
    amount = Decimal(data.amount) if data.amount is not None else None
    if amount is not None and amount <= 0:
        raise InvalidInput("invalid_amount", "amount must be positive",
                           errors=[{"key": "amount", "message": "must be positive"}])
    with open_scope(request) as scope:
        conn = scope.db.connection()
        iban, bic, name = data.iban, data.bic, data.payee_name
        if not iban:
            found = P.default_payee_account(conn, scope.tenant_id, data.account_id)
            if found is None:
                raise InvalidInput("payee_iban_required", "the account has no SEPA mandate: name the IBAN to "
                                   "refund to", errors=[{"key": "iban", "message": "required"}])
            iban, bic, name = found[0], bic or found[1], name or found[2]
        remittance = data.remittance or f"Refund {data.credit_note or 'credit balance'}"
        try:
            row, duplicate = P.request_refund(
                conn, scope.tenant_id, key=f"refund:{data.idempotency_key}", account_id=data.account_id,
                currency=data.currency, amount=amount, credit_note=data.credit_note, iban=iban, bic=bic,
                payee_name=name, remittance=remittance, on=data.booked_on or date.today(),
                requested_by=scope.actor.user_id)
        except P.PayableNotFound as exc:
            raise NotFound(exc.code, exc.message) from None
        except CurrencyMismatch as exc:
            raise InvalidInput("currency_mismatch", str(exc), errors=[{"key": "currency", "message": str(exc)}]) \
                from None
        except P.InsufficientCredit as exc:
            raise Conflict("insufficient_credit", str(exc)) from None
        if not duplicate:
            scope.audit("payable.request_refund", "payable", row.id, None,
                        {**data.model_dump(mode="json"), "iban": iban, "amount": format(row.amount, "f"),
                         "currency": row.currency})
            scope.commit()
    return Response(PayableRead.model_validate(dict(row._mapping)), status_code=200 if duplicate else 201)


@route("GET", "/payouts/payables", operation_id="list_payables", roles="payouts_read",
       summary="Payables (refunds, host credit notes), oldest first, filtered by status, kind, payee or account; paged by cursor")
def list_payables(request: Request[Any, Any, Any], status: PayableStatus | None = None,
                  kind: Literal["refund", "host_credit"] | None = None, payee_id: str | None = None, account_id: str | None = None,
                  cursor: CursorParam = None, limit: Annotated[int, Parameter(ge=1, le=500)] = 100) -> PayablePage:
    with open_scope(request) as scope:
        rows = P.list_payables(scope.db.connection(), scope.tenant_id, status=status, kind=kind, payee_id=payee_id,
                               account_id=account_id, after_id=decode_cursor(cursor) if cursor else None,
                               limit=limit + 1)
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return PayablePage(items=[PayableRead.model_validate(dict(r._mapping)) for r in rows[:limit]], next_cursor=nxt)


@route("GET", "/payouts/payables/{payable_id:str}", operation_id="get_payable", roles="payouts_read",
       summary="A payable with its status and its transfer's EndToEndId")
def get_payable(request: Request[Any, Any, Any], payable_id: str) -> PayableRead:
    with open_scope(request) as scope:
        row = P.get_payable(scope.db.connection(), scope.tenant_id, payable_id)
    if row is None:
        raise NotFound("payable_not_found", f"payable {payable_id!r} not found")
    return PayableRead.model_validate(dict(row._mapping))


# ------------------------------------------------------------------ runs and files
class PayoutRunStart(WriteModel):
    creditor_account_id: str = Field(min_length=1, max_length=40,
                                     description="the tenant's account the transfers leave from (a SEPA creditor "
                                                 "account)")
    as_of: date | None = None
    key: str = Field("", max_length=60, description="names the run (default: the as_of day); the same key "
                                                    "again answers the same run")


class PayoutRunStarted(ReadModel):
    workflow_id: str


class PayoutRunRead(ReadModel):
    id: str
    creditor_account_id: str
    workflow_id: str
    status: str
    as_of: date
    pain_version: str
    message_id: str
    items: int
    total: DecimalOut
    currency: str
    file_id: str | None
    started_by: str
    decided_by: str
    decision_reason: str
    created_at: datetime
    decided_at: datetime | None


class PayoutRunPage(ReadModel):
    items: list[PayoutRunRead]
    next_cursor: str | None = None


class PayoutItemRead(ReadModel):
    payable_id: str
    kind: str
    payee_name: str
    iban: str
    end_to_end_id: str
    amount: DecimalOut
    currency: str
    status: str


class PayoutRunDetail(PayoutRunRead):
    payout_items: list[PayoutItemRead]


class PayoutDecisionIn(WriteModel):
    reason: str = Field("", max_length=1000)


@route("POST", "/payouts/runs", operation_id="start_payout_run", roles="payouts_write", status_code=202,
       summary="Start a payout run for one of the tenant's accounts: every requested payable in its currency "
               "goes into one pain.001 that someone else approves")
async def start_payout_run(request: Request[Any, Any, Any], data: PayoutRunStart) -> PayoutRunStarted:
    from workflows.payouts.types import PayoutRunInput, payout_workflow_id
    from workflows.payouts.workflows import PayoutRunWorkflow

    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        if not P.creditor_account_exists(db.connection(), actor.tenant_id, data.creditor_account_id):
            raise NotFound("creditor_account_not_found", f"creditor account {data.creditor_account_id!r} not found")
    as_of = data.as_of or date.today()
    wid = payout_workflow_id(actor.tenant_id, data.creditor_account_id, data.key or as_of.isoformat())
    await start_approval_run(request, PayoutRunWorkflow.run, PayoutRunInput(
        actor.tenant_id, data.creditor_account_id, as_of.isoformat(), actor.user_id), wid, "payout_run.start",
        data.model_dump(mode="json"))
    return PayoutRunStarted(workflow_id=wid)


@route("GET", "/payouts/runs", operation_id="list_payout_runs", roles="payouts_read",
       summary="Payout runs, newest first; status=awaiting_approval lists finance's open tasks")
def list_payout_runs(request: Request[Any, Any, Any], status: str | None = None, workflow_id: str | None = None,
                     cursor: CursorParam = None,
                     limit: Annotated[int, Parameter(ge=1, le=500)] = 100) -> PayoutRunPage:
    with open_scope(request) as scope:
        rows = P.list_runs(scope.db.connection(), scope.tenant_id, status=status, workflow_id=workflow_id,
                           before_id=decode_cursor(cursor) if cursor else None, limit=limit + 1)
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return PayoutRunPage(items=[PayoutRunRead.model_validate(dict(r._mapping)) for r in rows[:limit]],
                         next_cursor=nxt)


def _run(conn: Any, tenant_id: str, run_id: str) -> Any:
    row = P.get_run(conn, tenant_id, run_id)
    if row is None:
        raise NotFound("payout_run_not_found", f"payout run {run_id!r} not found")
    return row


@route("GET", "/payouts/runs/{payout_run_id:str}", operation_id="get_payout_run", roles="payouts_read",
       summary="A payout run with its items (proposed, submitted, paid, returned, dropped, rejected)")
def get_payout_run(request: Request[Any, Any, Any], payout_run_id: str) -> PayoutRunDetail:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        row = _run(conn, scope.tenant_id, payout_run_id)
        items = P.run_items(conn, payout_run_id)
    return PayoutRunDetail(**PayoutRunRead.model_validate(dict(row._mapping)).model_dump(),
                           payout_items=[PayoutItemRead.model_validate(dict(i._mapping)) for i in items])


async def decide_payout_run(request: Request[Any, Any, Any], run_id: str, name: str, reason: str) -> PayoutRunRead:
    from workflows.payouts.workflows import PayoutRunWorkflow

    tenant_id = actor_of(request).tenant_id
    with request.app.state.read_sessions() as db:
        run = _run(db.connection(), tenant_id, run_id)
    await decide_approval_run(request, PayoutRunWorkflow, run, name, reason, "payout")
    with request.app.state.read_sessions() as db:
        return PayoutRunRead.model_validate(dict(_run(db.connection(), tenant_id, run_id)._mapping))


@route("POST", "/payouts/runs/{payout_run_id:str}/approve", operation_id="approve_payout_run",
       roles="payouts_decide",
       summary="Approve a payout run (approver; not the person who started it, nor anyone who requested a payment "
               "in it): the pain.001 is built, archived, and its payables are submitted")
async def approve_payout_run(request: Request[Any, Any, Any], payout_run_id: str,
                             data: PayoutDecisionIn) -> PayoutRunRead:
    return await decide_payout_run(request, payout_run_id, "approve", data.reason)


@route("POST", "/payouts/runs/{payout_run_id:str}/reject", operation_id="reject_payout_run",
       roles="payouts_decide", summary="Reject a payout run with a reason: its payables wait for the next run")
async def reject_payout_run(request: Request[Any, Any, Any], payout_run_id: str,
                            data: PayoutDecisionIn) -> PayoutRunRead:
    return await decide_payout_run(request, payout_run_id, "reject", data.reason)


class PayoutScheduleIO(WriteModel):
    day_of_month: int | None = Field(None, ge=1, le=31,
                                     description="the day of the month the schedule starts a payout run per account "
                                                 "with requested payables (past a short month's end: its last day); "
                                                 "null: off, runs start on demand only")


@route("GET", "/payouts/schedule", operation_id="get_payout_schedule", roles="payouts_read",
       summary="The day of the month the tenant's payout runs start by themselves (null: on demand only)")
def get_payout_schedule(request: Request[Any, Any, Any]) -> PayoutScheduleIO:
    with open_scope(request) as scope:
        return PayoutScheduleIO(day_of_month=P.payout_day(scope.db.connection(), scope.tenant_id))


@route("PUT", "/payouts/schedule", operation_id="set_payout_schedule", roles="payouts_schedule",
       summary="Set the monthly payout day (1-31) or null for off: the schedule's round (every "
               "EVBILL_PAYOUT_SWEEP_SECONDS) starts one run per account and month once the day has come, each "
               "approved with four eyes as any run")
def set_payout_schedule(request: Request[Any, Any, Any], data: PayoutScheduleIO) -> PayoutScheduleIO:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        before = P.payout_day(conn, scope.tenant_id)
        P.set_payout_day(conn, scope.tenant_id, data.day_of_month, scope.actor.user_id)
        scope.audit("payout.schedule", "payout_schedule", scope.tenant_id, {"day_of_month": before},
                    {"day_of_month": data.day_of_month})
        scope.commit()
    return data


_DOWNLOAD = {200: ResponseSpec(data_container=bytes, media_type="application/xml",
                               description="the archived pain.001 file; ETag is its SHA-256")}


@route("GET", "/payouts/files/{payout_file_id:str}", operation_id="download_payout_file", roles="payouts_read",
       summary="Download an archived pain.001 file (immutable; ETag = sha256)",
       responses={**_problems(400, 401, 403, 404, 409, 422), **_DOWNLOAD})
def download_payout_file(request: Request[Any, Any, Any], payout_file_id: str) -> Response[bytes]:
    with open_scope(request) as scope:
        row = P.get_file(scope.db.connection(), scope.tenant_id, payout_file_id)
    if row is None:
        raise NotFound("payout_file_not_found", f"payout file {payout_file_id!r} not found")
    return Response(bytes(row.content), media_type="application/xml",
                    headers={"ETag": f'"{row.sha256}"', "Content-Disposition": f'attachment; filename="{row.name}"',
                             "Cache-Control": "private, max-age=31536000, immutable"})


router = Router(path="/", route_handlers=[request_refund, list_payables, get_payable, start_payout_run,
                                          list_payout_runs, get_payout_run, approve_payout_run, reject_payout_run,
                                          download_payout_file, get_payout_schedule, set_payout_schedule],
                tags=["payouts"])
