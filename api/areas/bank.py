"""Bank statements: camt.052/053/054 imported as DESIGN.md's stable contract says
(``POST /bank-statements``: 201 with the counts; the same statement again 200 with every entry a
duplicate and nothing changed; a file that is not well-formed or not schema-valid 422 naming the
element and line, nothing imported), the entries left for a person (unmatched credits, returns),
matching one by hand (which teaches the payer), and the tenant's bank accounts.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any, Literal

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.params import Parameter
from pydantic import Field

from api.auth import ROLE_SETS, actor_of
from api.crud import CursorParam, ReadModel, WriteModel, open_scope, route
from api.schemas import DecimalOut
from runtime.bank.camt import CamtError
from store import bank as BK
from store import receivables as R
from store.errors import Conflict, InvalidInput, NotFound
from store.models import BillingAccount
from store.repo import decode_cursor, encode_cursor

__all__ = ["BankEntryRead", "ManualMatch", "match_entry", "router"]

ROLE_SETS.setdefault("bank_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("bank_write", ("admin", "operator", "approver"))

MAX_FILE = 25_000_000


class StatementImported(ReadModel):
    statement_id: str | None
    format: str
    entries: int
    matched: int
    partially_matched: int
    unmatched: int
    returns: int
    duplicates: int
    statements: list[str] = Field(default_factory=list, description="every statement of the file")
    rules: dict[str, int] = Field(default_factory=dict, description="how many entries each matching rule matched")
    payouts: dict[str, int] = Field(default_factory=dict, description="our credit transfers (refunds) the "
                                                                      "statement shows: paid, returned")
    warnings: list[str] = Field(default_factory=list)


class _CamtOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True, description="a camt.052, camt.053 or camt.054 file (any version .001.01-.14)",
            content={"application/xml": OpenAPIMediaType(schema=Schema(type="string"))})  # type: ignore[arg-type]


@route("POST", "/bank-statements", operation_id="import_bank_statement", roles="bank_write", status_code=201,
       summary="Import a camt bank statement: credits are matched to open items and booked; the same "
               "statement again answers 200 and changes nothing", operation_class=_CamtOperation,
       responses={200: ResponseSpec(StatementImported, description="already imported: nothing changed")})
async def import_bank_statement(request: Request[Any, Any, Any]) -> Response[StatementImported]:
    body = await request.body()
    if len(body) > MAX_FILE:
        raise InvalidInput("payload_too_large", f"a statement file is limited to {MAX_FILE // 1_000_000} MB")
    if not body.strip():
        raise InvalidInput("camt_invalid", "the body is empty: send the camt XML",
                           errors=[{"key": "body", "message": "empty", "element": "", "line": None}])

    def run() -> dict[str, Any]:
        with open_scope(request) as scope:
            try:
                out = BK.import_file(scope.db.connection(), scope.tenant_id, body, scope.actor.user_id)
            except CamtError as exc:
                raise InvalidInput("camt_invalid", exc.message, errors=[{
                    "key": exc.element or "body", "message": exc.message, "element": exc.element,
                    "line": exc.line}]) from None
            if out["duplicates"] < out["entries"] or (out["entries"] == 0 and not out["duplicates"]):
                scope.audit("bank_statement.import", "bank_statement", out["statement_id"] or "", None,
                            {k: v for k, v in out.items() if k != "warnings"})
            scope.commit()
            return out

    from api.areas.dunning import tell_paid_cases
    from store.types import utcnow

    since = utcnow()
    out = await asyncio.to_thread(run)
    fresh = not (out["entries"] and out["duplicates"] == out["entries"])
    if fresh and (out["matched"] or out["partially_matched"]):
        await tell_paid_cases(request.app, actor_of(request).tenant_id, since, "bank statement")
    return Response(StatementImported(**out), status_code=201 if fresh else 200)


class BankEntryRead(ReadModel):
    id: str
    statement_id: str
    credit: bool
    amount: DecimalOut
    currency: str
    booking_date: date | None
    value_date: date | None
    bank_ref: str
    end_to_end_id: str
    bank_tx_code: str
    debtor_name: str
    debtor_iban: str
    remittance: str
    return_reason: str
    status: str
    rule: str
    reason: str
    account_id: str | None
    event_id: str | None


class BankEntryPage(ReadModel):
    items: list[BankEntryRead]
    next_cursor: str | None = None


EntryStatus = Literal["matched", "partially_matched", "unmatched", "return", "other", "not_ours"]


@route("GET", "/bank-entries", operation_id="list_bank_entries", roles="bank_read",
       summary="Imported bank entries (one per transaction), filtered by status: 'unmatched' is finance's "
               "worklist, each entry with the rule that matched it and why")
def list_bank_entries(request: Request[Any, Any, Any], status: EntryStatus | None = None,
                      statement_id: str | None = None, cursor: CursorParam = None,
                      limit: Annotated[int, Parameter(ge=1, le=500)] = 100) -> BankEntryPage:
    with open_scope(request) as scope:
        rows = BK.list_entries(scope.db.connection(), scope.tenant_id, status=status, statement_id=statement_id,
                               after_id=decode_cursor(cursor) if cursor else None, limit=limit + 1)
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return BankEntryPage(items=[BankEntryRead.model_validate(dict(r._mapping)) for r in rows[:limit]],
                         next_cursor=nxt)


class ManualMatch(WriteModel):
    account_id: str = Field(min_length=1, max_length=64)
    invoice_numbers: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=100, description="the invoices it pays first (else oldest due first)")
    learn: bool = Field(True, description="remember the payer's IBAN (else name) for this account")


@route("POST", "/bank-entries/{entry_id:str}/match", operation_id="match_bank_entry", roles="bank_write", status_code=200,
       summary="Match an unmatched credit by hand to a billing account (and invoices): it is booked as a "
               "payment, and the payer is learned so that its next transfer matches by itself")
def match_bank_entry(request: Request[Any, Any, Any], entry_id: str, data: ManualMatch) -> Response[BankEntryRead]:
    from litestar.background_tasks import BackgroundTask

    from api.areas.dunning import tell_paid_cases
    from store.types import utcnow

    since = utcnow()
    out = match_entry(request, entry_id, data)
    # the customer's open dunning case re-reads at once (after the answer is sent)
    return Response(out, background=BackgroundTask(tell_paid_cases, request.app, actor_of(request).tenant_id, since,
                                                   "bank entry matched"))


def match_entry(request: Request[Any, Any, Any], entry_id: str, data: ManualMatch) -> BankEntryRead:
    """Book an unmatched credit to an account (and invoices) by hand: the API's route and the
    console's form both come here."""
    with open_scope(request) as scope:
        conn = scope.db.connection()
        row = next((r for r in _entry(conn, scope.tenant_id, entry_id)), None)
        if row is None:
            raise NotFound("bank_entry_not_found", f"bank entry {entry_id!r} not found")
        if row.status != "unmatched" or not row.credit:
            raise Conflict("bank_entry_not_open", f"the entry is {row.status}: only unmatched credits are matched")
        acct = scope.repo(BillingAccount, "billing_account", "acc").get(data.account_id)
        if acct.currency != row.currency:
            raise InvalidInput("currency_mismatch", f"the entry is in {row.currency}, the account is billed in "
                                                    f"{acct.currency}")
        by_number = {s.number: s.id for s in R.item_states(conn, scope.tenant_id, account_id=acct.id,
                                                           currency=acct.currency) if s.kind == "invoice"}
        missing = [n for n in data.invoice_numbers if n not in by_number]
        if missing:
            raise NotFound("invoice_not_found", f"the account has no item for {', '.join(missing)}")
        BK.match_entry_by_hand(conn, scope.tenant_id, entry_id, acct.id, [by_number[n] for n in data.invoice_numbers],
                               scope.actor.user_id, learn=data.learn)
        scope.audit("bank_entry.match", "bank_entry", entry_id, {"status": row.status}, data.model_dump())
        scope.commit()
        [after] = _entry(scope.db.connection(), scope.tenant_id, entry_id)
        return BankEntryRead.model_validate(dict(after._mapping))


