"""OCPP in the operator API: charger passwords, connection state, access rules, the authorization
log per location, gateway transactions (with signed meter data and the live cost so far) and remote
commands to connected chargers (RemoteStart/RequestStartTransaction, RemoteStop/
RequestStopTransaction, ChangeAvailability)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

import anyio
from litestar import Request, Router
from pydantic import Field, field_validator
from sqlalchemy import select

from api.crud import (
    CursorParam,
    LimitParam,
    ReadModel,
    Ref,
    WriteModel,
    crud_router,
    open_scope,
    page_of,
    route,
)
from api.schemas import DecimalOut
from store.errors import Conflict, InvalidInput, NotFound
from store.models import ChargePoint, Location
from store.ocpp import (
    AccessRule,
    AuthorizationDecision,
    MeterKey,
    OcppChargePointState,
    OcppSignedData,
    OcppTransaction,
)
from store.repo import Scope

__all__ = ["router"]


# --- charger credentials and state --------------------------------------------------------------

class PasswordIn(WriteModel):
    password: str | None = Field(None, min_length=16, max_length=40,
                                    description="16-40 characters (OCPP); omit to have one generated")


class PasswordOut(ReadModel):
    charge_point_id: str
    identity: str
    password: str = Field(description="shown once; only its hash is stored")


@route("PUT", "/charge-points/{charge_point_id:str}/ocpp-password", operation_id="set_charge_point_password",
       roles="write", summary="Set (or generate) the charger's OCPP Basic-auth password")
def set_password(request: Request[Any, Any, Any], charge_point_id: str, data: PasswordIn) -> PasswordOut:
    from api.ocpp.server import hash_password

    password = data.password or secrets.token_urlsafe(24)[:32]
    with open_scope(request) as scope:
        repo = scope.repo(ChargePoint, "charge_point", "cp")
        cp = repo.get(charge_point_id)
        cp.password_sha256 = hash_password(password)
        scope.flush()
        scope.audit("charge_point.set_password", "charge_point", cp.id, None, {"password": "(changed)"})
        scope.commit()
        return PasswordOut(charge_point_id=cp.id, identity=cp.identity, password=password)


class ChargePointOcppRead(ReadModel):
    charge_point_id: str
    identity: str
    connected: bool
    ocpp_version: str
    vendor: str = ""
    model: str = ""
    firmware_version: str = ""
    meter_serial: str = Field("", description="the meter's serial as the 1.6J BootNotification named it (Eichrecht)")
    rate_units: str = Field("", description="the charging rate units the charger said its charging profiles take "
                            "(A, W, A,W; ? no usable answer; empty: not asked since its last boot)")
    last_boot_at: datetime | None = None
    last_seen_at: datetime | None = None
    connectors: dict[str, Any] = Field(default_factory=dict)


@route("GET", "/charge-points/{charge_point_id:str}/ocpp", operation_id="get_charge_point_ocpp", roles="read",
       summary="What the gateway knows of a charger: connection, boot data, connector states")
def get_cp_state(request: Request[Any, Any, Any], charge_point_id: str) -> ChargePointOcppRead:
    from api.ocpp.server import current_gateway

    with open_scope(request) as scope:
        cp = scope.repo(ChargePoint, "charge_point", "cp").get(charge_point_id)
        st = scope.db.get(OcppChargePointState, cp.id)
        gw = current_gateway()
        version = gw.version_of(cp.identity) if gw else None
        return ChargePointOcppRead(
            charge_point_id=cp.id, identity=cp.identity, connected=version is not None,
            ocpp_version=version or (st.ocpp_version if st else ""), vendor=st.vendor if st else "",
            model=st.model if st else "", firmware_version=st.firmware_version if st else "",
            meter_serial=st.meter_serial if st else "", rate_units=st.rate_units if st else "",
            last_boot_at=st.last_boot_at if st else None, last_seen_at=st.last_seen_at if st else None,
            connectors=dict(st.connectors or {}) if st else {})


# --- access rules -------------------------------------------------------------------------------

_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^$"


class AccessRuleCreate(WriteModel):
    location_id: str = Field(min_length=1, max_length=40)
    evse_uid: str = Field("", max_length=64, description="empty: every EVSE of the location")
    priority: int = Field(100, ge=0, le=100000, description="the order rules are tried in (lower first)")
    effect: Literal["allow", "deny", "limit"] = Field(
        "allow", description="limit: admits no one, caps the subject's running sessions at max_sessions "
                             "within the window (a location with limit rules only stays public)")
    subject: Literal["anyone", "contract", "partner", "roaming", "customer_group", "customer"]
    value: str = Field("", max_length=100, description="partner id / group name / customer id")
    time_from: str = Field("", pattern=_HHMM, description="local time HH:MM; empty = all day")
    time_to: str = Field("", pattern=_HHMM)
    weekdays: list[int] = Field(default_factory=list, max_length=7, description="1 = Monday .. 7 = Sunday")
    max_sessions: int | None = Field(None, ge=1, le=10000, description="limit rules: at most this many running "
                                                                      "sessions of the subject here")
    session_priority: int | None = Field(None, ge=0, le=1000, description="load management: the priority of the "
                                         "sessions the rule matches, lower first (default: own fleet 0, partners "
                                         "10, ad hoc 20)")
    description: str = Field("", max_length=300)

    @field_validator("weekdays")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if any(d < 1 or d > 7 for d in v):
            raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
        return sorted(set(v))


class AccessRuleUpdate(WriteModel):
    priority: int | None = Field(None, ge=0, le=100000)
    effect: Literal["allow", "deny", "limit"] | None = None
    value: str | None = Field(None, max_length=100)
    time_from: str | None = Field(None, pattern=_HHMM)
    time_to: str | None = Field(None, pattern=_HHMM)
    weekdays: list[int] | None = Field(None, max_length=7)
    max_sessions: int | None = Field(None, ge=1, le=10000)
    session_priority: int | None = Field(None, ge=0, le=1000)
    description: str | None = Field(None, max_length=300)

    @field_validator("weekdays")
    @classmethod
    def _days(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(d < 1 or d > 7 for d in v):
            raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
        return None if v is None else sorted(set(v))


class AccessRuleRead(ReadModel):
    id: str
    location_id: str
    evse_uid: str
    priority: int
    effect: str
    subject: str
    value: str
    time_from: str
    time_to: str
    weekdays: list[int]
    max_sessions: int | None = None
    session_priority: int | None = None
    description: str
    created_at: datetime


def _check_rule(_scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    from api.ocpp.access import clear_rules_cache

    # a gateway in this process applies the change at once (elsewhere: within RULES_TTL_S)
    clear_rules_cache()
    if bool(values.get("time_from")) != bool(values.get("time_to")):
        raise InvalidInput("incomplete_time_window", "give both time_from and time_to, or neither")
    if values.get("subject") in ("partner", "customer_group", "customer") and not values.get("value"):
        raise InvalidInput("rule_value_missing", f"a {values.get('subject')} rule names its {values.get('subject')}")
    if values.get("time_from") and values.get("time_from") == values.get("time_to"):
        raise InvalidInput("empty_time_window", f"the window {values['time_from']}..{values['time_to']} holds no "
                                                "minute: leave both empty for all day")
    limit = values.get("effect") == "limit"
    if limit and values.get("max_sessions") is None:
        raise InvalidInput("quota_missing", "a limit rule names its quota: max_sessions (1 or more)",
                           errors=[{"key": "max_sessions", "message": "required for effect limit", "source": "body",
                                    "code": "quota_missing"}])
    if not limit and values.get("max_sessions") is not None:
        raise InvalidInput("quota_needs_limit_rule", "max_sessions belongs to a limit rule (effect limit)",
                           errors=[{"key": "max_sessions", "message": "only for effect limit", "source": "body",
                                    "code": "quota_needs_limit_rule"}])
    if values.get("effect") == "deny" and values.get("session_priority") is not None:
        raise InvalidInput("priority_on_deny_rule", "a deny rule admits no session to give a priority to")


# --- meter keys (Eichrecht) ---------------------------------------------------------------------

class MeterKeyCreate(WriteModel):
    meter_serial: str = Field(min_length=1, max_length=64, description="the meter's serial number (OCMF 'MS')")
    public_key: str = Field(min_length=16, max_length=2500,
                            description="DER SubjectPublicKeyInfo, hex or base64 (as on the charger's label)")
    charge_point_id: str | None = Field(None, max_length=40)
    evse_uid: str = Field("", max_length=64)
    description: str = Field("", max_length=300)


class MeterKeyUpdate(WriteModel):
    description: str | None = Field(None, max_length=300)
    evse_uid: str | None = Field(None, max_length=64)


class MeterKeyRead(ReadModel):
    id: str
    meter_serial: str
    charge_point_id: str | None
    evse_uid: str
    public_key: str
    curve: str
    source: str
    status: str
    first_seen_at: datetime
    revoked_at: datetime | None
    revoked_reason: str
    description: str
    created_at: datetime


class RevokeIn(WriteModel):
    reason: str = Field("", max_length=300)


def _check_key(scope: Scope, values: dict[str, Any], existing: Any) -> None:
    from runtime.ocmf import OcmfError, key_curve, load_public_key, normalize_public_key

    if existing is not None:
        return  # the key itself never changes: revoke it and register another
    try:
        values["public_key"] = normalize_public_key(values["public_key"])
        values["curve"] = key_curve(load_public_key(values["public_key"]))
    except OcmfError as exc:
        raise InvalidInput("invalid_public_key", str(exc), field="public_key") from None
    values.update(source="api", status="active")
    dup = scope.db.execute(select(MeterKey.id).where(
        MeterKey.tenant_id == scope.tenant_id, MeterKey.meter_serial == values["meter_serial"],
        MeterKey.public_key == values["public_key"])).scalar()
    if dup is not None:
        raise Conflict("meter_key_exists", f"this key of meter {values['meter_serial']!r} is registered as {dup}")


@route("POST", "/meter-keys/{meter_key_id:str}/revoke", operation_id="revoke_meter_key", roles="write",
       status_code=200, summary="Revoke a meter's public key: sessions it signed are held for review")
def revoke_meter_key(request: Request[Any, Any, Any], meter_key_id: str, data: RevokeIn) -> MeterKeyRead:
    from store.types import utcnow

    with open_scope(request) as scope:
        key = scope.repo(MeterKey, "meter_key", "mk").get(meter_key_id)
        if key.status != "revoked":
            before = {"status": key.status}
            key.status, key.revoked_at, key.revoked_reason = "revoked", utcnow(), data.reason
            scope.flush()
            scope.audit("meter_key.revoke", "meter_key", key.id, before,
                        {"status": "revoked", "reason": data.reason})
            scope.commit()
        return MeterKeyRead.model_validate(key, from_attributes=True)


# --- authorization log --------------------------------------------------------------------------

class AuthorizationRead(ReadModel):
    id: int
    at: datetime
    charge_point_id: str
    location_id: str | None
    evse_uid: str
    id_tag: str
    token_id: str | None
    contract_id: str | None
    context: str
    status: str
    reason: str
    rule_id: str | None


AuthorizationPage = page_of(AuthorizationRead)


@route("GET", "/locations/{location_id:str}/authorizations", operation_id="list_location_authorizations",
       roles="read", summary="Every authorization decision at a location with its reason, newest first")
def list_authorizations(request: Request[Any, Any, Any], location_id: str, limit: LimitParam = 50,
                        cursor: CursorParam = None, status: str | None = None,
                        id_tag: str | None = None) -> AuthorizationPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        scope.repo(Location, "location", "loc").exists(location_id)
        stmt = select(AuthorizationDecision).where(AuthorizationDecision.tenant_id == scope.tenant_id,
                                                   AuthorizationDecision.location_id == location_id)
        if status:
            stmt = stmt.where(AuthorizationDecision.status == status)
        if id_tag:
            stmt = stmt.where(AuthorizationDecision.id_tag == id_tag)
        if cursor:
            try:
                before = int(cursor)
            except ValueError:
                raise InvalidInput("invalid_cursor", "the cursor is not one this API returned") from None
            stmt = stmt.where(AuthorizationDecision.id < before)  # type: ignore[operator]
        rows = list(scope.db.execute(stmt.order_by(AuthorizationDecision.id.desc()).limit(limit + 1)).scalars())  # type: ignore[union-attr]
        nxt = str(rows[limit - 1].id) if len(rows) > limit else None
        return AuthorizationPage(items=[AuthorizationRead.model_validate(r, from_attributes=True)
                                        for r in rows[:limit]], next_cursor=nxt)


# --- transactions -------------------------------------------------------------------------------

class TransactionRead(ReadModel):
    id: int
    charge_point_id: str
    identity: str
    ocpp_version: str
    transaction_ref: str
    location_id: str | None
    evse_uid: str
    connector_id: int
    id_tag: str
    auth_status: str
    start: datetime | None
    stop: datetime | None
    meter_start_wh: DecimalOut | None
    meter_stop_wh: DecimalOut | None
    stop_reason: str
    offline: bool
    status: str
    review_reason: str
    session_id: str | None
    external_id: str


class SignedDataRead(ReadModel):
    at: datetime
    format: str
    context: str
    raw: str
    signing_method: str
    public_key: str
    sha256: str


class TransactionDetail(TransactionRead):
    signed_data: list[SignedDataRead]


TransactionPage = page_of(TransactionRead)


def _tx(scope: Scope, tx_id: int) -> OcppTransaction:
    tx = scope.db.get(OcppTransaction, tx_id)
    if tx is None or tx.tenant_id != scope.tenant_id:
        raise NotFound("transaction_not_found", f"transaction {tx_id} not found")
    return tx


@route("GET", "/ocpp/transactions", operation_id="list_ocpp_transactions", roles="sessions_write",
       summary="Transactions as chargers reported them (status stop_without_start/failed: for review)")
def list_transactions(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                      status: Literal["open", "stopped", "completed", "stop_without_start", "failed"] | None = None,
                      location_id: str | None = None,
                      charge_point_id: str | None = None) -> TransactionPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        stmt = select(OcppTransaction).where(OcppTransaction.tenant_id == scope.tenant_id)
        for col, v in ((OcppTransaction.status, status), (OcppTransaction.location_id, location_id),
                       (OcppTransaction.charge_point_id, charge_point_id)):
            if v is not None:
                stmt = stmt.where(col == v)
        if cursor:
            if not cursor.isdigit() or len(cursor) > 18:
                raise InvalidInput("invalid_cursor", "the cursor is not one this API returned")
            stmt = stmt.where(OcppTransaction.id > int(cursor))  # type: ignore[operator]
        rows = list(scope.db.execute(stmt.order_by(OcppTransaction.id).limit(limit + 1)).scalars())  # type: ignore[arg-type]
        nxt = str(rows[limit - 1].id) if len(rows) > limit else None
        return TransactionPage(items=[TransactionRead.model_validate(r, from_attributes=True) for r in rows[:limit]],
                               next_cursor=nxt)


@route("GET", "/ocpp/transactions/{transaction_id:int}", operation_id="get_ocpp_transaction",
       roles="sessions_write", summary="A transaction with its signed meter data, untouched")
def get_transaction(request: Request[Any, Any, Any], transaction_id: int) -> TransactionDetail:
    with open_scope(request) as scope:
        tx = _tx(scope, transaction_id)
        signed = scope.db.execute(select(OcppSignedData).where(OcppSignedData.transaction_id == tx.id)
                                  .order_by(OcppSignedData.at, OcppSignedData.id)).scalars()  # type: ignore[arg-type]
        base = TransactionRead.model_validate(tx, from_attributes=True).model_dump()
        return TransactionDetail(**base, signed_data=[SignedDataRead.model_validate(s, from_attributes=True)
                                                      for s in signed])


class CostRead(ReadModel):
    transaction_id: int
    transaction_ref: str
    as_of: str
    running: bool
    status: str
    energy_kwh: str
    message: str | None = None
    ruleset_version_id: str | None = None
    currency: str | None = None
    net_total: str | None = None
    tax_total: str | None = None
    gross_total: str | None = None
    lines: list[dict[str, Any]] = Field(default_factory=list)


@route("GET", "/ocpp/transactions/{transaction_id:int}/cost", operation_id="get_ocpp_transaction_cost",
       roles="sessions_write", summary="Cost so far: the running transaction rated up to its last reading")
def get_cost(request: Request[Any, Any, Any], transaction_id: int) -> CostRead:
    from api.ocpp.service import cost_so_far

    with open_scope(request) as scope:
        tx = _tx(scope, transaction_id)
        out = cost_so_far(scope.db, tx.id)  # type: ignore[arg-type]
        if out is None:
            raise Conflict("transaction_not_started", "the transaction has no start yet")
        return CostRead(**out)


# --- remote commands ----------------------------------------------------------------------------

class RemoteStartIn(WriteModel):
    id_tag: str = Field(min_length=1, max_length=20)
    connector_id: int | None = Field(None, ge=1, le=64, description="1.6 connector / 2.0.1 EVSE id")


class RemoteStopIn(WriteModel):
    transaction_id: int = Field(ge=1, description="the gateway's transaction id (see /ocpp/transactions)")


class AvailabilityIn(WriteModel):
    connector_id: int = Field(0, ge=0, le=64, description="0 = the whole charger (1.6) / station (2.0.1)")
    type: Literal["Operative", "Inoperative"]


class CommandOut(ReadModel):
    identity: str
    action: str
    ocpp_version: str
    response: dict[str, Any]


async def _command(request: Request[Any, Any, Any], charge_point_id: str, build: Any) -> CommandOut:
    """Send what ``build(ocpp version)`` makes to the connected charger; its answer, or a 409
    (not connected, no answer in time, a CALLERROR). Reservations (issue 18) send through it too."""
    from dataclasses import asdict

    from api.ocpp.server import NotConnected, current_gateway

    def load() -> tuple[str, str]:
        with open_scope(request) as scope:
            cp = scope.repo(ChargePoint, "charge_point", "cp").get(charge_point_id)
            return cp.identity, cp.tenant_id

    identity, _ = await anyio.to_thread.run_sync(load)
    gw = current_gateway()
    version = gw.version_of(identity) if gw else None
    if gw is None or version is None:
        raise Conflict("charge_point_not_connected", f"charge point {identity!r} is not connected")
    payload = await anyio.to_thread.run_sync(build, version)
    try:
        res = await anyio.to_thread.run_sync(gw.command_threadsafe, identity, payload)
    except NotConnected:
        raise Conflict("charge_point_not_connected", f"charge point {identity!r} is not connected") from None
    except TimeoutError:
        raise Conflict("charge_point_timeout", "the charge point did not answer in time") from None
    except Exception as exc:  # noqa: BLE001  (a CALLERROR from the charger)
        raise Conflict("charge_point_error", f"the charge point answered with an error: {exc}"[:300]) from None
    from ocpp.charge_point import snake_to_camel_case

    return CommandOut(identity=identity, action=type(payload).__name__, ocpp_version=version,
                      response=snake_to_camel_case({k: v for k, v in asdict(res).items() if v is not None}))


@route("POST", "/charge-points/{charge_point_id:str}/commands/remote-start", operation_id="remote_start",
       roles="write", status_code=200, summary="RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1)")
async def remote_start(request: Request[Any, Any, Any], charge_point_id: str, data: RemoteStartIn) -> CommandOut:
    def build(version: str) -> Any:
        if version == "1.6":
            from ocpp.v16 import call

            return call.RemoteStartTransaction(id_tag=data.id_tag, connector_id=data.connector_id)
        from ocpp.v201 import call as c201

        return c201.RequestStartTransaction(id_token={"idToken": data.id_tag, "type": "ISO14443"},
                                            remote_start_id=secrets.randbelow(2**31 - 1) + 1,
                                            evse_id=data.connector_id)

    return await _command(request, charge_point_id, build)


@route("POST", "/charge-points/{charge_point_id:str}/commands/remote-stop", operation_id="remote_stop",
       roles="write", status_code=200, summary="RemoteStopTransaction (1.6) / RequestStopTransaction (2.0.1)")
async def remote_stop(request: Request[Any, Any, Any], charge_point_id: str, data: RemoteStopIn) -> CommandOut:
    def build(version: str) -> Any:
        with open_scope(request) as scope:
            tx = _tx(scope, data.transaction_id)
            cp = scope.repo(ChargePoint, "charge_point", "cp").get(charge_point_id)
            if tx.charge_point_id != cp.id:
                raise InvalidInput("transaction_elsewhere", "the transaction runs on another charge point")
            if tx.stop is not None:
                raise Conflict("transaction_stopped", "the transaction has already stopped")
            ref = tx.transaction_ref
        if version == "1.6":
            from ocpp.v16 import call

            return call.RemoteStopTransaction(transaction_id=int(ref))
        from ocpp.v201 import call as c201

        return c201.RequestStopTransaction(transaction_id=ref)

    return await _command(request, charge_point_id, build)


@route("POST", "/charge-points/{charge_point_id:str}/commands/change-availability",
       operation_id="change_availability", roles="write", status_code=200, summary="ChangeAvailability")
async def change_availability(request: Request[Any, Any, Any], charge_point_id: str,
                              data: AvailabilityIn) -> CommandOut:
    def build(version: str) -> Any:
        if version == "1.6":
            from ocpp.v16 import call

            return call.ChangeAvailability(connector_id=data.connector_id, type=data.type)
        from ocpp.v201 import call as c201

        evse = {"id": data.connector_id} if data.connector_id else None
        return c201.ChangeAvailability(operational_status=data.type, evse=evse)

    return await _command(request, charge_point_id, build)


command_to = _command  # for the other areas that command chargers (reservations)


router = Router(path="/", route_handlers=[
    set_password, get_cp_state, list_authorizations, list_transactions, get_transaction, get_cost,
    remote_start, remote_stop, change_availability, revoke_meter_key,
    crud_router(path="/meter-keys", tag="ocpp", entity="meter_key", plural="meter_keys", prefix="mk",
                model=MeterKey, create=MeterKeyCreate, update=MeterKeyUpdate, read=MeterKeyRead,
                filters={"meter_serial": str, "charge_point_id": str, "status": str},
                refs={"charge_point_id": Ref(ChargePoint, "charge_point")}, validate=_check_key, deletable=False),
    crud_router(path="/access-rules", tag="ocpp", entity="access_rule", plural="access_rules", prefix="acr",
                model=AccessRule, create=AccessRuleCreate, update=AccessRuleUpdate, read=AccessRuleRead,
                filters={"location_id": str}, refs={"location_id": Ref(Location, "location")},
                clearable=("max_sessions", "session_priority"), validate=_check_rule),
], tags=["ocpp"])
