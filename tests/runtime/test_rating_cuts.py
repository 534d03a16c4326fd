"""The engine's cut lists (``runtime.rating._cutter``) against the plain calendar walk
(``_boundaries``): in other zones than UTC the day cuts come from a cached window of two UTC days,
which must give the same cuts across daylight-saving changes, midnights and long sessions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtime import rating
from runtime.rating import CutSpec, RatingContext, zone

_H = 3_600_000
# the days clocks change in each zone (2026), and one ordinary day
_DAYS = ["2026-03-08", "2026-03-29", "2026-04-05", "2026-10-04", "2026-10-25", "2026-11-01", "2026-06-15"]
_SPECS = [CutSpec(day_seconds=(0,)), CutSpec(day_seconds=(0, 9 * 3600, 18 * 3600, 22 * 3600 + 1800)),
          CutSpec(day_seconds=(0, 2 * 3600 + 1800), duration_ms=(4 * _H, 30 * 60_000))]


@pytest.mark.parametrize("tzname", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                                    "UTC"])
@pytest.mark.parametrize("spec", _SPECS)
def test_cuts_equal_the_calendar_walk(tzname: str, spec: CutSpec) -> None:
    tz = zone(tzname)
    cut = rating._cutter(spec)
    ctx = RatingContext()
    checked = 0
    for day in _DAYS:
        base = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000) - 30 * _H
        for k in range(0, 60 * _H, 37 * 60_000 + 13_000):  # starts over 2.5 days, off any whole minute
            start = base + k
            for length in (0, 1, 55 * 60_000, 23 * _H, 47 * _H + 59 * 60_000, 49 * _H, 80 * _H):
                end = start + length
                assert cut(start, end, tz, ctx) == rating._boundaries(spec, start, end, tz, ctx), \
                    (tzname, spec, start, end)
                checked += 1
    assert checked == len(_DAYS) * len(range(0, 60 * _H, 37 * 60_000 + 13_000)) * 7


@pytest.mark.parametrize("spec", _SPECS)
def test_utc_cuts_at_a_session_edge_equal_the_calendar_walk(spec: CutSpec) -> None:
    """In UTC the cuts within one day come from a search of the day's sorted cut times: a session
    starting or ending exactly at a cut (or a millisecond either side) gets the walk's cuts."""
    tz, cut, ctx = zone("UTC"), rating._cutter(spec), RatingContext()
    day = int(datetime(2026, 6, 15, tzinfo=UTC).timestamp() * 1000)
    edges = sorted({day + s * 1000 + d for s in (*spec.day_seconds, 9 * 3600, 86_399) for d in (-1, 0, 1)}
                   | {day, day + 86_400_000})
    for start in edges:
        for end in edges:
            if start <= end:
                assert cut(start, end, tz, ctx) == rating._boundaries(spec, start, end, tz, ctx), (spec, start, end)
