"""SEPA direct debit: the tenant's creditor accounts, the mandates of billing accounts, collection
runs (started on demand; a ``CollectionRunWorkflow`` each) with their four-eyes approval, and the
archived pain.008 files.

IBANs are checked with schwifty (the BIC is derived from the bank code where schwifty knows it),
creditor identifiers with python-stdnum (``stdnum.eu.at_02``). Approving and rejecting go through
the run's workflow Updates, whose validators decide (approver role, not the person who started the
run); their refusals come back as problems with the validator's code.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from pydantic import Field

from api.areas.billing.common import decide_approval_run, start_approval_run, task_queue, temporal_client
from api.auth import ROLE_SETS, actor_of
from api.crud import ReadModel, WriteModel, _problems, open_scope, route
from api.schemas import DecimalOut
from runtime.bank.identifiers import check_bic, check_creditor_id, iban_and_bic
from runtime.bank.pain008 import PAIN_VERSIONS
from store import collections as C
from store.errors import Conflict, InvalidInput, NotFound
from store.models import BillingAccount, Customer

__all__ = ["router"]

ROLE_SETS.setdefault("collections_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("collections_write", ("admin", "operator", "approver"))
ROLE_SETS.setdefault("collections_decide", ("approver", "admin"))  # never the run's starter (four eyes)

Scheme = Literal["CORE", "B2B"]


def _iban_bic(iban: str | None, bic: str) -> tuple[Any, Any]:
    """A mandate's IBAN (with the BIC schwifty derives) and an explicit BIC, each checked; 422
    naming the field otherwise. ``iban`` None checks the BIC alone."""
    out_iban = out_bic = None
    if iban is not None:
        try:
            out_iban, out_bic = iban_and_bic(iban)
        except ValueError as exc:
            raise _bad("iban", "invalid_iban", exc) from None
    if bic:
        try:
            out_bic = check_bic(bic)
        except ValueError as exc:
            raise _bad("bic", "invalid_bic", exc) from None
    return out_iban, out_bic


def _bad(key: str, code: str, exc: Exception) -> InvalidInput:
    return InvalidInput(code, str(exc), errors=[{"key": key, "message": str(exc)}])


# ------------------------------------------------------------------ creditor accounts
class CreditorAccountIn(WriteModel):
    name: str = Field(min_length=1, max_length=70)
    iban: str = Field(min_length=5, max_length=42)
    bic: str = Field("", max_length=11, description="empty: derived from the IBAN where possible")
    creditor_id: str = Field(min_length=5, max_length=40, description="the SEPA creditor identifier (AT-02)")
    currency: str = Field("EUR", pattern=r"^EUR$")
    lead_time_days: int = Field(5, ge=1, le=60, description="collect items due within this many days")
    pain_version: Literal["pain.008.001.08", "pain.008.001.02"] = "pain.008.001.08"
    pass_return_charges: bool = Field(True, description="a return's bank fee is charged to the customer")


class CreditorAccountRead(ReadModel):
    id: str
    name: str
    iban: str
    bic: str
    creditor_id: str
    currency: str
    lead_time_days: int
    pain_version: str
    pass_return_charges: bool
    created_at: datetime


def _checked_creditor(data: CreditorAccountIn) -> dict[str, Any]:
    try:
        iban, bic = iban_and_bic(data.iban)
    except ValueError as exc:
        raise _bad("iban", "invalid_iban", exc) from None
    try:
        cid = check_creditor_id(data.creditor_id)
    except ValueError as exc:
        raise _bad("creditor_id", "invalid_creditor_id", exc) from None
    if data.bic:
        try:
            bic = check_bic(data.bic)
        except ValueError as exc:
            raise _bad("bic", "invalid_bic", exc) from None
    assert data.pain_version in PAIN_VERSIONS
    return {**data.model_dump(), "iban": iban, "bic": bic, "creditor_id": cid}


class CreditorAccountPage(ReadModel):
    items: list[CreditorAccountRead]
    next_cursor: str | None = None


@route("GET", "/collections/creditor-accounts", operation_id="list_creditor_accounts", roles="collections_read",
       summary="The tenant's SEPA creditor accounts")
def list_creditor_accounts(request: Request[Any, Any, Any]) -> CreditorAccountPage:
    with open_scope(request) as scope:
        rows = C.creditor_accounts(scope.db.connection(), scope.tenant_id)
    return CreditorAccountPage(items=[CreditorAccountRead.model_validate(dict(r._mapping)) for r in rows])


@route("POST", "/collections/creditor-accounts", operation_id="create_creditor_account", roles="collections_write",
       status_code=201, summary="Add a SEPA creditor account (IBAN, BIC, creditor identifier, lead time)")
def create_creditor_account(request: Request[Any, Any, Any], data: CreditorAccountIn) -> CreditorAccountRead:
    values = _checked_creditor(data)
    with open_scope(request) as scope:
        row = C.insert_creditor_account(scope.db.connection(), scope.tenant_id, values)
        if row is None:
            raise Conflict("creditor_account_exists", f"a creditor account with IBAN {values['iban']} exists")
        scope.audit("creditor_account.create", "sepa_creditor_account", row.id, None, values)
        scope.commit()
    return CreditorAccountRead.model_validate(dict(row._mapping))


class ScheduleIn(WriteModel):
    enabled: bool = True
    hour: int = Field(6, ge=0, le=23, description="local hour, Monday to Friday")
    timezone: str = Field("Europe/Berlin", max_length=64)


class ScheduleRead(ReadModel):
    schedule_id: str
    enabled: bool


@route("PUT", "/collections/creditor-accounts/{creditor_account_id:str}/schedule",
       operation_id="set_collection_schedule", roles="collections_write",
       summary="Start the creditor account's collection run every working day at an hour (a Temporal Schedule); "
               "each run still waits for approval")
async def set_collection_schedule(request: Request[Any, Any, Any], creditor_account_id: str,
                                  data: ScheduleIn) -> ScheduleRead:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from workflows.collections.schedules import (
        collection_schedule_id,
        drop_collection_schedule,
        ensure_collection_schedule,
    )

    try:
        ZoneInfo(data.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("invalid_timezone", f"unknown time zone {data.timezone!r}",
                           errors=[{"key": "timezone", "message": "unknown time zone"}]) from None
    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        if not C.creditor_account_exists(db.connection(), actor.tenant_id, creditor_account_id):
            raise NotFound("creditor_account_not_found", f"creditor account {creditor_account_id!r} not found")
    client = await temporal_client(request)
    if data.enabled:
        sid = await ensure_collection_schedule(client, actor.tenant_id, creditor_account_id, data.hour, data.timezone,
                                               task_queue(request.app))
    else:
        await drop_collection_schedule(client, actor.tenant_id, creditor_account_id)
        sid = collection_schedule_id(actor.tenant_id, creditor_account_id)
    with request.app.state.sessions() as db:
        from store.audit import append_audit

        append_audit(db, actor, "collection_schedule.set", "sepa_creditor_account", creditor_account_id, None,
                     data.model_dump())
        db.commit()
    return ScheduleRead(schedule_id=sid, enabled=data.enabled)


# ------------------------------------------------------------------ mandates
class MandateIn(WriteModel):
    creditor_account_id: str = Field(min_length=1, max_length=40)
    reference: str = Field(min_length=1, max_length=35, pattern=r"^[A-Za-z0-9+?/\-:().,' ]+$")
    signed_on: date
    debtor_name: str = Field("", max_length=70, description="empty: the customer's name")
    iban: str = Field(min_length=5, max_length=42)
    bic: str = Field("", max_length=11)
    scheme: Scheme = "CORE"
    one_off: bool = Field(False, description="a one-off mandate (OOFF): collected once")


class MandateChange(WriteModel):
    reference: str | None = Field(None, min_length=1, max_length=35, pattern=r"^[A-Za-z0-9+?/\-:().,' ]+$")
    iban: str | None = Field(None, min_length=5, max_length=42)
    bic: str | None = Field(None, max_length=11)
    debtor_name: str | None = Field(None, min_length=1, max_length=70)
    scheme: Scheme | None = None
    resolve_attention: bool = Field(False, description="the cause of needs_attention was fixed: collect again")


class MandateRevoke(WriteModel):
    final_collection: bool = Field(False, description="collect once more (FNAL), then revoked")


class MandateRead(ReadModel):
    id: str
    creditor_account_id: str
    account_id: str
    reference: str
    signed_on: date
    debtor_name: str
    iban: str
    bic: str
    scheme: str
    status: str
    sequence: str
    original_reference: str
    original_iban: str
    last_collection_on: date | None
    attention_reason: str
    source: str
    created_at: datetime
    updated_at: datetime


def _mandate(conn: Any, tenant_id: str, mandate_id: str) -> Any:
    row = C.mandate_row(conn, tenant_id, mandate_id)
    if row is None:
        raise NotFound("mandate_not_found", f"mandate {mandate_id!r} not found")
    return row


class MandatePage(ReadModel):
    items: list[MandateRead]
    next_cursor: str | None = None


@route("GET", "/billing/accounts/{account_id:str}/mandates", operation_id="list_mandates", roles="collections_read",
       summary="The SEPA mandates of a billing account, newest first")
def list_mandates(request: Request[Any, Any, Any], account_id: str) -> MandatePage:
    with open_scope(request) as scope:
        scope.repo(BillingAccount, "billing_account", "acc").get(account_id)
        rows = C.account_mandates(scope.db.connection(), scope.tenant_id, account_id)
    return MandatePage(items=[MandateRead.model_validate(dict(r._mapping)) for r in rows])


@route("POST", "/billing/accounts/{account_id:str}/mandates", operation_id="create_mandate",
       roles="collections_write", status_code=201,
       summary="Record a signed SEPA mandate for a billing account (reference unique per creditor)")
def create_mandate(request: Request[Any, Any, Any], account_id: str, data: MandateIn) -> MandateRead:
    iban, bic = _iban_bic(data.iban, data.bic)
    if data.signed_on > date.today():
        raise InvalidInput("signed_in_future", "a mandate cannot be signed in the future",
                           errors=[{"key": "signed_on", "message": "in the future"}])
    with open_scope(request) as scope:
        acct = scope.repo(BillingAccount, "billing_account", "acc").get(account_id)
        conn = scope.db.connection()
        if not C.creditor_account_exists(conn, scope.tenant_id, data.creditor_account_id):
            raise NotFound("creditor_account_not_found", f"creditor account {data.creditor_account_id!r} not found")
        if C.mandate_reference_taken(conn, scope.tenant_id, data.creditor_account_id, data.reference):
            raise Conflict("mandate_reference_taken", f"mandate reference {data.reference!r} is already used "
                                                      "with this creditor account")
        name = data.debtor_name or scope.repo(Customer, "customer", "cus").get(acct.customer_id).name
        mid = C.insert_mandate(conn, scope.tenant_id, data.creditor_account_id, account_id, data.reference,
                               data.signed_on, name, iban, bic, data.scheme, "OOFF" if data.one_off else "FRST")
        scope.audit("mandate.create", "sepa_mandate", mid, None, {**data.model_dump(mode="json"), "iban": iban})
        scope.commit()
        return MandateRead.model_validate(dict(_mandate(scope.db.connection(), scope.tenant_id, mid)._mapping))


@route("GET", "/mandates/{mandate_id:str}", operation_id="get_mandate", roles="collections_read",
       summary="A SEPA mandate with its status and the sequence type its next collection uses")
def get_mandate(request: Request[Any, Any, Any], mandate_id: str) -> MandateRead:
    with open_scope(request) as scope:
        return MandateRead.model_validate(dict(_mandate(scope.db.connection(), scope.tenant_id, mandate_id)._mapping))


@route("PATCH", "/mandates/{mandate_id:str}", operation_id="change_mandate", roles="collections_write",
       summary="Change a mandate: a new IBAN or reference is reported as an amendment in the next collection; "
               "resolve_attention lets a mandate flagged by a return (MD01, MD06, AC04) be collected again")
def change_mandate(request: Request[Any, Any, Any], mandate_id: str, data: MandateChange) -> MandateRead:
    iban, bic = _iban_bic(data.iban, data.bic or "")
    with open_scope(request) as scope:
        conn = scope.db.connection()
        row = _mandate(conn, scope.tenant_id, mandate_id)
        if row.status in ("revoked", "expired"):
            raise Conflict("mandate_closed", f"the mandate is {row.status}: record a new one")
        if data.reference is not None and data.reference != row.reference and C.mandate_reference_taken(
                conn, scope.tenant_id, row.creditor_account_id, data.reference):
            raise Conflict("mandate_reference_taken", f"mandate reference {data.reference!r} is already used")
        C.amend_mandate(conn, row, reference=data.reference, iban=iban, bic=bic, debtor_name=data.debtor_name,
                        scheme=data.scheme)
        if data.resolve_attention:
            C.resolve_attention(conn, row.id)
        scope.audit("mandate.change", "sepa_mandate", mandate_id, None, data.model_dump(mode="json"))
        scope.commit()
        return MandateRead.model_validate(dict(_mandate(scope.db.connection(), scope.tenant_id, mandate_id)._mapping))


@route("POST", "/mandates/{mandate_id:str}/revoke", operation_id="revoke_mandate", roles="collections_write",
       summary="Revoke a mandate now, or after one last collection (final_collection: FNAL)")
def revoke_mandate(request: Request[Any, Any, Any], mandate_id: str, data: MandateRevoke) -> MandateRead:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        row = _mandate(conn, scope.tenant_id, mandate_id)
        if row.status == "revoked":
            raise Conflict("mandate_closed", "the mandate is already revoked")
        C.revoke_mandate(conn, row, data.final_collection)
        scope.audit("mandate.revoke", "sepa_mandate", mandate_id, None, data.model_dump())
        scope.commit()
        return MandateRead.model_validate(dict(_mandate(scope.db.connection(), scope.tenant_id, mandate_id)._mapping))


# ------------------------------------------------------------------ runs and files
class RunStart(WriteModel):
    creditor_account_id: str = Field(min_length=1, max_length=40)
    as_of: date | None = Field(None, description="collect items due up to as_of + the lead time (default today)")
    key: str = Field("", max_length=60, description="names the run (default: the as_of day); the same key "
                                                    "again answers the same run")


class RunRead(ReadModel):
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
    skipped: list[dict[str, str]]
    file_id: str | None
    started_by: str
    decided_by: str
    decision_reason: str
    created_at: datetime
    decided_at: datetime | None


class RunPage(ReadModel):
    """The newest 200 runs (no further pages yet: ``next_cursor`` stays null)."""

    items: list[RunRead]
    next_cursor: str | None = None


class RunStarted(ReadModel):
    workflow_id: str


class RunItemRead(ReadModel):
    item_id: str
    account_id: str
    mandate_id: str
    number: str
    end_to_end_id: str
    amount: DecimalOut
    currency: str
    sequence: str
    collection_date: date
    status: str
    return_reason: str


class RunDetail(RunRead):
    collection_items: list[RunItemRead]


class RunDecisionIn(WriteModel):
    reason: str = Field("", max_length=1000)


@route("POST", "/collections/runs", operation_id="start_collection_run", roles="collections_write",
       status_code=202, summary="Start a collection run for a creditor account (someone else approves it)")
async def start_collection_run(request: Request[Any, Any, Any], data: RunStart) -> RunStarted:
    from workflows.collections.types import CollectionRunInput, collection_workflow_id
    from workflows.collections.workflows import CollectionRunWorkflow

    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        if not C.creditor_account_exists(db.connection(), actor.tenant_id, data.creditor_account_id):
            raise NotFound("creditor_account_not_found", f"creditor account {data.creditor_account_id!r} not found")
    as_of = data.as_of or date.today()
    wid = collection_workflow_id(actor.tenant_id, data.creditor_account_id, data.key or as_of.isoformat())
    await start_approval_run(request, CollectionRunWorkflow.run, CollectionRunInput(
        actor.tenant_id, data.creditor_account_id, as_of.isoformat(), actor.user_id), wid, "collection_run.start",
        data.model_dump(mode="json"))
    return RunStarted(workflow_id=wid)


@route("GET", "/collections/runs", operation_id="list_collection_runs", roles="collections_read",
       summary="Collection runs, newest first; status=awaiting_approval lists finance's open tasks")
def list_collection_runs(request: Request[Any, Any, Any], status: str | None = None,
                         workflow_id: str | None = None) -> RunPage:
    with open_scope(request) as scope:
        rows = C.runs(scope.db.connection(), scope.tenant_id, status=status, workflow_id=workflow_id)
    return RunPage(items=[RunRead.model_validate(dict(r._mapping)) for r in rows])


def _run(conn: Any, tenant_id: str, run_id: str) -> Any:
    row = C.run_row(conn, tenant_id, run_id)
    if row is None:
        raise NotFound("collection_run_not_found", f"collection run {run_id!r} not found")
    return row


@route("GET", "/collections/runs/{run_id:str}", operation_id="get_collection_run", roles="collections_read",
       summary="A collection run with its items (proposed, submitted, collected, returned, dropped)")
def get_collection_run(request: Request[Any, Any, Any], run_id: str) -> RunDetail:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        row = _run(conn, scope.tenant_id, run_id)
        items = C.run_items(conn, run_id)
    return RunDetail(**RunRead.model_validate(dict(row._mapping)).model_dump(),
                     collection_items=[RunItemRead.model_validate(dict(i._mapping)) for i in items])


async def decide_collection_run(request: Request[Any, Any, Any], run_id: str, name: str, reason: str) -> RunRead:
    from workflows.collections.workflows import CollectionRunWorkflow

    tenant_id = actor_of(request).tenant_id
    with request.app.state.read_sessions() as db:
        run = _run(db.connection(), tenant_id, run_id)
    await decide_approval_run(request, CollectionRunWorkflow, run, name, reason, "collection")
    with request.app.state.read_sessions() as db:
        return RunRead.model_validate(dict(_run(db.connection(), tenant_id, run_id)._mapping))


@route("POST", "/collections/runs/{run_id:str}/approve", operation_id="approve_collection_run",
       roles="collections_decide",
       summary="Approve a collection run (approver role; not the person who started it): the file is built "
               "from the items still open, archived, and the items are marked submitted")
async def approve_collection_run(request: Request[Any, Any, Any], run_id: str, data: RunDecisionIn) -> RunRead:
    return await decide_collection_run(request, run_id, "approve", data.reason)


@route("POST", "/collections/runs/{run_id:str}/reject", operation_id="reject_collection_run",
       roles="collections_decide", summary="Reject a collection run with a reason: its items are free again")
async def reject_collection_run(request: Request[Any, Any, Any], run_id: str, data: RunDecisionIn) -> RunRead:
    return await decide_collection_run(request, run_id, "reject", data.reason)


_DOWNLOAD = {200: ResponseSpec(data_container=bytes, media_type="application/xml",
                               description="the archived pain.008 file; ETag is its SHA-256")}


@route("GET", "/collections/files/{file_id:str}", operation_id="download_collection_file",
       roles="collections_read", summary="Download an archived pain.008 file (immutable; ETag = sha256)",
       responses={**_problems(400, 401, 403, 404, 409, 422), **_DOWNLOAD})
def download_collection_file(request: Request[Any, Any, Any], file_id: str) -> Response[bytes]:
    with open_scope(request) as scope:
        row = C.file_row(scope.db.connection(), scope.tenant_id, file_id)
    if row is None:
        raise NotFound("collection_file_not_found", f"collection file {file_id!r} not found")
    return Response(bytes(row.content), media_type="application/xml",
                    headers={"ETag": f'"{row.sha256}"', "Content-Disposition": f'attachment; filename="{row.name}"',
                             "Cache-Control": "private, max-age=31536000, immutable"})


router = Router(path="/", route_handlers=[list_creditor_accounts, create_creditor_account, set_collection_schedule,
                                          list_mandates,
                                          create_mandate, get_mandate, change_mandate, revoke_mandate,
                                          start_collection_run, list_collection_runs, get_collection_run,
                                          approve_collection_run, reject_collection_run, download_collection_file],
                tags=["collections"])
