"""What the ad-hoc pages do: show the price, reserve the card, start the charger, follow the
transaction, capture at the stop, and refund on an operator's request.

Every step is driven by something the driver or the provider does (a page view, a form, a
webhook) and is safe to repeat: a charge only moves forward from the status a step expects
(``store.adhoc.set_values(expect=...)``), provider calls carry the charge's idempotency keys, and
the bookings are keyed by the charge. Nothing here waits for a charger longer than one OCPP call.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from runtime.money import Money
from runtime.payments_provider import PaymentProvider, ProviderError, hosted_page_of
from store import adhoc as store
from store.adhoc import AdhocCharge
from store.audit import Actor
from store.models import ChargePoint, Evse, Location, Tenant
from store.ocpp import OcppTransaction
from store.repo import Scope
from store.types import utcnow

__all__ = [
    "AdhocError",
    "EvsePlace",
    "HostedStart",
    "PricePreview",
    "cancel_hosted",
    "hosted_url",
    "place_of",
    "preauth_amount",
    "price_preview",
    "refresh",
    "refund",
    "start_payment",
    "stop",
]

log = logging.getLogger("evbill.adhoc")

ADHOC_USER = "adhoc-page"
# a charger that accepted RemoteStart but never sent its StartTransaction: the reservation is given
# back after this long (the driver never plugged in)
START_TIMEOUT = timedelta(minutes=int(os.environ.get("EVBILL_ADHOC_START_TIMEOUT_MIN", "5") or 5))


class AdhocError(Exception):
    """A refusal the page shows (and the API answers as a problem): stable code, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def preauth_amount(currency: str) -> Decimal:
    """What a card reserves before the start: ``EVBILL_ADHOC_PREAUTH`` (default 50.00 in the
    tariff's currency); a session dearer than that keeps the rest open on its item."""
    return Decimal(os.environ.get("EVBILL_ADHOC_PREAUTH", "50.00") or "50.00")


@dataclass(frozen=True)
class EvsePlace:
    evse: Evse
    charge_point: ChargePoint
    location: Location
    tenant: Tenant


def place_of(db: Session, evse_id: str) -> EvsePlace:
    evse = db.get(Evse, evse_id)
    if evse is None or evse.charge_point_id is None:
        raise AdhocError("evse_not_found", "no charging point with this code", 404)
    cp, loc, tenant = db.get(ChargePoint, evse.charge_point_id), db.get(Location, evse.location_id), \
        db.get(Tenant, evse.tenant_id)
    if cp is None or loc is None or tenant is None:
        raise AdhocError("evse_not_found", "no charging point with this code", 404)
    if cp.status != "active" or evse.status in ("removed", "inoperative"):
        raise AdhocError("evse_unavailable", "this charging point is out of service", 409)
    return EvsePlace(evse, cp, loc, tenant)


# --- price ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PricePreview:
    currency: str
    tariff: str
    ruleset_version_id: str
    components: list[dict[str, Any]]  # description, unit_price (net), unit, tax_rate
    example: dict[str, Any]  # energy_kwh, hours, net, tax, gross


def _facts(place: EvsePlace, start: datetime, end: datetime, kwh: Decimal, tag: str) -> dict[str, Any]:
    """The facts an ad-hoc transaction of this EVSE will be rated with (``api.ocpp.service.facts_for``
    makes the same shape from the charger's readings)."""
    facts: dict[str, Any] = {
        "id": f"adhoc-preview:{place.evse.id}", "start": start.isoformat(), "end": end.isoformat(),
        "energy_kwh": format(kwh, "f"), "location_id": place.location.code or place.location.id,
        "evse_id": place.evse.evse_uid, "token_uid": tag, "token_type": "adhoc", "power_type": place.evse.power_type}
    if place.evse.max_power_kw is not None:
        facts["max_power_kw"] = format(place.evse.max_power_kw, "f")
    return facts


