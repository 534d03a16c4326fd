"""Partner statements: the sessions at a partner's sites in a period, the revenue per currency and
VAT rate, and the partner's share under its revenue-share agreement. Preview (computed, nothing
stored), issue (numbered per tenant, immutable, audited), list, get and CSV export.

A partner-role key sees only its own partner's statements. The routes ride on the partners
router (``api.areas.partners``).

Where the share terms come from: an agreement that names both a ruleset and a rule reads that
``revenue_share`` block from the ruleset version in force at the period's start (the first one
published during the period if none was in force yet); any other agreement reads its ``terms``:
``share_percent``, ``per_kwh``, ``per_session``, ``monthly_fee``, ``reimburse_per_kwh`` (decimal
strings), ``currency`` for the fixed amounts (default: the tenant's) and ``sites`` (location codes or
globs, space-separated: the share is limited to sessions there).

Per-session terms (``runtime.settlements``): indexed or time-of-use ``reimburse energy at`` prices
and commission blocks price each session from the facts rating saw, at the tenant's price series
(per kWh); a session priced at a moment no imported interval covers refuses the statement (422
``reimbursement_price_missing`` naming the session, the stretch and the gap). Agreements of kind
``reimbursement`` (an employee's company car charged at home) read a ``reimbursement`` block.

Several agreements in one period: without ``agreement_id``, every revenue-share agreement of the
partner valid in the period applies on its own days (their validities must not overlap); each
covers the sessions whose local start day lies in its validity, its monthly fee is pro rata by
those days, and a ruleset-based one reads the version in force at the start of its days. Lines
name their agreement; ``agreements`` holds the subtotals per agreement and currency.

Corrections: a statement also settles the partner's sessions of issued periods that were re-rated
since a statement stated them (the difference between the exact share stated and the share now,
under the agreement they were stated under) and late ones that no statement included (their share
under the agreement of their day). Issued statements are never edited; a period with no sessions
of its own can be issued for its corrections alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec
from pydantic import Field

from api.auth import ROLE_SETS
from api.crud import (
    CursorParam,
    IdPath,
    LimitParam,
    ReadModel,
    WriteModel,
    _problems,
    open_scope,
    page_of,
    route,
)
from api.schemas import DecimalOut, Id, RefId
from dsl.revenue_share import revenue_share_terms
from runtime.invoicing import Period, ad_hoc_period
from runtime.settlements import SettlementError
from runtime.statements import (
    PriorSession,
    SessionRevenue,
    ShareSegment,
    ShareTerms,
    StatementDraft,
    build_statement,
    statement_period,
)
from store import statements as S
from store.errors import Conflict, InvalidInput, NotFound
from store.models import Agreement, Partner, Tenant
from store.repo import Scope, decode_cursor, encode_cursor

__all__ = ["TERM_KEYS", "check_share_terms", "handlers", "seq_after", "statement_csv"]

ROLE_SETS.setdefault("statements_read", ("admin", "operator", "approver", "auditor", "partner"))
ROLE_SETS.setdefault("statements_write", ("admin", "operator"))

TERM_KEYS = ("share_percent", "per_kwh", "per_session", "monthly_fee", "reimburse_per_kwh")


class PartnerStatementCreate(WriteModel):
    partner_id: Id
    month: str | None = Field(None, pattern=r"^(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])$",
                              description="a calendar month in the tenant's time zone, e.g. 2026-03")
    start: date | None = Field(None, description="first local day (tenant's zone); with end, instead of month")
    end: date | None = Field(None, description="local day after the last one (exclusive), like billing periods")
    agreement_id: RefId = Field(None, description="the revenue-share agreement to apply; default: the "
                                                  "partner's one valid in the period")
    accept_unrated: bool = Field(False, description="issue even though sessions of the period are not rated "
                                                    "(once rated, a later statement settles them as late "
                                                    "sessions)")


class TotalRead(ReadModel):
    currency: str
    sessions: int
    energy_kwh: DecimalOut
    net: DecimalOut
    tax: DecimalOut
    gross: DecimalOut
    payable: DecimalOut


class AgreementSubtotalRead(ReadModel):
    agreement_id: str | None
    source: str
    local_start: date | None = Field(description="the first day of the period the agreement covers; null: it "
                                                 "appears only through corrections or late sessions")
    local_end: date | None = Field(description="the day after the last one it covers (exclusive)")
    sessions: int = Field(description="sessions of the period earning a share under it")
    currency: str
    payable: DecimalOut


class PartnerStatementLineRead(ReadModel):
    seq: int
    kind: str
    description: str
    currency: str
    tax_rate: DecimalOut | None
    sessions: int
    energy_kwh: DecimalOut
    quantity: DecimalOut
    unit: str
    unit_price: DecimalOut
    net: DecimalOut
    tax: DecimalOut
    gross: DecimalOut
    net_unrounded: DecimalOut
    agreement_id: str | None = Field(None, description="share lines: the agreement they are earned under")
    session_id: str | None = Field(None, description="corrections and late sessions: the session")
    refers_to: str | None = Field(None, description="corrections and late sessions: the number of the issued "
                                                    "statement whose period they belong to")
    trace: list[dict[str, Any]] | None = Field(None, description="reimbursement and commission lines: the rule "
                                                                 "(first entry), then the stretches or sessions "
                                                                 "behind the amount")


class BreakdownRead(ReadModel):
    key: str = Field(description="the cost centre (empty: sessions without one) or the site's location code")
    label: str = Field(description="the site's name; for a cost centre the cost centre")
    currency: str
    sessions: int
    energy_kwh: DecimalOut
    net: DecimalOut = Field(description="the revenue lines' net apportioned by the sessions' exact nets: the "
                                        "rows add up to the statement's net total")
    tax: DecimalOut
    gross: DecimalOut


class PartnerStatementSummary(ReadModel):
    id: str | None = Field(description="null on a preview")
    number: str | None = Field(description="null on a preview")
    partner_id: str
    agreement_id: str | None
    ruleset_version_id: str | None
    share_source: str
    local_start: date
    local_end: date
    timezone: str
    period_start: datetime
    period_end: datetime
    sessions: int
    covered_sessions: int
    unrated_sessions: int
    energy_kwh: DecimalOut
    totals: list[TotalRead]
    agreements: list[AgreementSubtotalRead] = Field(description="share subtotals per agreement and currency")
    cost_centres: list[BreakdownRead] = Field(default_factory=list, description="energy and revenue per cost "
                                              "centre (the sessions' token's, else contract's) and currency; "
                                              "empty on statements issued before cost centres")
    sites: list[BreakdownRead] = Field(default_factory=list, description="energy and revenue per site and currency")
    notes: list[str]
    issued_by: str | None
    issued_at: datetime | None


class PartnerStatementRead(PartnerStatementSummary):
    lines: list[PartnerStatementLineRead]


PartnerStatementPage = page_of(PartnerStatementSummary)


def _only_partner(scope: Scope) -> str | None:
    """A partner key sees its own partner only (a partner user without one sees nothing: "")."""
    return (scope.actor.partner_id or "") if scope.actor.role == "partner" else None


def _own_partner(scope: Scope, partner_id: str) -> Partner:
    if scope.actor.role == "partner" and partner_id != scope.actor.partner_id:
        raise NotFound("partner_not_found", f"partner {partner_id!r} not found")
    return scope.repo(Partner, "partner", "par").get(partner_id)


def _decimal_term(terms: dict[str, Any], key: str) -> Decimal | None:
    raw = terms.get(key)
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidInput("agreement_terms_invalid", f"term {key!r} is not a decimal: {raw!r}") from None
    if not value.is_finite() or value < 0 or (key == "share_percent" and value > 100) or abs(value) >= 10**9:
        raise InvalidInput("agreement_terms_invalid", f"term {key!r} is out of range: {raw!r}")
    return value


def check_share_terms(terms: dict[str, Any], currency: str) -> ShareTerms:
    from api.validation import check_currency

    cur = str(terms.get("currency") or currency)
    try:
        check_currency(cur)
    except ValueError as exc:
        raise InvalidInput("agreement_terms_invalid", f"term 'currency': {exc}") from None
    v = {k: _decimal_term(terms, k) for k in TERM_KEYS}
    return ShareTerms(cur, v["share_percent"], v["per_kwh"], v["per_session"], v["monthly_fee"],
                      v["reimburse_per_kwh"], "agreement terms", tuple(str(terms.get("sites") or "").split()))


def _agreements(scope: Scope, partner: Partner, period: Period, agreement_id: str | None) -> list[Agreement]:
    """The named agreement, else every revenue-share agreement of the partner valid in the period,
    by start; two whose validities overlap make the choice ambiguous."""
    if agreement_id:
        ag = scope.repo(Agreement, "agreement", "agr").get(agreement_id)
        if ag.partner_id != partner.id:
            if scope.actor.role == "partner":  # another partner's agreement does not exist for a partner key
                raise NotFound("agreement_not_found", f"agreement {ag.id!r} not found")
            raise InvalidInput("agreement_of_another_partner", f"agreement {ag.id!r} is not {partner.id!r}'s")
        if ag.kind not in S.SHARE_AGREEMENT_KINDS:
            raise InvalidInput("not_a_revenue_share_agreement", f"agreement {ag.id!r} is a {ag.kind} agreement")
        return [ag]
    found = S.revenue_share_agreements(scope.db, scope.tenant_id, partner.id, period.local_start, period.local_end)
    for before, after in pairwise(found):
        if before.valid_to is None or before.valid_to >= after.valid_from:
            raise InvalidInput("agreement_ambiguous", f"{len(found)} revenue-share agreements of the partner are "
                               f"valid on the same days of the period: name one with agreement_id "
                               f"({', '.join(a.id for a in found)})")
    return found


def _ruleset_terms(scope: Scope, ag: Agreement, period: Period) -> tuple[ShareTerms, str]:
    rs, version = S.ruleset_version_for(scope.db, scope.tenant_id, ag.ruleset_name, period.start, period.end)
    if rs is None:
        raise InvalidInput("agreement_ruleset_not_found", f"the agreement names ruleset {ag.ruleset_name!r}, "
                                                          "which does not exist")
    if version is None:
        raise InvalidInput("no_ruleset_version_in_force", f"ruleset {rs.name!r} has no version in force in the period")
    block = ag.kind if ag.kind in ("reimbursement", "commission") else "revenue_share"
    label = f"ruleset {rs.name} v{version.version}, {block} {ag.rule_name}"
    terms, diags = revenue_share_terms(version.source, ag.rule_name, f"{rs.name} v{version.version}", label)
    errors = [d for d in diags if d.is_error]
    if errors:
        raise InvalidInput("revenue_share_unreadable", f"the revenue_share block {ag.rule_name!r} cannot be read: "
                           f"{errors[0].message}", errors=[d.to_dict() for d in errors])
    if terms is None:
        raise InvalidInput("revenue_share_not_found", f"{rs.name} v{version.version} has no revenue_share (or "
                                                      f"reimbursement) block named {ag.rule_name!r}")
    return terms, version.id


class _Shares:
    """The share segments of a period (one per agreement), what they came from, and notes."""

    def __init__(self, scope: Scope, tenant: Tenant, partner: Partner, period: Period,
                 agreement_id: str | None) -> None:
        self.segments: list[ShareSegment] = []
        self.version_ids: list[str] = []
        self.notes: list[str] = []
        self.agreements = _agreements(scope, partner, period, agreement_id)
        for ag in self.agreements:
            first = max(period.local_start, ag.valid_from)
            end = min(period.local_end, ag.valid_to + timedelta(days=1)) if ag.valid_to else period.local_end
            terms: ShareTerms | None = None
            if ag.ruleset_name and ag.rule_name:
                days = ad_hoc_period(first, end, period.timezone) if first < end else period
                terms, version_id = _ruleset_terms(scope, ag, days)
                self.version_ids.append(version_id)
            else:
                terms = check_share_terms(ag.terms or {}, tenant.currency)
                if ag.rule_name:
                    self.notes.append(f"the agreement names rule {ag.rule_name!r} but no ruleset: its terms were used")
            self.segments.append(ShareSegment(ag.id, terms, first, end))

    @property
    def source(self) -> str:
        if not self.agreements:
            return "no agreement"
        return "; ".join(g.terms.source if g.terms is not None else "agreement without terms" for g in self.segments)


def _prior(scope: Scope, tenant: Tenant, partner: Partner, period: Period, hosted: bool = True) -> list[PriorSession]:
    """The partner's sessions of issued periods to settle now, each with the agreement (and its
    terms for that period) it is settled under: the one it was stated under, else (late) the one
    of its day. Sessions of ``period`` itself are left out: a preview of an issued period shows
    them as its own sessions, not twice."""
    tzname = period.timezone
    shares: dict[tuple[date, date, str | None], _Shares] = {}

    def of(rec: S.PriorRecord, agreement_id: str | None) -> _Shares:
        key = (rec.local_start, rec.local_end, agreement_id)
        if key not in shares:
            shares[key] = _Shares(scope, tenant, partner, ad_hoc_period(rec.local_start, rec.local_end, tzname),
                                  agreement_id)
        return shares[key]

    out = []
    for rec in S.prior_sessions(scope.db, scope.tenant_id, partner.id, tzname, hosted):
        if period.local_start <= rec.session.local_date < period.local_end:
            continue
        seg: ShareSegment | None = None
        if rec.stated:
            if rec.stated_agreement_id:
                seg = of(rec, rec.stated_agreement_id).segments[0]
        else:
            seg = next((g for g in of(rec, rec.statement_agreement_id).segments
                        if g.holds(rec.session.local_date)), None)
        if not hosted and not rec.stated and not _selects(seg, rec.session):
            continue  # a sales partner's late sessions: only those its rules select
        out.append(PriorSession(rec.session, rec.statement_number, seg, rec.stated))
    return out


def _selects(seg: ShareSegment | None, s: SessionRevenue) -> bool:
    """Whether a commission rule of the segment selects the session (on its days)."""
    if seg is None or seg.terms is None or not seg.holds(s.local_date):
        return False
    try:
        return any(ct.session_amounts(s.session_id, s.local_date, s.energy_kwh, s.net, s.facts)
                   for ct in seg.terms.commissions)
    except SettlementError as exc:
        raise InvalidInput("commission_session_unreadable", str(exc)) from None


def _per_session(segments: Sequence[ShareSegment | None]) -> bool:
    """Whether terms price sessions by their facts (indexed or time-of-use reimbursement, commissions)."""
    return any(g is not None and g.terms is not None and (g.terms.reimburse is not None or g.terms.commissions)
               for g in segments)


def _selected(scope: Scope, period: Period, segments: Sequence[ShareSegment]) -> tuple[list[SessionRevenue], int]:
    """The tenant's sessions of the period that a commission rule of the segments selects (on its
    own days); the statement shows their revenue, the basis of the commission, and nothing else."""
    found, unrated = S.tenant_sessions(scope.db, scope.tenant_id, period.start, period.end, period.timezone)
    out = [s for s in found if _selects(next((g for g in segments if g.holds(s.local_date)), None), s)]
    return out, unrated


def _series(scope: Scope, period: Period, segments: Sequence[ShareSegment],
            prior: Sequence[PriorSession]) -> dict[str, Any]:
    """The price series the terms read (per kWh), over the period and the days of the prior
    sessions settled with it."""
    from store.prices import load_series

    names = {n for g in [*segments, *(p.segment for p in prior)] if g is not None and g.terms is not None
             and g.terms.reimburse is not None for n in g.terms.reimburse.series}
    if not names:
        return {}
    start = period.start
    if prior:
        first = min(p.session.local_date for p in prior)
        start = min(start, ad_hoc_period(first, first + timedelta(days=1), period.timezone).start)
    return dict(load_series(scope.db, scope.tenant_id, start, period.end, sorted(names)))


def _compute(scope: Scope, data: PartnerStatementCreate) -> tuple[StatementDraft, S.IssueRequest]:
    partner = _own_partner(scope, data.partner_id)
    tenant = scope.db.get(Tenant, scope.tenant_id)
    assert tenant is not None
    try:
        period = statement_period(tenant.timezone, month=data.month, start=data.start, end=data.end)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput("invalid_period", str(exc)) from None
    shares = _Shares(scope, tenant, partner, period, data.agreement_id)
    if shares.agreements and all(ag.kind == "commission" for ag in shares.agreements):
        # a sales partner: its commission rules select the tenant's sessions, wherever they were
        sessions, unrated = _selected(scope, period, shares.segments)
        prior = _prior(scope, tenant, partner, period, hosted=False)
    else:
        sessions, unrated = S.period_sessions(scope.db, scope.tenant_id, partner.id, period.start, period.end,
                                              period.timezone, with_facts=_per_session(shares.segments))
        prior = _prior(scope, tenant, partner, period)
    series = _series(scope, period, shares.segments, prior)
    try:
        draft = build_statement(period=period, sessions=sessions, unrated_sessions=unrated,
                                segments=shares.segments, prior=prior, series=series)
    except SettlementError as exc:
        # never a zero for a missing price: the statement waits for the prices
        raise InvalidInput("reimbursement_price_missing", str(exc), errors=[
            {"key": "session_id", "message": str(exc), "source": exc.session_id}]) from None
    if shares.notes:
        draft = replace(draft, notes=(*shares.notes, *draft.notes))
    one = shares.agreements[0].id if len(shares.agreements) == 1 else None
    versions = set(shares.version_ids)
    return draft, S.IssueRequest(partner.id, one, versions.pop() if len(versions) == 1 else None, shares.source)


def breakdown_of(row: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A statement row's (or draft header's) ``breakdown`` as the API's two lists."""
    rows = row.get("breakdown") or []
    return {"cost_centres": [b for b in rows if b["dimension"] == "cost_centre"],
            "sites": [b for b in rows if b["dimension"] == "site"]}


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in PartnerStatementSummary.model_fields if k in row},
            "agreements": row["agreements"] or [], **breakdown_of(row)}


