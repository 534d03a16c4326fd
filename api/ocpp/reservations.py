"""Reservations at the charger (issue 18): ReserveNow and CancelReservation (OCPP 1.6J and 2.0.1),
the charger's answers, the reservation used by a transaction, 2.0.1 ReservationStatusUpdate, and
expiry.

The database side are plain synchronous functions, as in ``api.ocpp.service``; the commands go
through ``Gateway.command`` (the API reaches it with ``command_threadsafe``, as RemoteStart does).

When does a reservation expire? Three ways, whichever comes first: the 2.0.1 charger's
ReservationStatusUpdate ``Expired``; the gateway's sweep (``sweep``, every ``seen_flush_s``
seconds, with the last-seen flush); and any read of reservations through the API (``expire_due``
before the list or the object is read). A 1.6J charger never says that a reservation expired, so
the sweep is what ends them. An expired reservation becomes a session of its own, through
``import_sessions`` (the one rating path, as the gateway's transactions), priced with the
tariff's ``reservation_expires`` components and billed on its customer's next invoice as
sessions are.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.audit import Actor
from store.models import Location, Partner
from store.ocpp import OcppTransaction
from store.repo import Scope
from store.reservations import Reservation
from store.types import utcnow

if TYPE_CHECKING:
    from api.ocpp.server import Gateway
    from api.ocpp.service import CpInfo

__all__ = [
    "REFUSALS",
    "apply_answer",
    "bill_expired",
    "cancel_payload",
    "expire_due",
    "facts_of",
    "held_charge_points",
    "insert",
    "link_start",
    "match_start",
    "match_transaction",
    "new_ocpp_id",
    "partner_tag",
    "partner_token_uid",
    "reserve_now_payload",
    "send",
    "status_update",
    "sweep",
]

log = logging.getLogger("evbill.ocpp")

GATEWAY_USER = "ocpp-gateway"
# ReserveNow answers that refuse the reservation (1.6 ReservationStatus, 2.0.1 ReserveNowStatusEnumType)
REFUSALS = ("Faulted", "Occupied", "Rejected", "Unavailable")


def new_ocpp_id() -> int:
    """The reservationId both versions send (an integer); random, unique per charger (the table's key)."""
    return secrets.randbelow(2**31 - 2) + 1


def partner_tag(partner: Partner) -> str:
    """The id tag a reservation for a partner's tokens names at the charger (1.6 idTag and
    parentIdTag, 2.0.1 idToken and groupIdToken): 20 characters at most, as 1.6 allows."""
    ref = f"{partner.country_code}{partner.party_id}" if partner.party_id else partner.id[-12:]
    return f"GRP-{ref}"[:20]


# --- what goes to the charger -----------------------------------------------------------------

def reserve_now_payload(version: str, r: Reservation) -> Any:
    if version == "1.6":
        from ocpp.v16 import call

        return call.ReserveNow(connector_id=r.connector_id, expiry_date=_iso(r.expiry), id_tag=r.id_tag,
                               reservation_id=r.ocpp_id, parent_id_tag=r.id_tag if r.partner_id else None)
    from ocpp.v201 import call as c201

    token = {"idToken": r.id_tag, "type": "Central" if r.partner_id else "ISO14443"}
    return c201.ReserveNow(id=r.ocpp_id, expiry_date_time=_iso(r.expiry), id_token=token,
                           evse_id=r.connector_id or None,
                           group_id_token={"idToken": r.id_tag, "type": "Central"} if r.partner_id else None)


def cancel_payload(version: str, r: Reservation) -> Any:
    if version == "1.6":
        from ocpp.v16 import call

        return call.CancelReservation(reservation_id=r.ocpp_id)
    from ocpp.v201 import call as c201

    return c201.CancelReservation(reservation_id=r.ocpp_id)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def apply_answer(db: Session, reservation_id: str, answer: str | None, error: str = "") -> Reservation:
    """Store what the charger answered to ReserveNow: Accepted -> accepted; a refusal -> refused
    (never billed); no answer or an error -> failed (never billed)."""
    r = db.get(Reservation, reservation_id)
    assert r is not None
    now = utcnow()
    r.charger_status = (answer or "")[:20]
    if r.status != "requested":
        # a transaction already used it (its StartTransaction came before our answer was stored),
        # or it was cancelled meanwhile: the answer is kept, the status stays
        r.updated_at = now
        return r
    if answer == "Accepted":
        r.status = "accepted"
    elif answer:
        r.status, r.ended_at, r.end_reason = "refused", now, f"the charger answered {answer}"[:300]
    else:
        r.status, r.ended_at, r.end_reason = "failed", now, error[:300]
    r.updated_at = now
    return r


async def send(gw: Gateway, reservation_id: str) -> Reservation:
    """ReserveNow for a stored reservation through the gateway (on its loop); the answer stored.
    -> the reservation as stored afterwards (detached)."""
    from api.ocpp.server import NotConnected

    r, identity = await gw.db.read(lambda db: _with_identity(db, reservation_id))
    version = gw.version_of(identity)
    answer, error = None, "the charge point was not connected when the reservation was due"
    if version is not None:
        if gw.reserved_cps is not None:
            gw.reserved_cps.add(r.charge_point_id)  # before it is stored as sent (see ``sweep``)
        if not await gw.db.write(lambda db: _mark_sent(db, reservation_id, version)):
            return r  # cancelled (or sent by another gateway) since it was read
        try:
            res = await gw.command(identity, reserve_now_payload(version, r))
            answer = str(res.status)
        except NotConnected:
            pass
        except TimeoutError:
            error = "the charge point did not answer ReserveNow in time"
        except Exception as exc:  # noqa: BLE001  (a CALLERROR from the charger)
            error = f"the charge point answered ReserveNow with an error: {exc}"
    return await gw.db.write(lambda db: apply_answer(db, reservation_id, answer, error))


def _with_identity(db: Session, reservation_id: str) -> tuple[Reservation, str]:
    from store.models import ChargePoint

    r = db.get(Reservation, reservation_id)
    assert r is not None
    cp = db.get(ChargePoint, r.charge_point_id)
    db.expunge(r)
    return r, cp.identity if cp is not None else ""


def _mark_sent(db: Session, reservation_id: str, version: str) -> bool:
    """-> whether it is ours to send: still scheduled (the sweep), or just stored by the API."""
    done = db.execute(update(Reservation).where(
        Reservation.id == reservation_id, Reservation.sent_at.is_(None),  # type: ignore[union-attr]
        Reservation.status.in_(("scheduled", "requested"))).values(  # type: ignore[attr-defined]
        status="requested", ocpp_version=version, sent_at=utcnow(), updated_at=utcnow()))
    return bool(done.rowcount)  # type: ignore[attr-defined]


# --- what the charger reports -----------------------------------------------------------------

def link_start(db: Session, cp: CpInfo, tx_id: int, reservation_id: int, at: datetime) -> str | None:
    """A transaction started with a reservation (1.6 StartTransaction.reservationId, 2.0.1
    TransactionEvent.reservationId): the charger's accepted reservation of that id is used by it.
    -> the reservation's id, or None (not one of this charger's accepted reservations)."""
    r = db.execute(select(Reservation).where(Reservation.charge_point_id == cp.id,
                                             Reservation.ocpp_id == int(reservation_id))).scalar()
    if r is None or r.status not in ("accepted", "requested"):
        log.info("%s: a transaction named reservation %s, which is not an accepted one of this charger",
                 cp.identity, reservation_id)
        return None
    r.status, r.transaction_id, r.ended_at, r.updated_at = "used", tx_id, at, utcnow()
    r.end_reason = f"used by transaction {tx_id}"
    return r.id


def match_start(db: Session, cp: CpInfo, tx_id: int, connector_id: int, id_tag: str, at: datetime) -> str | None:
    """A 1.6J StartTransaction that names no reservation (many chargers omit ``reservationId``):
    an accepted reservation of this charger at that connector (or at connector 0, any), whose
    window holds the start, for this id tag -- or, reserved for a partner, for one of the partner's
    tokens -- is the one it used (``link_start``: used, its reserved time priced). The earliest of
    several. The handler asks only for chargers in ``Gateway.reserved_cps`` (read at the gateway's
    start, kept by ``send`` and the sweep), so other starts pay nothing for it.
    -> the reservation's id, or None."""
    rows = list(db.execute(select(Reservation).where(
        Reservation.charge_point_id == cp.id, Reservation.status.in_(("accepted", "requested")),  # type: ignore[attr-defined]
        Reservation.connector_id.in_((connector_id, 0)),  # type: ignore[attr-defined]
        Reservation.start <= at, Reservation.expiry > at)  # type: ignore[arg-type,operator]
        .order_by(Reservation.start, Reservation.id)).scalars())  # type: ignore[arg-type]
    if not rows:
        return None
    partner_of_tag: str | None = None
    if any(r.partner_id for r in rows):
        from store.models import Token

        partner_of_tag = db.execute(select(Token.issuing_partner_id).where(
            Token.tenant_id == cp.tenant_id, Token.uid == id_tag)).scalar()
    for r in rows:
        if r.id_tag == id_tag or (r.partner_id is not None and r.partner_id == partner_of_tag):
            return link_start(db, cp, tx_id, r.ocpp_id, at)
    return None


def match_transaction(db: Session, cp: CpInfo, tx_id: int) -> str | None:
    """``match_start`` for a 2.0.1 transaction whose TransactionEvents name no reservation: once it
    has started and its id token was accepted (the Started event may carry the token, or, when the
    cable came first, the Updated event after the driver's Authorize does: 2.0.1 chargers send the
    authorized token in the transaction's next event), an accepted reservation of its EVSE whose
    window holds the start, for that token or one of the reserving partner's tokens, is used by it.
    Not when the transaction already uses one. -> the reservation's id, or None."""
    tx = db.get(OcppTransaction, tx_id)
    if tx is None or tx.start is None or not tx.id_tag or tx.auth_status != "Accepted":
        return None
    if db.execute(select(Reservation.id).where(Reservation.transaction_id == tx_id)).first() is not None:
        return None
    return match_start(db, cp, tx_id, tx.connector_id or 0, tx.id_tag, tx.start)


def status_update(db: Session, cp: CpInfo, reservation_id: int, update_status: str, at: datetime) -> str | None:
    """2.0.1 ReservationStatusUpdate: ``Expired`` ends it as expired (billed with
    ``reservation_expires``), ``Removed`` as cancelled by the charger (not billed)."""
    r = db.execute(select(Reservation).where(Reservation.charge_point_id == cp.id,
                                             Reservation.ocpp_id == int(reservation_id))).scalar()
    if r is None or r.status != "accepted":
        return None
    if update_status == "Expired":
        r.status, r.ended_at, r.end_reason = "expired", at, "the charger reported it expired"
    else:
        r.status, r.ended_at = "cancelled", at
        r.end_reason = "the charger removed it (ReservationStatusUpdate Removed)"
    r.updated_at = utcnow()
    return r.id


# --- billing ----------------------------------------------------------------------------------

# every finished session asks (most have none): built once
_USED_RESERVATION_START = select(Reservation.start).where(  # type: ignore[call-overload]
    Reservation.transaction_id == bindparam("tx"), Reservation.status == "used")


def facts_of(db: Session, tx: OcppTransaction) -> dict[str, Any]:
    """What a transaction started with a reservation adds to its session's facts: the reserved
    stretch (reservation start until the session start) for the reservation components."""
    if tx.id is None or tx.start is None:
        return {}
    row = db.connection().execute(_USED_RESERVATION_START, {"tx": tx.id}).first()
    if row is None:
        return {}
    return {"reservation": "RESERVATION", "reserved_from": min(row[0], tx.start).isoformat()}


def expire_due(db: Session, now: datetime, tenant_id: str | None = None) -> list[str]:
    """Accepted reservations whose expiry passed unused become expired and are billed with every
    other expired one not billed yet (``bill_expired``); scheduled ones whose expiry passed before
    they were sent end as failed. Commits when it changed anything. -> ids of the reservations billed."""
    q = select(Reservation).where(Reservation.status.in_(("accepted", "scheduled")),  # type: ignore[attr-defined]
                                  Reservation.expiry <= now)  # type: ignore[operator]
    if tenant_id is not None:
        q = q.where(Reservation.tenant_id == tenant_id)
    due = list(db.execute(q.order_by(Reservation.expiry).limit(500)).scalars())  # type: ignore[arg-type]
    if not due:
        return []  # the common case (every API read asks): one indexed query, nothing written
    for r in due:
        if r.status == "scheduled":
            r.status, r.ended_at, r.end_reason = "failed", r.expiry, "never sent: its window passed"
        else:
            r.status, r.ended_at, r.end_reason = "expired", r.expiry, "not used before its expiry"
        r.updated_at = utcnow()
    db.flush()
    return bill_expired(db, tenant_id)


_NOT_STORED = "not stored as a session"


def bill_expired(db: Session, tenant_id: str | None = None) -> list[str]:
    """Each expired reservation not billed yet as a session of its own (source ``reservation``,
    external id ``reservation:<id>``) through ``import_sessions``: reservation time from its start
    to its expiry, ``reservation_expires``, the token (or partner) it was for, its EVSE and
    location. Commits. -> ids of the reservations billed."""
    from api.session_io import Incoming, import_sessions

    q = select(Reservation).where(Reservation.status == "expired", Reservation.session_id.is_(None),  # type: ignore[union-attr]
                                  ~Reservation.end_reason.contains(_NOT_STORED))  # type: ignore[attr-defined]
    if tenant_id is not None:
        q = q.where(Reservation.tenant_id == tenant_id)
    rows = list(db.execute(q.order_by(Reservation.expiry).limit(500)).scalars())  # type: ignore[arg-type]
    by_tenant: dict[str, list[tuple[Reservation, dict[str, Any]]]] = {}
    for r in rows:
        by_tenant.setdefault(r.tenant_id, []).append((r, _expired_facts(db, r)))
    billed = []
    for tid, items in by_tenant.items():
        scope = Scope(db, Actor(tenant_id=tid, user_id=GATEWAY_USER, role="operator"))
        result = import_sessions(scope, [Incoming(external_id=f["id"], source="reservation", facts=f)
                                         for _, f in items])
        for (r, _f), item in zip(items, result.items):
            if item.session_id:
                db.execute(update(Reservation).where(Reservation.id == r.id).values(  # type: ignore[arg-type]
                    session_id=item.session_id, updated_at=utcnow()))
                billed.append(r.id)
            else:
                db.execute(update(Reservation).where(Reservation.id == r.id).values(  # type: ignore[arg-type]
                    end_reason=f"{r.end_reason}; {_NOT_STORED}: {item.code}: {item.message}"[:300]))
    db.commit()
    return billed


def _expired_facts(db: Session, r: Reservation) -> dict[str, Any]:
    # the reservation's window, reserved from its own start and without energy
    # (``SessionFacts.reserved_from``): rating prices all of it as reservation time, to the second,
    # and no start or flat fee (the session never charged)
    loc = db.get(Location, r.location_id)
    facts: dict[str, Any] = {
        "id": f"reservation:{r.id}", "start": r.start.isoformat(), "end": r.expiry.isoformat(),
        "reserved_from": r.start.isoformat(), "energy_kwh": "0",
        "reservation": "RESERVATION_EXPIRES", "location_id": (loc.code or loc.id) if loc else "",
        "evse_id": r.evse_uid, "token_uid": r.id_tag,
    }
    if r.partner_id:
        par = db.get(Partner, r.partner_id)
        facts["partner"] = (par.party_id or par.id) if par else ""
        facts["token_uid"] = partner_token_uid(db, r, loc.timezone if loc else "Europe/Berlin")
    return facts


def partner_token_uid(db: Session, r: Reservation, zone: str) -> str:
    """Whom an expired reservation for a partner's tokens bills: it names one of the partner's
    tokens, so the one chain token -> contract -> billing account (``session_io._enrich``) takes it
    as it takes the partner's sessions. A fleet partner's cards charge on the fleet customer's
    contract: an active token whose contract was in force on the reservation's day (its account
    active) -- of the contract most of the partner's tokens are on, then the oldest token -- so the
    fleet's next billing cycle invoices the fee. An eMSP's tokens have no contract: the session is a
    roaming session of that partner, stated on its clearing statement and invoiced to the partner as
    a business customer (``store.clearing.partner_account``). A partner with tokens but no
    contract in force: its first token, so the session waits in the unassigned list
    (``token_without_customer`` / ``no_active_contract``) until the chain holds. A partner without
    any token: the group tag, an unknown token, unassigned -- never billed to nobody silently."""
    from api.session_io import contract_covers
    from store.models import BillingAccount, Contract, Token

    rows = db.execute(select(Token, Contract, BillingAccount)
                      .outerjoin(Contract, Contract.id == Token.contract_id)
                      .outerjoin(BillingAccount, BillingAccount.id == Contract.account_id)
                      .where(Token.tenant_id == r.tenant_id, Token.issuing_partner_id == r.partner_id)
                      .order_by(Token.created_at, Token.id)).all()  # type: ignore[arg-type]
    if not rows:
        return r.id_tag
    try:
        day = r.start.astimezone(ZoneInfo(zone or "Europe/Berlin")).date()
    except (ZoneInfoNotFoundError, ValueError):
        day = r.start.date()
    billable = [(tok, con) for tok, con, acc in rows if tok.status == "active" and con is not None
                and acc is not None and acc.status == "active" and contract_covers(con, day)]
    if billable:
        counts = Counter(con.id for _tok, con in billable)
        return min(billable, key=lambda tc: -counts[tc[1].id])[0].uid  # stable: oldest token on ties
    active = [tok for tok, _con, _acc in rows if tok.status == "active"]
    return (active or [rows[0][0]])[0].uid


# --- the gateway's sweep ----------------------------------------------------------------------

async def sweep(gw: Gateway, now: datetime | None = None) -> None:
    """What the gateway does every few seconds: send ReserveNow for scheduled reservations whose
    window has started (their charger connected here), then expire the ones past their expiry."""
    from store.models import ChargePoint

    at = now or utcnow()
    due = await gw.db.read(lambda db: list(db.execute(
        select(Reservation.id, ChargePoint.identity).join(ChargePoint, ChargePoint.id == Reservation.charge_point_id)
        .where(Reservation.status == "scheduled", Reservation.start <= at,  # type: ignore[operator]
               Reservation.expiry > at).limit(200))))  # type: ignore[operator]
    # only chargers connected here: another gateway process sends to its own; one connected
    # nowhere until the expiry ends as failed (``expire_due``)
    for rid, identity in due:
        if gw.version_of(identity) is None:
            continue
        try:
            await send(gw, rid)
        except Exception:
            log.warning("sending reservation %s failed", rid, exc_info=True)
    try:
        await gw.db.solo(lambda db: expire_due(db, at) or bill_expired(db))  # and any left unbilled
    except Exception:
        log.warning("expiring reservations failed", exc_info=True)
    # which chargers hold a sent reservation now; ones ``send`` added while this read ran are kept
    before = set(gw.reserved_cps or ())
    try:
        held = await gw.db.read(held_charge_points)
    except Exception:
        log.warning("reading reserved chargers failed", exc_info=True)
        return
    gw.reserved_cps = held | (set(gw.reserved_cps or ()) - before)


def held_charge_points(db: Session) -> set[str]:
    """The charge points holding a sent reservation (accepted, or awaiting the answer): the only
    ones where a 1.6J start that names no reservation is looked up (``match_start``)."""
    return set(db.execute(select(Reservation.charge_point_id).where(
        Reservation.status.in_(("accepted", "requested")))).scalars())  # type: ignore[attr-defined]


def insert(db: Session, values: dict[str, Any]) -> Reservation:
    """A new reservation row with a fresh reservationId (another is drawn on the rare collision)."""
    for _ in range(5):
        r = Reservation(**values, ocpp_id=new_ocpp_id())
        try:
            with db.begin_nested():
                db.add(r)
            return r
        except IntegrityError:
            continue
    raise RuntimeError("no free reservation id")