def price_preview(db: Session, place: EvsePlace, at: datetime | None = None,
                  kwh: Decimal = Decimal(20), hours: int = 1) -> PricePreview:
    """The price of the ruleset in force, shown through the one rating path: a reference session
    (``kwh`` in ``hours``) at this EVSE, rated as its ad-hoc transaction will be; each priced line
    gives a component (what, unit price, unit) and the total is the example."""
    from api.rating import VersionIndex, compiled
    from api.session_io import Incoming, _enrich, rate_facts

    start = at or utcnow()
    facts = _facts(place, start, start + timedelta(hours=hours), kwh, store.ADHOC_TAG_PREFIX + "0" * 18)
    scope = Scope(db, Actor(tenant_id=place.tenant.id, user_id=ADHOC_USER, role="operator"))
    links = _enrich(scope, [Incoming(external_id=facts["id"], source="ocpp", facts=facts)])
    version = VersionIndex.load(scope).in_force(start, links.get(facts["id"], {}).get("ruleset_id"))
    if version is None:
        raise AdhocError("no_price", "no price is in force for this charging point", 409)
    ok, result, code, message = rate_facts(scope, compiled(version.sha256, version.source), facts, None)
    if not ok or result is None:
        raise AdhocError("no_price", f"the price cannot be shown: {message or code}", 409)
    comps = [{"component": ln["component"], "description": ln["description"], "unit_price": ln["unit_price"],
              "unit": ln["unit"], "tax_rate": ln.get("tax_rate")} for ln in result["lines"]]
    t = result["totals"]
    return PricePreview(result["currency"], result.get("tariff", ""), version.id, comps,
                        {"energy_kwh": format(kwh, "f"), "hours": hours, "net": t["net"], "tax": t["tax"],
                         "gross": t["gross"]})


# --- pay and start -------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostedStart:
    """A charge waiting on the provider's payment page: send the driver to ``url``."""

    charge: AdhocCharge
    url: str


def start_payment(db: Session, provider: PaymentProvider, place: EvsePlace, *, email: str, language: str,
                  payment_method: str | None, return_url: str) -> AdhocCharge | HostedStart:
    """Reserve the pre-authorization on the card; once reserved, start the charger. With a
    provider whose own page takes the card (``HostedPaymentPage``), the charge waits
    (``action_required``, the page's session as its payment reference) and the driver is sent to
    the page: its way back (``return_url``) or the provider's webhook, whichever comes first, finds
    the reservation and starts the charger (``refresh``); cancelling there charges nothing."""
    preview = price_preview(db, place)
    charge = store.create(db.connection(), tenant_id=place.tenant.id, evse_id=place.evse.id,
                          evse_uid=place.evse.evse_uid, charge_point_id=place.charge_point.id,
                          connector_id=place.evse.connector_id, language=language, email=email,
                          currency=preview.currency, preauth_amount=preauth_amount(preview.currency),
                          provider=provider.name)
    store.set_values(db.connection(), charge.id, ruleset_version_id=preview.ruleset_version_id)
    db.commit()  # the charge exists before any money is reserved for it
    hosted = hosted_page_of(provider)
    if hosted is not None:
        back = return_url.replace("{key}", charge.key)
        try:
            page = hosted.hosted_page(Money(charge.preauth_amount, charge.currency), reference=charge.id,
                                      description=f"{place.tenant.name}: {place.evse.evse_uid}", success_url=back,
                                      cancel_url=back + ("&" if "?" in back else "?") + "checkout=canceled",
                                      idempotency_key=f"{charge.id}:hosted_page", language=language, email=email,
                                      metadata={"evse": place.evse.evse_uid, "tenant": place.tenant.id})
        except ProviderError as exc:
            raise _failed(db, charge, exc) from exc
        store.set_values(db.connection(), charge.id, status="action_required", payment_ref=page.reference)
        db.commit()
        return HostedStart(_reload(db, charge), page.url)
    try:
        auth = provider.authorize(Money(charge.preauth_amount, charge.currency), reference=charge.id,
                                  description=f"{place.tenant.name}: {place.evse.evse_uid}",
                                  payment_method=payment_method, return_url=return_url.replace("{key}", charge.key),
                                  idempotency_key=f"{charge.id}:authorize",
                                  metadata={"evse": place.evse.evse_uid, "tenant": place.tenant.id})
    except ProviderError as exc:
        raise _failed(db, charge, exc) from exc
    status = {"authorized": "authorized", "action_required": "action_required", "declined": "declined",
              "canceled": "canceled"}.get(auth.status, "created")
    store.set_values(db.connection(), charge.id, status=status, payment_ref=auth.reference,
                     decline_code=auth.decline_code[:60], message=(auth.redirect_url or auth.message)[:300])
    db.commit()
    current = _reload(db, charge)
    if current.status == "authorized":
        current = remote_start(db, provider, current)
    return current


