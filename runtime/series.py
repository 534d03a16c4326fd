"""Price series as data: reading a day-ahead price file, and a series whose intervals end.

A day-ahead export (ENTSO-E transparency platform, EPEX, a utility's own) is a CSV of one price
per market time unit, hourly or (since the 2025 switch) quarter-hourly, in EUR/MWh. ``read_prices``
turns one into ``SeriesPoint``s and refuses what would price a session wrongly, naming the line:

- timestamps must carry their offset (``2026-03-01T00:00:00Z``, ``...+01:00``), or be an
  ENTSO-E style range ``01.03.2026 00:00 - 01.03.2026 01:00`` under a header naming ``(UTC)``;
- starts increase; a start repeated with the same price is read once (a file pasted twice), with
  another price it is an error naming both lines;
- every interval lasts 15, 30 or 60 minutes and the next one starts where it ends: no gaps inside a
  file (a gap between two files is allowed; pricing a moment in it is an error naming it);
- a price is a decimal (negative prices happen); ``n/e``, ``-`` or an empty cell is a missing price.

``BoundedSeries`` is ``runtime.rating.PriceSeries`` with the end of each interval: asked for a
moment no interval covers it raises ``MissingPrice`` naming the gap, never answers the previous
value or zero. Points without an end (written before intervals were stored) last until the next
one, as before. Nothing here reads a file or a database.
"""

from __future__ import annotations

import bisect
import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from runtime.rating import MissingPrice, PriceSeries
from runtime.sessions import SessionInputError, parse_datetime

__all__ = ["MWH_PER_KWH", "RESOLUTIONS", "BoundedSeries", "SeriesFileError", "SeriesPoint", "iso_ms", "read_prices"]

RESOLUTIONS = (timedelta(minutes=15), timedelta(minutes=30), timedelta(minutes=60))
# EUR/MWh -> EUR/kWh: divide by 1000, exact in Decimal
MWH_PER_KWH = Decimal(1000)
_MISSING = {"", "-", "n/e", "n/a", "na", "null"}
_LOCAL = re.compile(r"^(\d{1,2})[./](\d{1,2})[./](\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")


