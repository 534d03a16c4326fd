"""eMSP clearing: statements per eMSP partner and month (a ``ClearingWorkflow`` each), their
archived XLSX and OCPI CDR JSON, disputes in the D-7 window (the partner's own key, or finance)
and their resolution by finance after it. SQL lives in ``store.clearing``; the window and who may
do what are the workflow's Update validators, whose refusals become problem documents here."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from pydantic import Field

from api.areas.billing.common import send_update, task_queue, temporal_client
from api.auth import ROLE_SETS, actor_of
from api.crud import ReadModel, WriteModel, _problems, open_scope, route
from api.schemas import DecimalOut
from store import clearing as S
from store.errors import Conflict, Forbidden, InvalidInput, NotFound

__all__ = ["ResolveCreate", "resolve_dispute", "router"]

ROLE_SETS.setdefault("clearing_read", ("admin", "operator", "approver", "auditor", "partner"))
ROLE_SETS.setdefault("clearing_write", ("admin", "operator", "approver"))
ROLE_SETS.setdefault("clearing_dispute", ("admin", "operator", "approver", "partner"))
ROLE_SETS.setdefault("clearing_resolve", ("admin", "approver"))

Amount = Annotated[str, Field(pattern=r"^-?[0-9]{1,12}(\.[0-9]{1,4})?$", examples=["12.50"])]


class ClearingStart(WriteModel):
    partner_id: str = Field(min_length=1, max_length=40, description="the eMSP partner (kind emsp)")
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"],
                       description="the month in the tenant's zone")


class ClearingStarted(ReadModel):
    workflow_id: str


class ClearingStatementRead(ReadModel):
    id: str
    partner_id: str
    month: str
    period_start: datetime
    period_end: datetime
    workflow_id: str
    status: str
    currency: str
    cdrs: int
    late: int
    net_total: DecimalOut
    tax_total: DecimalOut
    gross_total: DecimalOut
    xlsx_sha256: str
    cdr_json_sha256: str
    sent_at: datetime | None
    window_ends_at: datetime | None
    invoice_number: str
    invoice_net: DecimalOut | None
    invoice_gross: DecimalOut | None
    reverse_charge: bool
    created_at: datetime


class ClearingDisputeRead(ReadModel):
    id: str
    cdr_id: str
    reason: str
    ours: DecimalOut
    proposed: DecimalOut
    raised_by: str
    raised_role: str
    raised_at: datetime
    resolution: str
    resolved_net: DecimalOut | None
    resolved_by: str
    resolved_at: datetime | None
    note: str


class ClearingCommissionRead(ReadModel):
    """A commission line of the statement (a rule of a ``charge emsp`` block the roaming agreement
    names): in its totals and a line of its invoice."""

    name: str
    rule: str = Field(description="the rule it applies: block, line and text")
    kind: Literal["per_session", "per_kwh", "percent", "monthly"]
    quantity: DecimalOut = Field(description="CDRs, kWh, the net a percentage is taken of, or days of the month")
    unit: str
    unit_price: DecimalOut
    net: DecimalOut = Field(description="what the eMSP pays, rounded (negative: paid to it)")
    tax_rate: DecimalOut
    cdrs: list[str]
    month: str
    stated: DecimalOut | None = Field(None, description="a percentage re-taken of the amounts the disputes' "
                                                         "resolutions set: the net the statement stated")


class ClearingStatementDetail(ClearingStatementRead):
    disputes: list[ClearingDisputeRead]
    commissions: list[ClearingCommissionRead] = Field(default_factory=list)


class ClearingStatementList(ReadModel):
    items: list[ClearingStatementRead]


class DisputeCreate(WriteModel):
    cdr_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=1000)
    proposed_amount: Amount = Field(description="the net the CDR should bill (excl. VAT)")


class ResolveCreate(WriteModel):
    resolution: Literal["accept", "keep", "adjust"] = Field(
        description="accept the partner's proposed amount, keep ours, or adjust to `amount`")
    amount: Amount | None = None
    note: str = Field("", max_length=1000)


def _only_partner(actor: Any) -> str | None:
    return (actor.partner_id or "") if actor.role == "partner" else None


def _statement(conn: Any, actor: Any, statement_id: str, content: bool = False) -> Any:
    row = S.get_statement(conn, actor.tenant_id, statement_id, only_partner=_only_partner(actor), content=content)
    if row is None:
        raise NotFound("clearing_statement_not_found", f"clearing statement {statement_id!r} not found")
    return row


@route("POST", "/clearing/statements", operation_id="start_clearing", roles="clearing_write", status_code=202,
       summary="Start the clearing of one eMSP partner's month: its roaming CDRs priced through the ruleset, the "
               "statement sent, a 7-day dispute window, then the clearing invoice. The same month again answers "
               "the same workflow")
async def start_clearing(request: Request[Any, Any, Any], data: ClearingStart) -> ClearingStarted:
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from workflows.clearing.types import ClearingInput, clearing_workflow_id
    from workflows.clearing.workflows import ClearingWorkflow

    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        if S.emsp_partner(db.connection(), actor.tenant_id, data.partner_id) is None:
            raise NotFound("partner_not_found", f"eMSP partner {data.partner_id!r} not found")
    wid = clearing_workflow_id(actor.tenant_id, data.partner_id, data.month)
    client = await temporal_client(request)
    try:
        await client.start_workflow(ClearingWorkflow.run, ClearingInput(actor.tenant_id, data.partner_id, data.month,
                                                                        actor.user_id),
                                    id=wid, task_queue=task_queue(request.app),
                                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        pass
    with request.app.state.sessions() as db:
        from store.audit import append_audit

        append_audit(db, actor, "clearing.start", "clearing_statement", wid, None, data.model_dump(mode="json"))
        db.commit()
    return ClearingStarted(workflow_id=wid)


@route("GET", "/clearing/statements", operation_id="list_clearing_statements", roles="clearing_read",
       summary="Clearing statements, newest month first (a partner's key: its own)")
def list_clearing_statements(request: Request[Any, Any, Any], partner_id: str | None = None,
                             status: str | None = None,
                             limit: Annotated[int, Parameter(ge=1, le=500)] = 100) -> ClearingStatementList:
    with open_scope(request) as scope:
        rows = S.list_statements(scope.db.connection(), scope.tenant_id, only_partner=_only_partner(scope.actor),
                                 partner_id=partner_id, status=status, limit=limit)
    return ClearingStatementList(items=[ClearingStatementRead.model_validate(dict(r._mapping)) for r in rows])


@route("GET", "/clearing/statements/{clearing_statement_id:str}", operation_id="get_clearing_statement",
       roles="clearing_read", summary="A clearing statement with its disputes")
def get_clearing_statement(request: Request[Any, Any, Any], clearing_statement_id: str) -> ClearingStatementDetail:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        row = _statement(conn, scope.actor, clearing_statement_id)
        disputes = S.disputes_of(conn, scope.tenant_id, clearing_statement_id)
    return ClearingStatementDetail(**ClearingStatementRead.model_validate(dict(row._mapping)).model_dump(),
                                   disputes=[ClearingDisputeRead.model_validate(dict(d._mapping)) for d in disputes],
                                   commissions=[ClearingCommissionRead.model_validate(c) for c in row.commissions or ()])


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(request: Request[Any, Any, Any], statement_id: str, column: str, media: str, ext: str) -> Response[bytes]:
    with open_scope(request) as scope:
        row = _statement(scope.db.connection(), scope.actor, statement_id, content=True)
    content = getattr(row, column)
    sha = getattr(row, f"{column}_sha256")
    return Response(bytes(content or b""), media_type=media,
                    headers={"ETag": f'"{sha}"', "Cache-Control": "private, max-age=31536000, immutable",
                             "Content-Disposition": f'attachment; filename="clearing-{row.month}-{row.id}.{ext}"'})


@route("GET", "/clearing/statements/{clearing_statement_id:str}/xlsx", operation_id="download_clearing_xlsx",
       roles="clearing_read", summary="The statement as archived XLSX: one row per CDR with the OCPI fields, a "
                                      "totals sheet (immutable; ETag = sha256)",
       responses={**_problems(400, 401, 403, 404, 409, 422),
                  200: ResponseSpec(data_container=bytes, media_type=_XLSX, description="the XLSX")})
def download_clearing_xlsx(request: Request[Any, Any, Any], clearing_statement_id: str) -> Response[bytes]:
    return _download(request, clearing_statement_id, "xlsx", _XLSX, "xlsx")


@route("GET", "/clearing/statements/{clearing_statement_id:str}/cdrs", operation_id="download_clearing_cdrs",
       roles="clearing_read", summary="The statement's CDRs as archived OCPI 2.2.1 CDR JSON (a list)",
       responses={**_problems(400, 401, 403, 404, 409, 422),
                  200: ResponseSpec(data_container=bytes, media_type="application/json", description="CDR list")})
def download_clearing_cdrs(request: Request[Any, Any, Any], clearing_statement_id: str) -> Response[bytes]:
    return _download(request, clearing_statement_id, "cdr_json", "application/json", "json")


_REFUSALS = {"forbidden": Forbidden, "window_closed": Conflict, "not_resolving": Conflict, "not_open": Conflict,
             "already_disputed": Conflict, "reason_required": InvalidInput, "amount_required": InvalidInput,
             "invalid_resolution": InvalidInput, "cdr_not_found": NotFound}


async def _update(request: Request[Any, Any, Any], workflow_id: str, name: str, arg: Any) -> Any:
    from workflows.clearing.workflows import ClearingWorkflow

    handle = (await temporal_client(request)).get_workflow_handle(workflow_id)
    return await send_update(handle, getattr(ClearingWorkflow, name), arg, _REFUSALS, "clearing", "recorded")


@route("POST", "/clearing/statements/{clearing_statement_id:str}/disputes", operation_id="dispute_clearing_cdr",
       roles="clearing_dispute", status_code=201,
       summary="Dispute a CDR of the statement (the partner's own key, or finance) with a reason and the net it "
               "should bill, within 7 days of the statement being sent; later: 409 window_closed")
async def dispute_clearing_cdr(request: Request[Any, Any, Any], clearing_statement_id: str,
                               data: DisputeCreate) -> ClearingDisputeRead:
    from workflows.clearing.types import DisputeRequest

    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        row = _statement(db.connection(), actor, clearing_statement_id)
        if S.statement_cdr(db.connection(), clearing_statement_id, data.cdr_id) is None:
            raise NotFound("cdr_not_found", f"CDR {data.cdr_id!r} is not on the statement")
    if row.status != "in_review":
        raise Conflict("window_closed", f"the statement is {row.status}: disputes are taken while it is in review")
    dispute_id = await _update(request, row.workflow_id, "dispute", DisputeRequest(
        actor.user_id, actor.role, actor.partner_id or "", data.cdr_id, data.reason,
        format(Decimal(data.proposed_amount), "f")))
    with request.app.state.read_sessions() as db:
        d = S.get_dispute(db.connection(), actor.tenant_id, dispute_id)
    return ClearingDisputeRead.model_validate(dict(d._mapping))


@route("POST", "/clearing/disputes/{clearing_dispute_id:str}/resolve", operation_id="resolve_clearing_dispute",
       roles="clearing_resolve", status_code=200,
       summary="Resolve a dispute after the window (finance): accept the partner's amount, keep ours, or adjust")
async def resolve_clearing_dispute(request: Request[Any, Any, Any], clearing_dispute_id: str,
                                   data: ResolveCreate) -> ClearingDisputeRead:
    return await resolve_dispute(request, clearing_dispute_id, data)


async def resolve_dispute(request: Request[Any, Any, Any], clearing_dispute_id: str,
                          data: ResolveCreate) -> ClearingDisputeRead:
    """The route's work, also called by the console's finance inbox: the workflow's ``resolve``
    Update (approver or admin, after the window)."""
    from workflows.clearing.types import ResolveRequest

    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        d = S.get_dispute(db.connection(), actor.tenant_id, clearing_dispute_id)
        if d is None:
            raise NotFound("clearing_dispute_not_found", f"dispute {clearing_dispute_id!r} not found")
        row = _statement(db.connection(), actor, d.statement_id)
    if data.resolution == "adjust" and data.amount is None:
        raise InvalidInput("amount_required", "adjusting needs an amount",
                           errors=[{"key": "amount", "message": "required for adjust"}])
    await _update(request, row.workflow_id, "resolve", ResolveRequest(
        actor.user_id, actor.role, clearing_dispute_id, data.resolution,
        format(Decimal(data.amount), "f") if data.amount is not None else "", data.note))
    with request.app.state.read_sessions() as db:
        d = S.get_dispute(db.connection(), actor.tenant_id, clearing_dispute_id)
    return ClearingDisputeRead.model_validate(dict(d._mapping))


router = Router(path="/", route_handlers=[start_clearing, list_clearing_statements, get_clearing_statement,
                                          download_clearing_xlsx, download_clearing_cdrs, dispute_clearing_cdr,
                                          resolve_clearing_dispute], tags=["clearing"])