def _failed(db: Session, charge: AdhocCharge, exc: ProviderError) -> AdhocError:
    """The provider refused or could not be reached: the charge fails, the page says why."""
    store.set_values(db.connection(), charge.id, status="failed", message=exc.message[:300],
                     decline_code=exc.code[:60])
    db.commit()
    return AdhocError(exc.code, exc.message, 502 if exc.retryable else 409)


def hosted_url(provider: PaymentProvider | None, charge: AdhocCharge) -> str:
    """The provider's page a waiting charge is paid on ('' when it waits on none)."""
    hosted = hosted_page_of(provider)
    if hosted is None or charge.status != "action_required" or not hosted.is_hosted_reference(charge.payment_ref):
        return ""
    assert provider is not None
    try:
        return provider.retrieve(charge.payment_ref).redirect_url or ""
    except ProviderError:
        return ""


def cancel_hosted(db: Session, provider: PaymentProvider, charge: AdhocCharge) -> AdhocCharge:
    """The driver cancelled on the provider's page: close the page's session, charge nothing. A
    session paid in the meantime (another tab) is not cancelled: the charge moves on as paid."""
    hosted = hosted_page_of(provider)
    if hosted is None or charge.status != "action_required" or not hosted.is_hosted_reference(charge.payment_ref):
        return charge
    try:
        auth = provider.cancel(charge.payment_ref, idempotency_key=f"{charge.id}:hosted_cancel")
    except ProviderError:
        return refresh(db, provider, charge)
    if auth.status == "canceled" and store.set_values(db.connection(), charge.id, expect=("action_required",),
                                                      status="canceled", message=""):
        db.commit()
    return _reload(db, charge)


def _reload(db: Session, charge: AdhocCharge) -> AdhocCharge:
    out = store.by_key(db.connection(), charge.key)
    assert out is not None
    return out


def _send(identity: str, build: Any) -> tuple[str, str]:
    """One OCPP call to a connected charger through this process's gateway: (status, message)."""
    from api.ocpp.server import NotConnected, current_gateway

    gw = current_gateway()
    version = gw.version_of(identity) if gw else None
    if gw is None or version is None:
        return "NotConnected", "the charging point is offline"
    try:
        res = gw.command_threadsafe(identity, build(version))
    except NotConnected:
        return "NotConnected", "the charging point is offline"
    except TimeoutError:
        return "Timeout", "the charging point did not answer"
    except Exception as exc:  # noqa: BLE001  (a CALLERROR from the charger)
        return "Error", f"the charging point answered with an error: {exc}"[:300]
    return str(getattr(res, "status", "")), ""


def remote_start(db: Session, provider: PaymentProvider, charge: AdhocCharge) -> AdhocCharge:
    """RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1) with the charge's one-time
    tag; a charger that refuses or is offline gets nothing, and the reservation is released."""
    if not store.set_values(db.connection(), charge.id, expect=("authorized",), status="starting"):
        db.commit()
        return _reload(db, charge)
    db.commit()
    cp = db.get(ChargePoint, charge.charge_point_id)
    assert cp is not None

    def build(version: str) -> Any:
        if version == "1.6":
            from ocpp.v16 import call

            return call.RemoteStartTransaction(id_tag=charge.id_tag, connector_id=charge.connector_id)
        from ocpp.v201 import call as c201

        return c201.RequestStartTransaction(id_token={"idToken": charge.id_tag, "type": "Central"},
                                            remote_start_id=secrets.randbelow(2**31 - 1) + 1,
                                            evse_id=charge.connector_id)

    status, message = _send(cp.identity, build)
    if status == "Accepted":
        return _reload(db, charge)
    _release(db, provider, charge, message or f"the charging point refused to start ({status})")
    return _reload(db, charge)


