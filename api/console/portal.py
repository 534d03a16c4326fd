"""The partner portal: a site host or sub-client (a user with the ``partner`` role, tied to one
partner) signs in at the console's door and sees only what concerns its partner: the sessions
at the sites it hosts, its issued statements (the credit notes under its revenue-share
agreement, with their lines) and the payouts the tenant owes or paid it, and downloads each as
CSV. Every read filters by the signed-in person's tenant and partner (``store.portal``, and
``store.statements`` through the API's own ``statement_csv``); a partner user without a partner
sees nothing, as with the API.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get
from litestar.response import Template

from api.auth import ROLE_SETS
from api.console.i18n import add_texts
from api.console.pages import _NotFound, _page
from api.console.session import console_allow

__all__ = ["HTML_ROUTES", "handlers"]

ROLE_SETS.setdefault("portal", ("partner",))  # the navigation's entries: ``api.console.pages.NAV``

HTML_ROUTES = {
    "GET /console/portal": "portal",
    "GET /console/portal/sessions": "portal",
    "GET /console/portal/sessions.csv": "portal",
    "GET /console/portal/statements": "portal",
    "GET /console/portal/statements/{statement_id:str}": "portal",
    "GET /console/portal/statements/{statement_id:str}/csv": "portal",
    "GET /console/portal/statements/{statement_id:str}/pdf": "portal",
    "GET /console/portal/payouts": "portal",
    "GET /console/portal/payouts.csv": "portal",
}

add_texts({
    "portal": ("Partnerportal", "Partner portal"),
    "statements": ("Abrechnungen (Gutschriften)", "Statements (credit notes)"),
    "payouts": ("Auszahlungen", "Payouts"),
    "portal_for": ("Partnerportal · {name}", "Partner portal · {name}"),
    "no_partner": ("Ihr Zugang ist keinem Partner zugeordnet: es gibt nichts zu zeigen.",
                   "Your access belongs to no partner: there is nothing to show."),
    "sessions_at_sites": ("Ladevorgänge an Ihren Standorten", "Sessions at your sites"),
    "no_sessions_month": ("Keine Ladevorgänge in diesem Monat.", "No sessions this month."),
    "download_csv": ("Als CSV herunterladen", "Download as CSV"),
    "end": ("Ende", "End"),
    "evse": ("Ladepunkt", "EVSE"),
    "status_rated": ("bewertet", "rated"),
    "status_unrated": ("nicht bewertet", "not rated"),
    "status_rating_failed": ("Bewertung fehlgeschlagen", "rating failed"),
    "status_unassigned": ("nicht zugeordnet", "unassigned"),
    "no_statements": ("Noch keine Abrechnungen.", "No statements yet."),
    "statement_period": ("Zeitraum", "Period"),
    "issued_at": ("Ausgestellt am", "Issued at"),
    "payable_to_you": ("An Sie", "To you"),
    "statement": ("Abrechnung", "Statement"),
    "share_source": ("Grundlage", "Terms"),
    "no_payouts": ("Noch keine Auszahlungen.", "No payouts yet."),
    "payout_status_requested": ("vorgemerkt", "requested"),
    "payout_status_in_run": ("im Zahllauf, wartet auf Freigabe", "in a payout run awaiting approval"),
    "payout_status_submitted": ("an die Bank übergeben", "sent to the bank"),
    "payout_status_paid": ("bezahlt", "paid"),
    "payout_status_returned": ("zurückgekommen", "returned"),
    "amount": ("Betrag", "Amount"),
    "paid_on": ("Bezahlt am", "Paid on"),
    "to_account": ("Auf Konto", "To account"),
    "requested_on": ("Angelegt am", "Requested on"),
    "latest_statements": ("Letzte Abrechnungen", "Latest statements"),
    "this_month": ("Dieser Monat", "This month"),
    "net_at_sites": ("Umsatz netto an Ihren Standorten", "Net revenue at your sites"),
    "all_statements": ("Alle Abrechnungen", "All statements"),
    "all_sessions": ("Alle Ladevorgänge des Monats", "All sessions of the month"),
    "shown_first": ("Die ersten {n} von {m}; die CSV-Datei enthält alle.", "The first {n} of {m}; the CSV file has all."),
    "cost_centre": ("Kostenstelle", "Cost centre"),
    "no_cost_centre": ("ohne Kostenstelle", "no cost centre"),
    "by_cost_centre": ("Energie und Umsatz je Kostenstelle", "Energy and revenue per cost centre"),
    "by_site": ("Energie und Umsatz je Standort", "Energy and revenue per site"),
    "vat_amount": ("USt", "VAT"),
    "revenue_vat": ("Ladeumsatz, USt {rate} %", "Charging revenue, VAT {rate}%"),
    "breakdown_reconciles": ("Jede Tabelle ergibt den Ladeumsatz der Abrechnung (gerundete Beträge nach den genauen "
                             "Umsätzen der Ladevorgänge aufgeteilt).",
                             "Each table adds up to the statement's charging revenue (rounded amounts apportioned "
                             "by the sessions' exact revenue)."),
})

SHOWN = 500


def _me(request: Request[Any, Any, Any]) -> tuple[str, str]:
    actor = request.user
    return actor.tenant_id, actor.partner_id or ""


def _month(db: Any, tenant_id: str, month: str | None, partner_id: str = "") -> tuple[date, date, ZoneInfo, str]:
    """The month asked for, else the month of the partner's newest session, else this month."""
    from store.models import Tenant
    from store.portal import latest_start
    from store.types import utcnow

    tenant = db.get(Tenant, tenant_id)
    tz = ZoneInfo(tenant.timezone)
    first = None
    if month:
        try:
            y, m = (int(x) for x in month.split("-"))
            first = date(y, m, 1) if 1970 <= y <= 2200 else None
        except ValueError:
            first = None
    if first is None:
        newest = latest_start(db.connection(), tenant_id, partner_id) if partner_id else None
        first = (newest or utcnow()).astimezone(tz).date().replace(day=1)
    end = (first + timedelta(days=32)).replace(day=1)
    return first, end, tz, tenant.currency