class SeriesFileError(ValueError):
    """A price file that cannot be imported; ``line`` is the file's line number (1-based)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.reason = message


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    line: int
    start: datetime  # aware UTC
    end: datetime  # exclusive
    value: Decimal  # in the file's unit (EUR/MWh for day-ahead prices)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _local_utc(text: str, line: int) -> datetime:
    m = _LOCAL.match(text.strip())
    if m is None:
        raise SeriesFileError(f"not a timestamp: {text.strip()!r}", line)
    d, mo, y, h, mi, s = m.groups()
    try:
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), tzinfo=UTC)
    except ValueError:
        raise SeriesFileError(f"not a timestamp: {text.strip()!r}", line) from None


def _when(cell: str, line: int, utc_header: bool) -> tuple[datetime, datetime | None]:
    """(start, end or None) of a timestamp cell."""
    text = cell.strip()
    if " - " in text:  # ENTSO-E market time unit: "01.03.2026 00:00 - 01.03.2026 01:00"
        a, _, b = text.partition(" - ")
        if not utc_header:
            raise SeriesFileError("a local time range needs a header naming its zone as '(UTC)' "
                                  "(export the file in UTC, or give ISO 8601 timestamps with an offset)", line)
        return _local_utc(a, line), _local_utc(b, line)
    if _LOCAL.match(text):
        if not utc_header:
            raise SeriesFileError(f"timestamp {text!r} has no UTC offset", line)
        return _local_utc(text, line), None
    try:
        return parse_datetime(text, "timestamp"), None
    except SessionInputError as exc:
        raise SeriesFileError(str(exc).removeprefix("timestamp: "), line) from None


def read_prices(text: str, *, resolution: timedelta | None = None) -> tuple[list[SeriesPoint], str]:
    """The points of a price file and its header (empty without one). ``resolution``: the length
    of the last interval when the file does not say (default: that of the one before it)."""
    rows = text.splitlines()
    data = [(i, r) for i, r in enumerate(rows, start=1) if r.strip() and not r.lstrip().startswith("#")]
    if not data:
        raise SeriesFileError("the file has no prices")
    delim = ";" if ";" in data[0][1] else "\t" if "\t" in data[0][1] else ","
    header = ""
    first_cell = next(csv.reader([data[0][1]], delimiter=delim))[0].strip()
    if not first_cell[:1].isdigit():
        header = data[0][1]
        data = data[1:]
        if not data:
            raise SeriesFileError("the file has a header but no prices")
    utc_header = "(UTC)" in header.upper() or "UTC" in header.upper().split()
    raw: list[tuple[int, datetime, datetime | None, Decimal]] = []
    for line, row in data:
        cells = next(csv.reader([row], delimiter=delim))
        if len(cells) < 2:
            raise SeriesFileError(f"expected 'timestamp{delim}price', found {row.strip()!r}", line)
        start, end = _when(cells[0], line, utc_header)
        if not (1970 <= start.year <= 2200 and (end is None or end.year <= 2200)):
            raise SeriesFileError(f"{_iso(start)} lies outside 1970..2200", line)
        cell = cells[1].strip()
        if cell.lower() in _MISSING:
            raise SeriesFileError(f"no price for {_iso(start)} (found {cell!r}): the file has a gap", line)
        if delim == ";" and "," in cell:
            cell = cell.replace(".", "").replace(",", ".")  # decimal comma, dots as thousands
        try:
            value = Decimal(cell)
        except InvalidOperation:
            raise SeriesFileError(f"not a price: {cells[1].strip()!r}", line) from None
        if not value.is_finite() or abs(value) >= 10**9:
            raise SeriesFileError(f"price out of range: {cells[1].strip()!r}", line)
        raw.append((line, start, end, value))

    out: list[SeriesPoint] = []
    seen: dict[datetime, tuple[int, Decimal]] = {}
    kept: list[tuple[int, datetime, datetime | None, Decimal]] = []
    for line, start, end, value in raw:
        if start in seen:
            first_line, first_value = seen[start]
            if first_value != value:
                raise SeriesFileError(f"{_iso(start)} is priced {format(value, 'f')} here and "
                                      f"{format(first_value, 'f')} on line {first_line}", line)
            continue  # the same price again: read once
        if kept and start < kept[-1][1]:
            raise SeriesFileError(f"{_iso(start)} comes after {_iso(kept[-1][1])} (line {kept[-1][0]}): "
                                  "timestamps must increase", line)
        seen[start] = (line, value)
        kept.append((line, start, end, value))
    for k, (line, start, end, value) in enumerate(kept):
        nxt = kept[k + 1][1] if k + 1 < len(kept) else None
        inferred = end is None
        if end is None:
            if nxt is not None:
                end = nxt
            elif out:
                end = start + (out[-1].end - out[-1].start)
            elif resolution is not None:
                end = start + resolution
            else:
                raise SeriesFileError("one price and no interval end: give the series' resolution", line)
        step = (out[-1].end - out[-1].start) if out else resolution
        if inferred and nxt is not None and (step is not None or end - start not in RESOLUTIONS):
            # the next start is more than one market time unit later (that of the line before, else
            # the series' resolution): the rows between are missing. Shorter is a switch to a finer
            # resolution (hourly to quarter-hourly), which the market did in 2025
            step = step or RESOLUTIONS[-1]
            if end - start > step:
                raise SeriesFileError(f"gap after this line: nothing priced from {_iso(start + step)} to "
                                      f"{_iso(nxt)} (line {kept[k + 1][0]})", line)
        if end - start not in RESOLUTIONS:
            raise SeriesFileError(f"interval {_iso(start)}..{_iso(end)} lasts "
                                  f"{int((end - start).total_seconds() // 60)} min: expected 15, 30 or 60", line)
        if nxt is not None and end != nxt:
            if end < nxt:
                raise SeriesFileError(f"gap after this line: nothing priced from {_iso(end)} to {_iso(nxt)} "
                                      f"(line {kept[k + 1][0]})", line)
            raise SeriesFileError(f"interval {_iso(start)}..{_iso(end)} overlaps the next one, which starts "
                                  f"{_iso(nxt)} (line {kept[k + 1][0]})", line)
        out.append(SeriesPoint(line, start, end, value))
    return out, header


@dataclass(frozen=True, slots=True)
class BoundedSeries(PriceSeries):
    """A price series whose intervals end: ``ends_ms[i]`` closes the interval that starts at
    ``starts_ms[i]`` (None: it lasts until the next start)."""

    ends_ms: tuple[int | None, ...] = ()
    # the ends that are not also the next start (the gaps' starts), sorted: where ``boundaries``
    # cuts besides the starts (derived, not passed)
    gap_starts: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        starts = set(self.starts_ms)
        object.__setattr__(self, "gap_starts", tuple(sorted(e for e in self.ends_ms if e is not None
                                                            and e not in starts)))

    @classmethod
    def of(cls, name: str, points: Sequence[tuple[datetime, datetime | None, Decimal]]) -> BoundedSeries:
        pts = sorted(((int(a.timestamp() * 1000), None if b is None else int(b.timestamp() * 1000), v)
                      for a, b, v in points), key=lambda p: p[0])
        return cls(name, tuple(p[0] for p in pts), tuple(p[2] for p in pts), tuple(p[1] for p in pts))

    def at(self, ms: int) -> Decimal:
        i = bisect.bisect_right(self.starts_ms, ms) - 1
        if i < 0:
            first = (f" (its first interval starts {iso_ms(self.starts_ms[0])})" if self.starts_ms
                     else ": nothing is imported around that time")
            raise MissingPrice(f"price series '{self.name}' has no value at {iso_ms(ms)}{first}")
        end = self.ends_ms[i] if i < len(self.ends_ms) else None
        if end is not None and ms >= end:
            nxt = self.starts_ms[i + 1] if i + 1 < len(self.starts_ms) else None
            gap = f"for {iso_ms(end)}..{iso_ms(nxt)}" if nxt is not None else f"from {iso_ms(end)} on"
            raise MissingPrice(f"price series '{self.name}' has no value at {iso_ms(ms)}: "
                               f"nothing is imported {gap}")
        return self.values[i]

    def boundaries(self, a: int, b: int) -> list[int]:
        cuts = PriceSeries.boundaries(self, a, b)
        g = self.gap_starts
        lo = bisect.bisect_right(g, a)
        hi = bisect.bisect_left(g, b)
        return sorted(cuts + list(g[lo:hi])) if hi > lo else cuts
