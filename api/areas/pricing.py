"""Price series (hourly spot prices and the like) that rulesets reference as ``index(NAME)``.

``POST /price-series/{id or name}/prices`` imports a day-ahead CSV (``timestamp,price`` per market
time unit, hourly or quarter-hourly, in the series' unit: EUR/MWh for a ``per MWh`` series) as
``runtime.series.read_prices`` describes: monotonic, no gaps inside the file, a repeated line with
the same price read once, another price a 422 naming the line; intervals stored already with the
same price are left alone (an import is idempotent), with another one the file is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
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
from store.errors import InvalidInput, NotFound
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


class PricesImported(ReadModel):
    series_id: str
    name: str
    unit: str
    lines: int = Field(description="intervals in the file (a line repeated with the same price counted once)")
    imported: int = Field(description="intervals stored by this import")
    unchanged: int = Field(description="intervals stored already with the same price")
    first: datetime = Field(description="the start of the file's first interval")
    end: datetime = Field(description="the end of the file's last interval")


class _PricesCsvOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True, description="CSV of day-ahead prices: 'timestamp,price' per interval (ISO 8601 with an "
                                       "offset, or an ENTSO-E range 'dd.mm.yyyy HH:MM - dd.mm.yyyy HH:MM' under a "
                                       "header naming (UTC)); ';' and a decimal comma are read too",
            content={"text/csv": OpenAPIMediaType(schema=Schema(type="string"))})  # type: ignore[arg-type]


MAX_PRICE_FILE = 5_000_000


@route("POST", "/price-series/{price_series_id:str}/prices", operation_id="import_price_series_csv",
       roles="pricing_write", status_code=201, operation_class=_PricesCsvOperation,
       summary="Import a day-ahead price file (CSV, hourly or 15-minute) into a series, by id or name; "
               "the same file again answers 200 and changes nothing",
       responses={200: ResponseSpec(PricesImported, description="every interval was stored already")})
async def import_price_series_csv(request: Request[Any, Any, Any], price_series_id: IdPath) -> Response[PricesImported]:
    import anyio

    from runtime.series import SeriesFileError, read_prices
    from store import prices as P

    body = await request.body()
    if len(body) > MAX_PRICE_FILE:
        raise InvalidInput("payload_too_large", f"a price file is limited to {MAX_PRICE_FILE // 1_000_000} MB")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("csv_not_utf8", "the CSV must be UTF-8") from None

    def run() -> PricesImported:
        with open_scope(request) as scope:
            series = P.series_by_id_or_name(scope.db, scope.tenant_id, price_series_id)
            if series is None:
                raise NotFound("price_series_not_found", f"price series {price_series_id!r} not found "
                                                         "(create it with POST /price-series)")
            try:
                points, header = read_prices(text, resolution=timedelta(minutes=series.resolution_minutes))
            except SeriesFileError as exc:
                raise InvalidInput("price_file_invalid", str(exc), errors=[
                    {"key": "body", "message": exc.reason, "line": exc.line}]) from None
            _check_unit(header, series)
            res = P.import_points(scope.db, scope.tenant_id, series, points)
            if res.imported:
                scope.audit("price_series.import", "price_series", series.id, None, res.to_dict())
            scope.commit()
            return PricesImported(**res.to_dict())

    out = await anyio.to_thread.run_sync(run)
    return Response(out, status_code=201 if out.imported else 200)


def _check_unit(header: str, series: PriceSeries) -> None:
    """A header that names its unit must name the series' (EUR/MWh into a per kWh series would be
    a thousandfold error)."""
    h = header.replace(" ", "").lower()
    said = "per MWh" if "/mwh" in h else "per kWh" if "/kwh" in h else None
    if said is not None and said != series.unit:
        raise InvalidInput("price_unit_mismatch", f"the file's prices are {said.replace('per ', series.currency + '/')}, "
                                                  f"series {series.name!r} is priced {series.unit}")
    import re

    m = re.search(r"\b([A-Z]{3})\s*/\s*[KM]WH\b", header.upper())
    if m is not None and m.group(1) != series.currency:
        raise InvalidInput("price_currency_mismatch", f"the file's prices are in {m.group(1)}, series "
                                                      f"{series.name!r} in {series.currency}")

router = Router(path="/", route_handlers=[
    import_price_series_csv, put_price_points, list_price_points,
    crud_router(path="/price-series", tag="pricing", entity="price_series", plural="price_series_list",
                prefix="ps", model=PriceSeries, create=PriceSeriesCreate, update=PriceSeriesUpdate,
                read=PriceSeriesRead, write_roles="pricing_write", search_cols=("name", "description"),
                deletable=False),
], tags=["pricing"])
