"""Rulesets: drafts with diagnostics, simulation, publication of immutable versions, diffs.

An analyst uploads drafts; a second person holding the publish role (approver or admin) turns a
clean draft into a version with an effective date. Published versions are never edited: a change
is a new draft and a new version.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from litestar import Request, Router
from pydantic import AwareDatetime, Field
from sqlalchemy import func, select

from api.areas.billing import ScheduleResync, resync_after_publish
from api.auth import actor_of
from api.crud import (
    CursorParam,
    IdPath,
    LimitParam,
    ReadModel,
    WriteModel,
    crud_router,
    open_scope,
    page_of,
    route,
)
from api.rating import compile_source, compiled
from api.schemas import Id, read_of, update_of
from api.session_io import SessionIn, rate_facts
from store.errors import Conflict, Forbidden, InvalidInput, NotFound
from store.models import BillingAccount, Ruleset, RulesetDraft, RulesetVersion
from store.repo import Scope, snapshot
from store.types import new_id

__all__ = ["router"]

MAX_SOURCE = 200_000


# --- schemas ------------------------------------------------------------------------------------

class RulesetCreate(WriteModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field("", max_length=500)


class RulesetUpdate(WriteModel):
    description: str | None = Field(None, max_length=500)


RulesetRead = read_of(RulesetCreate, "RulesetRead", created_by=str)


class DiagnosticRead(ReadModel):
    code: str
    severity: str
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    end_line: int | None = None
    end_col: int | None = None
    hint: str | None = None


class DraftCreate(WriteModel):
    source: str = Field(min_length=1, max_length=MAX_SOURCE)


class DraftRead(ReadModel):
    id: str
    ruleset_id: str
    sha256: str
    ok: bool
    diagnostics: list[DiagnosticRead]
    author_id: str
    created_at: datetime
    source: str


class PublishIn(WriteModel):
    draft_id: Id
    effective_from: AwareDatetime
    note: str = Field("", max_length=500)


class VersionRead(ReadModel):
    id: str
    ruleset_id: str
    version: int
    draft_id: str
    sha256: str
    dsl_name: str
    currency: str
    timezone: str
    tariff_names: list[str]
    effective_from: datetime
    author_id: str
    publisher_id: str
    published_at: datetime
    note: str


class PublishedVersion(VersionRead):
    schedules: ScheduleResync
    warnings: list[str] = Field(default_factory=list)


class VersionDetail(VersionRead):
    source: str


class DiffRead(ReadModel):
    ruleset_id: str
    from_version: int
    to_version: int
    diff: str


class SimulateIn(WriteModel):
    draft_id: Id | None = None
    version_id: Id | None = None
    source: str | None = Field(None, min_length=1, max_length=MAX_SOURCE,
                                  description="rate against unsaved source (no draft stored)")
    tariff: str | None = Field(None, max_length=100)
    sessions: list[SessionIn] = Field(min_length=1, max_length=500)


class SimulatedSession(ReadModel):
    session_id: str
    ok: bool
    result: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None


class SimulateResult(ReadModel):
    ok: bool
    sha256: str
    diagnostics: list[DiagnosticRead]
    sessions: list[SimulatedSession]


DraftPage = page_of(DraftRead)
VersionPage = page_of(VersionRead)


# --- services -----------------------------------------------------------------------------------

def _diagnostics(res: Any) -> list[dict[str, Any]]:
    return [d.to_dict() for d in res.diagnostics]


# the grammar's first rule (``start: header item*``, ``header: "ruleset" NAME ...``), after the
# blank lines and ``#`` comments it ignores: read even when the rest of a draft does not parse
_HEADER = re.compile(r"\A(?:\s|#[^\n]*+)*+ruleset\s+([A-Za-z_][A-Za-z0-9_]*)")


def _header_name(res: Any, source: str) -> str | None:
    """The name in the source's ``ruleset NAME`` header; None where the source has no header."""
    if res.ruleset is not None:
        return str(res.ruleset.name)
    m = _HEADER.match(source)
    return m.group(1) if m else None