def _release(db: Session, provider: PaymentProvider, charge: AdhocCharge, reason: str) -> None:
    try:
        provider.cancel(charge.payment_ref, idempotency_key=f"{charge.id}:cancel")
    except ProviderError as exc:
        log.warning("releasing the reservation of %s failed: %s", charge.id, exc.message)
        reason = f"{reason}; the reservation is released by the provider later"
    store.set_values(db.connection(), charge.id, status="failed", message=reason[:300],
                     released=charge.preauth_amount, captured=Decimal(0))
    db.commit()


# --- follow and settle ----------------------------------------------------------------------------

def _transaction(db: Session, charge: AdhocCharge) -> OcppTransaction | None:
    """The transaction the paid tag started: at the charger it was paid at, admitted by the gateway
    (a charger elsewhere that tried the tag is refused, and its transaction kept for review, not
    billed to this card)."""
    return db.execute(select(OcppTransaction).where(
        OcppTransaction.tenant_id == charge.tenant_id, OcppTransaction.id_tag == charge.id_tag,
        OcppTransaction.charge_point_id == charge.charge_point_id, OcppTransaction.auth_status == "Accepted")
        .order_by(OcppTransaction.id).limit(1)).scalar()  # type: ignore[arg-type]


def refresh(db: Session, provider: PaymentProvider | None, charge: AdhocCharge,
            now: datetime | None = None) -> AdhocCharge:
    """Move a charge on from what is known now: a reservation confirmed after 3-D Secure starts
    the charger, the charger's transaction is picked up, a stopped one is settled."""
    now = now or utcnow()
    if provider is not None and charge.status == "action_required":
        try:
            auth = provider.retrieve(charge.payment_ref)
        except ProviderError:
            return charge
        # (the reference of a hosted page's session becomes the payment's own: ``auth.reference``)
        if auth.status == "authorized" and store.set_values(db.connection(), charge.id,
                                                            expect=("action_required",), status="authorized",
                                                            payment_ref=auth.reference, message=""):
            db.commit()
            return remote_start(db, provider, _reload(db, charge))
        if auth.status in ("declined", "canceled"):
            store.set_values(db.connection(), charge.id, expect=("action_required",), status=auth.status,
                             message=auth.message[:300])
            db.commit()
        return _reload(db, charge)
    if charge.status in ("starting", "charging"):
        tx = _transaction(db, charge)
        if tx is None:
            if provider is not None and charge.status == "starting" and now - charge.updated_at > START_TIMEOUT:
                _release(db, provider, charge, "the charging session did not start")
            return _reload(db, charge)
        if charge.status == "starting":
            store.set_values(db.connection(), charge.id, expect=("starting",), status="charging",
                             transaction_id=tx.id, started_at=tx.start)
        if tx.stop is not None:
            store.set_values(db.connection(), charge.id, expect=("starting", "charging"), status="stopped",
                             transaction_id=tx.id, stopped_at=tx.stop)
        db.commit()
        charge = _reload(db, charge)
    if charge.status == "stopped" and provider is not None:
        return settle(db, provider, charge)
    return charge


def cost_so_far(db: Session, charge: AdhocCharge) -> dict[str, Any] | None:
    from api.ocpp.service import cost_so_far as rate_tx

    if charge.transaction_id is None:
        return None
    return rate_tx(db, charge.transaction_id)


