"""Load limits (issue 18): the charging profiles the gateway sent to share a location's capacity
(``location.capacity_kw``) among its running sessions, and the chargers' answers.

One ``charging_limit`` row per SetChargingProfile sent: which transaction, which limit, at which
priority, out of which capacity, why (a session started or stopped), and what the charger said
(``Accepted``, ``Rejected``, ``NotSupported``; ``not_connected``/``failed`` when no answer came).
A location's current allocation is the newest row of each of its running transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from store.models import ChargePoint, Evse, Location
from store.ocpp import OcppChargePointState, OcppTransaction
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "ChargingLimit",
    "RunningSession",
    "SiteCharger",
    "allocation_of",
    "capacity_w",
    "default_capacity_w",
    "limit_history",
    "record_answers",
    "record_limits",
    "running_sessions",
    "set_rate_units",
    "site_chargers",
]


class ChargingLimit(SQLModel, table=True):
    __tablename__ = "charging_limit"
    __table_args__ = (Index("ix_charging_limit_location_id", "location_id", "id"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    location_id: str = Field(foreign_key="location.id", max_length=40)
    # None: a TxDefaultProfile (for sessions before their own profile arrives), no transaction
    transaction_id: int | None = Field(default=None, foreign_key="ocpp_transaction.id", index=True)
    charge_point_id: str = Field(foreign_key="charge_point.id", max_length=40)
    evse_uid: str = Field(default="", max_length=64)
    connector_id: int = Field(default=0)
    profile_id: int
    priority: int | None = Field(default=None)  # None: a TxDefaultProfile
    limit_w: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    purpose: str = Field(default="TxProfile", max_length=20, sa_column_kwargs={"server_default": "TxProfile"})
    # what went on the wire: W (limit_w), or A (limit_a, converted from limit_w with the phases and
    # voltage stored alongside: the EVSE's data has none, so 3 x 230 V for AC and 1 x 1000 V for DC,
    # ``runtime.load.electrical``) for a charger that accepts only amperes
    rate_unit: str = Field(default="W", max_length=1, sa_column_kwargs={"server_default": "W"})
    limit_a: Decimal | None = Field(default=None, sa_type=ExactDecimal, nullable=True)
    phases: int | None = Field(default=None)
    voltage_v: int | None = Field(default=None)
    capacity_w: Decimal | None = Field(default=None, sa_type=ExactDecimal, nullable=True)  # None: limits lifted
    reason: str = Field(default="", max_length=20)  # session_started | session_stopped | capacity_changed | charger_booted
    sent_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    status: str = Field(default="sent", max_length=20)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    detail: str = Field(default="", max_length=300)


def capacity_w(db: Session, location_id: str) -> Decimal | None:
    kw = db.execute(select(Location.capacity_kw).where(Location.id == location_id)).scalar()
    return None if kw is None else Decimal(kw) * 1000


@dataclass(frozen=True, slots=True)
class RunningSession:
    tx_id: int
    tenant_id: str
    charge_point_id: str
    identity: str
    ocpp_version: str
    transaction_ref: str
    connector_id: int
    evse_uid: str
    id_tag: str
    start: datetime | None
    max_power_kw: Decimal | None
    power_type: str
    rate_units: str = ""  # what the charger said it accepts (``OcppChargePointState.rate_units``)


def running_sessions(db: Session, location_id: str, tx_ids: list[int] | None = None) -> list[RunningSession]:
    """The location's open transactions (started, not stopped), oldest first; only ``tx_ids``
    when given (the ones that just started)."""
    tx = OcppTransaction
    stmt = (select(tx.id, tx.tenant_id, tx.charge_point_id, tx.identity, tx.ocpp_version, tx.transaction_ref,
                   tx.connector_id, tx.evse_uid, tx.id_tag, tx.start, Evse.max_power_kw, Evse.power_type,
                   OcppChargePointState.rate_units)
            .outerjoin(Evse, (Evse.tenant_id == tx.tenant_id) & (Evse.evse_uid == tx.evse_uid))
            .outerjoin(OcppChargePointState, OcppChargePointState.charge_point_id == tx.charge_point_id)
            .where(tx.location_id == location_id, tx.status == "open", tx.stop.is_(None),  # type: ignore[union-attr]
                   tx.start.is_not(None)))  # type: ignore[union-attr]
    if tx_ids is not None:
        stmt = stmt.where(tx.id.in_(tx_ids))  # type: ignore[union-attr]
    rows = db.execute(stmt.order_by(tx.start, tx.id)).all()  # type: ignore[arg-type]
    return [RunningSession(int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6] or 0), r[7], r[8], r[9], r[10],
                           r[11] or "AC", r[12] or "") for r in rows]


@dataclass(frozen=True, slots=True)
class SiteCharger:
    """A charger at a location as its TxDefaultProfile needs it."""

    charge_point_id: str
    tenant_id: str
    identity: str
    ocpp_version: str
    rate_units: str
    max_w: Decimal  # its largest EVSE's maximum
    power_type: str  # DC when any of its EVSEs is


def site_chargers(db: Session, location_id: str, cp_ids: list[str] | None = None) -> tuple[int, list[SiteCharger]]:
    """-> (the number of EVSEs at the location with a charger, its chargers -- only ``cp_ids``
    when given)."""
    evses = int(db.execute(select(func.count()).select_from(Evse).where(
        Evse.location_id == location_id, Evse.charge_point_id.is_not(None))).scalar() or 0)  # type: ignore[union-attr]
    stmt = (select(Evse.charge_point_id, ChargePoint.tenant_id, ChargePoint.identity, Evse.max_power_kw,
                   Evse.power_type, OcppChargePointState.ocpp_version, OcppChargePointState.rate_units)
            .join(ChargePoint, ChargePoint.id == Evse.charge_point_id)
            .outerjoin(OcppChargePointState, OcppChargePointState.charge_point_id == ChargePoint.id)
            .where(Evse.location_id == location_id))
    rows: list[Any] = []
    if cp_ids is None:
        rows = list(db.execute(stmt).all())
    for k in range(0, len(cp_ids or ()), 500):
        rows += db.execute(stmt.where(Evse.charge_point_id.in_((cp_ids or [])[k:k + 500]))).all()  # type: ignore[union-attr]
    by_cp: dict[str, SiteCharger] = {}
    for cp_id, tenant, identity, max_kw, power_type, version, units in rows:
        old = by_cp.get(cp_id)
        max_w = Decimal(max_kw or 0) * 1000
        dc = power_type == "DC" or (old is not None and old.power_type == "DC")
        by_cp[cp_id] = SiteCharger(cp_id, tenant, identity, version or "", units or "",
                                   max(max_w, old.max_w) if old is not None else max_w, "DC" if dc else "AC")
    return evses, sorted(by_cp.values(), key=lambda c: c.identity)


def default_capacity_w(db: Session, location_id: str) -> tuple[bool, Decimal | None]:
    """-> (whether a TxDefaultProfile was sent at the location, the capacity the newest was
    computed from)."""
    row = db.execute(select(ChargingLimit.capacity_w).where(
        ChargingLimit.location_id == location_id, ChargingLimit.purpose == "TxDefaultProfile")
        .order_by(ChargingLimit.id.desc()).limit(1)).first()  # type: ignore[attr-defined]
    return (False, None) if row is None else (True, row[0])


def set_rate_units(db: Session, units: list[tuple[str, str]]) -> None:
    """Store the rate units chargers said they accept ((charge point id, units) each, in one
    statement; ``OcppChargePointState.rate_units``)."""
    if not units:
        return
    tbl = OcppChargePointState.__table__
    stmt = update(tbl).where(tbl.c.charge_point_id == bindparam("cp")).values(rate_units=bindparam("u"))  # type: ignore[attr-defined]
    db.execute(stmt, [{"cp": cp, "u": u[:8]} for cp, u in units])


def record_limits(db: Session, rows: list[dict[str, Any]]) -> list[str]:
    """Store profiles about to be sent (status ``sent``); -> their ids, in order."""
    if not rows:
        return []
    now = utcnow()
    full = [{"id": new_id("lim"), "sent_at": now, "status": "sent", "answered_at": None, "detail": "", **r}
            for r in rows]
    db.execute(insert(ChargingLimit), full)
    return [r["id"] for r in full]


def record_answers(db: Session, answers: list[tuple[str, str, str, datetime]]) -> None:
    """(limit id, status, detail, answered at) of each charger's answer, in one statement."""
    if not answers:
        return
    tbl = ChargingLimit.__table__
    stmt = update(tbl).where(tbl.c.id == bindparam("lid")).values(  # type: ignore[attr-defined]
        status=bindparam("st"), detail=bindparam("dt"), answered_at=bindparam("at"))
    db.execute(stmt, [{"lid": i, "st": s[:20], "dt": d[:300], "at": at} for i, s, d, at in answers])


