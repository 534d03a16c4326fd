"""Locations, charge points and EVSEs: where sessions happen, in which time zone, for which host."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

from litestar import Request, Router
from pydantic import Field

from api.crud import IdPath, ReadModel, Ref, WriteModel, crud_router, open_scope, route
from api.schemas import Country, DecimalStr, Id, RefId, read_of, update_of
from api.validation import Timezone
from store.errors import InvalidInput
from store.models import ChargePoint, Evse, Location, Partner, Ruleset
from store.repo import Scope

__all__ = ["router"]


class LocationCreate(WriteModel):
    code: str = Field("", max_length=64, description="the location id chargers and CDRs use")
    name: str = Field(min_length=1, max_length=200)
    street: str = Field("", max_length=200)
    postal_code: str = Field("", max_length=20)
    city: str = Field("", max_length=100)
    country: Country = Field(min_length=2)
    timezone: Timezone
    latitude: DecimalStr | None = None
    longitude: DecimalStr | None = None
    site_host_id: RefId = None
    ruleset_id: RefId = Field(None, description="ruleset that rates this site's sessions")
    capacity_kw: DecimalStr | None = Field(
        None, description="the site's grid connection in kW, shared by its running sessions by priority with "
                          "charging profiles (load limits); omit or null: no limit")


LocationUpdate = update_of(LocationCreate, "LocationUpdate")
LocationRead = read_of(LocationCreate, "LocationRead")


class ChargePointCreate(WriteModel):
    location_id: Id
    identity: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:*-]+$",
                          description="the OCPP charge point id (ws path), unique across tenants")
    ocpp_version: Literal["1.6", "2.0.1"] = "1.6"
    vendor: str = Field("", max_length=100)
    model: str = Field("", max_length=100)
    serial_number: str = Field("", max_length=100)
    status: Literal["active", "inactive"] = "active"


ChargePointUpdate = update_of(ChargePointCreate, "ChargePointUpdate")
ChargePointRead = read_of(ChargePointCreate, "ChargePointRead")


class EvseCreate(WriteModel):
    location_id: Id
    charge_point_id: RefId = None
    evse_uid: str = Field(min_length=1, max_length=64)
    connector_id: int = Field(1, ge=0, le=64)
    power_type: Literal["AC", "DC"] = "AC"
    max_power_kw: DecimalStr
    status: Literal["available", "occupied", "out_of_order", "removed"] = "available"


EvseUpdate = update_of(EvseCreate, "EvseUpdate")
EvseRead = read_of(EvseCreate, "EvseRead")


def _check_location(_scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    cap = values.get("capacity_kw")
    if cap is not None:
        from decimal import Decimal

        if not Decimal(0) < Decimal(str(cap)) <= Decimal(1_000_000):
            raise InvalidInput("invalid_capacity", "capacity_kw must be more than 0 and at most 1,000,000 kW")
    if values.get("site_host_id"):
        host = _scope.repo(Partner, "partner", "par").get(values["site_host_id"])
        # an employee hosts the home charger of a company car (its energy is reimbursed to them)
        if host.kind not in ("site_host", "employee"):
            raise InvalidInput("not_a_site_host", f"partner {host.id!r} is a {host.kind}, not a site_host "
                                                  "(or an employee with a home charger)")


def _location_written(scope: Scope, obj: Any) -> None:
    # the gateway of this process recomputes the site's limits once the change has committed
    from api.ocpp.load import notify_capacity_change

    notify_capacity_change(scope.db, obj.id)


def _check_evse(scope: Scope, values: dict[str, Any], _existing: Any) -> None:
    if values.get("charge_point_id"):
        cp = scope.repo(ChargePoint, "charge_point", "cp").get(values["charge_point_id"])
        if cp.location_id != values["location_id"]:
            raise InvalidInput("charge_point_location_mismatch", "the charge point is at another location")
    from decimal import Decimal

    if Decimal(str(values["max_power_kw"])) <= 0:
        raise InvalidInput("invalid_power", "max_power_kw must be positive")


class ChargePointCredential(ReadModel):
    charge_point_id: str
    identity: str
    password: str = Field(description="OCPP basic-auth password; shown once, only its hash is stored")


@route("POST", "/charge-points/{charge_point_id:str}/password", operation_id="rotate_charge_point_password",
       roles="write", status_code=201, deprecated=True,
       summary="Issue a new OCPP password (shown once); PUT /charge-points/{id}/ocpp-password does the same and more")
def rotate_charge_point_password(request: Request[Any, Any, Any], charge_point_id: IdPath) -> ChargePointCredential:
    with open_scope(request) as scope:
        repo = scope.repo(ChargePoint, "charge_point", "cp")
        cp = repo.get(charge_point_id)
        # 40 characters: OCPP 1.6 security profile 1/2 allows 16..40 (AuthorizationKey)
        password = secrets.token_urlsafe(30)[:40]
        repo.update(cp, {"password_sha256": hashlib.sha256(password.encode()).hexdigest()},
                    hide=("password_sha256",))
        scope.audit("charge_point.password", "charge_point", cp.id, None, {"rotated": True})
        scope.commit()
        return ChargePointCredential(charge_point_id=cp.id, identity=cp.identity, password=password)


router = Router(path="/", route_handlers=[
    rotate_charge_point_password,
    crud_router(path="/locations", tag="sites", entity="location", plural="locations", prefix="loc",
                model=Location, create=LocationCreate, update=LocationUpdate, read=LocationRead,
                filters={"country": str, "site_host_id": str, "code": str}, search_cols=("name", "city", "code"),
                refs={"site_host_id": Ref(Partner, "partner"), "ruleset_id": Ref(Ruleset, "ruleset")},
                clearable=("site_host_id", "ruleset_id", "latitude", "longitude", "capacity_kw"),
                validate=_check_location, on_write=_location_written),
    crud_router(path="/charge-points", tag="sites", entity="charge_point", plural="charge_points", prefix="cp",
                model=ChargePoint, create=ChargePointCreate, update=ChargePointUpdate, read=ChargePointRead,
                filters={"location_id": str, "status": str}, search_cols=("identity", "vendor", "model"),
                refs={"location_id": Ref(Location, "location")}, hide=("password_sha256",)),
    crud_router(path="/evses", tag="sites", entity="evse", plural="evses", prefix="evse", model=Evse,
                create=EvseCreate, update=EvseUpdate, read=EvseRead,
                filters={"location_id": str, "charge_point_id": str, "power_type": str, "status": str},
                search_cols=("evse_uid",),
                refs={"location_id": Ref(Location, "location"), "charge_point_id": Ref(ChargePoint, "charge_point")},
                clearable=("charge_point_id",), validate=_check_evse),
])
