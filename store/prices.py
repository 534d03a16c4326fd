"""Price series points: importing a day-ahead file's intervals, and loading series for pricing.

Points live per tenant and series (``price_point``, one row per interval start, with the interval's
end since migration 0027). An import is idempotent: an interval already stored with the same price
is left alone; with another price, or stored at another resolution so that the two overlap, the
whole file is refused naming the file's line. Values are stored as the file states them, in the
series' unit; ``load_series`` converts EUR/MWh to EUR/kWh (divided by 1000, exact) so that every
price a ruleset reads through ``index(NAME)`` is per kWh.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session

from runtime.series import MWH_PER_KWH, BoundedSeries, SeriesPoint
from store.errors import InvalidInput
from store.models import PricePoint, PriceSeries

__all__ = ["ImportResult", "import_points", "load_series", "series_by_id_or_name", "to_per_kwh"]


def _utc(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True, slots=True)
class ImportResult:
    series_id: str
    name: str
    unit: str
    lines: int  # intervals in the file (a repeated line counted once)
    imported: int  # new intervals stored
    unchanged: int  # intervals stored already with the same price
    first: datetime
    end: datetime  # the end of the file's last interval

    def to_dict(self) -> dict[str, Any]:
        return {"series_id": self.series_id, "name": self.name, "unit": self.unit, "lines": self.lines,
                "imported": self.imported, "unchanged": self.unchanged, "first": self.first.isoformat(),
                "end": self.end.isoformat()}


def series_by_id_or_name(db: Session, tenant_id: str, key: str) -> PriceSeries | None:
    """The tenant's series with id ``key``, else the one named ``key``."""
    return db.execute(select(PriceSeries).where(PriceSeries.tenant_id == tenant_id,  # type: ignore[arg-type]
                                                or_(PriceSeries.id == key, PriceSeries.name == key))  # type: ignore[arg-type]
                      .order_by(PriceSeries.id == key)).scalars().first()  # type: ignore[arg-type]


def import_points(db: Session, tenant_id: str, series: PriceSeries, points: Sequence[SeriesPoint]) -> ImportResult:
    """Store the file's intervals in ``series``: new ones inserted, identical ones left; raises
    ``InvalidInput`` (422, nothing written) for an interval stored with another price or another length."""
    first, end = points[0].start, points[-1].end
    pp = PricePoint
    stored = db.execute(select(pp).where(
        pp.tenant_id == tenant_id, pp.series_id == series.id,  # type: ignore[arg-type]
        pp.start < end, pp.start >= first - timedelta(days=1))  # type: ignore[arg-type,operator]
        .order_by(pp.start)).scalars().all()  # type: ignore[arg-type]
    by_start = {p.start: p for p in stored}
    starts = [p.start for p in stored]  # sorted: the query orders by start
    new: list[dict[str, Any]] = []
    unchanged = 0
    for pt in points:
        old = by_start.get(pt.start)
        if old is not None:
            if old.value != pt.value:
                raise InvalidInput("price_conflict", f"line {pt.line}: {_utc(pt.start)} is stored with price "
                               f"{format(old.value, 'f')}, the file says {format(pt.value, 'f')}; a published price "
                               "does not change (import a corrected series under another name)",
                               line=pt.line, start=pt.start.isoformat())
            if old.ends_at is not None and old.ends_at != pt.end:
                raise InvalidInput("price_interval_conflict", f"line {pt.line}: {_utc(pt.start)} is stored as "
                               f"{_utc(old.start)}..{_utc(old.ends_at)}, the file says ..{_utc(pt.end)}",
                               line=pt.line, start=pt.start.isoformat())
            unchanged += 1
            continue
        # a stored interval starting inside this one, or the one before it reaching into it (points
        # without an end, written before intervals were stored, overlap nothing)
        i = bisect.bisect_left(starts, pt.start)
        clash = stored[i] if i < len(stored) and stored[i].start < pt.end else None
        if clash is None and i > 0 and stored[i - 1].ends_at is not None and stored[i - 1].ends_at > pt.start:
            clash = stored[i - 1]
        if clash is not None:
            span = f"{_utc(clash.start)}..{_utc(clash.ends_at)}" if clash.ends_at else f"from {_utc(clash.start)}"
            raise InvalidInput("price_interval_conflict", f"line {pt.line}: {_utc(pt.start)}..{_utc(pt.end)} overlaps "
                           f"the stored interval {span} (another resolution)", line=pt.line,
                           start=pt.start.isoformat())
        new.append({"tenant_id": tenant_id, "series_id": series.id, "start": pt.start, "value": pt.value,
                    "ends_at": pt.end})
    for i in range(0, len(new), 5000):
        db.execute(insert(PricePoint), new[i:i + 5000])
    return ImportResult(series.id, series.name, series.unit, len(points), len(new), unchanged, first, end)


def to_per_kwh(unit: str, value: Decimal) -> Decimal:
    return value / MWH_PER_KWH if unit == "per MWh" else value


def load_series(db: Session, tenant_id: str, start: datetime, end: datetime,
                names: Sequence[str] | None = None) -> dict[str, BoundedSeries]:
    """The tenant's series over ``[start, end]``, per kWh, with their intervals' ends; a day before
    (the interval in force at ``start``) and after (so a gap is named with its end) included."""
    where = [PriceSeries.tenant_id == tenant_id, PricePoint.start >= start - timedelta(days=1),  # type: ignore[operator]
             PricePoint.start <= end + timedelta(days=1)]
    if names is not None:
        where.append(PriceSeries.name.in_(list(names)))  # type: ignore[attr-defined]
    rows = db.execute(
        select(PriceSeries.name, PriceSeries.unit, PricePoint.start, PricePoint.ends_at, PricePoint.value)
        .join(PricePoint, PricePoint.series_id == PriceSeries.id)  # type: ignore[arg-type]
        .where(and_(*where)).order_by(PriceSeries.name, PricePoint.start)).all()  # type: ignore[arg-type]
    points: dict[str, list[tuple[datetime, datetime | None, Decimal]]] = {}
    for name, unit, at, ends, value in rows:
        points.setdefault(name, []).append((at, ends, to_per_kwh(unit, value)))
    out = {name: BoundedSeries.of(name, pts) for name, pts in points.items()}
    # a series asked for by name with nothing in the window is there, empty: a price read from it
    # names the moment it has no value for
    out.update({n: BoundedSeries(n, (), (), ()) for n in names or () if n not in out})
    return out
