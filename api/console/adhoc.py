"""The console's ad-hoc charges: the card payments of drivers without a contract (``/charge/{evse}``),
newest first, by status and month, each with its session, the provider's ids, the receipt and
its refunds; a refund form for the roles the API's ``POST /adhoc-charges/{id}/refund`` allows,
going through the API's own ``api.adhoc.api.refund_charge`` (the provider gives the money back,
the refund is booked on the charge's item), so the console decides nothing the API would not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect, Template

from api.auth import ROLE_SETS
from api.console.i18n import Texts, add_texts
from api.console.pages import Form, _decimal_text, _NotFound, _page, _problem_text
from api.console.records import _first_of, _zone
from api.console.session import check_csrf, console_allow, session_of
from store.errors import DomainError

__all__ = ["HTML_ROUTES", "handlers"]

# as the API's ad-hoc routes (api.adhoc.api)
ROLE_SETS.setdefault("receivables_read", ("admin", "operator", "approver", "auditor"))
ROLE_SETS.setdefault("receivables_write", ("admin", "operator", "approver"))

HTML_ROUTES = {
    "GET /console/adhoc": "receivables_read",
    "GET /console/adhoc/{charge_id:str}": "receivables_read",
    "GET /console/adhoc/{charge_id:str}/receipt.pdf": "receivables_read",
    "POST /console/adhoc/{charge_id:str}/refund": "receivables_write",
}

PAGE = 100
# a charge in these states never had money reserved on the card (its page was left, the card declined)
NEVER_RESERVED = ("created", "action_required", "declined", "canceled")

add_texts({
    "adhoc": ("Ad-hoc-Laden", "Ad-hoc charging"),
    "adhoc_title": ("Ad-hoc-Ladevorgänge mit Kartenzahlung", "Ad-hoc charges paid by card"),
    "adhoc_help": ("Ladevorgänge ohne Vertrag, bezahlt über die Seite am Ladepunkt (QR-Code). Reserviert wird vor "
                   "dem Start, abgebucht beim Ende, der Rest freigegeben.",
                   "Charging without a contract, paid on the charging point's page (QR code). The card is "
                   "reserved before the start, charged at the end, the rest released."),
    "adhoc_charge_title": ("Ad-hoc-Ladevorgang {evse}", "Ad-hoc charge {evse}"),
    "authorized_amount": ("Reserviert", "Reserved"),
    "captured_amount": ("Abgebucht", "Captured"),
    "released_amount": ("Freigegeben", "Released"),
    "refunded_amount": ("Erstattet", "Refunded"),
    "refundable_amount": ("Erstattbar", "Refundable"),
    "receipt": ("Beleg", "Receipt"),
    "receipt_pdf_of": ("Beleg {number} als PDF", "Receipt {number} as PDF"),
    "no_adhoc": ("Keine Ad-hoc-Ladevorgänge für diese Auswahl.", "No ad-hoc charges for this choice."),
    "all_months": ("alle Monate", "all months"),
    "started": ("Beginn", "Started"),
    "stopped": ("Ende", "Ended"),
    "provider": ("Zahlungsdienst", "Payment provider"),
    "payment_reference": ("Zahlungsreferenz", "Payment reference"),
    "decline_code": ("Ablehnungsgrund", "Decline code"),
    "provider_message": ("Meldung", "Message"),
    "ocpp_transaction": ("OCPP-Transaktion", "OCPP transaction"),
    "driver_email": ("E-Mail für den Beleg", "E-mail for the receipt"),
    "receipt_sent": ("Beleg gesendet", "Receipt sent"),
    "open_item": ("Offener Posten", "Open item"),
    "refunds": ("Erstattungen", "Refunds"),
    "no_refunds": ("Keine Erstattungen.", "No refunds."),
    "refund_ref": ("Erstattungs-ID", "Refund id"),
    "refund_by": ("Von", "By"),
    "refund_reason": ("Grund", "Reason"),
    "refund": ("Erstatten", "Refund"),
    "refund_form": ("Erstattung über den Zahlungsdienst", "Refund through the payment provider"),
    "refund_amount": ("Betrag (leer: alles Erstattbare, {amount})", "Amount (empty: all that is refundable, {amount})"),
    "refund_done": ("Erstattet über den Zahlungsdienst: {amount}.", "Refunded through the payment provider: {amount}."),
    "refund_not_possible": ("Nur ein abgebuchter Ladevorgang mit erstattbarem Betrag kann erstattet werden.",
                            "Only a captured charge with something left to refund can be refunded."),
    "bad_refund_amount": ("Bitte einen Betrag größer als 0 eingeben, z. B. 2,50.",
                          "Enter an amount above 0, e.g. 2.50."),
    "err_refund_too_large": ("Der Betrag ist höher als das Erstattbare.", "The amount is more than can be refunded."),
    "err_refund_in_progress": ("Gerade wurde eine andere Erstattung dieses Ladevorgangs gebucht; bitte neu laden.",
                               "Another refund of this charge was just made; reload and look again."),
    "err_payments_not_configured": ("Der Zahlungsdienst dieses Ladevorgangs ist nicht eingerichtet.",
                                    "The payment provider of this charge is not configured."),
    "err_not_refundable": ("Nur ein abgebuchter Ladevorgang kann erstattet werden.",
                           "Only a captured charge can be refunded."),
    "ah_created": ("angelegt", "created"), "ah_authorized": ("reserviert", "reserved"),
    "ah_action_required": ("wartet auf Zahlung", "awaiting payment"), "ah_declined": ("abgelehnt", "declined"),
    "ah_starting": ("Start läuft", "starting"), "ah_charging": ("lädt", "charging"),
    "ah_stopped": ("beendet, nicht abgerechnet", "stopped, not settled"), "ah_captured": ("bezahlt", "paid"),
    "ah_released": ("ohne Kosten, freigegeben", "no cost, released"),
    "ah_failed": ("fehlgeschlagen, freigegeben", "failed, released"), "ah_canceled": ("abgebrochen", "cancelled"),
})


def _may_refund(request: Request[Any, Any, Any]) -> bool:
    return getattr(request.user, "role", None) in ROLE_SETS["receivables_write"]


@get("/console/adhoc", guards=[console_allow("receivables_read")], include_in_schema=False)
async def adhoc_list(request: Request[Any, Any, Any], status: str | None = None, month: str | None = None,
                     page: int = 1) -> Template:
    from store.adhoc import STATUSES, charges

    actor = request.user
    status = status if status in STATUSES else None
    first = _first_of(month)
    page = min(max(page, 1), 10_000)
    with request.app.state.read_sessions() as db:
        tz = _zone(db, actor.tenant_id)
        start = end = None
        if first is not None:
            nxt = (first + timedelta(days=32)).replace(day=1)
            start, end = datetime(first.year, first.month, 1, tzinfo=tz), datetime(nxt.year, nxt.month, 1, tzinfo=tz)
        rows = charges(db.connection(), actor.tenant_id, status=status, start=start, end=end,
                       offset=(page - 1) * PAGE, limit=PAGE + 1)
    query = "".join(f"&amp;{k}={v}" for k, v in (("status", status), ("month", first and f"{first:%Y-%m}")) if v)
    return _page(request, "adhoc.html", never_reserved=NEVER_RESERVED, rows=rows[:PAGE], more=len(rows) > PAGE,
                 page=page, tz=tz, statuses=STATUSES,
                 status=status or "", month=f"{first:%Y-%m}" if first else "", query=query)


def _detail(request: Request[Any, Any, Any], charge_id: str, *, refunded_now: Decimal | None = None,
            error: str | None = None, amount: str = "", reason: str = "", status_code: int = 200) -> Template:
    from sqlalchemy import select

    from store.adhoc import by_id, refunds_of
    from store.models import Evse, Location, User
    from store.ocpp import OcppTransaction

    actor = request.user
    with request.app.state.read_sessions() as db:
        charge = by_id(db.connection(), actor.tenant_id, charge_id[:40])
        if charge is None:
            raise _NotFound
        tz = _zone(db, actor.tenant_id)
        evse = db.get(Evse, charge.evse_id)
        site = db.get(Location, evse.location_id) if evse is not None else None
        tx = db.get(OcppTransaction, charge.transaction_id) if charge.transaction_id else None
        refunds = refunds_of(db.connection(), charge)
        # who refunded: a person by e-mail; the provider's webhook (a refund made in its dashboard) as it is
        people = dict(db.execute(select(User.id, User.email).where(  # type: ignore[call-overload]
            User.tenant_id == actor.tenant_id, User.id.in_({r.created_by for r in refunds}))).all()) if refunds else {}
    refundable = (charge.captured or Decimal(0)) - charge.refunded if charge.status == "captured" else Decimal(0)
    return _page(request, "adhoc_charge.html", status_code=status_code, never_reserved=NEVER_RESERVED, c=charge,
                 site=site, tz=tz, tx=tx.transaction_ref if tx else None,
                 # the session the charger's transaction became (the charge names it once settled after it)
                 session_id=charge.session_id or (tx.session_id if tx else None),
                 refunds=refunds, people=people, refundable=refundable, may_refund=_may_refund(request) and refundable > 0,
                 refunded_now=refunded_now, error=error, amount=amount, reason=reason)


@get("/console/adhoc/{charge_id:str}", guards=[console_allow("receivables_read")], include_in_schema=False)
async def adhoc_detail(request: Request[Any, Any, Any], charge_id: str, refunded: str | None = None) -> Template:
    """``refunded``: the amount a refund just gave back (the form's redirect says so)."""
    return _detail(request, charge_id, refunded_now=_decimal_text(refunded[:20]) if refunded else None)


@get("/console/adhoc/{charge_id:str}/receipt.pdf", guards=[console_allow("receivables_read")],
     include_in_schema=False)
async def adhoc_receipt(request: Request[Any, Any, Any], charge_id: str) -> Response[bytes]:
    import anyio

    from store.adhoc import by_id

    actor = request.user

    def run() -> Any:
        from api.adhoc.receipt import deliver_receipt

        with request.app.state.sessions() as db:
            charge = by_id(db.connection(), actor.tenant_id, charge_id[:40])
            if charge is None or not charge.receipt_number:
                return None
            if charge.receipt_pdf is None:  # made on first look, as the driver's page does
                charge = deliver_receipt(db, charge)
            return charge

    charge = await anyio.to_thread.run_sync(run)
    if charge is None or charge.receipt_pdf is None:
        raise _NotFound
    return Response(charge.receipt_pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{charge.receipt_number}.pdf"',
        "Cache-Control": "private, no-store", "X-Frame-Options": "SAMEORIGIN"})