def _tz(db: Any, tenant_id: str) -> ZoneInfo:
    from store.models import Tenant

    return ZoneInfo(db.get(Tenant, tenant_id).timezone)


def _bounds(first: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return (datetime(first.year, first.month, 1, tzinfo=tz), datetime(end.year, end.month, 1, tzinfo=tz))


def _with_last_day(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A statement's ``local_end`` is the day after its period (exclusive): people read the last day."""
    return [{**r, "last_day": r["local_end"] - timedelta(days=1)} for r in rows]


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> Response[str]:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else format(v, "f") if isinstance(v, Decimal) else
                    v.isoformat() if isinstance(v, date | datetime) else str(v) for v in r])
    return Response(out.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"})


@get("/console/portal", guards=[console_allow("portal")], include_in_schema=False)
async def overview(request: Request[Any, Any, Any], month: str | None = None) -> Template:
    from store import portal as P
    from store import statements as S

    tenant_id, partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        partner = P.partner_of(conn, tenant_id, partner_id)
        first, end, tz, currency = _month(db, tenant_id, month, partner_id)
        if partner is None:
            return _page(request, "portal.html", partner=None, section="overview")
        sums = P.session_sums(conn, tenant_id, partner_id, *_bounds(first, end, tz))
        statements = _with_last_day(S.list_statements(db, tenant_id, only_partner=partner_id, partner_id=None,
                                                      after_seq=None, limit=1000)[-5:][::-1])
        pays = P.payouts(conn, tenant_id, partner_id, limit=5)
    return _page(request, "portal.html", partner=partner, section="overview", first=first, sums=sums,
                 statements=statements, payouts=pays, currency=currency, month_value=f"{first:%Y-%m}")


@get("/console/portal/sessions", guards=[console_allow("portal")], include_in_schema=False)
async def portal_sessions(request: Request[Any, Any, Any], month: str | None = None) -> Template:
    from store import portal as P

    tenant_id, partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        partner = P.partner_of(conn, tenant_id, partner_id)
        first, end, tz, currency = _month(db, tenant_id, month, partner_id)
        if partner is None:
            return _page(request, "portal.html", partner=None, section="sessions")
        start, stop = _bounds(first, end, tz)
        rows = P.sessions(conn, tenant_id, partner_id, start, stop, limit=SHOWN)
        sums = P.session_sums(conn, tenant_id, partner_id, start, stop)
    prev_month = (first - timedelta(days=1)).replace(day=1)
    return _page(request, "portal.html", partner=partner, section="sessions", rows=rows, sums=sums, first=first,
                 month_value=f"{first:%Y-%m}", prev_month=f"{prev_month:%Y-%m}", next_month=f"{end:%Y-%m}",
                 currency=currency, shown=SHOWN, tz=tz)


@get("/console/portal/sessions.csv", guards=[console_allow("portal")], include_in_schema=False)
async def portal_sessions_csv(request: Request[Any, Any, Any], month: str | None = None) -> Response[str]:
    from store import portal as P

    tenant_id, partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        if P.partner_of(conn, tenant_id, partner_id) is None:
            raise _NotFound
        first, end, tz, _cur = _month(db, tenant_id, month, partner_id)
        rows = P.sessions(conn, tenant_id, partner_id, *_bounds(first, end, tz), limit=None)
    return _csv(f"sessions-{first:%Y-%m}.csv",
                ["session", "start", "end", "location", "evse", "energy_kwh", "status", "currency", "net", "gross"],
                [[r.external_id, r.start, r.end, r.location_ref, r.evse_ref, r.energy_kwh, r.status, r.currency,
                  r.net_total, r.gross_total] for r in rows])


@get("/console/portal/statements", guards=[console_allow("portal")], include_in_schema=False)
async def portal_statements(request: Request[Any, Any, Any]) -> Template:
    from store import portal as P
    from store import statements as S

    tenant_id, partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        partner = P.partner_of(db.connection(), tenant_id, partner_id)
        rows = _with_last_day(S.list_statements(db, tenant_id, only_partner=partner_id, partner_id=None,
                                                after_seq=None, limit=1000)[::-1]) if partner is not None else []
        tz = _tz(db, tenant_id)
    return _page(request, "portal.html", partner=partner, section="statements", statements=rows, tz=tz)


@get("/console/portal/statements/{statement_id:str}", guards=[console_allow("portal")], include_in_schema=False)
async def portal_statement(request: Request[Any, Any, Any], statement_id: str) -> Template:
    from store import statements as S

    tenant_id, _partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        partner, row = _my_statement(request, db, statement_id)
        lines = [dict(ln._mapping) for ln in S.lines_of(db, row["id"])]
        tz = _tz(db, tenant_id)
    return _page(request, "portal.html", partner=partner, section="statement", st=_with_last_day([row])[0],
                 lines=lines, tz=tz, breakdown=_breakdown(row))


def _my_statement(request: Request[Any, Any, Any], db: Any, statement_id: str) -> tuple[Any, dict[str, Any]]:
    """(partner, statement row) of the signed-in partner's own issued statement, else not found."""
    from store import portal as P
    from store import statements as S

    tenant_id, partner_id = _me(request)
    partner = P.partner_of(db.connection(), tenant_id, partner_id)
    row = S.statement_row(db, tenant_id, statement_id, only_partner=partner_id) if partner else None
    if row is None:
        raise _NotFound
    return partner, row


def _breakdown(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The statement's energy and revenue per cost centre, then per site: one table per dimension
    and currency, with its total (the statement's revenue)."""
    from api.areas.statements import breakdown_of

    tables = []
    for name, rows in breakdown_of(row).items():
        dim = name.removesuffix("s")  # cost_centre | site: the texts' keys
        for cur in sorted({b["currency"] for b in rows}):
            mine = [{**b, **{k: Decimal(str(b[k])) for k in ("energy_kwh", "net", "tax", "gross")}}
                    for b in rows if b["currency"] == cur]
            total = {k: sum((b[k] for b in mine), Decimal(0)) for k in ("energy_kwh", "net", "tax", "gross")}
            tables.append({"dimension": dim, "currency": cur, "rows": mine,
                           "total": {**total, "sessions": sum(int(b["sessions"]) for b in mine)}})
    return tables


@get("/console/portal/statements/{statement_id:str}/pdf", guards=[console_allow("portal")], include_in_schema=False)
async def portal_statement_pdf(request: Request[Any, Any, Any], statement_id: str) -> Response[bytes]:
    from runtime.documents.partner_statement import render_partner_statement
    from store import statements as S

    tenant_id, _partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        _partner, row = _my_statement(request, db, statement_id)
        doc = S.statement_document(db, tenant_id, row)
    return Response(render_partner_statement(doc), media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{row["number"]}.pdf"', "Cache-Control": "private, no-store"})


@get("/console/portal/statements/{statement_id:str}/csv", guards=[console_allow("portal")], include_in_schema=False)
async def portal_statement_csv(request: Request[Any, Any, Any], statement_id: str) -> Response[str]:
    from api.areas.statements import statement_csv
    from store.errors import DomainError
    from store.repo import Scope

    with request.app.state.read_sessions() as db:
        try:
            # the API's export under the partner's own actor: its statements only
            name, text = statement_csv(Scope(db, request.user), statement_id)
        except DomainError:
            raise _NotFound from None
    return Response(text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                          "Cache-Control": "private, no-store"})


@get("/console/portal/payouts", guards=[console_allow("portal")], include_in_schema=False)
async def portal_payouts(request: Request[Any, Any, Any]) -> Template:
    from store import portal as P

    tenant_id, partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        partner = P.partner_of(conn, tenant_id, partner_id)
        rows = P.payouts(conn, tenant_id, partner_id) if partner is not None else []
    return _page(request, "portal.html", partner=partner, section="payouts", payouts=rows)


@get("/console/portal/payouts.csv", guards=[console_allow("portal")], include_in_schema=False)
async def portal_payouts_csv(request: Request[Any, Any, Any]) -> Response[str]:
    from store import portal as P

    tenant_id, partner_id = _me(request)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        if P.partner_of(conn, tenant_id, partner_id) is None:
            raise _NotFound
        rows = P.payouts(conn, tenant_id, partner_id, limit=100_000)
    return _csv("payouts.csv", ["payout", "kind", "amount", "currency", "status", "remittance", "requested_at",
                                "paid_on"],
                [[r.id, r.kind, r.amount, r.currency, r.status, r.remittance, r.created_at, r.paid_on] for r in rows])


handlers = [overview, portal_sessions, portal_sessions_csv, portal_statements, portal_statement, portal_statement_csv,
            portal_statement_pdf, portal_payouts, portal_payouts_csv]