def settle(db: Session, provider: PaymentProvider, charge: AdhocCharge) -> AdhocCharge:
    """Rate the stopped transaction (the one pricing path), capture the final amount (at most the
    reservation; the provider releases the rest), book it on the open items, make the receipt."""
    out = cost_so_far(db, charge)
    if out is None or out.get("status") != "rated":
        store.set_values(db.connection(), charge.id, message=f"not rated yet: {(out or {}).get('status')}"[:300])
        db.commit()
        return _reload(db, charge)
    gross = Decimal(out["gross_total"])
    capture = min(gross, charge.preauth_amount)
    try:
        cap = provider.capture(charge.payment_ref, Money(capture, charge.currency),
                               idempotency_key=f"{charge.id}:capture")
    except ProviderError as exc:
        store.set_values(db.connection(), charge.id, message=f"capture failed: {exc.message}"[:300])
        db.commit()
        return _reload(db, charge)
    conn = db.connection()
    number = store.draw_receipt_number(conn, charge.tenant_id)
    tax_groups = [{"rate": str(g["rate"]), "net": str(g["net"]), "tax": str(g["tax"])} for g in _tax_groups(out)]
    if not store.set_values(conn, charge.id, expect=("stopped",), status="captured" if capture > 0 else "released",
                            captured=cap.captured.amount, released=cap.released.amount, receipt_number=number,
                            energy_kwh=Decimal(out["energy_kwh"]), net=Decimal(out["net_total"]),
                            tax=Decimal(out["tax_total"]), gross=gross, lines=out["lines"], tax_groups=tax_groups,
                            session_id=_session_of(db, charge), message=""):
        db.rollback()  # settled by a racing request: its number and bookings stand
        return _reload(db, charge)
    settled = _reload(db, charge)
    if gross > 0:  # a session that cost nothing owes nothing: no item, no payment
        item = store.book_capture(conn, settled, booked_on=utcnow().date())
        store.set_values(conn, charge.id, item_id=item)
    db.commit()
    settled = _reload(db, charge)
    from api.adhoc.receipt import deliver_receipt

    deliver_receipt(db, settled)
    return _reload(db, charge)


def _tax_groups(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The VAT groups of a rating: from the totals where the rating gives them, else one group per rate."""
    groups = out.get("tax_groups")
    if groups:
        return list(groups)
    by_rate: dict[str, Decimal] = {}
    for ln in out.get("lines", []):
        rate = str(ln.get("tax_rate") or "0")
        by_rate[rate] = by_rate.get(rate, Decimal(0)) + Decimal(ln.get("net_rounded") or ln["net"])
    if len(by_rate) == 1:
        (rate, _net), = by_rate.items()
        return [{"rate": rate, "net": out["net_total"], "tax": out["tax_total"]}]
    return [{"rate": r, "net": format(n, "f"), "tax": format((n * Decimal(r) / 100).quantize(Decimal("0.01")), "f")}
            for r, n in by_rate.items()]


def _session_of(db: Session, charge: AdhocCharge) -> str | None:
    """The stored session of the charge's transaction, read from the database (not the session's
    identity map: the gateway links the session in its own transaction, often just before)."""
    if charge.session_id:
        return charge.session_id
    if not charge.transaction_id:
        return None
    return db.execute(select(OcppTransaction.session_id).where(  # type: ignore[call-overload]
        OcppTransaction.id == charge.transaction_id)).scalar()


def stop(db: Session, charge: AdhocCharge) -> tuple[str, str]:
    """The driver's stop button: RemoteStopTransaction / RequestStopTransaction for its transaction."""
    if charge.status != "charging" or charge.transaction_id is None:
        raise AdhocError("not_charging", "this charge is not running", 409)
    tx = db.get(OcppTransaction, charge.transaction_id)
    cp = db.get(ChargePoint, charge.charge_point_id)
    assert tx is not None and cp is not None
    ref = tx.transaction_ref

    def build(version: str) -> Any:
        if version == "1.6":
            from ocpp.v16 import call

            return call.RemoteStopTransaction(transaction_id=int(ref))
        from ocpp.v201 import call as c201

        return c201.RequestStopTransaction(transaction_id=ref)

    return _send(cp.identity, build)