def allocation_of(db: Session, tenant_id: str, location_id: str) -> list[tuple[RunningSession, ChargingLimit | None]]:
    """Each running transaction at the location with the newest profile sent for it (None: none
    was needed, it charges at its EVSE's maximum)."""
    running = [r for r in running_sessions(db, location_id) if r.tenant_id == tenant_id]
    if not running:
        return []
    ids = [r.tx_id for r in running]
    newest = (select(ChargingLimit.transaction_id, func.max(ChargingLimit.sent_at).label("at"))
              .where(ChargingLimit.transaction_id.in_(ids))  # type: ignore[attr-defined]
              .group_by(ChargingLimit.transaction_id).subquery())
    rows = db.execute(select(ChargingLimit).join(newest, (newest.c.transaction_id == ChargingLimit.transaction_id)
                                                 & (newest.c.at == ChargingLimit.sent_at))).scalars()
    latest: dict[int, ChargingLimit] = {}
    for row in rows:
        old = latest.get(row.transaction_id)
        if old is None or row.id > old.id:
            latest[row.transaction_id] = row
    return [(r, latest.get(r.tx_id)) for r in running]


def limit_history(db: Session, tenant_id: str, location_id: str, limit: int, before: str | None = None,
                  transaction_id: int | None = None) -> list[ChargingLimit]:
    """Profiles sent at the location, newest first (``before``: an id, for the next page)."""
    stmt = select(ChargingLimit).where(ChargingLimit.tenant_id == tenant_id, ChargingLimit.location_id == location_id)
    if transaction_id is not None:
        stmt = stmt.where(ChargingLimit.transaction_id == transaction_id)
    if before:
        stmt = stmt.where(ChargingLimit.id < before)  # type: ignore[arg-type]
    return list(db.execute(stmt.order_by(ChargingLimit.id.desc()).limit(limit)).scalars())  # type: ignore[attr-defined]