def _read(header: dict[str, Any], lines: list[Any]) -> PartnerStatementRead:
    return PartnerStatementRead(**_summary(header), lines=[PartnerStatementLineRead.model_validate(ln, from_attributes=True)
                                                           for ln in lines])


def _draft_header(draft: StatementDraft, req: S.IssueRequest) -> dict[str, Any]:
    p = draft.period
    return {"id": None, "number": None, "partner_id": req.partner_id, "agreement_id": req.agreement_id,
            "ruleset_version_id": req.ruleset_version_id, "share_source": req.share_source,
            "local_start": p.local_start, "local_end": p.local_end, "timezone": p.timezone,
            "period_start": p.start, "period_end": p.end, "sessions": draft.sessions,
            "covered_sessions": draft.covered_sessions, "unrated_sessions": draft.unrated_sessions,
            "energy_kwh": draft.energy_kwh, "totals": [t.to_dict() for t in draft.totals],
            "agreements": [a.to_dict() for a in draft.agreements], "notes": list(draft.notes),
            "breakdown": [b.to_dict() for b in draft.breakdown], "issued_by": None, "issued_at": None}


@route("POST", "/partner-statements/preview", operation_id="preview_partner_statement", roles="statements_read",
       status_code=200, summary="Compute a partner's statement for a month or period without issuing it")
