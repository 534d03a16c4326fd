"""What the gateway does with what chargers report, as plain synchronous database functions (they
run on the gateway's database threads; the protocol handlers stay thin).

Every write is keyed so that a repeat changes nothing: see ``store.ocpp``. A transaction becomes a
``ChargingSession`` through ``api.session_io.import_sessions``, the same path imported CDRs take, so
OCPP sessions are enriched, rated (the version in force at the session start) and stored exactly
like every other session, and idempotently by external id.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from api.ocpp.access import Decision, authorize
from store.adhoc import is_adhoc_tag
from store.adhoc import link_session as link_adhoc_session
from store.audit import Actor
from store.models import ChargePoint, Evse, Location
from store.ocpp import (
    MeterKey,
    OcppChargePointState,
    OcppMeterValue,
    OcppSignedData,
    OcppTransaction,
    OcppTransactionEvent,
)
from store.repo import Scope
from store.types import new_id, utcnow

__all__ = [
    "GATEWAY_USER",
    "CpInfo",
    "EvseInfo",
    "Reading",
    "add_meter_values",
    "facts_for",
    "finalize",
    "load_charge_point",
    "parse_meter_values_16",
    "parse_meter_values_201",
    "parse_time",
    "pending_finalization",
    "record_boot",
    "record_status",
    "start_transaction_16",
    "stop_transaction_16",
    "transaction_event_201",
]

log = logging.getLogger("evbill.ocpp")

GATEWAY_USER = "ocpp-gateway"
_ENERGY = "Energy.Active.Import.Register"
_POWER = "Power.Active.Import"


@dataclass(frozen=True, slots=True)
class EvseInfo:
    uid: str
    power_type: str
    max_power_kw: Decimal | None


@dataclass(frozen=True, slots=True)
class CpInfo:
    """A registered charger as the gateway needs it for one connection."""

    id: str
    tenant_id: str
    identity: str
    status: str
    password_sha256: str
    location_id: str
    location_ref: str  # what sessions name the location by (its code, else its id)
    timezone: str
    evses: dict[int, EvseInfo] = field(default_factory=dict)

    def evse(self, connector: int | None) -> EvseInfo:
        hit = self.evses.get(connector or 0)
        if hit is None and len(self.evses) == 1 and not connector:
            hit = next(iter(self.evses.values()))
        return hit or EvseInfo(f"{self.identity}*{connector or 0}", "AC", None)


# The gateway's hot statements are built once, with bound parameters, and run on the session's
# connection: building a statement per call (coercions, a fresh cache key) and the ORM's execute
# path cost several times what SQLite takes to run it (issue 18: the gateway's CPU per message).
_CP_BY_IDENTITY = (select(ChargePoint.id, ChargePoint.tenant_id, ChargePoint.identity, ChargePoint.status,
                          ChargePoint.password_sha256, Location.id, Location.code, Location.timezone)
                   .join(Location, Location.id == ChargePoint.location_id)  # type: ignore[arg-type]
                   .where(ChargePoint.identity == bindparam("identity")))
_EVSES_OF_CP = select(Evse.connector_id, Evse.evse_uid, Evse.power_type, Evse.max_power_kw).where(
    Evse.charge_point_id == bindparam("cp"))


def load_charge_point(db: Session, identity: str) -> CpInfo | None:
    conn = db.connection()
    row = conn.execute(_CP_BY_IDENTITY, {"identity": identity}).first()
    if row is None:
        return None
    cp_id, tenant_id, ident, status, pw, loc_id, loc_code, tz = row
    evses = {c: EvseInfo(uid, power_type, max_kw)
             for c, uid, power_type, max_kw in conn.execute(_EVSES_OF_CP, {"cp": cp_id})}
    return CpInfo(cp_id, tenant_id, ident, status, pw, loc_id, loc_code or loc_id, tz, evses)


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        # OCPP requires UTC with an offset; a charger that omits it means UTC in practice
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _dec(v: Any) -> Decimal | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        # JSON numbers arrive as floats (2.0.1); their shortest repr is what the charger wrote
        return Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class SignedValue:
    format: str
    raw: str
    signing_method: str = ""
    public_key: str = ""


@dataclass
class Reading:
    at: datetime
    energy_wh: Decimal | None = None
    power_w: Decimal | None = None
    context: str = ""
    signed: list[SignedValue] = field(default_factory=list)


_SCALE = {"wh": Decimal(1), "kwh": Decimal(1000), "w": Decimal(1), "kw": Decimal(1000)}


def parse_meter_values_16(values: Iterable[dict[str, Any]] | None) -> list[Reading]:
    out = []
    for mv in values or ():
        r = Reading(parse_time(mv["timestamp"]))
        for sv in mv.get("sampled_value") or ():
            r.context = r.context or str(sv.get("context") or "")
            if str(sv.get("format") or "") == "SignedData":
                r.signed.append(SignedValue("SignedData", str(sv.get("value", ""))))
                continue
            measurand = sv.get("measurand") or _ENERGY
            if sv.get("phase"):
                continue  # per-phase values do not add to the billed register
            val = _dec(sv.get("value"))
            if val is None:
                continue
            val *= _SCALE.get(str(sv.get("unit") or "").lower(), Decimal(1))
            if measurand == _ENERGY:
                r.energy_wh = val
            elif measurand == _POWER:
                r.power_w = val
        out.append(r)
    return out


def parse_meter_values_201(values: Iterable[dict[str, Any]] | None) -> list[Reading]:
    out = []
    for mv in values or ():
        r = Reading(parse_time(mv["timestamp"]))
        for sv in mv.get("sampled_value") or ():
            r.context = r.context or str(sv.get("context") or "")
            signed = sv.get("signed_meter_value")
            if signed:
                data = str(signed.get("signed_meter_data") or "")
                fmt = "OCMF" if data.startswith("OCMF|") else str(signed.get("encoding_method") or "signedMeterValue")
                r.signed.append(SignedValue(fmt, data, str(signed.get("signing_method") or ""),
                                            str(signed.get("public_key") or "")))
            if sv.get("phase"):
                continue
            val = _dec(sv.get("value"))
            if val is None:
                continue
            unit = sv.get("unit_of_measure") or {}
            val *= _SCALE.get(str(unit.get("unit") or "").lower(), Decimal(1))
            mult = unit.get("multiplier")
            if mult:
                val = val.scaleb(int(mult))
            measurand = sv.get("measurand") or _ENERGY
            if measurand == _ENERGY:
                r.energy_wh = val
            elif measurand == _POWER:
                r.power_w = val
        out.append(r)
    return out


_insert_ignore_stmts: dict[tuple[str, Any, tuple[str, ...]], Any] = {}


def _insert_ignore(db: Any, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> int:
    """Insert, leaving rows whose key exists alone; ``db`` is a Session or a Connection."""
    if not rows:
        return 0
    conn = db.connection() if isinstance(db, Session) else db
    dialect = conn.dialect.name
    # one statement per dialect, table and key, built once (its cache key with it); parameters
    # passed separately (not .values(rows)) so the compiled statement is reused
    stmt = _insert_ignore_stmts.get((dialect, table, tuple(keys)))
    if stmt is None:
        mod = postgresql if dialect == "postgresql" else sqlite
        stmt = _insert_ignore_stmts[(dialect, table, tuple(keys))] = mod.insert(table).on_conflict_do_nothing(
            index_elements=keys)
    return conn.execute(stmt, rows[0] if len(rows) == 1 else rows).rowcount or 0  # type: ignore[no-any-return]


def meter_rows(tenant_id: str, tx_id: int, readings: list[Reading]) -> tuple[list[dict[str, Any]],
                                                                            list[dict[str, Any]]]:
    """Rows for ``ocpp_meter_value`` and ``ocpp_signed_data`` of one message's readings."""
    rows = []
    seen: set[datetime] = set()
    for r in readings:
        # several readings with the same timestamp in one message: keep the first, like a repeat
        if (r.energy_wh is None and r.power_w is None) or r.at in seen:
            continue
        seen.add(r.at)
        rows.append({"transaction_id": tx_id, "at": r.at, "energy_wh": r.energy_wh, "power_w": r.power_w,
                     "context": r.context[:30]})
    signed = [{"tenant_id": tenant_id, "transaction_id": tx_id, "at": r.at, "format": sv.format[:40],
               "context": r.context[:30], "raw": sv.raw, "signing_method": sv.signing_method[:60],
               "public_key": sv.public_key[:2500], "sha256": hashlib.sha256(sv.raw.encode()).hexdigest()}
              for r in readings for sv in r.signed]
    return rows, signed


