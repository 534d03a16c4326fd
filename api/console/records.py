"""The console's record pages: a customer with its billing accounts, contracts, tokens and SEPA
mandates; the tenant's sessions by month, site and status; a session with its charging periods,
its ratings (the rated lines and the trace naming the rule and ruleset version behind every
amount) and the invoices that bill it; and the unassigned sessions to review, resolved through
the API's own ``api.areas.sessions.assign`` / ``resolve_all`` (``api.session_assignment``).

Reads go through ``store.records`` (tenant-filtered), writes through the API's functions, so the
console decides nothing the API would not.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.response import Redirect, Template

from api.auth import ROLE_SETS
from api.console.i18n import Texts, add_texts
from api.console.pages import Form, _NotFound, _page, _problem_text
from api.console.session import check_csrf, console_allow, session_of
from store.errors import DomainError

__all__ = ["HTML_ROUTES", "handlers"]

ROLE_SETS.setdefault("sessions_write", ("admin", "operator"))

HTML_ROUTES = {
    "GET /console/customers/{customer_id:str}": "read",
    "GET /console/sessions": "read",
    "GET /console/sessions/{session_id:str}": "read",
    "GET /console/unassigned": "read",
    "GET /console/sessions/{session_id:str}/signed-data.xml": "read",
    "GET /console/meter-keys": "read",
    "POST /console/sessions/{session_id:str}/assign": "sessions_write",
    "POST /console/unassigned/resolve": "sessions_write",
}

STATUSES = ("rated", "unrated", "rating_failed", "unassigned")
PAGE = 100

add_texts({
    "meter_keys": ("Zählerschlüssel", "Meter keys"),
    "meter_keys_help": ("Öffentliche Schlüssel der eichrechtskonformen Zähler: mit ihnen werden die signierten "
                        "Messdaten (OCMF) jedes Ladevorgangs geprüft. Ein gesperrter Schlüssel bleibt gespeichert; "
                        "Ladevorgänge, die mit ihm signiert sind, werden zur Prüfung angehalten.",
                        "Public keys of the legal-for-trade meters: each session's signed meter data (OCMF) is "
                        "checked with them. A revoked key stays on record; sessions signed with it are held for review."),
    "meter_serial_col": ("Zählernummer", "Meter serial"),
    "charge_point": ("Ladestation", "Charge point"),
    "curve": ("Kurve", "Curve"),
    "key_source": ("Herkunft", "Source"),
    "first_seen": ("Zuerst gesehen", "First seen"),
    "key_status": ("Status", "Status"),
    "mk_active": ("aktiv", "active"),
    "mk_revoked": ("gesperrt", "revoked"),
    "src_api": ("von Hand erfasst", "entered by hand"),
    "src_ocpp16_datatransfer": ("von der Ladestation (OCPP 1.6 DataTransfer)", "from the charger (OCPP 1.6 DataTransfer)"),
    "src_ocpp16_get_configuration": ("von der Ladestation (OCPP 1.6 GetConfiguration)",
                                     "from the charger (OCPP 1.6 GetConfiguration)"),
    "src_ocpp201_signed_meter_value": ("von der Ladestation (OCPP 2.0.1 signierter Messwert)",
                                       "from the charger (OCPP 2.0.1 signed meter value)"),
    "no_meter_keys": ("Noch keine Zählerschlüssel: Ladestationen mit eichrechtskonformen Zählern melden sie selbst, "
                      "oder sie werden über die API erfasst (POST /meter-keys).",
                      "No meter keys yet: chargers with legal-for-trade meters report them, or they are entered "
                      "through the API (POST /meter-keys)."),
    "signed_data_file": ("Für die Transparenzsoftware herunterladen (XML)", "Download for the transparency software (XML)"),
    "customer_no": ("Kundennummer", "Customer number"),
    "customer_kind": ("Kundenart", "Kind of customer"),
    "customer_kind_private": ("Privatkunde", "private"),
    "customer_kind_business": ("Geschäftskunde", "business"),
    "address": ("Anschrift", "Address"),
    "vat_id": ("USt-IdNr.", "VAT ID"),
    "groups": ("Kundengruppen", "Customer groups"),
    "billing_accounts": ("Abrechnungskonten", "Billing accounts"),
    "currency": ("Währung", "Currency"),
    "payment_terms": ("Zahlungsziel", "Payment terms"),
    "billing_cycle": ("Abrechnungsrhythmus", "Billing cycle"),
    "contracts": ("Verträge", "Contracts"),
    "product": ("Produkt", "Product"),
    "payment_method": ("Zahlungsart", "Payment method"),
    "pm_sepa_direct_debit": ("SEPA-Lastschrift", "SEPA direct debit"),
    "pm_invoice": ("auf Rechnung", "on invoice"),
    "pm_bank_transfer": ("Überweisung", "bank transfer"),
    "pm_card": ("Karte", "Card"),
    "valid_from": ("Gültig ab", "Valid from"),
    "valid_to": ("Gültig bis", "Valid to"),
    "open_ended": ("unbefristet", "open-ended"),
    "tokens": ("Ladekarten und Tokens", "Charging cards and tokens"),
    "token_uid": ("Token-UID", "Token UID"),
    "visual_number": ("Aufgedruckte Nummer", "Printed number"),
    "token_kind_rfid": ("RFID-Karte", "RFID card"),
    "token_kind_app": ("App", "app"),
    "token_kind_emaid": ("eMAID", "eMAID"),
    "mandates": ("SEPA-Lastschriftmandate", "SEPA direct debit mandates"),
    "mandate_reference": ("Mandatsreferenz", "Mandate reference"),
    "signed_on": ("Unterschrieben am", "Signed on"),
    "scheme": ("Verfahren", "Scheme"),
    "sequence": ("Nächste Lastschrift", "Next collection"),
    "seq_FRST": ("Erstlastschrift", "first"), "seq_RCUR": ("Folgelastschrift", "recurring"),
    "seq_OOFF": ("Einmallastschrift", "one-off"), "seq_FNAL": ("letzte Lastschrift", "final"),
    "last_collection": ("Letzter Einzug", "Last collection"),
    "creditor": ("Gläubiger", "Creditor"),
    "iban": ("IBAN", "IBAN"),
    "no_contracts": ("Keine Verträge.", "No contracts."),
    "no_tokens": ("Keine Tokens.", "No tokens."),
    "no_mandates": ("Keine Mandate.", "No mandates."),
    "no_accounts": ("Keine Abrechnungskonten.", "No billing accounts."),
    "st_active": ("aktiv", "active"), "st_ended": ("beendet", "ended"), "st_terminated": ("gekündigt", "terminated"),
    "st_suspended": ("gesperrt", "suspended"), "st_blocked": ("gesperrt", "blocked"),
    "st_expired": ("abgelaufen", "expired"), "st_revoked": ("widerrufen", "revoked"),
    "st_needs_attention": ("prüfen", "needs attention"), "st_closed": ("geschlossen", "closed"),
    "st_inactive": ("inaktiv", "inactive"), "st_pending": ("ausstehend", "pending"),
    "customer_sessions": ("Ladevorgänge dieses Kunden", "This customer's sessions"),
    "n_sessions": ("{n} Ladevorgänge", "{n} sessions"),
    "n_unassigned_tokens": ("{n} nicht zugeordnete Ladevorgänge mit seinen Tokens",
                            "{n} unassigned sessions with its tokens"),
    # sessions
    "all_statuses": ("alle", "all"),
    "sessions_of_month": ("Ladevorgänge · {month}", "Sessions · {month}"),
    "page_n": ("Seite {n}", "Page {n}"),
    "prev_page": ("Vorige Seite", "Previous page"),
    "no_sessions_found": ("Keine Ladevorgänge für diese Auswahl.", "No sessions for this choice."),
    "session_title": ("Ladevorgang {id}", "Session {id}"),
    "source": ("Quelle", "Source"),
    "token": ("Token", "Token"),
    "contract": ("Vertrag", "Contract"),
    "tariff": ("Tarif", "Tariff"),
    "duration": ("Dauer", "Duration"),
    "periods": ("Ladeperioden", "Charging periods"),
    "time_h": ("Ladezeit (h)", "Charging time (h)"),
    "parking_h": ("Standzeit (h)", "Parking time (h)"),
    "max_power": ("Max. Leistung (kW)", "Max. power (kW)"),
    "ratings": ("Bewertungen", "Ratings"),
    "rating_n": ("Bewertung {n}", "Rating {n}"),
    "current_rating": ("gilt", "current"),
    "rated_with": ("Tarifversion", "Ruleset version"),
    "rated_at": ("Bewertet am", "Rated at"),
    "rating_reason": ("Anlass", "Reason"),
    "cleared_with": ("Roaming-Abrechnung mit {partner}, {month} (CDR {cdr})",
                     "Roaming clearing with {partner}, {month} (CDR {cdr})"),
    "status_in_review": ("beim Partner zur Prüfung", "with the partner for review"),
    "status_resolving": ("Einwände in Klärung", "disputes being resolved"),
    "status_invoiced": ("abgerechnet", "invoiced"),
    "account_n": ("Konto {n}", "Account {n}"),
    "cycle_monthly": ("monatlich", "monthly"), "cycle_quarterly": ("vierteljährlich", "quarterly"),
    "cycle_annual": ("jährlich", "yearly"), "cycle_ad_hoc": ("je Ladevorgang (ad hoc)", "per session (ad hoc)"),
    "rr_import": ("Eingang des Ladevorgangs", "Session received"),
    "rated_lines": ("Bewertete Positionen", "Rated lines"),
    "trace": ("Nachweis (welche Regel wann griff)", "Trace (which rule applied when)"),
    "trace_from": ("von", "from"),
    "trace_to": ("bis", "to"),
    "trace_note": ("Hinweis", "Note"),
    "component": ("Bestandteil", "Component"),
    "rounded": ("gerundet", "rounded"),
    "unrounded": ("ungerundet", "unrounded"),
    "not_rated_yet": ("Noch nicht bewertet.", "Not rated yet."),
    "rating_error": ("Bewertungsfehler", "Rating error"),
    "billed_on": ("Abgerechnet mit", "Billed on"),
    "not_billed": ("Noch auf keiner Rechnung.", "Not on an invoice yet."),
    "tax_total": ("USt.", "VAT"),
    # unassigned
    "unassigned": ("Zu prüfen", "To review"),
    "unassigned_title": ("Nicht zugeordnete Ladevorgänge", "Unassigned sessions"),
    "unassigned_help": ("Kein Abrechnungskonto nimmt diese Ladevorgänge. Nach dem Korrigieren der Stammdaten (Token, "
                        "Vertrag, Konto) hier erneut zuordnen; zugeordnete Ladevorgänge werden neu bewertet und mit "
                        "der nächsten Abrechnung berechnet.",
                        "No billing account takes these sessions. Once the master data (token, contract, account) "
                        "is fixed, assign them again here; assigned sessions are rated again and billed with the "
                        "next cycle."),
    "why_unassigned": ("Grund", "Reason"),
    "ur_unknown_token": ("unbekanntes Token", "unknown token"),
    "ur_token_without_customer": ("Token ohne Kunden", "token without a customer"),
    "ur_no_billing_account": ("kein Abrechnungskonto", "no billing account"),
    "ur_no_active_contract": ("kein gültiger Vertrag zum Ladebeginn", "no contract in force at the start"),
    "ur_not_checked": ("nicht geprüft", "not checked"),
    "assign": ("Erneut zuordnen", "Assign again"),
    "assign_named": ("Ladevorgang {id} erneut zuordnen", "Assign session {id} again"),
    "resolve_all": ("Alle erneut zuordnen", "Assign all again"),
    "resolve_token": ("Nur Token-UID (optional)", "Only this token UID (optional)"),
    "nothing_unassigned": ("Kein Ladevorgang wartet auf Zuordnung.", "No session waits to be assigned."),
    "msg_assigned": ("Zugeordnet: {assigned} von {checked}; weiterhin offen: {still}.",
                     "Assigned: {assigned} of {checked}; still unassigned: {still}."),
    "msg_assigned_more": (" Weitere warten: bitte erneut senden.", " More are waiting: send again."),
    "msg_one_assigned": ("Der Ladevorgang ist zugeordnet und bewertet.", "The session is assigned and rated."),
    "msg_one_still": ("Weiterhin nicht zugeordnet: {reason}", "Still unassigned: {reason}"),
})


def _zone(db: Any, tenant_id: str) -> ZoneInfo:
    from store.models import Tenant

    tenant = db.get(Tenant, tenant_id)
    return ZoneInfo(tenant.timezone if tenant else "UTC")


def _first_of(month: str | None) -> date | None:
    if not month:
        return None
    try:
        y, m = (int(x) for x in month.split("-"))
        return date(y, m, 1) if 1970 <= y <= 2200 else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------ customer

@get("/console/customers/{customer_id:str}", guards=[console_allow("read")], include_in_schema=False)
async def customer(request: Request[Any, Any, Any], customer_id: str) -> Template:
    from store.records import customer_record

    actor = request.user
    with request.app.state.read_sessions() as db:
        rec = customer_record(db.connection(), actor.tenant_id, customer_id)
    if rec is None:
        raise _NotFound
    return _page(request, "customer.html", rec=rec, c=rec.customer)


# ------------------------------------------------------------------------------ sessions

@get("/console/sessions", guards=[console_allow("read")], include_in_schema=False)
async def sessions(request: Request[Any, Any, Any], month: str | None = None, site: str | None = None,
                   status: str | None = None, customer: str | None = None, page: int = 1) -> Template:
    from store.console import latest_session_day
    from store.records import session_sites
    from store.records import sessions as page_of

    actor = request.user
    status = status if status in STATUSES else None
    page = min(max(page, 1), 10_000)
    with request.app.state.read_sessions() as db:
        conn = db.connection()
        tz = _zone(db, actor.tenant_id)
        first = _first_of(month)
        if first is None:
            newest = latest_session_day(conn, actor.tenant_id)
            first = (newest or datetime.now(tz)).astimezone(tz).date().replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
        sites = session_sites(conn, actor.tenant_id)
        site = site if site in sites else None
        rows = page_of(conn, actor.tenant_id, start=datetime(first.year, first.month, 1, tzinfo=tz),
                       end=datetime(end.year, end.month, 1, tzinfo=tz), site=site, status=status,
                       customer_id=(customer or "")[:40] or None, offset=(page - 1) * PAGE, limit=PAGE)
    prev_month = (first - timedelta(days=1)).replace(day=1)
    return _page(request, "sessions.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page, first=first,
                 month_value=f"{first:%Y-%m}", prev_month=f"{prev_month:%Y-%m}", next_month=f"{end:%Y-%m}",
                 sites=sites, site=site or "", status=status or "", statuses=STATUSES, customer=customer or "", tz=tz)


@get("/console/sessions/{session_id:str}", guards=[console_allow("read")], include_in_schema=False)
async def session(request: Request[Any, Any, Any], session_id: str) -> Template:
    from store.records import session_record

    actor = request.user
    with request.app.state.read_sessions() as db:
        rec = session_record(db.connection(), actor.tenant_id, session_id)
        tz = _zone(db, actor.tenant_id)
    if rec is None:
        raise _NotFound
    return _page(request, "session.html", rec=rec, s=rec.session, tz=tz, iso=_iso_local(tz), dec=_dec,
                 may_assign=_may_write(request))


@get("/console/sessions/{session_id:str}/signed-data.xml", guards=[console_allow("read")], include_in_schema=False)
async def session_signed_data(request: Request[Any, Any, Any], session_id: str) -> Response[bytes]:
    """The session's signed records with the meter's key as the S.A.F.E. Transparenzsoftware's XML file."""
    from runtime.ocmf import transparency_xml
    from store.records import session_record

    actor = request.user
    with request.app.state.read_sessions() as db:
        rec = session_record(db.connection(), actor.tenant_id, session_id)
    if rec is None or not rec.signed_data:
        raise _NotFound
    key = str(((rec.session.facts or {}).get("signed_meter") or {}).get("public_key") or "")
    return Response(transparency_xml(rec.signed_data, key).encode("utf-8"), media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{rec.session.id}-signed-data.xml"'})


@get("/console/meter-keys", guards=[console_allow("read")], include_in_schema=False)
async def meter_keys(request: Request[Any, Any, Any]) -> Template:
    from store.ocpp import meter_keys_listing

    actor = request.user
    with request.app.state.read_sessions() as db:
        rows = meter_keys_listing(db.connection(), actor.tenant_id)
        tz = _zone(db, actor.tenant_id)
    return _page(request, "meter_keys.html", rows=rows, tz=tz)


def _dec(value: Any) -> Any:
    """A trace's decimal strings as Decimals (the page formats them in its language), else None."""
    from decimal import Decimal, InvalidOperation

    try:
        out = Decimal(str(value))
    except InvalidOperation:
        return None
    return out if out.is_finite() else None


def _iso_local(tz: ZoneInfo) -> Any:
    """The trace's ISO timestamps (UTC) in the tenant's zone, as the page shows every time."""
    def local(value: str) -> datetime | str:
        try:
            return datetime.fromisoformat(value).astimezone(tz)
        except (ValueError, AttributeError):
            return value
    return local


def _may_write(request: Request[Any, Any, Any]) -> bool:
    return getattr(request.user, "role", None) in ROLE_SETS["sessions_write"]


# ------------------------------------------------------------------------------ unassigned

@get("/console/unassigned", guards=[console_allow("read")], include_in_schema=False)
async def unassigned(request: Request[Any, Any, Any], page: int = 1, msg: str | None = None) -> Template:
    return _unassigned(request, page=page, msg=_message(request, msg))


def _message(request: Request[Any, Any, Any], msg: str | None) -> str | None:
    """``msg`` from a redirect after a resolution: ``one``, ``one-<reason>`` or ``a-c-s[-more]``."""
    if not msg:
        return None
    t = Texts(session_of(request).language)
    if msg == "one":
        return t("msg_one_assigned")
    if msg.startswith("one-"):
        reason = msg[4:][:40]
        return t("msg_one_still", reason=t(f"ur_{reason}") if t(f"ur_{reason}") != f"ur_{reason}" else reason)
    parts = msg.split("-")
    if len(parts) in (3, 4) and all(p.isdigit() for p in parts[:3]):
        text = t("msg_assigned", assigned=parts[0], checked=parts[1], still=parts[2])
        return text + (t("msg_assigned_more") if len(parts) == 4 else "")
    return None


def _unassigned(request: Request[Any, Any, Any], *, page: int = 1, msg: str | None = None, error: str | None = None,
                error_for: str | None = None, status_code: int = 200) -> Template:
    from store.records import sessions as page_of

    actor = request.user
    page = min(max(page, 1), 10_000)
    with request.app.state.read_sessions() as db:
        tz = _zone(db, actor.tenant_id)
        rows = page_of(db.connection(), actor.tenant_id, status="unassigned", offset=(page - 1) * PAGE, limit=PAGE)
    return _page(request, "unassigned.html", status_code=status_code, page_url="/console/unassigned",
                 rows=rows[:PAGE], more=len(rows) > PAGE, page=page, tz=tz, msg=msg, error=error,
                 error_for=error_for, may_assign=_may_write(request))


@post("/console/sessions/{session_id:str}/assign", guards=[console_allow("sessions_write")],
      include_in_schema=False, status_code=303)
async def assign(request: Request[Any, Any, Any], session_id: str, data: Form) -> Response[Any]:
    import anyio

    from api.areas.sessions import assign as assign_one
    from api.crud import open_scope

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))

    def run() -> Any:
        with open_scope(request) as scope:
            return assign_one(scope, session_id[:40])

    try:
        out = await anyio.to_thread.run_sync(run)
    except DomainError as exc:
        if exc.status == 404:
            raise _NotFound from None
        return _unassigned(request, error=_problem_text(Texts(sess.language), exc), error_for=session_id,
                           status_code=exc.status)
    msg = "one" if out.status != "unassigned" else f"one-{out.unassigned_reason or ''}"
    if data.get("back") == "session":
        return Redirect(f"/console/sessions/{out.session_id}", status_code=303)
    return Redirect(f"/console/unassigned?msg={msg}", status_code=303)


@post("/console/unassigned/resolve", guards=[console_allow("sessions_write")], include_in_schema=False,
      status_code=303)
async def resolve(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    import anyio

    from api.areas.sessions import resolve_all
    from api.crud import open_scope

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    uid = data.get("token_uid", "").strip()[:64] or None

    def run() -> Any:
        with open_scope(request) as scope:
            return resolve_all(scope, uid)

    try:
        out = await anyio.to_thread.run_sync(run)
    except DomainError as exc:
        return _unassigned(request, error=_problem_text(Texts(sess.language), exc), status_code=exc.status)
    msg = f"{out.assigned}-{out.checked}-{out.still_unassigned}" + ("-more" if out.more else "")
    return Redirect(f"/console/unassigned?msg={msg}", status_code=303)


handlers = [customer, sessions, session, session_signed_data, meter_keys, unassigned, assign, resolve]