def preview_partner_statement(request: Request[Any, Any, Any], data: PartnerStatementCreate) -> PartnerStatementRead:
    with open_scope(request) as scope:
        draft, req = _compute(scope, data)
        return _read(_draft_header(draft, req), [ln.to_dict() for ln in draft.lines])


@route("POST", "/partner-statements", operation_id="issue_partner_statement", roles="statements_write",
       status_code=201, summary="Issue a partner statement: numbered, stored, immutable and audited")
def issue_partner_statement(request: Request[Any, Any, Any], data: PartnerStatementCreate) -> PartnerStatementRead:
    with open_scope(request) as scope:
        # before anything is read: two issuers must not settle the same re-rated session twice
        S.lock_issuer(scope.db, scope.tenant_id)
        draft, req = _compute(scope, data)
        if draft.unrated_sessions and not data.accept_unrated:
            # an issued statement is final and periods may not overlap: sessions rated later could
            # never be paid out, so leaving them out has to be a decision
            raise Conflict("statement_has_unrated_sessions",
                           f"{draft.unrated_sessions} session(s) of the period are not rated: rate them first, "
                           "or issue with accept_unrated")
        row = S.issue_statement(scope.db, scope.actor, req, draft)
        scope.commit()
        return _read(row, [ln.to_dict() for ln in draft.lines])