def create_draft(scope: Scope, ruleset: Ruleset, source: str) -> RulesetDraft:
    res = compile_source(source, f"{ruleset.name}.evb")
    named = _header_name(res, source)
    if named is not None and named != ruleset.name:
        # versions carry the header's name into traces, invoices and partner statements: a draft
        # of one ruleset that calls itself another would publish under a name that is not its own
        message = (f"the header names ruleset {named!r}, but this is a draft of ruleset {ruleset.name!r}: "
                   f"write 'ruleset {ruleset.name} ...' or upload it to ruleset {named!r}")
        raise InvalidInput("ruleset_name_mismatch", f"source: {message}", errors=[
            {"key": "source", "message": message, "source": "body", "code": "ruleset_name_mismatch"}])
    draft = RulesetDraft(id=new_id("rsd"), tenant_id=scope.tenant_id, ruleset_id=ruleset.id, source=source,
                         sha256=hashlib.sha256(source.encode()).hexdigest(), ok=bool(res.ok),
                         diagnostics=_diagnostics(res), author_id=scope.actor.user_id)
    scope.db.add(draft)
    scope.flush()
    scope.audit("ruleset_draft.create", "ruleset_draft", draft.id, None,
                {"ruleset_id": ruleset.id, "sha256": draft.sha256, "ok": draft.ok})
    return draft


def _check_account_currencies(scope: Scope, name: str, currency: str) -> None:
    """A version prices the invoices of every active account of the tenant (billing takes the
    version in force, whatever its ruleset): one in another currency than theirs would bill them
    wrongly. The account side is checked where accounts are written (``api.areas.customers``)."""
    acct = BillingAccount.__table__.c  # type: ignore[attr-defined]
    others = scope.db.execute(
        select(acct.id, acct.currency).where(acct.tenant_id == scope.tenant_id, acct.status == "active",
                                             acct.currency != currency).order_by(acct.id).limit(6)).all()
    if others:
        shown = ", ".join(f"{a.id} ({a.currency})" for a in others[:5]) + (", ..." if len(others) > 5 else "")
        message = (f"ruleset {name!r} prices in {currency!r}, but active billing accounts bill in another "
                   f"currency: {shown}")
        raise InvalidInput("currency_mismatch", f"draft_id: {message}", errors=[
            {"key": "draft_id", "message": message, "source": "body", "code": "currency_mismatch"}])


def _check_chart_covers(scope: Scope, rs: Any) -> None:
    """A ruleset that bills at a VAT rate the chart of accounts maps no account for is refused
    before it can price a session (``store.accounting``: never a silent suspense account)."""
    from api.areas.accounting import ruleset_vat_treatments, with_class_rates
    from runtime.accounting.chart import ChartError
    from store.accounting import check_chart_covers

    conn = scope.db.connection()
    try:
        check_chart_covers(conn, scope.tenant_id, with_class_rates(conn, scope.tenant_id,
                                                                   ruleset_vat_treatments(rs.ast)))
    except ChartError as e:
        raise InvalidInput("chart_incomplete", f"draft_id: {e}", errors=[
            {"key": "draft_id", "message": m, "source": "body", "code": "chart_incomplete"} for m in e.missing]) from None


def publish(scope: Scope, ruleset: Ruleset, data: PublishIn) -> RulesetVersion:
    draft = scope.repo(RulesetDraft, "ruleset_draft", "rsd").get(data.draft_id)
    if draft.ruleset_id != ruleset.id:
        raise NotFound("ruleset_draft_not_found", f"draft {draft.id!r} belongs to another ruleset")
    if draft.author_id == scope.actor.user_id:
        # four eyes: whoever wrote the draft cannot put it into force
        raise Forbidden("publisher_is_author", "a draft must be published by someone other than its author")
    if not draft.ok:
        raise InvalidInput("draft_has_errors", "the draft has errors; fix them and upload a new draft")
    rs = compiled(draft.sha256, draft.source, f"{ruleset.name}.evb")
    _check_account_currencies(scope, str(rs.name), str(rs.currency))
    _check_chart_covers(scope, rs)
    latest = scope.db.execute(select(func.max(RulesetVersion.version))
                              .where(RulesetVersion.ruleset_id == ruleset.id)).scalar() or 0
    if scope.db.execute(select(RulesetVersion.id).where(RulesetVersion.ruleset_id == ruleset.id,
                                                        RulesetVersion.sha256 == draft.sha256,
                                                        RulesetVersion.effective_from == data.effective_from)).first():
        raise Conflict("version_already_published", "this source is already published with that effective date")
    version = RulesetVersion(
        id=new_id("rsv"), tenant_id=scope.tenant_id, ruleset_id=ruleset.id, version=latest + 1,
        draft_id=draft.id, source=draft.source, sha256=draft.sha256, dsl_name=str(getattr(rs, "name", "")),
        currency=str(getattr(rs, "currency", "")), timezone=str(getattr(rs, "timezone", "")),
        tariff_names=list(getattr(rs, "tariff_names", ())), effective_from=data.effective_from,
        author_id=draft.author_id, publisher_id=scope.actor.user_id, note=data.note)
    scope.db.add(version)
    scope.flush()
    scope.audit("ruleset_version.publish", "ruleset_version", version.id, None, snapshot(version, ("source",)))
    return version