def refund(db: Session, provider: PaymentProvider, charge: AdhocCharge, amount: Decimal, reason: str,
           actor: str) -> AdhocCharge:
    """Give back part of a captured charge through the provider and book it on the charge's item."""
    if charge.status != "captured" or charge.captured is None or charge.item_id is None:
        raise AdhocError("not_refundable", "only a captured charge can be refunded", 409)
    if amount <= 0 or amount > charge.captured - charge.refunded:
        raise AdhocError("refund_too_large", f"at most {charge.captured - charge.refunded} {charge.currency} "
                                             "can be refunded", 422)
    # claimed before the provider is asked: a second refund racing this one fails the claim, and
    # the provider's webhook about this refund finds it counted already
    if not store.move_refunded(db.connection(), charge.id, charge.refunded, charge.refunded + amount):
        db.rollback()
        raise AdhocError("refund_in_progress", "another refund of this charge was just made; look again", 409)
    db.commit()
    # a retry of the same request (same amount on the same refunded total) is the same refund
    key = f"{charge.id}:refund:{charge.refunded}:{amount}"
    try:
        r = provider.refund(charge.payment_ref, Money(amount, charge.currency), idempotency_key=key, reason=reason)
    except ProviderError as exc:
        store.move_refunded(db.connection(), charge.id, charge.refunded + amount, charge.refunded)
        db.commit()
        raise AdhocError(exc.code, exc.message, 502 if exc.retryable else 409) from exc
    store.book_card_refund(db.connection(), charge, amount=r.amount.amount, refund_ref=r.reference,
                           booked_on=utcnow().date(), created_by=actor, reason=reason)
    db.commit()
    return _reload(db, charge)


def record_refunded_total(db: Session, charge: AdhocCharge, total: Money, event_id: str) -> AdhocCharge:
    """The provider says ``total`` has been refunded on the payment (its webhook): what is more than
    we booked was refunded outside evbill (the provider's dashboard) and is booked now."""
    if charge.status != "captured" or charge.item_id is None or total.currency != charge.currency:
        return charge
    extra = total.amount - charge.refunded
    if extra <= 0:
        return charge
    store.book_card_refund(db.connection(), charge, amount=extra, refund_ref=f"{event_id}:{total.amount}",
                           booked_on=utcnow().date(), created_by=f"{charge.provider}-webhook")
    store.set_values(db.connection(), charge.id, refunded=total.amount)
    db.commit()
    return _reload(db, charge)


# --- the sweep ------------------------------------------------------------------------------------

_OPEN = ("action_required", "starting", "charging", "stopped")


def sweep(sessions: Any, provider: PaymentProvider, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Move on every open charge as a page view would: a driver who walked away after the stop
    is still captured (a reservation left uncaptured lapses after days and the money with it),
    a charger that never started gives the reservation back. -> charges per status after the sweep."""
    with sessions() as db:
        keys = list(db.execute(select(store.adhoc_charge.c.key).where(store.adhoc_charge.c.status.in_(_OPEN))
                               .order_by(store.adhoc_charge.c.updated_at).limit(limit)).scalars())
    out: dict[str, int] = {}
    for key in keys:
        with sessions() as db:
            charge = store.by_key(db.connection(), key)
            if charge is None:
                continue
            try:
                charge = refresh(db, provider, charge, now)
            except Exception:
                log.warning("ad-hoc charge %s could not be moved on", charge.id, exc_info=True)
                continue
            out[charge.status] = out.get(charge.status, 0) + 1
    return out


def start_sweeper(sessions: Any, provider: PaymentProvider, interval_s: float) -> Any:
    """``sweep`` every ``interval_s`` seconds in a daemon thread; returns a function that stops it."""
    import threading

    stop_event = threading.Event()

    def loop() -> None:
        while not stop_event.wait(interval_s):
            try:
                sweep(sessions, provider)
            except Exception:
                log.warning("ad-hoc sweep failed", exc_info=True)

    thread = threading.Thread(target=loop, name="adhoc-sweeper", daemon=True)
    thread.start()

    def stop() -> None:
        stop_event.set()
        thread.join(10)

    return stop