def seq_after(cursor: str | None) -> int | None:
    """The number sequence a page cursor of numbered documents (statements, credit notes) names."""
    if not cursor:
        return None
    raw = decode_cursor(cursor)
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInput("invalid_cursor", "the cursor is not one this API returned")
    return int(raw)


@route("GET", "/partner-statements", operation_id="list_partner_statements", roles="statements_read",
       summary="Issued partner statements, by number")
def list_partner_statements(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                            partner_id: str | None = None) -> PartnerStatementPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        after = seq_after(cursor)
        rows = S.list_statements(scope.db, scope.tenant_id, only_partner=_only_partner(scope), partner_id=partner_id,
                                 after_seq=after, limit=limit + 1)
        nxt = encode_cursor(str(rows[limit - 1]["number_seq"])) if len(rows) > limit else None
        return PartnerStatementPage(items=[PartnerStatementSummary.model_validate(_summary(r)) for r in rows[:limit]],
                                    next_cursor=nxt)


def _get(scope: Scope, statement_id: str) -> dict[str, Any]:
    row = S.statement_row(scope.db, scope.tenant_id, statement_id, only_partner=_only_partner(scope))
    if row is None:
        raise NotFound("partner_statement_not_found", f"partner statement {statement_id!r} not found")
    return row


@route("GET", "/partner-statements/{partner_statement_id:str}", operation_id="get_partner_statement",
       roles="statements_read", summary="An issued partner statement with its lines")
