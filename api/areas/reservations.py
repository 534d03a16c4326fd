"""Reservations in the operator API (issue 18): reserve an EVSE, or any free EVSE of a location, for
a token or a partner's tokens from ``start`` until ``expiry``; list, read, cancel.

A reservation whose window starts now (within ``SEND_NOW_S``) is sent at once (1.6J ``ReserveNow``
connectorId/expiryDate/idTag/reservationId, 2.0.1 ``ReserveNow`` id/expiryDateTime/idToken/evseId)
and the answer comes back with the created reservation (``status`` accepted, refused or failed,
``charger_status`` the charger's word); a later window is ``scheduled`` and the gateway sends it
when it starts. Cancel sends ``CancelReservation``. What happens to it afterwards (used, expired,
billed) is in ``api.ocpp.reservations``.

Billing, in short: used -> its session carries the reserved time; expired -> a session of its own
priced with ``reservation_expires``; refused, failed and cancelled (at any time, by the operator
or the charger) -> not billed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import anyio
from litestar import Request, Router
from pydantic import AwareDatetime, Field
from sqlalchemy import select

from api.crud import CursorParam, LimitParam, ReadModel, WriteModel, open_scope, page_of, route
from store.errors import Conflict, InvalidInput, NotFound
from store.models import ChargePoint, Evse, Location, Partner, Token
from store.ocpp import OcppTransaction
from store.repo import Scope
from store.reservations import ACTIVE, Reservation
from store.types import new_id, utcnow

__all__ = ["router"]

SEND_NOW_S = 60  # a window starting within this is sent at once, a later one is scheduled
PAST_S = 300  # a start this far in the past is refused (clock skew allowed)
MAX_WINDOW = timedelta(days=7)
MAX_AHEAD = timedelta(days=366)


class ReservationCreate(WriteModel):
    evse_uid: str | None = Field(None, min_length=1, max_length=64, description="the EVSE to reserve")
    location_id: str | None = Field(None, min_length=1, max_length=40,
                                    description="instead of evse_uid: any free EVSE of this location")
    id_tag: str | None = Field(None, min_length=1, max_length=64, description="the token (its uid) it is for")
    partner_id: str | None = Field(None, min_length=1, max_length=40,
                                   description="instead of id_tag: any token of this partner may use it")
    start: AwareDatetime | None = Field(None, description="when the EVSE is held from; omitted: now")
    expiry: AwareDatetime = Field(description="when the reservation ends if not used")
    description: str = Field("", max_length=300)


class ReservationRead(ReadModel):
    id: str
    ocpp_id: int
    location_id: str
    charge_point_id: str
    evse_uid: str
    connector_id: int
    id_tag: str
    token_id: str | None
    partner_id: str | None
    start: datetime
    expiry: datetime
    status: str
    ocpp_version: str
    charger_status: str
    cancel_status: str
    sent_at: datetime | None
    ended_at: datetime | None
    end_reason: str
    transaction_id: int | None
    session_id: str | None
    description: str
    created_at: datetime


ReservationPage = page_of(ReservationRead)


class _Target:
    def __init__(self, evse: Evse, cp: ChargePoint) -> None:
        self.evse, self.cp = evse, cp


def _busy(scope: Scope, evse_uid: str, start: datetime, expiry: datetime, now: datetime) -> str:
    """Why the EVSE cannot be reserved for the window ('' when it can)."""
    clash = scope.db.execute(select(Reservation.id).where(
        Reservation.tenant_id == scope.tenant_id, Reservation.evse_uid == evse_uid,
        Reservation.status.in_(ACTIVE), Reservation.start < expiry, Reservation.expiry > start)  # type: ignore[attr-defined,operator]
        .limit(1)).scalar()
    if clash is not None:
        return f"reserved_by:{clash}"
    if start <= now + timedelta(seconds=SEND_NOW_S):
        running = scope.db.execute(select(OcppTransaction.id).where(
            OcppTransaction.tenant_id == scope.tenant_id, OcppTransaction.evse_uid == evse_uid,
            OcppTransaction.status == "open").limit(1)).scalar()
        if running is not None:
            return f"occupied_by:{running}"
    return ""


def _connected(identity: str) -> bool:
    from api.ocpp.server import current_gateway

    gw = current_gateway()
    return gw is not None and gw.version_of(identity) is not None


def _prepare(scope: Scope, data: ReservationCreate, now: datetime) -> dict[str, Any]:
    """Check the request and pick the EVSE; -> the new row's values. Unknown references 404,
    a bad window 422, a busy EVSE or a charger that cannot be reached now 409."""
    if (data.evse_uid is None) == (data.location_id is None):
        raise InvalidInput("evse_or_location", "name either evse_uid or location_id", field="evse_uid")
    if (data.id_tag is None) == (data.partner_id is None):
        raise InvalidInput("token_or_partner", "name either id_tag or partner_id", field="id_tag")
    # who: references first, so another tenant's ids answer 404 whatever else is wrong
    token, partner = None, None
    if data.id_tag is not None:
        token = scope.db.execute(select(Token).where(Token.tenant_id == scope.tenant_id,
                                                     Token.uid == data.id_tag)).scalar()
        if token is None:
            raise NotFound("token_not_found", f"token {data.id_tag!r} not found")
    else:
        partner = scope.repo(Partner, "partner", "par").get(str(data.partner_id))
    if data.evse_uid is not None:
        evse = scope.db.execute(select(Evse).where(Evse.tenant_id == scope.tenant_id,
                                                   Evse.evse_uid == data.evse_uid)).scalar()
        if evse is None:
            raise NotFound("evse_not_found", f"EVSE {data.evse_uid!r} not found")
        candidates = [evse]
    else:
        loc = scope.repo(Location, "location", "loc").get(str(data.location_id))
        candidates = list(scope.db.execute(select(Evse).where(Evse.tenant_id == scope.tenant_id,
                                                              Evse.location_id == loc.id)
                                           .order_by(Evse.evse_uid)).scalars())
        if not candidates:
            raise Conflict("no_free_evse", f"location {loc.id!r} has no EVSE")
    # when
    start = (data.start or now).astimezone(now.tzinfo)
    expiry = data.expiry.astimezone(now.tzinfo)
    if expiry <= start:
        raise InvalidInput("reservation_window_inverted", "the expiry must be after the start", field="expiry")
    if expiry <= now or start < now - timedelta(seconds=PAST_S):
        raise InvalidInput("reservation_window_past", "the window lies in the past", field="start")
    if expiry - start > MAX_WINDOW:
        raise InvalidInput("reservation_window_too_long", "a reservation holds an EVSE for 7 days at most",
                           field="expiry")
    if start - now > MAX_AHEAD:
        raise InvalidInput("reservation_too_far_ahead", "a reservation starts within a year", field="start")
    if token is not None and token.status != "active":
        raise InvalidInput("token_not_active", f"token {token.uid!r} is {token.status}", field="id_tag")
    sends_now = start <= now + timedelta(seconds=SEND_NOW_S)
    why, chosen = "", None
    for evse in candidates:
        if evse.charge_point_id is None:
            why = why or f"EVSE {evse.evse_uid!r} belongs to no charge point"
            continue
        cp = scope.db.get(ChargePoint, evse.charge_point_id)
        if cp is None:
            continue
        if evse.status in ("removed", "inoperative", "out_of_order"):
            why = why or f"EVSE {evse.evse_uid!r} is {evse.status}"
            continue
        busy = _busy(scope, evse.evse_uid, start, expiry, now)
        if busy:
            kind, _, ref = busy.partition(":")
            why = why or (f"EVSE {evse.evse_uid!r} is reserved in an overlapping window ({ref})"
                          if kind == "reserved_by" else f"EVSE {evse.evse_uid!r} is charging (transaction {ref})")
            continue
        if sends_now and not _connected(cp.identity):
            why = why or f"charge point {cp.identity!r} is not connected"
            continue
        chosen = _Target(evse, cp)
        break
    if chosen is None:
        if data.evse_uid is not None:
            code = ("evse_reserved" if "reserved" in why else "evse_occupied" if "charging" in why
                    else "charge_point_not_connected" if "not connected" in why else "evse_unavailable")
            raise Conflict(code, why)
        raise Conflict("no_free_evse", f"no EVSE of location {data.location_id!r} can be reserved: {why}")
    if partner is not None:
        from api.ocpp.reservations import partner_tag

        tag = partner_tag(partner)
    else:
        assert token is not None
        tag = token.uid
    return {"id": new_id("rsv"), "tenant_id": scope.tenant_id, "location_id": chosen.evse.location_id,
            "charge_point_id": chosen.cp.id, "evse_uid": chosen.evse.evse_uid,
            "connector_id": chosen.evse.connector_id or 0, "id_tag": tag,
            "token_id": token.id if token else None, "partner_id": partner.id if partner else None,
            "start": start, "expiry": expiry, "status": "requested" if sends_now else "scheduled",
            "description": data.description, "created_by": scope.actor.user_id, "created_at": now,
            "updated_at": now, "_identity": chosen.cp.identity}


def _send_sync(reservation_id: str) -> None:
    import asyncio

    from api.ocpp.reservations import send
    from api.ocpp.server import current_gateway

    gw = current_gateway()
    if gw is None or gw.loop is None:
        raise Conflict("charge_point_not_connected", "the OCPP gateway is not running")
    fut = asyncio.run_coroutine_threadsafe(send(gw, reservation_id), gw.loop)
    fut.result(gw.settings.response_timeout + 10)


def _read(request: Request[Any, Any, Any], reservation_id: str) -> ReservationRead:
    with open_scope(request) as scope:
        r = scope.repo(Reservation, "reservation", "rsv").get(reservation_id)
        return ReservationRead.model_validate(r, from_attributes=True)


@route("POST", "/reservations", operation_id="create_reservation", roles="write", status_code=201,
       summary="Reserve an EVSE (or any free EVSE of a location) for a token or a partner: ReserveNow")
async def create_reservation(request: Request[Any, Any, Any], data: ReservationCreate) -> ReservationRead:
    from api.ocpp.reservations import insert

    def store() -> tuple[str, str]:
        with open_scope(request) as scope:
            values = _prepare(scope, data, utcnow())
            values.pop("_identity")
            r = insert(scope.db, values)
            scope.audit("reservation.create", "reservation", r.id, None, {
                "evse_uid": r.evse_uid, "id_tag": r.id_tag, "partner_id": r.partner_id,
                "start": r.start.isoformat(), "expiry": r.expiry.isoformat(), "ocpp_id": r.ocpp_id})
            scope.commit()
            return r.id, r.status

    rid, status = await anyio.to_thread.run_sync(store)
    if status == "requested":
        await anyio.to_thread.run_sync(_send_sync, rid)
    return await anyio.to_thread.run_sync(_read, request, rid)


def _expire(request: Request[Any, Any, Any], tenant_id: str) -> None:
    """Reservations past their expiry are ended (and billed) before anyone reads them."""
    from api.ocpp.reservations import expire_due

    with request.app.state.sessions() as db:
        expire_due(db, utcnow(), tenant_id)


@route("GET", "/reservations", operation_id="list_reservations", roles="read",
       summary="Reservations, newest first; filters: status, location, EVSE, charge point, token, partner")
def list_reservations(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                      status: Literal["scheduled", "requested", "accepted", "refused", "failed", "cancelled", "used",
                                      "expired"] | None = None,
                      location_id: str | None = None, evse_uid: str | None = None,
                      charge_point_id: str | None = None, id_tag: str | None = None,
                      partner_id: str | None = None) -> ReservationPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        _expire(request, scope.tenant_id)
        stmt = select(Reservation).where(Reservation.tenant_id == scope.tenant_id)
        for col, v in ((Reservation.status, status), (Reservation.location_id, location_id),
                       (Reservation.evse_uid, evse_uid), (Reservation.charge_point_id, charge_point_id),
                       (Reservation.id_tag, id_tag), (Reservation.partner_id, partner_id)):
            if v is not None:
                stmt = stmt.where(col == v)
        if cursor:
            stmt = stmt.where(Reservation.id < cursor)  # type: ignore[operator]
        rows = list(scope.db.execute(stmt.order_by(Reservation.id.desc()).limit(limit + 1)).scalars())  # type: ignore[attr-defined]
        nxt = rows[limit - 1].id if len(rows) > limit else None
        return ReservationPage(items=[ReservationRead.model_validate(r, from_attributes=True)
                                      for r in rows[:limit]], next_cursor=nxt)


@route("GET", "/reservations/{reservation_id:str}", operation_id="get_reservation", roles="read",
       summary="A reservation with the charger's answer and what became of it")
def get_reservation(request: Request[Any, Any, Any], reservation_id: str) -> ReservationRead:
    with open_scope(request) as scope:
        scope.repo(Reservation, "reservation", "rsv").exists(reservation_id)
        _expire(request, scope.tenant_id)
    return _read(request, reservation_id)


@route("POST", "/reservations/{reservation_id:str}/cancel", operation_id="cancel_reservation", roles="write",
       status_code=200, summary="Cancel a reservation: CancelReservation to the charger (never billed)")
async def cancel_reservation(request: Request[Any, Any, Any], reservation_id: str) -> ReservationRead:
    from api.areas.ocpp import command_to
    from api.ocpp.reservations import cancel_payload

    def load() -> Reservation:
        with open_scope(request) as scope:
            r = scope.repo(Reservation, "reservation", "rsv").get(reservation_id)
            if r.status not in ACTIVE:
                raise Conflict("reservation_not_active", f"the reservation is {r.status}")
            scope.db.expunge(r)
            return r

    r = await anyio.to_thread.run_sync(load)
    answer = ""
    if r.status != "scheduled":  # a scheduled one never reached the charger
        # the remote commands' path: not connected, no answer in time or a CALLERROR are 409s
        sent = await command_to(request, r.charge_point_id, lambda version: cancel_payload(version, r))
        answer = str(sent.response.get("status", ""))

    def store() -> None:
        with open_scope(request) as scope:
            row = scope.repo(Reservation, "reservation", "rsv").get(reservation_id)
            row.cancel_status = answer
            if answer in ("", "Accepted") and row.status in ACTIVE:
                before = {"status": row.status}
                row.status, row.ended_at = "cancelled", utcnow()
                row.end_reason = f"cancelled by {scope.actor.user_id}"[:300]
                scope.audit("reservation.cancel", "reservation", row.id, before,
                            {"status": "cancelled", "charger_answer": answer})
            row.updated_at = utcnow()
            scope.commit()
            if answer not in ("", "Accepted"):
                raise Conflict("cancel_rejected", f"the charge point answered CancelReservation with {answer}: "
                                                  "it does not hold this reservation (used or expired there)")

    await anyio.to_thread.run_sync(store)
    return await anyio.to_thread.run_sync(_read, request, reservation_id)


router = Router(path="/", route_handlers=[create_reservation, list_reservations, get_reservation,
                                          cancel_reservation], tags=["reservations"])
