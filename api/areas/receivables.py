"""Receivables: open items per customer or account (open, overdue, settled, credit balances),
aged receivables, a customer's account statement, and payments booked by hand (a transfer an
operator sees on the account before the bank statement arrives, cash at the counter).

What is open is always derived from the appended entries (``store.receivables``); a payment is
booked once per idempotency key, and each booking is in the audit chain.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Request, Response, Router
from litestar.params import Parameter
from pydantic import Field

from api.auth import ROLE_SETS, actor_of
from api.crud import ReadModel, WriteModel, open_scope, route
from api.schemas import Currency, DecimalOut
from store import receivables as R
from store.errors import InvalidInput, NotFound
from store.models import BillingAccount, Customer

__all__ = ["router"]

ROLE_SETS.setdefault("receivables_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("receivables_write", ("admin", "operator", "approver"))
ROLE_SETS.setdefault("receivables_write_off", ("admin", "approver"))  # finance gives a receivable up


class ItemRead(ReadModel):
    id: str
    customer_id: str
    account_id: str
    kind: Literal["invoice", "credit_balance", "dunning_fee", "interest", "flat_fee", "card_charge", "clearing_invoice"]
    invoice_id: str | None
    number: str
    currency: str
    amount: DecimalOut
    open: DecimalOut
    issue_date: date
    due_date: date
    status: Literal["open", "overdue", "settled", "credit"]


class ItemList(ReadModel):
    items: list[ItemRead]
    totals: dict[str, DecimalOut] = Field(description="what is open per currency (credit balances count negative)")


class AgingRead(ReadModel):
    as_of: date
    currencies: dict[str, dict[str, DecimalOut]] = Field(
        description="per currency: not_due, 0_30, 31_60, 61_90 and over_90 days past due")


class StatementLine(ReadModel):
    booked_on: date
    kind: str
    event: str
    item_id: str
    item_kind: str
    number: str
    reference: str
    debit: DecimalOut
    credit: DecimalOut
    balance: DecimalOut


class AccountStatement(ReadModel):
    customer_id: str
    currency: str
    start: date | None
    end: date | None
    opening_balance: DecimalOut
    lines: list[StatementLine]
    closing_balance: DecimalOut


Amount = Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,6})?$", examples=["12.83"])]


class PaymentCreate(WriteModel):
    account_id: str = Field(min_length=1, max_length=64)
    amount: Amount = Field(description="received, a positive decimal in the account's currency")
    currency: Currency
    booked_on: date
    reference: str = Field("", max_length=300, description="the payer's text or the bank reference")
    invoice_numbers: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=100, description="invoices it pays first (else oldest due first)")
    idempotency_key: str = Field(min_length=1, max_length=150,
                                 description="booking the same key again answers the first booking, 200")


class PaymentBooked(ReadModel):
    event_id: str
    amount: DecimalOut
    currency: str
    allocations: list[dict[str, str]]
    credit_item_id: str | None
    credit_balance: DecimalOut = Field(description="what was left over and became a credit balance")
    duplicate: bool


Status = Literal["open", "overdue", "settled", "credit", "unsettled", "all"]


@route("GET", "/receivables/items", operation_id="list_receivable_items", roles="receivables_read",
       summary="Open items with what is open on each, by due date; filter by customer, account, currency, "
               "status (open, overdue, settled, credit, unsettled = not settled, all) and due date")
def list_receivable_items(request: Request[Any, Any, Any], customer_id: str | None = None,
                          account_id: str | None = None, currency: str | None = None, status: Status = "unsettled",
                          due_before: date | None = None,
                          as_of: Annotated[date | None, Parameter(description="overdue relative to this day "
                                                                              "(default today, UTC)")] = None,
                          limit: Annotated[int, Parameter(ge=1, le=1000)] = 200) -> ItemList:
    day = as_of or date.today()
    with open_scope(request) as scope:
        states = R.item_states(scope.db.connection(), scope.tenant_id, customer_id=customer_id,
                               account_id=account_id, currency=currency)
    rows = []
    totals: dict[str, Decimal] = {}
    for s in states:
        d = s.to_dict(day)
        if status == "unsettled" and d["status"] == "settled":
            continue
        if status not in ("all", "unsettled") and d["status"] != status:
            continue
        if due_before is not None and s.due_date >= due_before:
            continue
        totals[s.currency] = totals.get(s.currency, Decimal(0)) + s.open
        rows.append(ItemRead.model_validate(d))
    return ItemList(items=rows[:limit], totals=totals)


@route("GET", "/receivables/aging", operation_id="get_aged_receivables", roles="receivables_read",
       summary="Aged receivables per currency: what is open by days past due")
def get_aged_receivables(request: Request[Any, Any, Any], as_of: date | None = None) -> AgingRead:
    day = as_of or date.today()
    with open_scope(request) as scope:
        return AgingRead(as_of=day, currencies=R.aged_receivables(scope.db.connection(), scope.tenant_id, day))


@route("GET", "/customers/{customer_id:str}/account-statement", operation_id="get_account_statement",
       roles="receivables_read", sync_to_thread=True,  # the PDF takes a WeasyPrint render: not on the event loop
       summary="A customer's account statement in one currency: opening balance, each booking with the "
               "balance after it, closing balance ([start, end) by booking day). As JSON, or as the branded "
               "PDF in the customer's language (format=pdf or Accept: application/pdf), which also lists "
               "the items still open with their due dates and days overdue as of as_of")
def get_account_statement(request: Request[Any, Any, Any], customer_id: str, currency: str = "EUR",
                          start: date | None = None, end: date | None = None,
                          format: Annotated[Literal["json", "pdf"] | None, Parameter(
                              description="json (default) or pdf; without it the Accept header decides")] = None,
                          as_of: Annotated[date | None, Parameter(
                              description="the PDF's date; days overdue count to it (default today, UTC)")] = None,
                          ) -> Response[AccountStatement]:
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end_before_start", "end must be after start (the period is [start, end))")
    if format is None:
        format = "pdf" if request.accept.best_match(["application/json", "application/pdf"],
                                                    default="application/json") == "application/pdf" else "json"
    with open_scope(request) as scope:
        scope.repo(Customer, "customer", "cus").get(customer_id)
        conn = scope.db.connection()
        if format == "pdf":
            from runtime.documents.account_statement import render_account_statement
            from store.documents import load_account_statement

            doc = load_account_statement(conn, scope.tenant_id, customer_id, currency, start, end,
                                         as_of or date.today())
        else:
            opening, lines, closing = R.statement_lines(conn, scope.tenant_id, customer_id, currency, start, end)
    if format == "pdf":
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"account-statement-{doc.customer_number or customer_id}-{doc.as_of}.pdf")
        return Response(render_account_statement(doc), media_type="application/pdf",  # type: ignore[arg-type]
                        headers={"Content-Disposition": f'inline; filename="{name}"'})
    return Response(AccountStatement(customer_id=customer_id, currency=currency, start=start, end=end,
                                     opening_balance=opening, lines=[StatementLine.model_validate(ln) for ln in lines],
                                     closing_balance=closing))


@route("POST", "/receivables/payments", operation_id="book_payment", roles="receivables_write", status_code=201,
       summary="Book a payment received for a billing account: it settles the named invoices first, then "
               "the oldest due; an overpayment becomes a credit balance. Once per idempotency_key")
def book_payment(request: Request[Any, Any, Any], data: PaymentCreate) -> Response[PaymentBooked]:
    from litestar.background_tasks import BackgroundTask

    from api.areas.dunning import tell_paid_cases
    from store.types import utcnow

    since = utcnow()
    amount = Decimal(data.amount)
    if amount <= 0:
        raise InvalidInput("invalid_amount", "amount must be positive", errors=[{"key": "amount",
                                                                              "message": "must be positive"}])
    with open_scope(request) as scope:
        acct = scope.repo(BillingAccount, "billing_account", "acc").get(data.account_id)
        if data.currency != acct.currency:
            raise InvalidInput("currency_mismatch", f"the billing account is billed in {acct.currency}, "
                                                    f"not {data.currency}")
        conn = scope.db.connection()
        key = f"manual:{data.idempotency_key}"
        done = R.event(conn, scope.tenant_id, key)
        if done is None:
            by_number = {s.number: s.id for s in R.item_states(conn, scope.tenant_id, account_id=acct.id,
                                                               currency=acct.currency) if s.kind == "invoice"}
            missing = [n for n in data.invoice_numbers if n not in by_number]
            if missing:
                raise NotFound("invoice_not_found", f"the account has no open item for {', '.join(missing)}")
            done = R.book_payment(conn, scope.tenant_id, key=key, customer_id=acct.customer_id,
                                  account_id=acct.id, amount=amount, currency=acct.currency,
                                  booked_on=data.booked_on, reference=data.reference,
                                  targets=[by_number[n] for n in data.invoice_numbers],
                                  detail={"source": "manual"}, created_by=scope.actor.user_id)
            scope.audit("receivable.payment", "receivable_event", done.event_id, None, data.model_dump())
            scope.commit()
    out = PaymentBooked(event_id=done.event_id, amount=done.amount, currency=done.currency,
                        allocations=[{"item_id": i, "kind": k, "amount": format(a, "f")} for i, k, a in done.entries],
                        credit_item_id=done.credit_item_id, credit_balance=done.left, duplicate=done.duplicate)
    # the customer's open dunning case re-reads at once (after the answer is sent)
    return Response(out, status_code=200 if done.duplicate else 201,
                    background=None if done.duplicate else BackgroundTask(
                        tell_paid_cases, request.app, actor_of(request).tenant_id, since))


class WriteOffCreate(WriteModel):
    reason: str = Field(min_length=1, max_length=1000, description="why it is given up (insolvency, ...)")
    amount: Amount | None = Field(None, description="what is given up (gross); default all that is open")
    booked_on: date | None = Field(None, description="the write-off's date (default today, UTC)")
    idempotency_key: str = Field(min_length=1, max_length=150,
                                 description="booking the same key again answers the first booking, 200")


class VatCorrection(ReadModel):
    rate: DecimalOut
    vat: DecimalOut


class WriteOffBooked(ReadModel):
    event_id: str
    item_id: str
    amount: DecimalOut
    currency: str
    vat_corrected: list[VatCorrection] = Field(description="the VAT payable reduced, per rate (§ 17 UStG)")
    open: DecimalOut = Field(description="what is open on the item after the write-off")
    duplicate: bool


@route("POST", "/receivables/items/{item_id:str}/write-off", operation_id="write_off_receivable_item",
       roles="receivables_write_off", status_code=201,
       summary="Write an open item off, in full or in part (finance): an entry appended to the item, the "
               "journal's receivable credited, the VAT share corrected and the net booked as a bad debt; "
               "the customer's dunning case re-reads and closes when nothing overdue remains. Once per "
               "idempotency_key")
def write_off_item(request: Request[Any, Any, Any], item_id: str, data: WriteOffCreate) -> Response[WriteOffBooked]:
    from litestar.background_tasks import BackgroundTask

    from api.areas.dunning import tell_paid_cases
    from store.types import utcnow

    since = utcnow()
    amount = Decimal(data.amount) if data.amount is not None else None
    if amount is not None and amount <= 0:
        raise InvalidInput("invalid_amount", "amount must be positive", errors=[{"key": "amount",
                                                                              "message": "must be positive"}])
    with open_scope(request) as scope:
        conn = scope.db.connection()
        key = f"write_off:{item_id}:{data.idempotency_key}"
        try:
            done = R.book_write_off(conn, scope.tenant_id, key=key, item_id=item_id, amount=amount,
                                    booked_on=data.booked_on or date.today(), reason=data.reason.strip(),
                                    created_by=scope.actor.user_id)
        except LookupError:
            raise NotFound("receivable_item_not_found", f"open item {item_id!r} not found") from None
        except R.WriteOffRefused as e:
            raise InvalidInput(e.code, str(e), errors=[{"key": "amount" if e.code == "amount_too_high" else "item_id",
                                                        "message": str(e)}]) from None
        detail = R.event_detail(conn, done.event_id)
        state = R.item_states(conn, scope.tenant_id, item_ids=[item_id])[0]
        if not done.duplicate:
            scope.audit("receivable.write_off", "receivable_item", item_id, None, data.model_dump())
            scope.commit()
    out = WriteOffBooked(event_id=done.event_id, item_id=item_id, amount=done.amount, currency=done.currency,
                         vat_corrected=[VatCorrection(rate=Decimal(r), vat=Decimal(t))
                                        for r, t in detail.get("vat", [])],
                         open=state.open, duplicate=done.duplicate)
    return Response(out, status_code=200 if done.duplicate else 201,
                    background=None if done.duplicate else BackgroundTask(
                        tell_paid_cases, request.app, actor_of(request).tenant_id, since, "write-off"))


router = Router(path="/", route_handlers=[list_receivable_items, get_aged_receivables, get_account_statement,
                                          book_payment, write_off_item], tags=["receivables"])