def get_partner_statement(request: Request[Any, Any, Any], partner_statement_id: IdPath) -> PartnerStatementRead:
    with open_scope(request) as scope:
        row = _get(scope, partner_statement_id)
        lines = [dict(ln._mapping) for ln in S.lines_of(scope.db, row["id"])]
        return _read(row, lines)


CSV_COLUMNS = ("number", "partner_id", "local_start", "local_end", "seq", "kind", "description", "currency",
               "tax_rate", "sessions", "energy_kwh", "quantity", "unit", "unit_price", "net", "tax", "gross",
               "agreement_id", "session_id", "refers_to", "rule")


@route("GET", "/partner-statements/{partner_statement_id:str}/csv", operation_id="export_partner_statement_csv",
       roles="statements_read", summary="The statement's lines as CSV (one row per line, decimals as written, "
                                        "the rule behind reimbursement and commission lines), then one "
                                        "agreement_subtotal row per agreement and currency",
       responses={**_problems(400, 401, 403, 404, 409, 422),
                  200: ResponseSpec(data_container=str, media_type="text/csv", description="the lines as CSV")})
def export_partner_statement_csv(request: Request[Any, Any, Any], partner_statement_id: IdPath) -> Response[str]:
    with open_scope(request) as scope:
        filename, text = statement_csv(scope, partner_statement_id)
    return Response(text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def statement_csv(scope: Scope, statement_id: str) -> tuple[str, str]:
    """(file name, CSV text) of an issued statement the caller may see (a partner: its own)."""
    row = _get(scope, statement_id)
    lines = [dict(ln._mapping) for ln in S.lines_of(scope.db, row["id"])]
    # subtotal rows keep the statement's period in local_start/local_end; the agreement's own days
    # are in the description
    subtotals = [{"kind": "agreement_subtotal", "agreement_id": a["agreement_id"], "currency": a["currency"],
                  "sessions": a["sessions"], "net": a["payable"], "gross": a["payable"],
                  "description": a["source"] + (f" ({a['local_start']} to before {a['local_end']})"
                                                if a["local_start"] else " (corrections and late sessions)")}
                 for a in row["agreements"] or []]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for ln in [*lines, *subtotals]:
        m = {**row, **ln}
        # reimbursement and commission lines: the rule behind the amount (the JSON has the whole trace)
        trace = ln.get("trace") or []
        m["rule"] = trace[0].get("rule") if trace and isinstance(trace[0], dict) else None
        w.writerow(["" if m.get(c) is None else format(m[c], "f") if isinstance(m[c], Decimal) else str(m[c])
                    for c in CSV_COLUMNS])
    return f"{row['number']}.csv", out.getvalue()


@route("GET", "/partner-statements/{partner_statement_id:str}/pdf", operation_id="render_partner_statement_pdf",
       roles="statements_read", summary="The issued statement as a PDF in the partner's language: its lines, then "
                                        "energy and revenue per cost centre and per site",
       responses={**_problems(400, 401, 403, 404, 409, 422),
                  200: ResponseSpec(data_container=bytes, media_type="application/pdf", description="the PDF")})
def render_partner_statement_pdf(request: Request[Any, Any, Any], partner_statement_id: IdPath) -> Response[bytes]:
    from runtime.documents.partner_statement import render_partner_statement

    with open_scope(request) as scope:
        row = _get(scope, partner_statement_id)
        doc = S.statement_document(scope.db, scope.tenant_id, row)
    return Response(render_partner_statement(doc), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{row["number"]}.pdf"'})


handlers = [preview_partner_statement, issue_partner_statement, list_partner_statements, get_partner_statement,
            export_partner_statement_csv, render_partner_statement_pdf]