@post("/console/adhoc/{charge_id:str}/refund", guards=[console_allow("receivables_write")],
      include_in_schema=False, status_code=303)
async def adhoc_refund(request: Request[Any, Any, Any], charge_id: str, data: Form) -> Response[Any]:
    import anyio

    from api.adhoc.api import refund_charge
    from api.adhoc.pages import provider_of
    from api.crud import open_scope

    sess = session_of(request)
    check_csrf(request, sess.csrf, data.get("_csrf"))
    t = Texts(sess.language)
    typed, reason = data.get("amount", "").strip()[:30], data.get("reason", "").strip()[:300]
    amount = _decimal_text(typed) if typed else None
    if typed and (amount is None or amount <= 0):
        return _detail(request, charge_id, error=t("bad_refund_amount"), amount=typed, reason=reason,
                       status_code=422)
    provider = provider_of(request)

    def run() -> Any:
        with open_scope(request) as scope:
            return refund_charge(scope, provider, charge_id[:40], amount, reason)

    try:
        before = await anyio.to_thread.run_sync(_refunded, request, charge_id)
        out = await anyio.to_thread.run_sync(run)
    except DomainError as exc:
        if exc.status == 404:
            raise _NotFound from None
        return _detail(request, charge_id, error=_problem_text(t, exc), amount=typed, reason=reason,
                       status_code=exc.status)
    return Redirect(f"/console/adhoc/{out.id}?refunded={out.refunded - before}", status_code=303)


def _refunded(request: Request[Any, Any, Any], charge_id: str) -> Decimal:
    from store.adhoc import by_id

    with request.app.state.read_sessions() as db:
        charge = by_id(db.connection(), request.user.tenant_id, charge_id[:40])
    if charge is None:
        raise _NotFound
    return charge.refunded


handlers = [adhoc_list, adhoc_detail, adhoc_receipt, adhoc_refund]
