"""Dunning: cases per customer and currency (a ``DunningWorkflow`` each) with their stages, letters,
blocks and the items they concern; disputes on open items (a case whose policy pauses on dispute
waits); approving or rejecting a stage that needs approval (the workflow's Updates decide: the
approver role, a reason to reject).

What is due and what it costs is ``runtime.dunning``'s; the store keeps it (``store.dunning``).
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from pydantic import Field

from api.areas.billing.common import send_update, temporal_client
from api.auth import ROLE_SETS, actor_of
from api.crud import ReadModel, WriteModel, _problems, open_scope, route
from api.schemas import DecimalOut
from store import dunning as DN
from store.errors import Conflict, Forbidden, InvalidInput, NotFound

__all__ = ["router"]

log = logging.getLogger("evbill.dunning")

ROLE_SETS.setdefault("dunning_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("dunning_write", ("admin", "operator", "approver"))
ROLE_SETS.setdefault("dunning_decide", ("approver", "admin"))


class CaseRead(ReadModel):
    id: str
    customer_id: str
    account_id: str
    currency: str
    workflow_id: str
    ruleset_version_id: str | None
    policy: str
    debtor: str
    status: str = Field(description="waiting | paused | awaiting_approval | done | closed")
    stage: int = Field(description="the last stage reached (0: none yet)")
    stage_on: date | None
    next_stage: int | None
    next_on: date | None = Field(description="the day the next stage is due (while waiting)")
    reason: str = Field(description="why the case is where it is (approval_escalated: its approval task was left "
                                    "open too long and went to the admin role)")
    refused: bool
    started_on: date
    closed_on: date | None
    hold_reason: str | None = Field(None, description="paused by hand: why (resume clears it)")
    held_by: str | None = None


class CasePage(ReadModel):
    items: list[CaseRead]
    next_cursor: str | None = None


class StageRead(ReadModel):
    stage: int
    status: str = Field(description="awaiting_approval | reached | refused")
    letter: str
    planned_on: date
    reached_on: date | None
    pay_by: date | None
    currency: str
    overdue: DecimalOut
    charged: DecimalOut
    total: DecimalOut
    detail: dict[str, Any]
    charge_items: list[str]
    decided_by: str | None
    decision_reason: str | None
    decided_at: datetime | None
    escalated_at: datetime | None = Field(None, description="the approval task was left open past 'escalate after'")
    assigned_role: str | None = Field(None, description="the role an escalated approval task is given to")


class LetterRead(ReadModel):
    id: str
    stage: int
    language: str
    name: str
    sha256: str
    size: int
    created_at: datetime


class BlockRead(ReadModel):
    action: str
    stage: int
    started_at: datetime
    released_at: datetime | None
    release_reason: str | None
    detail: dict[str, Any] = Field(default_factory=dict, description="what it changed: the contracts it suspended")


class HandOverRead(ReadModel):
    id: str
    stage: int
    format: str = Field(description="csv | json")
    name: str
    sha256: str
    size: int
    created_at: datetime


class CaseItemRead(ReadModel):
    id: str
    number: str
    kind: str
    currency: str
    amount: DecimalOut
    open: DecimalOut
    due_date: date
    disputed: bool


class CaseDetail(CaseRead):
    stages: list[StageRead]
    letters: list[LetterRead]
    blocks: list[BlockRead]
    hand_overs: list[HandOverRead] = Field(default_factory=list,
                                           description="exports for a collection agency, once per stage and format")
    open_items: list[CaseItemRead]


@route("GET", "/dunning/cases", operation_id="list_dunning_cases", roles="dunning_read",
       summary="Dunning cases by id; status=open lists the cases still running, awaiting_approval finance's tasks, "
               "escalated those left open past the policy's 'escalate after' (given to the admin role)")
def list_dunning_cases(request: Request[Any, Any, Any], customer_id: str | None = None, status: str | None = None,
                       cursor: str | None = None, limit: int = 50) -> CasePage:
    limit = max(1, min(limit, 200))
    with open_scope(request) as scope:
        rows = DN.cases(scope.db.connection(), scope.tenant_id, customer_id=customer_id, status=status, after=cursor,
                        limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return CasePage(items=[CaseRead.model_validate(r.to_dict()) for r in rows],
                    next_cursor=rows[-1].id if more else None)


def _case(conn: Any, tenant_id: str, case_id: str) -> DN.CaseRow:
    try:
        return DN.case(conn, tenant_id, case_id)
    except LookupError:
        raise NotFound("dunning_case_not_found", f"dunning case {case_id!r} not found") from None


@route("GET", "/dunning/cases/{case_id:str}", operation_id="get_dunning_case", roles="dunning_read",
       summary="A dunning case: its stages (fees, interest, items listed), letters, blocks and the customer's "
               "items in its currency")
def get_dunning_case(request: Request[Any, Any, Any], case_id: str) -> CaseDetail:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        c = _case(conn, scope.tenant_id, case_id)
        stages = DN.stages_of(conn, scope.tenant_id, case_id)
        letters = DN.letters_of(conn, scope.tenant_id, case_id)
        blocks = DN.blocks_of(conn, scope.tenant_id, case_id)
        hand_overs = DN.handovers_of(conn, scope.tenant_id, case_id)
        items = [i for i in DN.case_items(conn, scope.tenant_id, c.customer_id, c.currency) if i.open != 0]
    return CaseDetail(**CaseRead.model_validate(c.to_dict()).model_dump(),
                      stages=[StageRead.model_validate(s) for s in stages],
                      letters=[LetterRead.model_validate(lt) for lt in letters],
                      blocks=[BlockRead.model_validate(b) for b in blocks],
                      hand_overs=[HandOverRead.model_validate(x) for x in hand_overs],
                      open_items=[CaseItemRead(id=i.id, number=i.number, kind=i.kind, currency=i.currency,
                                               amount=str(i.amount), open=str(i.open), due_date=i.due_date,
                                               disputed=i.disputed) for i in items])


_PDF = {200: ResponseSpec(data_container=bytes, media_type="application/pdf",
                          description="the archived letter; ETag is its SHA-256")}


@route("GET", "/dunning/cases/{case_id:str}/letters/{letter_id:str}", operation_id="download_dunning_letter",
       roles="dunning_read", summary="Download a stage's archived letter (PDF, immutable)",
       responses={**_problems(400, 401, 403, 404, 409, 422), **_PDF})
def download_dunning_letter(request: Request[Any, Any, Any], case_id: str, letter_id: str) -> Response[bytes]:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        _case(conn, scope.tenant_id, case_id)
        found = next((lt for lt in DN.letters_of(conn, scope.tenant_id, case_id) if lt["id"] == letter_id), None)
        full = DN.letter(conn, scope.tenant_id, case_id, found["stage"]) if found else None
    if full is None:
        raise NotFound("dunning_letter_not_found", f"letter {letter_id!r} not found")
    return Response(bytes(full["content"]), media_type="application/pdf",
                    headers={"ETag": f'"{full["sha256"]}"', "Content-Disposition": f'inline; filename="{full["name"]}"',
                             "Cache-Control": "private, max-age=31536000, immutable"})


_EXPORT = {200: ResponseSpec(data_container=bytes, media_type="text/csv",
                             description="the archived export (CSV; JSON with format=json); ETag is its SHA-256")}


@route("GET", "/dunning/cases/{case_id:str}/hand-over", operation_id="download_dunning_hand_over",
       roles="dunning_read", summary="Download the case's export for a collection agency (the latest stage's, or "
                                     "stage=N), CSV or format=json",
       responses={**_problems(400, 401, 403, 404, 409, 422), **_EXPORT})
def download_dunning_hand_over(request: Request[Any, Any, Any], case_id: str, format: str = "csv",
                               stage: int | None = None) -> Response[bytes]:
    if format not in ("csv", "json"):
        raise InvalidInput("invalid_format", f"format must be csv or json, not {format!r}")
    with open_scope(request) as scope:
        conn = scope.db.connection()
        _case(conn, scope.tenant_id, case_id)
        got = DN.handover(conn, scope.tenant_id, case_id, stage, format)
    if got is None:
        raise NotFound("dunning_hand_over_not_found", f"dunning case {case_id!r} was not handed over"
                       + (f" at stage {stage}" if stage is not None else ""))
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    return Response(bytes(got["content"]), media_type=media,
                    headers={"ETag": f'"{got["sha256"]}"', "Content-Disposition": f'attachment; filename="{got["name"]}"',
                             "Cache-Control": "private, max-age=31536000, immutable"})


async def tell_paid_cases(app: Any, tenant_id: str, since: datetime, why: str = "payment") -> list[str]:
    """After payments were booked (a bank import, a manual payment or match): tell the open cases of
    the customers they paid, so a paid case closes and its tokens are unblocked at once."""
    try:
        with app.state.read_sessions() as db:
            cases = DN.open_cases_paid_since(db.connection(), tenant_id, since)
    except Exception as exc:  # noqa: BLE001 - the payment is booked; the cases see it at their next wake-up
        log.warning("open dunning cases not looked up after %s: %s", why, exc)
        return []
    return await tell_cases(app, cases, why)


# ------------------------------------------------------------------ disputes
class DisputeIn(WriteModel):
    reason: str = Field(min_length=1, max_length=1000)


class UndisputeIn(WriteModel):
    resolution: str = Field("", max_length=1000)


class DisputeRead(ReadModel):
    item_id: str
    disputed: bool
    reason: str | None = None
    cases_told: list[str] = Field(default_factory=list, description="open dunning cases asked to re-read")


async def _tell(request: Request[Any, Any, Any], cases: list[DN.CaseRow], why: str) -> list[str]:
    return await tell_cases(request.app, cases, why)


async def tell_cases(app: Any, cases: list[DN.CaseRow], why: str) -> list[str]:
    """Signal the cases' workflows to re-read now (best effort: without it they re-read at their next
    wake-up, at the latest a day later)."""
    from api.areas.billing.common import app_client, temporal_configured

    if not cases or not temporal_configured(app):
        return []
    try:
        client = await app_client(app)
    except Exception as exc:  # noqa: BLE001 - what was booked stays booked; the workflows read it later
        log.warning("dunning cases not signalled (%s): %s", why, exc)
        return []
    return await signal_cases(client, cases, why)


async def signal_cases(client: Any, cases: list[DN.CaseRow], why: str) -> list[str]:
    """Send ``changed`` to each case's running ``DunningWorkflow``; a workflow no longer running
    (not found) or a server not answering is logged and left: it re-reads at its next wake-up."""
    from workflows.dunning.workflows import DunningWorkflow

    told = []
    for c in cases:
        try:
            await client.get_workflow_handle(c.workflow_id).signal(DunningWorkflow.changed, why)
            told.append(c.id)
        except Exception as exc:  # noqa: BLE001 - the change is stored; the workflow reads it later
            log.warning("dunning case %s not signalled (%s): %s", c.id, why, exc)
    return told


@route("POST", "/receivables/items/{item_id:str}/dispute", operation_id="dispute_receivable_item",
       roles="dunning_write", status_code=201,
       summary="Flag an open item as disputed: dunning leaves it out, or pauses the case where its policy says so")
async def dispute_receivable_item(request: Request[Any, Any, Any], item_id: str, data: DisputeIn
                                  ) -> Response[DisputeRead]:
    with request.app.state.sessions() as db:
        actor = actor_of(request)
        conn = db.connection()
        try:
            got = DN.dispute_item(conn, actor.tenant_id, item_id, data.reason.strip(), actor.user_id)
        except LookupError:
            raise NotFound("receivable_item_not_found", f"open item {item_id!r} not found") from None
        cases = DN.cases_with_item(conn, actor.tenant_id, item_id)
        if not got["duplicate"]:
            from store.audit import append_audit

            append_audit(db, actor, "receivable_item.dispute", "receivable_item", item_id, None,
                         {"reason": data.reason})
        db.commit()
    told = await _tell(request, cases, "dispute") if not got["duplicate"] else []
    return Response(DisputeRead(item_id=item_id, disputed=True, reason=got["reason"], cases_told=told),
                    status_code=200 if got["duplicate"] else 201)


@route("POST", "/receivables/items/{item_id:str}/undispute", operation_id="undispute_receivable_item",
       roles="dunning_write", summary="End an item's dispute: dunning takes it up again")
async def undispute_receivable_item(request: Request[Any, Any, Any], item_id: str, data: UndisputeIn
                                    ) -> DisputeRead:
    with request.app.state.sessions() as db:
        actor = actor_of(request)
        conn = db.connection()
        cases = DN.cases_with_item(conn, actor.tenant_id, item_id)
        if not DN.resolve_dispute(conn, actor.tenant_id, item_id, data.resolution, actor.user_id):
            raise NotFound("dispute_not_found", f"open item {item_id!r} has no open dispute")
        from store.audit import append_audit

        append_audit(db, actor, "receivable_item.undispute", "receivable_item", item_id, None,
                     {"resolution": data.resolution})
        db.commit()
    told = await _tell(request, cases, "dispute resolved")
    return DisputeRead(item_id=item_id, disputed=False, cases_told=told)


# ------------------------------------------------------------------ pause and resume by hand
class PauseIn(WriteModel):
    reason: str = Field(min_length=1, max_length=1000)


class ResumeIn(WriteModel):
    reason: str = Field("", max_length=1000)


async def _hold(request: Request[Any, Any, Any], case_id: str, reason: str | None, note: str) -> CaseDetail:
    actor = actor_of(request)
    with request.app.state.sessions() as db:
        conn = db.connection()
        c = _case(conn, actor.tenant_id, case_id)
        if c.closed_on is not None or c.status == "closed":
            raise Conflict("dunning_case_closed", f"dunning case {case_id!r} is closed")
        if not DN.hold_case(conn, actor.tenant_id, case_id, reason, actor.user_id):
            raise Conflict("already_paused" if reason is not None else "not_paused",
                           f"dunning case {case_id!r} is {'already' if reason is not None else 'not'} paused by hand")
        from store.audit import append_audit

        append_audit(db, actor, "dunning_case.pause" if reason is not None else "dunning_case.resume", "dunning_case",
                     case_id, None, {"reason": note})
        db.commit()
    told = await _tell(request, [c], "paused" if reason is not None else "resumed")
    # the workflow re-reads at once: answer when the case row says so, or after a few seconds as it stands
    import asyncio

    for _ in range(100 if told else 0):
        with request.app.state.read_sessions() as db:
            st = DN.case(db.connection(), actor.tenant_id, case_id).status
        if (st == "paused") == (reason is not None) or st == "closed":
            break
        await asyncio.sleep(0.05)
    return get_dunning_case.fn(request, case_id)  # type: ignore[no-any-return]


@route("POST", "/dunning/cases/{case_id:str}/pause", operation_id="pause_dunning_case", roles="dunning_write",
       summary="Pause an open dunning case by hand, with a reason: no stage, fee or letter until it is resumed")
async def pause_dunning_case(request: Request[Any, Any, Any], case_id: str, data: PauseIn) -> CaseDetail:
    return await _hold(request, case_id, data.reason.strip() or None, data.reason)


@route("POST", "/dunning/cases/{case_id:str}/resume", operation_id="resume_dunning_case", roles="dunning_write",
       summary="Resume a dunning case paused by hand: a stage whose day passed meanwhile is reached at once")
async def resume_dunning_case(request: Request[Any, Any, Any], case_id: str, data: ResumeIn) -> CaseDetail:
    return await _hold(request, case_id, None, data.reason)


# ------------------------------------------------------------------ stage approvals
class StageDecisionIn(WriteModel):
    reason: str = Field("", max_length=1000)


_REFUSALS = {"forbidden": Forbidden, "not_waiting": Conflict, "reason_required": InvalidInput}


async def decide_dunning_stage(request: Request[Any, Any, Any], case_id: str, name: str, reason: str) -> CaseDetail:
    from workflows.dunning.types import StageDecision
    from workflows.dunning.workflows import DunningWorkflow

    actor = actor_of(request)
    with request.app.state.read_sessions() as db:
        c = _case(db.connection(), actor.tenant_id, case_id)
    if c.status != "awaiting_approval":
        raise Conflict("not_waiting", f"the dunning case is {c.status}, not awaiting approval")
    handle = (await temporal_client(request)).get_workflow_handle(c.workflow_id)
    await send_update(handle, getattr(DunningWorkflow, name), StageDecision(actor.user_id, actor.role, reason),
                      _REFUSALS, "dunning")
    # the Update returns once the workflow took the decision; the stage (fees, letter) follows in
    # activities: answer when the workflow has moved on, or after a few seconds with what stands
    import asyncio

    for _ in range(200):
        try:
            st = await handle.query(DunningWorkflow.status)
        except Exception:  # noqa: BLE001 - the workflow may have ended (closed): the case row says how
            break
        if st.state not in ("awaiting_approval", "reaching"):
            break
        await asyncio.sleep(0.05)
    return get_dunning_case.fn(request, case_id)  # type: ignore[no-any-return]


@route("POST", "/dunning/cases/{case_id:str}/approve", operation_id="approve_dunning_stage",
       roles="dunning_decide",
       summary="Approve the stage the case waits for (approver role): its fees, letter and actions go ahead")
async def approve_dunning_stage(request: Request[Any, Any, Any], case_id: str, data: StageDecisionIn) -> CaseDetail:
    return await decide_dunning_stage(request, case_id, "approve", data.reason)


@route("POST", "/dunning/cases/{case_id:str}/reject", operation_id="reject_dunning_stage",
       roles="dunning_decide",
       summary="Reject the stage the case waits for, with a reason: nothing is charged or sent, no escalation")
async def reject_dunning_stage(request: Request[Any, Any, Any], case_id: str, data: StageDecisionIn) -> CaseDetail:
    return await decide_dunning_stage(request, case_id, "reject", data.reason)


router = Router(path="/", route_handlers=[list_dunning_cases, get_dunning_case, download_dunning_letter,
                                          download_dunning_hand_over, pause_dunning_case, resume_dunning_case,
                                          dispute_receivable_item, undispute_receivable_item,
                                          approve_dunning_stage, reject_dunning_stage], tags=["dunning"])
