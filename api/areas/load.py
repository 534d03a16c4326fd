"""Load limits in the operator API (issue 18): a location's current allocation (its capacity and
the limit each running session was sent, with the charger's answer) and the history of every
charging profile sent there. The capacity itself is the location's ``capacity_kw``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from litestar import Request, Router
from litestar.params import Parameter

from api.crud import CursorParam, IdPath, LimitParam, ReadModel, open_scope, page_of, route
from api.schemas import DecimalOut
from store.errors import InvalidInput
from store.load import allocation_of, limit_history
from store.models import Location

__all__ = ["router"]

_KW = Decimal(1000)


def _kw(w: Decimal | None) -> Decimal | None:
    return None if w is None else (w / _KW).normalize()


class LimitRead(ReadModel):
    id: str
    transaction_id: int | None  # None: a TxDefaultProfile (sessions before their own profile)
    charge_point_id: str
    evse_uid: str
    connector_id: int
    priority: int | None  # None: a TxDefaultProfile
    limit_kw: DecimalOut
    capacity_kw: DecimalOut | None  # None: the capacity was removed, the limits lifted
    reason: str
    sent_at: datetime
    status: str
    answered_at: datetime | None
    detail: str
    purpose: str = "TxProfile"  # TxProfile | TxDefaultProfile
    # W: limit_kw went on the wire; A: limit_a per phase, converted with phases x voltage_v
    rate_unit: str = "W"
    limit_a: DecimalOut | None = None
    phases: int | None = None
    voltage_v: int | None = None


class AllocationItem(ReadModel):
    transaction_id: int
    charge_point_id: str
    evse_uid: str
    connector_id: int
    start: datetime | None
    max_power_kw: DecimalOut | None
    priority: int | None
    limit_kw: DecimalOut | None  # None: no profile sent, the session charges at its EVSE's maximum
    status: str | None
    sent_at: datetime | None
    rate_unit: str | None = None  # W, or A: limit_a per phase went on the wire
    limit_a: DecimalOut | None = None


class AllocationRead(ReadModel):
    location_id: str
    capacity_kw: DecimalOut | None
    allocated_kw: DecimalOut
    sessions: list[AllocationItem]


LimitPage = page_of(LimitRead)


def _limit_read(row: Any) -> LimitRead:
    return LimitRead(id=row.id, transaction_id=row.transaction_id, charge_point_id=row.charge_point_id,
                     evse_uid=row.evse_uid, connector_id=row.connector_id, priority=row.priority,
                     limit_kw=_kw(row.limit_w), capacity_kw=_kw(row.capacity_w), reason=row.reason,  # type: ignore[arg-type]
                     sent_at=row.sent_at, status=row.status, answered_at=row.answered_at, detail=row.detail,
                     purpose=row.purpose, rate_unit=row.rate_unit, limit_a=row.limit_a, phases=row.phases,  # type: ignore[arg-type]
                     voltage_v=row.voltage_v)


@route("GET", "/locations/{location_id:str}/load", operation_id="get_location_load", roles="read",
       summary="The location's capacity and the limit each running session was sent (load limits)")
def get_load(request: Request[Any, Any, Any], location_id: IdPath) -> AllocationRead:
    with open_scope(request) as scope:
        loc = scope.repo(Location, "location", "loc").get(location_id)
        items, total = [], Decimal(0)
        for s, lim in allocation_of(scope.db, scope.tenant_id, loc.id):
            limit_kw = _kw(lim.limit_w) if lim is not None else None
            running_kw = limit_kw if limit_kw is not None else (s.max_power_kw or Decimal(0))
            total += running_kw
            items.append(AllocationItem(
                transaction_id=s.tx_id, charge_point_id=s.charge_point_id, evse_uid=s.evse_uid,
                connector_id=s.connector_id, start=s.start, max_power_kw=s.max_power_kw,  # type: ignore[arg-type]
                priority=lim.priority if lim is not None else None, limit_kw=limit_kw,  # type: ignore[arg-type]
                status=lim.status if lim is not None else None, sent_at=lim.sent_at if lim is not None else None,
                rate_unit=lim.rate_unit if lim is not None else None,
                limit_a=lim.limit_a if lim is not None else None))  # type: ignore[arg-type]
        return AllocationRead(location_id=loc.id, capacity_kw=loc.capacity_kw, allocated_kw=total,  # type: ignore[arg-type]
                              sessions=items)


@route("GET", "/locations/{location_id:str}/load/history", operation_id="list_location_load_history",
       roles="read", summary="Every charging profile sent at the location with the charger's answer, newest first")
def load_history(request: Request[Any, Any, Any], location_id: IdPath, limit: LimitParam = 50,
                 cursor: CursorParam = None,
                 transaction_id: Annotated[int | None, Parameter(ge=1, description="one transaction's")] = None,
                 ) -> LimitPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        scope.repo(Location, "location", "loc").exists(location_id)
        if cursor and not cursor.startswith("lim_"):
            raise InvalidInput("invalid_cursor", "the cursor is not one this API returned")
        rows = limit_history(scope.db, scope.tenant_id, location_id, limit + 1, cursor, transaction_id)
        nxt = rows[limit - 1].id if len(rows) > limit else None
        return LimitPage(items=[_limit_read(r) for r in rows[:limit]], next_cursor=nxt)


router = Router(path="/", route_handlers=[get_load, load_history])