def simulate(scope: Scope, data: SimulateIn) -> SimulateResult:
    given = [x for x in (data.draft_id, data.version_id, data.source) if x is not None]
    if len(given) != 1:
        raise InvalidInput("simulate_needs_one_source", "give exactly one of draft_id, version_id or source")
    if data.source is not None:
        sha = hashlib.sha256(data.source.encode()).hexdigest()
        res = compile_source(data.source, "<draft>")
        diags = _diagnostics(res)
        if not res.ok:
            return SimulateResult(ok=False, sha256=sha, diagnostics=diags, sessions=[])
        rs = res.ruleset
    elif data.draft_id is not None:
        draft = scope.repo(RulesetDraft, "ruleset_draft", "rsd").get(data.draft_id)
        sha, diags = draft.sha256, list(draft.diagnostics)
        if not draft.ok:
            return SimulateResult(ok=False, sha256=sha, diagnostics=diags, sessions=[])
        rs = compiled(draft.sha256, draft.source)
    else:
        assert data.version_id is not None
        v = scope.repo(RulesetVersion, "ruleset_version", "rsv").get(data.version_id)
        sha, diags = v.sha256, []
        rs = compiled(v.sha256, v.source)
    out = []
    for s in data.sessions:
        facts_dict = s.to_facts_dict()
        ok, result, code, message = rate_facts(scope, rs, facts_dict, data.tariff or s.tariff)
        out.append(SimulatedSession(session_id=s.id, ok=ok, result=result, code=code, message=message))
    return SimulateResult(ok=True, sha256=sha, diagnostics=diags, sessions=out)


def _version(scope: Scope, ruleset_id: str, number: int) -> RulesetVersion:
    v = scope.db.execute(select(RulesetVersion).where(
        RulesetVersion.tenant_id == scope.tenant_id, RulesetVersion.ruleset_id == ruleset_id,
        RulesetVersion.version == number)).scalar_one_or_none()
    if v is None:
        raise NotFound("ruleset_version_not_found", f"version {number} of ruleset {ruleset_id!r} not found")
    return v


# --- controllers --------------------------------------------------------------------------------

@route("POST", "/rulesets/{ruleset_id:str}/drafts", operation_id="create_ruleset_draft", roles="ruleset_write",
       status_code=201, summary="Upload a draft; the answer carries its diagnostics")
def create_ruleset_draft(request: Request[Any, Any, Any], ruleset_id: IdPath, data: DraftCreate) -> DraftRead:
    with open_scope(request) as scope:
        ruleset = scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
        draft = create_draft(scope, ruleset, data.source)
        scope.commit()
        return DraftRead.model_validate(draft, from_attributes=True)


@route("GET", "/rulesets/{ruleset_id:str}/drafts", operation_id="list_ruleset_drafts", roles="read",
       summary="Drafts of a ruleset, oldest first")
def list_ruleset_drafts(request: Request[Any, Any, Any], ruleset_id: IdPath, limit: LimitParam = 50,
                        cursor: CursorParam = None) -> DraftPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
        rows, nxt = scope.repo(RulesetDraft, "ruleset_draft", "rsd").page(
            filters={"ruleset_id": ruleset_id}, cursor=cursor, limit=limit)
        return DraftPage(items=[DraftRead.model_validate(r, from_attributes=True) for r in rows], next_cursor=nxt)


@route("GET", "/ruleset-drafts/{draft_id:str}", operation_id="get_ruleset_draft", roles="read",
       summary="A draft with its diagnostics")
def get_ruleset_draft(request: Request[Any, Any, Any], draft_id: IdPath) -> DraftRead:
    with open_scope(request) as scope:
        return DraftRead.model_validate(scope.repo(RulesetDraft, "ruleset_draft", "rsd").get(draft_id),
                                        from_attributes=True)