METER_KEYS = ["transaction_id", "at"]
SIGNED_KEYS = ["transaction_id", "sha256"]


def insert_ignore(db: Session, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> int:
    return _insert_ignore(db, table, rows, keys)


def add_meter_values(db: Session, tenant_id: str, tx_id: int, readings: list[Reading],
                     charge_point_id: str | None = None) -> int:
    """Store readings; one already stored (same transaction and time) is left as it is. A public
    key sent with signed data (2.0.1 ``signedMeterValue.publicKey``) is registered for its meter."""
    rows, signed = meter_rows(tenant_id, tx_id, readings)
    n = _insert_ignore(db, OcppMeterValue.__table__, rows, METER_KEYS)
    _insert_ignore(db, OcppSignedData.__table__, signed, SIGNED_KEYS)
    for r in readings:
        for sv in r.signed:
            if sv.public_key:
                serial = _meter_serial(sv.raw)
                if serial:
                    register_meter_key(db, tenant_id, charge_point_id, "", serial, sv.public_key,
                                       "ocpp201_signed_meter_value", r.at)
    return n


# --- Eichrecht: meter keys and the check of a transaction's signed data ---------------------------

def _meter_serial(raw: str) -> str:
    from runtime.ocmf import OcmfError, parse

    try:
        return parse(raw).meter_serial
    except OcmfError:
        return ""


def register_meter_key(db: Session, tenant_id: str, charge_point_id: str | None, evse_uid: str, serial: str,
                       public_key: str, source: str, at: datetime) -> bool:
    """Record a key a charger sent for its meter, with where it came from and when it was first
    seen (a key seen again keeps its first time). -> whether it is a usable EC key."""
    from runtime.ocmf import OcmfError, key_curve, load_public_key, normalize_public_key

    try:
        key = normalize_public_key(public_key)
        curve = key_curve(load_public_key(key))
    except OcmfError as exc:
        log.warning("meter %s: the charger sent a public key that is not usable: %s", serial, exc)
        return False
    _insert_ignore(db, MeterKey.__table__, [{
        "id": new_id("mk"), "tenant_id": tenant_id, "meter_serial": serial[:64], "charge_point_id": charge_point_id,
        "evse_uid": evse_uid[:64], "public_key": key, "curve": curve, "source": source, "status": "active",
        "first_seen_at": at, "revoked_at": None, "revoked_reason": "", "description": "", "created_at": utcnow()}],
        ["tenant_id", "meter_serial", "public_key"])
    return True


def meter_configuration_16(db: Session, cp: CpInfo, data: str | None, meter_serial: str = "") -> int:
    """The OCA signed-meter-values DataTransfer (vendorId ``generalConfiguration``, messageId
    ``setMeterConfiguration``): ``{"meters": [{"connectorId", "meterSerial", "type": "SIGNATURE",
    "publicKey"}]}``. A meter without a serial takes the one BootNotification gave. -> keys taken."""
    import json

    try:
        doc = json.loads(data or "")
    except ValueError:
        return 0
    n = 0
    for m in (doc.get("meters") or []) if isinstance(doc, dict) else []:
        if not isinstance(m, dict) or not m.get("publicKey") or str(m.get("type") or "SIGNATURE") != "SIGNATURE":
            continue
        serial = str(m.get("meterSerial") or m.get("meterSerialNumber") or meter_serial)
        conn = int(m.get("connectorId") or 0)
        evse = cp.evses.get(conn)
        if serial and register_meter_key(db, cp.tenant_id, cp.id, evse.uid if evse else "", serial,
                                         str(m["publicKey"]), "ocpp16_datatransfer", utcnow()):
            n += 1
    return n


def meter_keys_from_configuration(db: Session, cp: CpInfo, meter_serial: str, items: list[tuple[str, str]]) -> int:
    """Keys a 1.6J charger's GetConfiguration gave (``MeterPublicKey[<connector>]``; ``MeterPublicKeys``
    only when it holds a single key: a list cannot say which meter each key is for). -> keys taken."""
    import re

    n = 0
    for name, value in items:
        hit = re.fullmatch(r"MeterPublicKey\[(\d+)\]", name)
        if hit is None and not (name == "MeterPublicKeys" and "," not in value.strip(", ")):
            continue
        evse = cp.evses.get(int(hit.group(1))) if hit else None
        if register_meter_key(db, cp.tenant_id, cp.id, evse.uid if evse else "", meter_serial, value.strip(", "),
                              "ocpp16_get_configuration", utcnow()):
            n += 1
    return n


_sd = OcppSignedData.__table__.c  # type: ignore[attr-defined]
_SIGNED_OF = select(_sd.raw, _sd.public_key).where(_sd.transaction_id == bindparam("tx")).order_by(_sd.at, _sd.id)


def meter_check(db: Session, tx: OcppTransaction, session_kwh: Decimal) -> dict[str, str] | None:
    """The transaction's signed data held against its energy (``runtime.ocmf.check_session``) with
    the tenant's registered keys; None when the charger sent no OCMF data."""
    from runtime.ocmf import check_session, normalize_public_key

    rows = db.connection().execute(_SIGNED_OF, {"tx": tx.id}).all()
    records = [r for r, _ in rows]
    serials = {s for s in (_meter_serial(r) for r in records) if s}
    if not serials and not any(r.lstrip().startswith("OCMF|") for r in records):
        return None
    keys: dict[str, tuple[str, bool]] = {}
    found = db.execute(select(MeterKey).where(MeterKey.tenant_id == tx.tenant_id,
                                              MeterKey.meter_serial.in_(serials))).scalars()  # type: ignore[attr-defined]
    # an operator's key before one a charger sent; an active key before a revoked one
    for k in sorted(found, key=lambda k: (k.status != "active", k.source != "api", k.first_seen_at)):
        keys.setdefault(k.meter_serial, (k.public_key, k.status == "revoked"))
    sent: dict[str, str] = {}
    for raw, pk in rows:
        if pk:
            try:
                sent.setdefault(_meter_serial(raw), normalize_public_key(pk))
            except ValueError:
                pass
    return check_session(records, keys, session_kwh, sent).to_dict()


def _tx_by_ref(db: Session, cp: CpInfo, ref: str) -> OcppTransaction | None:
    return db.execute(select(OcppTransaction).where(OcppTransaction.charge_point_id == cp.id,
                                                    OcppTransaction.transaction_ref == ref)).scalar_one_or_none()


def _new_tx(db: Session, cp: CpInfo, version: str, ref: str, **values: Any) -> OcppTransaction:
    tx = OcppTransaction(tenant_id=cp.tenant_id, charge_point_id=cp.id, identity=cp.identity, ocpp_version=version,
                         transaction_ref=ref, location_id=cp.location_id, **values)
    db.add(tx)
    db.flush()
    return tx


# --- OCPP 1.6 -----------------------------------------------------------------------------------

_tx = OcppTransaction.__table__.c  # type: ignore[attr-defined]
_TX_BY_START_KEY = select(_tx.id, _tx.auth_status).where(_tx.charge_point_id == bindparam("cp"),
                                                          _tx.start_key == bindparam("key"))
_TX_INSERT = OcppTransaction.__table__.insert().returning(_tx.id)  # type: ignore[attr-defined]
_TX_SET_REF = update(OcppTransaction.__table__).where(_tx.id == bindparam("tx")).values(  # type: ignore[arg-type]
    transaction_ref=bindparam("ref"))
_TX_STOP_FIELDS = select(_tx.charge_point_id, _tx.ocpp_version, _tx.start, _tx.stop).where(_tx.id == bindparam("id"))
_TX_STOP = update(OcppTransaction.__table__).where(_tx.id == bindparam("tx")).values(  # type: ignore[arg-type]
    stop=bindparam("stop_at"), meter_stop_wh=bindparam("meter_stop"), stop_reason=bindparam("reason"),
    updated_at=bindparam("now"), status=bindparam("new_status"))

def start_transaction_16(db: Session, cp: CpInfo, connector_id: int, id_tag: str, meter_start: int,
                         timestamp: str, readings: list[Reading] | None = None) -> tuple[int, str]:
    """-> (transaction id, idTagInfo status). A repeated StartTransaction (the charger never saw our
    answer, or replays its offline queue twice) gets the same transaction id back."""
    at = parse_time(timestamp)
    key = f"{connector_id}|{id_tag}|{at.isoformat()}|{meter_start}"[:200]
    conn = db.connection()
    old = conn.execute(_TX_BY_START_KEY, {"cp": cp.id, "key": key}).first()
    if old is not None:
        return int(old[0]), old[1]
    evse = cp.evse(connector_id)
    d = authorize(db, tenant_id=cp.tenant_id, charge_point_id=cp.id, location_id=cp.location_id, evse_uid=evse.uid,
                  id_tag=id_tag, at=at, tz=cp.timezone, context="StartTransaction")
    # recorded even when refused: the charger may already be charging (offline start), and energy
    # delivered must reach an operator, not vanish
    now = utcnow()
    tx_id = int(conn.execute(_TX_INSERT, {
        "tenant_id": cp.tenant_id, "charge_point_id": cp.id, "identity": cp.identity, "ocpp_version": "1.6",
        "transaction_ref": f"pending:{key}"[:64], "start_key": key, "location_id": cp.location_id,
        "evse_uid": evse.uid, "connector_id": connector_id, "id_tag": id_tag[:64], "auth_status": d.status,
        "start": at, "stop": None, "meter_start_wh": Decimal(meter_start), "meter_stop_wh": None, "stop_reason": "",
        "offline": False, "last_seq_no": -1, "status": "open", "review_reason": "", "session_id": None,
        "external_id": "", "created_at": now, "updated_at": now}).scalar_one())
    # the 1.6 transaction id is our key, known only after the insert
    conn.execute(_TX_SET_REF, {"tx": tx_id, "ref": str(tx_id)})
    add_meter_values(db, cp.tenant_id, tx_id, [Reading(at, Decimal(meter_start), context="Transaction.Begin")]
                     + list(readings or ()))
    return tx_id, d.status


def stop_transaction_16(db: Session, cp: CpInfo, transaction_id: int, meter_stop: int, timestamp: str,
                        reason: str | None, id_tag: str | None, readings: list[Reading]) -> tuple[int, bool]:
    """-> (our transaction id, ready to become a session). A stop for a transaction we never saw
    start is kept with status ``stop_without_start`` for review."""
    at = parse_time(timestamp)
    conn = db.connection()
    row = conn.execute(_TX_STOP_FIELDS, {"id": transaction_id}).first()
    if row is not None and row[0] == cp.id and row[1] == "1.6" and row[2] is not None:
        # the common case, this charger's own started transaction: plain statements, no ORM object
        if row[3] is not None:
            return transaction_id, False  # repeated stop: nothing changes
        conn.execute(_TX_STOP, {"tx": transaction_id, "stop_at": at, "meter_stop": Decimal(meter_stop),
                                "reason": (reason or "Local")[:40], "now": utcnow(), "new_status": "stopped"})
        add_meter_values(db, cp.tenant_id, transaction_id, list(readings) + [
            Reading(at, Decimal(meter_stop), context="Transaction.End")])
        return transaction_id, True
    tx = db.get(OcppTransaction, transaction_id) if row is not None else None
    if tx is None or tx.charge_point_id != cp.id or tx.ocpp_version != "1.6":
        ref = f"orphan:{transaction_id}"
        tx = _tx_by_ref(db, cp, ref)
        if tx is None:
            tx = _new_tx(db, cp, "1.6", ref, id_tag=(id_tag or "")[:64], status="stop_without_start",
                         review_reason="StopTransaction for a transaction this gateway never saw start")
    assert tx.id is not None
    if tx.stop is not None:
        return tx.id, False  # repeated stop: nothing changes
    tx.stop = at
    tx.meter_stop_wh = Decimal(meter_stop)
    tx.stop_reason = (reason or "Local")[:40]
    tx.updated_at = utcnow()
    if tx.start is not None:
        tx.status = "stopped"
    add_meter_values(db, cp.tenant_id, tx.id, list(readings) + [Reading(at, Decimal(meter_stop),
                                                                       context="Transaction.End")])
    return tx.id, tx.status == "stopped"


def meter_values_16(db: Session, cp: CpInfo, transaction_id: int | None, readings: list[Reading]) -> bool:
    """-> whether the transaction is this charger's own (the handler then takes a faster path for
    its further readings)."""
    if transaction_id is None:
        return False  # connector-level readings outside a transaction are not billed
    # the hot path of a busy gateway: one indexed lookup, no ORM object
    owner = db.execute(select(OcppTransaction.charge_point_id).where(OcppTransaction.id == transaction_id)).scalar()
    if owner == cp.id:
        add_meter_values(db, cp.tenant_id, transaction_id, readings)
        return True
    ref = f"orphan:{transaction_id}"
    tx = _tx_by_ref(db, cp, ref) or _new_tx(
        db, cp, "1.6", ref, status="stop_without_start",
        review_reason="MeterValues for a transaction this gateway never saw start")
    assert tx.id is not None
    add_meter_values(db, cp.tenant_id, tx.id, readings)
    return False


# --- OCPP 2.0.1 ---------------------------------------------------------------------------------

@dataclass
class EventOutcome:
    tx_id: int
    duplicate: bool
    ready: bool
    auth_status: str | None


def transaction_event_201(db: Session, cp: CpInfo, *, event_type: str, timestamp: str, trigger_reason: str,
                          seq_no: int, transaction_info: dict[str, Any], offline: bool | None,
                          evse: dict[str, Any] | None, id_token: dict[str, Any] | None,
                          readings: list[Reading]) -> EventOutcome:
    at = parse_time(timestamp)
    ref = str(transaction_info["transaction_id"])[:64]
    tx = _tx_by_ref(db, cp, ref)
    if tx is None:
        tx = _new_tx(db, cp, "2.0.1", ref)
    assert tx.id is not None
    fresh = _insert_ignore(db, OcppTransactionEvent.__table__, [{
        "transaction_id": tx.id, "seq_no": seq_no, "event_type": event_type[:10],
        "trigger_reason": trigger_reason[:40], "at": at, "offline": bool(offline)}],
        ["transaction_id", "seq_no", "event_type"])
    if not fresh:
        return EventOutcome(tx.id, True, False, tx.auth_status or None if id_token else None)
    if evse and not tx.evse_uid:
        tx.connector_id = int(evse.get("id") or 0)
        tx.evse_uid = cp.evse(tx.connector_id).uid
    auth: str | None = None
    if id_token and id_token.get("id_token"):
        tag = str(id_token["id_token"])[:64]
        if not tx.id_tag or tx.id_tag != tag:
            d: Decision = authorize(db, tenant_id=cp.tenant_id, charge_point_id=cp.id, location_id=cp.location_id,
                                    evse_uid=tx.evse_uid or cp.evse(None).uid, id_tag=tag, at=at, tz=cp.timezone,
                                    context="TransactionEvent")
            tx.auth_status = d.status
            if not tx.id_tag:
                tx.id_tag = tag
        auth = tx.auth_status
    tx.offline = tx.offline or bool(offline)
    tx.last_seq_no = max(tx.last_seq_no, seq_no)
    energy = [r for r in readings if r.energy_wh is not None]
    if event_type == "Started" and (tx.start is None or at < tx.start):
        tx.start = at
        if energy:
            tx.meter_start_wh = min(energy, key=lambda r: r.at).energy_wh
    if event_type == "Ended" and tx.stop is None:
        tx.stop = at
        tx.stop_reason = str(transaction_info.get("stopped_reason") or "Local")[:40]
        if energy:
            tx.meter_stop_wh = max(energy, key=lambda r: r.at).energy_wh
    add_meter_values(db, cp.tenant_id, tx.id, readings, cp.id)
    if tx.stop is not None and tx.status in ("open", "stop_without_start"):
        if tx.start is None:
            # an Ended without its Started: kept for review; a late Started completes it
            tx.status = "stop_without_start"
            tx.review_reason = "TransactionEvent Ended for a transaction whose Started never arrived"
        else:
            tx.status, tx.review_reason = "stopped", ""
    tx.updated_at = utcnow()
    return EventOutcome(tx.id, False, tx.status == "stopped", auth)


# --- charger state ------------------------------------------------------------------------------

_state = OcppChargePointState.__table__.c  # type: ignore[attr-defined]
_state_updates: dict[tuple[str, ...], Any] = {}
_STATE_CONNECTORS = select(_state.connectors).where(_state.charge_point_id == bindparam("cp"))


def _upsert_state(db: Session, cp: CpInfo, values: dict[str, Any]) -> None:
    # plain statements, no ORM object: a fleet's boot storm after an outage runs through here
    tbl = OcppChargePointState.__table__
    names = tuple(values)
    stmt = _state_updates.get(names)
    if stmt is None:  # one statement per set of columns (a handful), built once
        stmt = _state_updates[names] = update(tbl).where(_state.charge_point_id == bindparam("_cp")).values(
            {k: bindparam("v_" + k) for k in names})
    done = db.connection().execute(stmt, {"_cp": cp.id, **{"v_" + k: v for k, v in values.items()}}).rowcount
    if not done:
        _insert_ignore(db, tbl, [{"charge_point_id": cp.id, "tenant_id": cp.tenant_id, "ocpp_version": "",
                                  "vendor": "", "model": "", "serial_number": "", "firmware_version": "",
                                  "meter_serial": "", "rate_units": "", "connectors": {}, **values}],
                        ["charge_point_id"])


def record_boot(db: Session, cp: CpInfo, version: str, vendor: str, model: str, serial: str, firmware: str,
                meter_serial: str = "") -> None:
    now = utcnow()
    _upsert_state(db, cp, {"ocpp_version": version, "vendor": vendor[:100], "model": model[:100],
                           "serial_number": serial[:100], "firmware_version": firmware[:100],
                           "meter_serial": meter_serial[:64], "last_boot_at": now, "last_seen_at": now,
                           "rate_units": ""})  # asked again at its next charging profile (issue 18)


def record_status(db: Session, cp: CpInfo, connector: int, status: str, error_code: str, at: datetime) -> None:
    conns = dict(db.connection().execute(_STATE_CONNECTORS, {"cp": cp.id}).scalar() or {})
    conns[str(connector)] = {"status": status, "error_code": error_code, "at": at.isoformat()}
    _upsert_state(db, cp, {"connectors": conns, "last_seen_at": utcnow()})


def touch(db: Session, seen: dict[str, datetime]) -> None:
    """Heartbeats only move ``last_seen_at``; they are flushed in bulk (one executemany), not one
    write each."""
    if not seen:
        return
    tbl = OcppChargePointState.__table__
    stmt = update(tbl).where(tbl.c.charge_point_id == bindparam("cp")).values(last_seen_at=bindparam("at"))  # type: ignore[attr-defined]
    db.execute(stmt, [{"cp": cp_id, "at": at} for cp_id, at in seen.items()])


# --- sessions -----------------------------------------------------------------------------------

_mv = OcppMeterValue.__table__.c  # type: ignore[attr-defined]
_READINGS_OF = select(_mv.at, _mv.energy_wh, _mv.power_w).where(_mv.transaction_id == bindparam("tx")).order_by(_mv.at)


def _readings_of(db: Session, tx_id: int) -> list[tuple[datetime, Decimal | None, Decimal | None]]:
    return [tuple(r) for r in db.connection().execute(_READINGS_OF, {"tx": tx_id})]  # type: ignore[misc]


def external_id(tx: OcppTransaction) -> str:
    return f"ocpp:{tx.identity}:{tx.transaction_ref}"[:100]


_EVSE_POWER = select(Evse.power_type, Evse.max_power_kw).where(  # type: ignore[call-overload]
    Evse.tenant_id == bindparam("tenant"), Evse.evse_uid == bindparam("uid")).limit(1)


def facts_for(db: Session, tx: OcppTransaction, end: datetime | None = None,
              cache: dict[Any, Any] | None = None) -> dict[str, Any]:
    """The facts dict (``evbill rate`` JSON shape) of a transaction, up to ``end`` when it is still
    running. Energy register readings become ``meter_values``; rating decides charging vs parking."""
    assert tx.id is not None and tx.start is not None
    stop = end or tx.stop
    assert stop is not None
    mvs = []
    energies: list[Decimal] = []
    for at, e, p in _readings_of(db, tx.id):
        if at < tx.start or at > stop or e is None:
            continue
        mv: dict[str, Any] = {"at": at.isoformat(), "energy_wh": format(e, "f")}
        if p is not None:
            mv["power_w"] = format(p, "f")
        mvs.append(mv)
        energies.append(e)
    first = tx.meter_start_wh if tx.meter_start_wh is not None else (energies[0] if energies else Decimal(0))
    last = tx.meter_stop_wh if (end is None and tx.meter_stop_wh is not None) else (
        energies[-1] if energies else first)
    energy_kwh = max(Decimal(0), (last - first) / 1000)
    cache = {} if cache is None else cache
    lkey, ekey = ("loc", tx.location_id), ("evse", tx.tenant_id, tx.evse_uid)
    if lkey not in cache:
        cache[lkey] = db.get(Location, tx.location_id) if tx.location_id else None
    if ekey not in cache:
        cache[ekey] = db.connection().execute(_EVSE_POWER, {"tenant": tx.tenant_id, "uid": tx.evse_uid}).first() \
            if tx.evse_uid else None
    loc, evse = cache[lkey], cache[ekey]
    facts: dict[str, Any] = {
        "id": external_id(tx), "start": tx.start.isoformat(), "end": max(stop, tx.start).isoformat(),
        "energy_kwh": format(energy_kwh, "f"), "meter_values": mvs,
        "location_id": (loc.code or loc.id) if loc else "", "evse_id": tx.evse_uid,
        "token_uid": tx.id_tag, "power_type": evse.power_type if evse else "AC",
    }
    if evse is not None and evse.max_power_kw is not None:
        facts["max_power_kw"] = format(evse.max_power_kw, "f")
    if is_adhoc_tag(tx.id_tag):
        facts["token_type"] = "adhoc"  # paid by card on the ad-hoc page (issue 16)
    from api.ocpp.reservations import facts_of as reservation_facts

    facts.update(reservation_facts(db, tx))  # issue 18: the reserved time before a reserved start
    return facts


def finalize(db: Session, tx_id: int) -> str | None:
    """Turn a stopped transaction into a rated ``ChargingSession``; see ``finalize_many``."""
    return finalize_many(db, [tx_id]).get(tx_id)


def finalize_many(db: Session, tx_ids: list[int]) -> dict[int, str | None]:
    """Turn stopped transactions into rated ``ChargingSession``s through ``import_sessions``, so
    exactly as imported CDRs are (enriched, rated with the version in force at the start, stored,
    audited) and in batches per tenant, as an import is. Safe to run twice: the external id makes a
    second run 'unchanged'. -> session id per transaction (None: not stored, see its status)."""
    from api.session_io import Incoming, import_sessions

    txs = list(db.execute(select(OcppTransaction).where(
        OcppTransaction.id.in_(tx_ids))).scalars())  # type: ignore[union-attr]
    out: dict[int, str | None] = {}
    by_tenant: dict[str, list[tuple[OcppTransaction, dict[str, Any]]]] = {}
    cache: dict[Any, Any] = {}
    for tx in txs:
        assert tx.id is not None
        if tx.status != "stopped" or tx.start is None or tx.stop is None:
            out[tx.id] = tx.session_id
            continue
        facts = facts_for(db, tx, cache=cache)
        check = meter_check(db, tx, Decimal(facts["energy_kwh"]))
        if check is not None:
            facts["signed_meter"] = check
        by_tenant.setdefault(tx.tenant_id, []).append((tx, facts))
    for tenant_id, items in by_tenant.items():
        scope = Scope(db, Actor(tenant_id=tenant_id, user_id=GATEWAY_USER, role="operator"))
        result = import_sessions(scope, [Incoming(external_id=f["id"], source="ocpp", facts=f) for _, f in items])
        for (tx, facts), item in zip(items, result.items):
            assert tx.id is not None
            if item.session_id:
                status, reason = "completed", ""
            else:
                status, reason = "failed", f"{item.code}: {item.message}"[:300]
            db.connection().execute(_TX_FINALIZED, {"tx": tx.id, "new_status": status, "session": item.session_id,
                                                     "ext": facts["id"], "reason": reason, "now": utcnow()})
            if item.session_id and is_adhoc_tag(tx.id_tag):
                link_adhoc_session(db.connection(), tenant_id, id_tag=tx.id_tag, session_id=item.session_id)
            out[tx.id] = item.session_id
        db.commit()
    return out


_TX_FINALIZED = update(OcppTransaction.__table__).where(_tx.id == bindparam("tx")).values(  # type: ignore[arg-type]
    status=bindparam("new_status"), session_id=bindparam("session"), external_id=bindparam("ext"),
    review_reason=bindparam("reason"), updated_at=bindparam("now"))


def pending_finalization(db: Session) -> list[int]:
    """Stopped transactions whose session was not stored yet (the gateway stopped in between)."""
    return [int(i) for i in db.execute(select(OcppTransaction.id).where(OcppTransaction.status == "stopped"))
            .scalars()]


def cost_so_far(db: Session, tx_id: int, now: datetime | None = None,
                as_of: datetime | None = None) -> dict[str, Any] | None:
    """Rate the transaction as it stands (the one pricing path, nothing stored). A running session is
    rated up to its last reading: rating it up to 'now' would count the seconds since the last
    reading as parking. ``as_of`` rates it as it stood at that moment (a CostUpdated answers the
    event that triggered it, whatever arrived since)."""
    from api.rating import VersionIndex, compiled

    # _enrich is session_io's lookup of location and token -> contract -> customer for a batch; the
    # live price must see the same facts the stored rating will, so it is reused rather than copied
    from api.session_io import Incoming, _enrich, rate_facts

    tx = db.get(OcppTransaction, tx_id)
    if tx is None or tx.start is None:
        return None
    if as_of is not None and (tx.stop is None or as_of < tx.stop):
        end = max(as_of, tx.start)
        facts = facts_for(db, tx, end=end)
    elif tx.stop is not None:
        end = tx.stop
        facts = facts_for(db, tx)
    else:
        last = db.execute(select(OcppMeterValue.at).where(OcppMeterValue.transaction_id == tx_id)
                          .order_by(OcppMeterValue.at.desc()).limit(1)).scalar()  # type: ignore[attr-defined]
        end = max(last or now or utcnow(), tx.start)
        facts = facts_for(db, tx, end=end)
    scope = Scope(db, Actor(tenant_id=tx.tenant_id, user_id=GATEWAY_USER, role="operator"))
    links = _enrich(scope, [Incoming(external_id=facts["id"], source="ocpp", facts=facts)])
    version = VersionIndex.load(scope).in_force(tx.start, links.get(facts["id"], {}).get("ruleset_id"))
    out: dict[str, Any] = {"transaction_id": tx.id, "transaction_ref": tx.transaction_ref, "as_of": end.isoformat(),
                           "running": tx.stop is None or end < tx.stop, "energy_kwh": facts["energy_kwh"]}
    if version is None:
        return {**out, "status": "no_ruleset_in_force"}
    rs = compiled(version.sha256, version.source)
    ok, result, code, message = rate_facts(scope, rs, facts, None)
    if not ok or result is None:
        return {**out, "status": code or "rating_failed", "message": message}
    totals = result.get("totals", {})
    return {**out, "status": "rated", "ruleset_version_id": version.id, "currency": result.get("currency"),
            "net_total": totals.get("net"), "tax_total": totals.get("tax"), "gross_total": totals.get("gross"),
            "lines": result.get("lines", [])}


def warm_rulesets(db: Session, limit: int = 20) -> int:
    """Compile the most recent published ruleset versions into the shared cache, so the first
    session to finish does not pay for the compiler on the gateway's loop."""
    from api.rating import compiled
    from store.models import RulesetVersion

    n = 0
    for sha, source in db.execute(select(RulesetVersion.sha256, RulesetVersion.source)
                                  .order_by(RulesetVersion.published_at.desc()).limit(limit)):  # type: ignore[attr-defined]
        try:
            compiled(sha, source)
            n += 1
        except Exception:  # noqa: BLE001  (rated later, where the failure is recorded per session)
            log.warning("ruleset %s does not compile", sha[:12])
    return n
