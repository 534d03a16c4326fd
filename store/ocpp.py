"""Tables of the OCPP gateway (issue 4): transactions as chargers report them, their meter readings
and signed meter data, per-charger connection state, access rules and the authorization log.

A charger's transaction becomes a ``ChargingSession`` only when it is complete (start and stop
known); until then it lives here. Natural keys make every write idempotent, because chargers
repeat messages (lost confirmations, offline queues): a StartTransaction is keyed by what it says
(connector, id tag, timestamp, meter start), meter readings by (transaction, time), 2.0.1
TransactionEvents by (transaction, seqNo, eventType), signed data by the hash of its raw text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, UniqueConstraint, select
from sqlmodel import Field, SQLModel

from store.types import ExactDecimal, UTCDateTime, utcnow

__all__ = [
    "TX_STATUSES",
    "AccessRule",
    "AuthorizationDecision",
    "MeterKey",
    "OcppChargePointState",
    "OcppMeterValue",
    "OcppSignedData",
    "OcppTransaction",
    "OcppTransactionEvent",
    "meter_keys_listing",
    "signed_data_of",
]

# open: started, not stopped; completed: stored as a ChargingSession; stop_without_start and
# incomplete: kept for an operator's review instead of being dropped or guessed at
TX_STATUSES = ("open", "stopped", "completed", "stop_without_start", "failed")


class OcppTransaction(SQLModel, table=True):
    __tablename__ = "ocpp_transaction"
    __table_args__ = (UniqueConstraint("charge_point_id", "transaction_ref"),
                      UniqueConstraint("charge_point_id", "start_key"),
                      Index("ix_ocpp_tx_tenant_status", "tenant_id", "status"))
    # OCPP 1.6 transaction ids are integers we hand out: this primary key is that id
    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    charge_point_id: str = Field(foreign_key="charge_point.id", index=True, max_length=40)
    identity: str = Field(max_length=64)
    ocpp_version: str = Field(max_length=8)
    # 1.6: str(id); 2.0.1: the charger's transactionId; orphans of 1.6 get "orphan:<id>"
    transaction_ref: str = Field(max_length=64)
    # 1.6 StartTransaction dedupe key; None for 2.0.1 (the charger's transactionId is the key)
    start_key: str | None = Field(default=None, max_length=200)
    location_id: str | None = Field(default=None, foreign_key="location.id", index=True, max_length=40)
    evse_uid: str = Field(default="", max_length=64)
    connector_id: int = Field(default=0)
    id_tag: str = Field(default="", max_length=64)
    auth_status: str = Field(default="", max_length=20)
    start: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    stop: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    meter_start_wh: Decimal | None = Field(default=None, sa_type=ExactDecimal, nullable=True)
    meter_stop_wh: Decimal | None = Field(default=None, sa_type=ExactDecimal, nullable=True)
    stop_reason: str = Field(default="", max_length=40)
    offline: bool = Field(default=False)
    last_seq_no: int = Field(default=-1)
    status: str = Field(default="open", max_length=24)
    review_reason: str = Field(default="", max_length=300)
    session_id: str | None = Field(default=None, foreign_key="charging_session.id", max_length=40)
    external_id: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class OcppMeterValue(SQLModel, table=True):
    """One reading of the energy register (and power, when sent) of a transaction."""

    __tablename__ = "ocpp_meter_value"
    __table_args__ = (UniqueConstraint("transaction_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    transaction_id: int = Field(foreign_key="ocpp_transaction.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    energy_wh: Decimal | None = Field(default=None, sa_type=ExactDecimal, nullable=True)
    power_w: Decimal | None = Field(default=None, sa_type=ExactDecimal, nullable=True)
    context: str = Field(default="", max_length=30)


class OcppSignedData(SQLModel, table=True):
    """Signed meter data (OCMF, the 1.6 ``SignedData`` format, 2.0.1 ``signedMeterValue``) exactly
    as the charger sent it: eichrecht billing needs the untouched bytes, not our reading of them."""

    __tablename__ = "ocpp_signed_data"
    __table_args__ = (UniqueConstraint("transaction_id", "sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=40)
    transaction_id: int = Field(foreign_key="ocpp_transaction.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    format: str = Field(default="", max_length=40)  # OCMF | SignedData | EDL | ...
    context: str = Field(default="", max_length=30)
    raw: str  # the signed data string itself (OCMF text, signedMeterData), byte for byte
    signing_method: str = Field(default="", max_length=60)
    public_key: str = Field(default="", max_length=2500)
    sha256: str = Field(max_length=64)


class MeterKey(SQLModel, table=True):
    """A legal-for-trade meter's public key (Eichrecht): what its OCMF signatures are checked with.

    Registered by an operator (``source`` ``api``, from the charger's label or the manufacturer) or
    taken from what a charger sends (``ocpp16_datatransfer``: the OCA ``setMeterConfiguration``
    DataTransfer; ``ocpp16_get_configuration``: ``MeterPublicKey[<connector>]`` read after a
    BootNotification naming a meter; ``ocpp201_signed_meter_value``: ``signedMeterValue.publicKey``), with the time it
    was first seen. A revoked key is kept: sessions signed with it are held, never silently billed.
    ``public_key`` is upper-case hex DER SubjectPublicKeyInfo, as the Transparenzsoftware shows it.
    """

    __tablename__ = "meter_key"
    __table_args__ = (UniqueConstraint("tenant_id", "meter_serial", "public_key"),)
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    meter_serial: str = Field(max_length=64)
    charge_point_id: str | None = Field(default=None, foreign_key="charge_point.id", index=True, max_length=40)
    evse_uid: str = Field(default="", max_length=64)
    public_key: str = Field(max_length=2500)
    curve: str = Field(default="", max_length=20)
    source: str = Field(default="api", max_length=40)
    status: str = Field(default="active", max_length=10)  # active | revoked
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_reason: str = Field(default="", max_length=300)
    description: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class OcppTransactionEvent(SQLModel, table=True):
    """2.0.1 TransactionEvents seen, so a repeated one changes nothing and gaps can be spotted."""

    __tablename__ = "ocpp_transaction_event"
    __table_args__ = (UniqueConstraint("transaction_id", "seq_no", "event_type"),)
    id: int | None = Field(default=None, primary_key=True)
    transaction_id: int = Field(foreign_key="ocpp_transaction.id", index=True)
    seq_no: int
    event_type: str = Field(max_length=10)
    trigger_reason: str = Field(default="", max_length=40)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    offline: bool = Field(default=False)


class OcppChargePointState(SQLModel, table=True):
    """What the gateway knows about a charger besides its registration (``ChargePoint``)."""

    __tablename__ = "ocpp_charge_point_state"
    charge_point_id: str = Field(foreign_key="charge_point.id", primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    ocpp_version: str = Field(default="", max_length=8)
    vendor: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=100)
    serial_number: str = Field(default="", max_length=100)
    firmware_version: str = Field(default="", max_length=100)
    # the legal-for-trade meter's serial (1.6J BootNotification ``meterSerialNumber``), Eichrecht
    meter_serial: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    # the charging rate units the charger said it accepts in charging profiles (issue 18's load
    # limits): "A", "W", "A,W"; "?" asked, no usable answer (profiles go in W); "" not asked since
    # its last boot (1.6J ``ChargingScheduleAllowedChargingRateUnit``, 2.0.1 ``SmartChargingCtrlr.RateUnit``)
    rate_units: str = Field(default="", max_length=8, sa_column_kwargs={"server_default": ""})
    last_boot_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # connector/evse id (as string) -> {"status": ..., "error_code": ..., "at": ...}
    connectors: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AccessRule(SQLModel, table=True):
    """Who may charge where. Rules of a location (or one of its EVSEs) are tried by ``priority``;
    the first whose subject and time window match decides. A location without rules is public:
    active contracts and tokens of accepted roaming partners may charge.

    ``subject``: ``anyone`` (any known, unblocked token), ``contract`` (a token with an active
    contract), ``partner`` (tokens issued by partner ``value``), ``roaming`` (tokens of any eMSP
    partner), ``customer_group`` (customers in group ``value``), ``customer`` (customer ``value``).

    ``effect`` ``limit`` (issue 18) admits no one by itself: it caps the subject's running sessions
    at ``max_sessions`` within its window ("partner X at most 4 connectors 06:00-18:00"); a
    location with limit rules only stays public. ``session_priority`` ranks the sessions a rule
    matches for load management.
    """

    __tablename__ = "ocpp_access_rule"
    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    location_id: str = Field(foreign_key="location.id", index=True, max_length=40)
    evse_uid: str = Field(default="", max_length=64)  # "" = every EVSE of the location
    priority: int = Field(default=100)
    effect: str = Field(default="allow", max_length=10)  # allow | deny | limit
    subject: str = Field(max_length=20)
    value: str = Field(default="", max_length=100)
    # local time window of the location, "HH:MM"; from > to wraps midnight; "" = all day
    time_from: str = Field(default="", max_length=5)
    time_to: str = Field(default="", max_length=5)
    weekdays: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # 1=Mon..7
    # ``limit`` rules (issue 18): at most this many running sessions of the subject at the location
    # (or the rule's EVSE) while the window holds; an Authorize beyond it is refused
    max_sessions: int | None = Field(default=None, nullable=True)
    # the load-management class of sessions the rule matches (lower is served first; None: the
    # default, see ``api.ocpp.priority``)
    session_priority: int | None = Field(default=None, nullable=True)
    description: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class AuthorizationDecision(SQLModel, table=True):
    """Every yes or no the gateway gave a token, with the reason, for traceability per location."""

    __tablename__ = "ocpp_authorization"
    __table_args__ = (Index("ix_ocpp_auth_tenant_location_at", "tenant_id", "location_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    charge_point_id: str = Field(max_length=40)
    location_id: str | None = Field(default=None, max_length=40)
    evse_uid: str = Field(default="", max_length=64)
    id_tag: str = Field(max_length=64)
    token_id: str | None = Field(default=None, max_length=40)
    contract_id: str | None = Field(default=None, max_length=40)
    context: str = Field(max_length=30)  # Authorize | StartTransaction | TransactionEvent | RemoteStart
    status: str = Field(max_length=20)  # OCPP status: Accepted | Blocked | Expired | Invalid
    reason: str = Field(max_length=60)
    rule_id: str | None = Field(default=None, max_length=40)


def signed_data_of(conn: Any, session_ids: Sequence[str]) -> dict[str, list[str]]:
    """The signed meter records (Eichrecht) of sessions that came from chargers, as sent, in order
    (the session statement prints them; the console shows them)."""
    tx, sd = OcppTransaction.__table__, OcppSignedData.__table__  # type: ignore[attr-defined]
    q = (select(tx.c.session_id, sd.c.raw).select_from(sd.join(tx, tx.c.id == sd.c.transaction_id))
         .where(tx.c.session_id.in_(list(session_ids))).order_by(sd.c.at, sd.c.id))
    out: dict[str, list[str]] = {}
    for sid, raw in conn.execute(q).all():
        out.setdefault(sid, []).append(raw)
    return out


def meter_keys_listing(conn: Any, tenant_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """The tenant's meter keys for the console (Eichrecht): active ones first, then revoked, by meter
    serial; each with the identity and location of the charge point it came from, if any."""
    from store.models import ChargePoint, Location

    mk, cp, loc = MeterKey.__table__, ChargePoint.__table__, Location.__table__  # type: ignore[attr-defined]
    q = (select(mk, cp.c.identity.label("cp_identity"), loc.c.name.label("location_name"))
         .select_from(mk.outerjoin(cp, cp.c.id == mk.c.charge_point_id).outerjoin(loc, loc.c.id == cp.c.location_id))
         .where(mk.c.tenant_id == tenant_id)
         .order_by(mk.c.status, mk.c.meter_serial, mk.c.first_seen_at).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]