class NotOurs(WriteModel):
    reason: str = Field(min_length=1, max_length=300)


@route("POST", "/bank-entries/{entry_id:str}/not-ours", operation_id="dismiss_bank_entry", roles="bank_write",
       status_code=200,
       summary="Mark an unmatched entry as not a payment of ours (it leaves the worklist; nothing is booked)")
def dismiss_bank_entry(request: Request[Any, Any, Any], entry_id: str, data: NotOurs) -> BankEntryRead:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        row = next((r for r in _entry(conn, scope.tenant_id, entry_id)), None)
        if row is None:
            raise NotFound("bank_entry_not_found", f"bank entry {entry_id!r} not found")
        if row.status not in ("unmatched", "return", "other"):
            raise Conflict("bank_entry_not_open", f"the entry is {row.status}")
        BK.dismiss_entry(conn, scope.tenant_id, entry_id, data.reason, scope.actor.user_id)
        scope.audit("bank_entry.not_ours", "bank_entry", entry_id, {"status": row.status}, data.model_dump())
        scope.commit()
        [after] = _entry(scope.db.connection(), scope.tenant_id, entry_id)
        return BankEntryRead.model_validate(dict(after._mapping))


def _entry(conn: Any, tenant_id: str, entry_id: str) -> list[Any]:
    return BK.entry(conn, tenant_id, entry_id)


class BankAccountRead(ReadModel):
    id: str
    iban: str
    currency: str
    name: str
    confirmed: bool


class BankAccountPage(ReadModel):
    items: list[BankAccountRead]
    next_cursor: str | None = None


class BankAccountIn(WriteModel):
    iban: str = Field(min_length=5, max_length=42)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    name: str = Field("", max_length=200)


@route("GET", "/bank-accounts", operation_id="list_bank_accounts", roles="bank_read",
       summary="The tenant's bank accounts; those first seen in a statement wait with confirmed=false")
def list_bank_accounts(request: Request[Any, Any, Any]) -> BankAccountPage:
    with open_scope(request) as scope:
        return BankAccountPage(items=[BankAccountRead.model_validate(dict(r._mapping))
                                      for r in BK.accounts(scope.db.connection(), scope.tenant_id)])


@route("PUT", "/bank-accounts", operation_id="register_bank_account", roles="bank_write",
       summary="Register (or confirm) one of the tenant's bank accounts by its IBAN")
def register_bank_account(request: Request[Any, Any, Any], data: BankAccountIn) -> BankAccountRead:
    from pydantic_core import PydanticCustomError

    from api.validation import check_iban

    try:
        iban = check_iban(data.iban)
    except PydanticCustomError as exc:
        raise InvalidInput("invalid_iban", exc.message(), errors=[{"key": "iban", "message": exc.message()}]) from None
    with open_scope(request) as scope:
        row = BK.register_account(scope.db.connection(), scope.tenant_id, iban, data.currency, data.name)
        scope.audit("bank_account.register", "bank_account", row.id, None, data.model_dump())
        scope.commit()
        return BankAccountRead.model_validate(dict(row._mapping))


router = Router(path="/", route_handlers=[import_bank_statement, list_bank_entries, match_bank_entry,
                                          dismiss_bank_entry, list_bank_accounts, register_bank_account],
                tags=["bank"])
