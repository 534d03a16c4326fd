"""Price series (hourly spot prices and the like) that rulesets reference as ``index(NAME)``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from litestar import Request, Router
from pydantic import AwareDatetime, Field
from sqlalchemy import delete, select

from api.crud import (
    CursorParam,
    IdPath,
    LimitParam,
    ReadModel,
    WriteModel,
    crud_router,
    open_scope,
    page_of,
    route,
)
from api.schemas import Currency, DecimalOut, DecimalStr, read_of, update_of
from store.errors import InvalidInput
from store.models import PricePoint, PriceSeries
from store.repo import decode_cursor, encode_cursor

__all__ = ["router"]


class PriceSeriesCreate(WriteModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$",
                      description="the name a ruleset uses in index(NAME)")
    unit: Literal["per kWh", "per MWh"] = "per kWh"
    currency: Currency = "EUR"
    resolution_minutes: int = Field(60, ge=1, le=1440)
    description: str = Field("", max_length=500)


PriceSeriesUpdate = update_of(PriceSeriesCreate, "PriceSeriesUpdate")
PriceSeriesRead = read_of(PriceSeriesCreate, "PriceSeriesRead")


class PricePointIn(WriteModel):
    start: AwareDatetime
    value: DecimalStr


class PricePointsPut(WriteModel):
    points: list[PricePointIn] = Field(min_length=1, max_length=10000)


class PricePointRead(ReadModel):
    start: datetime
    value: DecimalOut


class PricePointsResult(ReadModel):
    series_id: str
    written: int


PricePointPage = page_of(PricePointRead)


@route("PUT", "/price-series/{price_series_id:str}/points", operation_id="put_price_points",
       roles="pricing_write", summary="Write points of a series (replacing points at the same start)")
def put_price_points(request: Request[Any, Any, Any], price_series_id: IdPath, data: PricePointsPut) -> PricePointsResult:
    with open_scope(request) as scope:
        series = scope.repo(PriceSeries, "price_series", "ps").get(price_series_id)
        starts = [p.start for p in data.points]
        if len(set(starts)) != len(starts):
            raise InvalidInput("duplicate_point_start", "two points share the same start")
        # replace, so uploading the same day twice is idempotent
        scope.db.execute(delete(PricePoint).where(PricePoint.series_id == series.id,
                                                  PricePoint.start.in_(starts)))  # type: ignore[attr-defined]
        scope.db.add_all([PricePoint(tenant_id=scope.tenant_id, series_id=series.id, start=p.start,
                                     value=Decimal(p.value)) for p in data.points])
        scope.audit("price_series.points", "price_series", series.id, None,
                    {"count": len(starts), "from": min(starts).isoformat(), "to": max(starts).isoformat()})
        scope.commit()
        return PricePointsResult(series_id=series.id, written=len(starts))


@route("GET", "/price-series/{price_series_id:str}/points", operation_id="list_price_points", roles="read",
       summary="Points of a series in time order")
def list_price_points(request: Request[Any, Any, Any], price_series_id: IdPath, limit: LimitParam = 50,
                      cursor: CursorParam = None, start_from: datetime | None = None,
                      start_before: datetime | None = None) -> PricePointPage:  # type: ignore[valid-type]
    with open_scope(request) as scope:
        series = scope.repo(PriceSeries, "price_series", "ps").get(price_series_id)
        stmt = select(PricePoint).where(PricePoint.tenant_id == scope.tenant_id, PricePoint.series_id == series.id)
        for bound in (start_from, start_before):
            if bound is not None and bound.tzinfo is None:
                raise InvalidInput("naive_timestamp", "timestamps need a UTC offset")
        if start_from:
            stmt = stmt.where(PricePoint.start >= start_from)
        if start_before:
            stmt = stmt.where(PricePoint.start < start_before)
        if cursor:
            try:
                after = datetime.fromisoformat(decode_cursor(cursor))
            except ValueError:
                raise InvalidInput("invalid_cursor", "the cursor is not one this API returned") from None
            if after.tzinfo is None:
                raise InvalidInput("invalid_cursor", "the cursor is not one this API returned")
            stmt = stmt.where(PricePoint.start > after)
        rows = list(scope.db.execute(stmt.order_by(PricePoint.start).limit(limit + 1)).scalars())
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = encode_cursor(rows[-1].start.isoformat())
        return PricePointPage(items=[PricePointRead.model_validate(r, from_attributes=True) for r in rows],
                              next_cursor=nxt)


router = Router(path="/", route_handlers=[
    put_price_points, list_price_points,
    crud_router(path="/price-series", tag="pricing", entity="price_series", plural="price_series_list",
                prefix="ps", model=PriceSeries, create=PriceSeriesCreate, update=PriceSeriesUpdate,
                read=PriceSeriesRead, write_roles="pricing_write", search_cols=("name", "description"),
                deletable=False),
], tags=["pricing"])
