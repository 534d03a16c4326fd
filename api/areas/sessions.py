"""Charging sessions: import (JSON batch, OCPI CDRs, CSV), list/search, detail with periods and
rated lines, rating history and re-rating, unassigned sessions (``status=unassigned``) and their
resolution. Partner users see only their own sites' sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.params import Parameter
from pydantic import Field
from sqlalchemy import false, select

from api.crud import (
    CursorParam,
    IdPath,
    LimitParam,
    ReadModel,
    SearchParam,
    WriteModel,
    _problems,
    open_scope,
    page_of,
    route,
)
from api.schemas import DecimalOut
from api.session_assignment import AssignOutcome, ResolveResult, resolve
from api.session_io import (
    MAX_BATCH,
    CdrIn,
    ImportResult,
    Incoming,
    SessionIn,
    cdr_to_facts,
    import_sessions,
    parse_csv,
    rerate,
)
from runtime.ocmf import transparency_xml
from store.errors import InvalidInput, NotFound
from store.models import ChargingPeriodRow, ChargingSession, RatedLineRow, SessionRating
from store.ocpp import signed_data_of
from store.repo import Scope

__all__ = ["assign", "resolve_all", "router"]


class SessionRead(ReadModel):
    id: str
    external_id: str
    source: str
    start: datetime
    end: datetime
    energy_kwh: DecimalOut
    location_ref: str
    evse_ref: str
    token_uid: str
    location_id: str | None
    site_host_id: str | None
    token_id: str | None
    customer_id: str | None
    contract_id: str | None
    tariff: str
    status: str
    rating_error: str
    unassigned_reason: str = Field("", description="status unassigned: why no billing account takes the session "
                                                   "(unknown_token, token_without_customer, no_billing_account, "
                                                   "no_active_contract, not_checked)")
    unassigned_message: str = ""
    meter_check: str = Field("", description="Eichrecht: the check of the session's signed meter data (verified, "
                                             "unsigned, meter_signature_invalid, meter_mismatch; empty: none "
                                             "sent); the last two hold the invoice that takes the session")
    cost_centre: str = Field("", description="the cost centre taken when the session was stored: its token's, "
                                             "else its contract's")
    current_rating_id: str | None
    currency: str
    net_total: DecimalOut | None
    tax_total: DecimalOut | None
    gross_total: DecimalOut | None
    created_at: datetime


class PeriodRead(ReadModel):
    seq: int
    start: datetime
    end: datetime
    energy_kwh: DecimalOut
    time_h: DecimalOut
    parking_h: DecimalOut
    max_power_kw: DecimalOut | None


class RatedLineRead(ReadModel):
    seq: int
    component: str
    description: str
    quantity: DecimalOut
    unit: str
    unit_price: DecimalOut
    net: DecimalOut
    net_rounded: DecimalOut
    tax_rate: DecimalOut
    currency: str
    rule: str
    cost_group: str


class RatingRead(ReadModel):
    id: str
    seq: int
    reason: str
    ruleset_version_id: str
    sha256: str
    tariff: str
    currency: str
    net_total: DecimalOut
    tax_total: DecimalOut
    gross_total: DecimalOut
    trace: list[dict[str, Any]]
    rated_by: str
    rated_at: datetime
    lines: list[RatedLineRead] = Field(default_factory=list)


class SessionDetail(SessionRead):
    facts: dict[str, Any]
    periods: list[PeriodRead]
    rating: RatingRead | None


class SessionBatchIn(WriteModel):
    sessions: list[SessionIn] = Field(min_length=1, max_length=MAX_BATCH)


class CdrBatchIn(WriteModel):
    cdrs: list[CdrIn] = Field(min_length=1, max_length=MAX_BATCH)


class RerateIn(WriteModel):
    reason: str = Field(min_length=1, max_length=200)
    ruleset_version_id: str | None = Field(None, max_length=40,
                                              description="rate with this version instead of the one in force")


SessionPage = page_of(SessionRead)


def _scoped(scope: Scope) -> list[Any]:
    # a partner sees the sessions at the sites it hosts, nothing else
    if scope.actor.role == "partner":
        # a partner user without a partner sees nothing (``== None`` would match every session
        # without a site host)
        if not scope.actor.partner_id:
            return [false()]
        return [ChargingSession.site_host_id == scope.actor.partner_id]
    return []


def _get(scope: Scope, session_id: str) -> ChargingSession:
    return scope.repo(ChargingSession, "session", "ses").get(session_id, extra=_scoped(scope))


def _rating(scope: Scope, rating: SessionRating) -> RatingRead:
    lines = scope.db.execute(select(RatedLineRow).where(RatedLineRow.rating_id == rating.id)
                             .order_by(RatedLineRow.seq)).scalars()
    out = RatingRead.model_validate(rating, from_attributes=True)
    out.lines = [RatedLineRead.model_validate(ln, from_attributes=True) for ln in lines]
    return out


@route("POST", "/sessions/batch", operation_id="import_sessions_batch", roles="sessions_write", status_code=200,
       summary="Import sessions (evbill JSON shape), idempotent by external id, rated on write")
def import_sessions_batch(request: Request[Any, Any, Any], data: SessionBatchIn) -> ImportResult:
    batch = []
    for s in data.sessions:
        facts = s.to_facts_dict()
        batch.append(Incoming(s.id, "json", facts, tariff=s.tariff))
    with open_scope(request) as scope:
        return import_sessions(scope, batch)


@route("POST", "/sessions/import/ocpi-cdrs", operation_id="import_ocpi_cdrs", roles="sessions_write",
       status_code=200, summary="Import OCPI 2.2.1 CDRs, idempotent by CDR id, rated on write")
def import_ocpi_cdrs(request: Request[Any, Any, Any], data: CdrBatchIn) -> ImportResult:
    batch = [Incoming(c.id, "ocpi_cdr", cdr_to_facts(c)) for c in data.cdrs]
    with open_scope(request) as scope:
        return import_sessions(scope, batch)


class _CsvOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True, description="CSV with a header row: id,start,end[,energy_kwh,location_id,evse_id,"
                                       "token_uid,power_type,customer_groups (a|b),product,tariff,...]",
            content={"text/csv": OpenAPIMediaType(schema=Schema(type="string"))})  # type: ignore[arg-type]


@route("POST", "/sessions/import/csv", operation_id="import_sessions_csv", roles="sessions_write",
       status_code=200, summary="Import sessions from CSV, idempotent by the id column, rated on write",
       operation_class=_CsvOperation)
async def import_sessions_csv(request: Request[Any, Any, Any]) -> ImportResult:
    import anyio

    body = await request.body()
    if len(body) > 20_000_000:
        raise InvalidInput("payload_too_large", "CSV imports are limited to 20 MB")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("csv_not_utf8", "the CSV must be UTF-8") from None

    def run() -> ImportResult:
        rows = parse_csv(text)
        if len(rows) > MAX_BATCH:
            raise InvalidInput("batch_too_large", f"at most {MAX_BATCH} rows per import")
        batch = [Incoming(ext, "csv", facts, error=err, tariff=(facts or {}).pop("tariff", None))
                 for ext, facts, err in rows]
        with open_scope(request) as scope:
            return import_sessions(scope, batch)

    return await anyio.to_thread.run_sync(run)


@route("GET", "/sessions", operation_id="list_sessions", roles="sessions_read",
       summary="List sessions; status=unassigned lists those no billing account takes, with the reason")
def list_sessions(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                  q: SearchParam = None,
                  status: Literal["rated", "unrated", "rating_failed", "unassigned"] | None = None,
                  unassigned_reason: Annotated[str | None, Parameter(max_length=40)] = None,
                  meter_check: Literal["verified", "unsigned", "meter_signature_invalid",
                                       "meter_mismatch"] | None = None,
                  location_id: str | None = None, customer_id: str | None = None,
                  site_host_id: str | None = None, token_uid: str | None = None,
                  cost_centre: Annotated[str | None, Parameter(max_length=40)] = None,
                  started_from: datetime | None = None,
                  started_before: datetime | None = None) -> SessionPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        extra = _scoped(scope)
        for bound in (started_from, started_before):
            if bound is not None and bound.tzinfo is None:
                raise InvalidInput("naive_timestamp", "timestamps need a UTC offset")
        if started_from:
            extra.append(ChargingSession.start >= started_from)
        if started_before:
            extra.append(ChargingSession.start < started_before)
        rows, nxt = scope.repo(ChargingSession, "session", "ses").page(
            filters={"status": status, "unassigned_reason": unassigned_reason, "meter_check": meter_check,
                     "location_id": location_id,
                     "customer_id": customer_id,
                     "site_host_id": site_host_id, "token_uid": token_uid, "cost_centre": cost_centre},
            search=q, search_cols=("external_id", "location_ref", "evse_ref", "token_uid"),
            cursor=cursor, limit=limit, extra=extra)
        return SessionPage(items=[SessionRead.model_validate(r, from_attributes=True) for r in rows], next_cursor=nxt)


@route("GET", "/sessions/{session_id:str}", operation_id="get_session", roles="sessions_read",
       summary="A session with its charging periods and current rating (lines and trace)")
def get_session(request: Request[Any, Any, Any], session_id: IdPath) -> SessionDetail:
    with open_scope(request) as scope:
        s = _get(scope, session_id)
        periods = scope.db.execute(select(ChargingPeriodRow).where(ChargingPeriodRow.session_id == s.id)
                                   .order_by(ChargingPeriodRow.seq)).scalars()
        rating = scope.db.get(SessionRating, s.current_rating_id) if s.current_rating_id else None
        base = SessionRead.model_validate(s, from_attributes=True).model_dump()
        return SessionDetail(**base, facts=s.facts or {},
                             periods=[PeriodRead.model_validate(p, from_attributes=True) for p in periods],
                             rating=_rating(scope, rating) if rating else None)


_TRANSPARENCY = {200: ResponseSpec(data_container=bytes, media_type="application/xml",
                                   description="the S.A.F.E. Transparenzsoftware's XML container: each signed "
                                               "record as the meter sent it, with the meter's public key")}


@route("GET", "/sessions/{session_id:str}/signed-data", operation_id="get_session_signed_data",
       roles="sessions_read", summary="A session's signed meter data and key (Eichrecht), as the file the "
                                      "S.A.F.E. Transparenzsoftware opens",
       responses={**_problems(400, 401, 403, 404), **_TRANSPARENCY})
def get_session_signed_data(request: Request[Any, Any, Any], session_id: IdPath) -> Response[bytes]:
    with open_scope(request) as scope:
        s = _get(scope, session_id)
        records = signed_data_of(scope.db.connection(), [s.id]).get(s.id, [])
        key = str(((s.facts or {}).get("signed_meter") or {}).get("public_key") or "")
    if not records:
        raise NotFound("signed_data_not_found", f"session {session_id!r} has no signed meter data")
    return Response(transparency_xml(records, key).encode("utf-8"), media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{s.id}-signed-data.xml"'})


@route("GET", "/sessions/{session_id:str}/ratings", operation_id="list_session_ratings", roles="sessions_read",
       summary="Every rating of a session, oldest first (re-ratings append)")
def list_session_ratings(request: Request[Any, Any, Any], session_id: IdPath) -> list[RatingRead]:
    with open_scope(request) as scope:
        s = _get(scope, session_id)
        ratings = scope.db.execute(select(SessionRating).where(SessionRating.session_id == s.id)
                                   .order_by(SessionRating.seq)).scalars()
        return [_rating(scope, r) for r in ratings]


@route("POST", "/sessions/{session_id:str}/rerate", operation_id="rerate_session", roles="sessions_write",
       status_code=201, summary="Rate again with the version in force (or a given one); appends a rating")
def rerate_session(request: Request[Any, Any, Any], session_id: IdPath, data: RerateIn) -> RatingRead:
    with open_scope(request) as scope:
        s = _get(scope, session_id)
        return _rating(scope, rerate(scope, s, data.reason, data.ruleset_version_id))


@route("POST", "/sessions/{session_id:str}/assign", operation_id="assign_session", roles="sessions_write",
       status_code=200, summary="Resolve an unassigned session against the tenant's tokens and contracts as "
                                "they are now; a session that is not unassigned is left as it is")
def assign_session(request: Request[Any, Any, Any], session_id: IdPath) -> AssignOutcome:
    with open_scope(request) as scope:
        return assign(scope, session_id)


def assign(scope: Scope, session_id: str) -> AssignOutcome:
    """Resolve one unassigned session and commit (the API's route and the console's form)."""
    s = _get(scope, session_id)
    res = resolve(scope, session_ids=[s.id], trigger="operator")
    scope.commit()
    if res.items:
        return res.items[0]
    return AssignOutcome(session_id=s.id, status=s.status, changed=False, customer_id=s.customer_id,
                         contract_id=s.contract_id, gross_total=s.gross_total)


@route("POST", "/sessions/unassigned/resolve", operation_id="resolve_unassigned_sessions", roles="sessions_write",
       status_code=200, summary="Resolve the unassigned sessions (of one token uid) after fixing master data; "
                                "'more' says another call has more to do")
def resolve_unassigned_sessions(
        request: Request[Any, Any, Any],
        token_uid: Annotated[str | None, Parameter(max_length=64, description="only this token's sessions")] = None,
) -> ResolveResult:
    with open_scope(request) as scope:
        return resolve_all(scope, token_uid)


def resolve_all(scope: Scope, token_uid: str | None = None) -> ResolveResult:
    """Resolve the unassigned sessions (of one token uid) and commit (the API's route and the console)."""
    res = resolve(scope, token_uids=[token_uid] if token_uid is not None else None, trigger="operator")
    scope.commit()
    return res


router = Router(path="/", route_handlers=[
    import_sessions_batch, import_ocpi_cdrs, import_sessions_csv, list_sessions, get_session,
    list_session_ratings, get_session_signed_data, rerate_session, assign_session, resolve_unassigned_sessions,
], tags=["sessions"])