@route("POST", "/rulesets/{ruleset_id:str}/versions", operation_id="publish_ruleset_version", roles="publish",
       status_code=201, summary="Publish a clean draft as an immutable version (not by its author); a version "
       "that changes a billing policy resyncs the billing schedules when it takes effect")
async def publish_ruleset_version(request: Request[Any, Any, Any], ruleset_id: IdPath,
                                  data: PublishIn) -> PublishedVersion:
    def publish_now() -> VersionRead:
        with open_scope(request) as scope:
            ruleset = scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
            version = publish(scope, ruleset, data)
            scope.commit()
            return VersionRead.model_validate(version, from_attributes=True)

    version = await asyncio.to_thread(publish_now)
    # after the commit: whatever Temporal answers, the version is published
    resync = await resync_after_publish(request.app, actor_of(request).tenant_id, version.id)
    warnings = [resync.detail] if resync.status == "failed" else []
    return PublishedVersion(**version.model_dump(), schedules=resync, warnings=warnings)


@route("GET", "/rulesets/{ruleset_id:str}/versions", operation_id="list_ruleset_versions", roles="read",
       summary="Published versions, oldest first")
def list_ruleset_versions(request: Request[Any, Any, Any], ruleset_id: IdPath, limit: LimitParam = 50,
                          cursor: CursorParam = None) -> VersionPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
        rows, nxt = scope.repo(RulesetVersion, "ruleset_version", "rsv").page(
            filters={"ruleset_id": ruleset_id}, cursor=cursor, limit=limit)
        return VersionPage(items=[VersionRead.model_validate(r, from_attributes=True) for r in rows], next_cursor=nxt)


@route("GET", "/ruleset-versions/{version_id:str}", operation_id="get_ruleset_version", roles="read",
       summary="A published version with its source")
def get_ruleset_version(request: Request[Any, Any, Any], version_id: IdPath) -> VersionDetail:
    with open_scope(request) as scope:
        return VersionDetail.model_validate(scope.repo(RulesetVersion, "ruleset_version", "rsv").get(version_id),
                                            from_attributes=True)


@route("GET", "/rulesets/{ruleset_id:str}/diff", operation_id="diff_ruleset_versions", roles="read",
       summary="Unified diff between two versions' sources")
def diff_ruleset_versions(request: Request[Any, Any, Any], ruleset_id: IdPath, from_version: int,
                          to_version: int) -> DiffRead:
    with open_scope(request) as scope:
        ruleset = scope.repo(Ruleset, "ruleset", "rs").get(ruleset_id)
        a = _version(scope, ruleset.id, from_version)
        b = _version(scope, ruleset.id, to_version)
        diff = "".join(difflib.unified_diff(
            a.source.splitlines(keepends=True), b.source.splitlines(keepends=True),
            fromfile=f"{ruleset.name}@v{a.version}", tofile=f"{ruleset.name}@v{b.version}"))
        return DiffRead(ruleset_id=ruleset.id, from_version=a.version, to_version=b.version, diff=diff)


@route("POST", "/rulesets/simulate", operation_id="simulate_ruleset", roles="ruleset_write", status_code=200,
       summary="Rate sessions against a draft, a version or unsaved source; nothing is stored")
def simulate_ruleset(request: Request[Any, Any, Any], data: SimulateIn) -> SimulateResult:
    with open_scope(request) as scope:
        return simulate(scope, data)


def _ruleset_values(scope: Scope, values: dict[str, Any], existing: Any) -> None:
    if existing is None:
        values["created_by"] = scope.actor.user_id


router = Router(path="/", route_handlers=[
    create_ruleset_draft, list_ruleset_drafts, get_ruleset_draft, publish_ruleset_version,
    list_ruleset_versions, get_ruleset_version, diff_ruleset_versions, simulate_ruleset,
    crud_router(path="/rulesets", tag="rulesets", entity="ruleset", plural="rulesets", prefix="rs",
                model=Ruleset, create=RulesetCreate, update=RulesetUpdate, read=RulesetRead,
                write_roles="ruleset_write", search_cols=("name", "description"), validate=_ruleset_values,
                deletable=False),
], tags=["rulesets"])

_ = (Literal, update_of)
