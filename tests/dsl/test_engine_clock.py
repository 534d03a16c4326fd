"""The engine's clock shortcuts equal what they replace: ``_ms`` (epoch milliseconds by integer
arithmetic) equals ``int(dt.timestamp() * 1000)``, and the specialised ``set_time`` (a zone's offset
kept per UTC day, a day with an offset change asked of the zone itself) sets the local fields
``_set_env_time`` sets (``datetime.fromtimestamp``), across DST changes, half- and quarter-hour
offsets, a 30-minute DST shift (Lord Howe) and times before the epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.rating import _DAY_OFFSETS, Env, _ms, _set_env_time, _time_setter, zone
from runtime.sessions import SessionFacts

ZONES = ["Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham",
         "America/New_York", "UTC", "Asia/Kolkata"]
# a rule whose condition has no compiled source: set_time then computes every local field
SET_TIME = _time_setter([SimpleNamespace(predicate=lambda e: True)])  # type: ignore[list-item]
S = SessionFacts(id="s", start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 1, tzinfo=UTC))


def _fields(env: Env) -> tuple[Any, ...]:
    return env.sod, env.wd, env.day, env.date


def _same_clock(ms: int, name: str) -> None:
    tz = zone(name)
    want, got = Env(S, None), Env(S, None)
    _set_env_time(want, ms, tz)
    SET_TIME(got, ms, tz)
    assert _fields(got) == _fields(want), (name, ms)


@pytest.mark.parametrize("name", ZONES)
def test_every_minute_around_the_offset_changes_of_2026(name: str) -> None:
    tz = zone(name)
    # the UTC hours in which the zone's offset changes during 2026, found hour by hour
    t, changes = datetime(2026, 1, 1, tzinfo=UTC), []
    while t.year == 2026:
        if t.astimezone(tz).utcoffset() != (t + timedelta(hours=1)).astimezone(tz).utcoffset():
            changes.append(t)
        t += timedelta(hours=1)
    if name not in ("UTC", "Asia/Kolkata", "Asia/Kathmandu"):
        assert len(changes) == 2
    for c in changes:
        base = _ms(c) - 2 * 3_600_000
        for m in range(5 * 60):  # two hours either side, each minute and a millisecond before it
            _same_clock(base + m * 60_000, name)
            _same_clock(base + m * 60_000 - 1, name)
    # a UTC day within which the offset changes is not kept (the zone decides there); the others are
    for c in changes:
        day = _ms(c) // 86_400_000
        for d in (day - 1, day, day + 1):
            _same_clock(d * 86_400_000 + 43_200_000, name)
            offsets = {datetime.fromtimestamp(d * 86400 + m * 60, tz).utcoffset() for m in range(1440)}
            offsets.add(datetime.fromtimestamp(d * 86400 + 86399.999, tz).utcoffset())
            days = _DAY_OFFSETS.get(tz, {})
            if len(offsets) > 1:
                assert d not in days
            elif name != "UTC":
                assert days[d] == offsets.pop() // timedelta(milliseconds=1)  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10 ** 11), max_value=4 * 10 ** 12), st.sampled_from(ZONES))
def test_any_moment_in_any_zone(ms: int, name: str) -> None:
    _same_clock(ms, name)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1)),
       st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), zone("Europe/Berlin"), None]),
       st.booleans())
def test_epoch_ms_as_timestamp_gives_them(dt: datetime, tz: Any, whole: bool) -> None:
    if whole:
        dt = dt.replace(microsecond=0)
    if tz is not None:
        dt = dt.replace(tzinfo=tz)
    assert _ms(dt) == int(dt.timestamp() * 1000)
