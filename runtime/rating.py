"""The rating engine: a pure function of (compiled tariff, session facts, context).

The DSL compiler (``dsl/compiler.py``) turns a tariff into a ``TariffProgram``: per component kind
an ordered list of ``PricedRule`` (a predicate over the segment environment, a price, a unit, and
options), and ``specialise`` turns a program into its rating function once, deciding at that
point everything that depends only on the tariff. The algorithm is written once, in
``specialise``; every session shape (CDR periods, meter values, start/charging end/end) goes
through it. (The algorithm as it stood before, unspecialised, is kept only as a test oracle:
``tests/runtime/rating_oracle.py``. For OCPI CDR files, ``fused_totals`` generates a tariff's pieces
path and its group totals as one function from the same step definitions, for tariffs of the
common shape; ``tests/dsl/test_engine_equivalence.py`` holds it equal to the engine.) Rating

1. cuts the session into segments: its charging periods (OCPI CDR), or meter-value intervals, or
   one charging and one parking stretch; then splits them at every boundary a condition or an
   indexed price can change at (local time-of-day windows, midnights, duration and energy
   thresholds, grace ends, price-series intervals) — energy pro rata within a segment;
2. per segment and per volume (energy, charging time, parking time, reservation time) takes the
   first rule whose condition holds at the segment start, as OCPI does;
3. applies step sizes once per session per component (the step of the last rule that priced it),
   caps per rule, the minimum/maximum session price, then discounts;
4. returns lines with unrounded amounts and a trace naming the rule behind every amount.

Times are integer epoch milliseconds inside the engine (exact, fast); volumes are ``Decimal``
(kWh and seconds); money is ``Decimal`` in the tariff's currency.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache, partial
from itertools import pairwise
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from runtime.money import ZERO, require_currency
from runtime.rated import Component, RatedLine, RatingResult, TraceEntry, trusted_result
from runtime.sessions import SessionFacts, SessionInputError

__all__ = [
    "TOTAL_GROUPS",
    "CutSpec",
    "DiscountProgram",
    "Env",
    "MissingPrice",
    "PeriodResult",
    "Piece",
    "PiecesFn",
    "PriceSeries",
    "PricedRule",
    "ProductProgram",
    "RateFn",
    "RatingContext",
    "RatingError",
    "RulesetMeta",
    "Specialised",
    "TariffProgram",
    "TotalsFn",
    "energy_stretches",
    "env_at",
    "facts_minutes",
    "finish_session",
    "fused_totals",
    "rate_period",
    "rate_session",
    "session_minutes",
    "specialise",
    "specialised",
    "zone",
]

ONE = Decimal(1)
HUNDRED = Decimal(100)
_MS_PER_S = Decimal(1000)
_S_PER_H = Decimal(3600)
_UTC = UTC

# seconds (for time units) or kWh (for energy units) that one price unit stands for
UNIT_SIZE: dict[str, Decimal] = {
    "kWh": ONE, "Wh": Decimal("0.001"), "MWh": Decimal(1000),
    "s": ONE, "min": Decimal(60), "h": Decimal(3600), "days": Decimal(86400),
    "session": ONE,
}
_UNIT_LABEL = {"min": "min", "h": "h", "s": "s", "kWh": "kWh", "Wh": "Wh", "MWh": "MWh", "days": "d",
               "session": "session"}


class RatingError(ValueError):
    """A session that cannot be rated with this tariff (the message says why)."""


class MissingPrice(RatingError):
    """An indexed price has no series value for the moment it is needed."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# ---------------------------------------------------------------- data supplied by the caller
@dataclass(frozen=True, slots=True)
class PriceSeries:
    """A named price series (e.g. hourly day-ahead prices): value in force from each start."""

    name: str
    starts_ms: tuple[int, ...]
    values: tuple[Decimal, ...]

    @classmethod
    def from_points(cls, name: str, points: Iterable[tuple[datetime, Decimal]]) -> PriceSeries:
        pts = sorted(((int(t.timestamp() * 1000), v) for t, v in points), key=lambda p: p[0])
        return cls(name, tuple(p[0] for p in pts), tuple(p[1] for p in pts))

    def at(self, ms: int) -> Decimal:
        i = bisect.bisect_right(self.starts_ms, ms) - 1
        if i < 0:
            raise MissingPrice(f"price series '{self.name}' has no value at "
                               f"{datetime.fromtimestamp(ms / 1000, _UTC).isoformat()}")
        return self.values[i]

    def boundaries(self, a: int, b: int) -> list[int]:
        lo = bisect.bisect_right(self.starts_ms, a)
        hi = bisect.bisect_left(self.starts_ms, b)
        return list(self.starts_ms[lo:hi])


@dataclass(frozen=True, slots=True)
class RatingContext:
    """Everything besides the session that rating may depend on, passed in as data."""

    series: Mapping[str, PriceSeries] = field(default_factory=dict)
    tz: str | None = None  # evaluate conditions in this zone instead of the location's
    uses: Mapping[str, int] = field(default_factory=dict)  # once-per-customer discount uses so far
    period_uses: Mapping[str, int] = field(default_factory=dict)  # uses in the current billing period
    budget_used: Mapping[str, Decimal] = field(default_factory=dict)  # promotion budgets consumed
    version: str = ""  # the ruleset version label for the trace
    reservation: str | None = None  # overrides the session's reservation kind (OCPI CLI flag)


# ---------------------------------------------------------------- what the compiler produces
@dataclass(frozen=True, slots=True)
class PricedRule:
    kind: str  # start_fee, flat, energy, time, parking, reservation, reservation_fee
    label: str  # "tariff ac_public, line 7: when time 22:00..06:00"
    title: str
    predicate: Callable[[Env], bool] | None  # None = always
    price: Decimal | None  # constant price per unit, or None when ``price_fn`` is used
    price_fn: Callable[[int, Mapping[str, PriceSeries]], Decimal] | None
    unit: str
    vat: Decimal
    step: Decimal | None = None  # in kWh or seconds
    grace_ms: int | None = None  # free until this long after the session start
    grace_idle: Decimal | None = None  # first N seconds/kWh of this component free
    cap: Decimal | None = None
    rule_index: int = 0


@dataclass(frozen=True, slots=True)
class CutSpec:
    """Where prices of one volume group can change within a session."""

    day_seconds: tuple[int, ...] = ()  # local seconds-of-day (0 = midnight: weekday/date/holiday rules)
    duration_ms: tuple[int, ...] = ()  # offsets from the session start (duration rules, grace ends)
    series: tuple[str, ...] = ()  # price series whose intervals matter
    needs_local_time: bool = False  # conditions read the local time of day, weekday or date

    @property
    def any(self) -> bool:
        return bool(self.day_seconds or self.duration_ms or self.series)


_NO_CUTS = CutSpec()


@dataclass(frozen=True, slots=True)
class TariffProgram:
    name: str
    title: str
    currency: str
    timezone: str
    rules: Mapping[str, tuple[PricedRule, ...]]  # per component kind, in first-match order
    vat: Decimal
    min_price: tuple[Decimal, Decimal | None] | None = None
    max_price: tuple[Decimal, Decimal | None] | None = None
    # where prices can change within a session, for charging volumes (energy, time, reservation)
    # and for parking time; and cumulative energy thresholds (kWh)
    charge_cuts: CutSpec = _NO_CUTS
    park_cuts: CutSpec = _NO_CUTS
    energy_kwh: tuple[Decimal, ...] = ()
    dynamic: bool = False  # any condition or price that varies within a session
    needs_local_time: bool = False
    needs_power: bool = False
    legal_for_trade: bool = False  # energy from the signed readings only (``SessionFacts.signed_only``)


@dataclass(frozen=True, slots=True)
class DiscountProgram:
    name: str
    title: str
    label: str
    target: str
    percent: Decimal | None
    fixed: Decimal | None
    predicate: Callable[[Env], bool] | None
    valid_from: int | None  # date ordinal, inclusive
    valid_until: int | None  # exclusive
    once: str  # customer, period, session
    exclusive: bool
    priority: int
    code: str | None
    budget: Decimal | None
    budget_uses: bool
    tariffs: frozenset[str]
    order: int = 0
    needs_time: bool = False  # the condition looks at local time, weekday, date or holidays


@dataclass(frozen=True, slots=True)
class ProductProgram:
    name: str
    title: str
    tariff: str | None
    fee: tuple[Decimal, str] | None
    included_kwh: Decimal | None
    included_sessions: int | None
    tier_mode: str | None
    tiers: tuple[tuple[Decimal, Decimal | None, Decimal], ...]
    vat: Decimal
    label: str


@dataclass(frozen=True, slots=True)
class RulesetMeta:
    name: str
    version: str
    sha256: str
    currency: str
    timezone: str
    rounding: str = "half_up"


# ---------------------------------------------------------------- segments and environment
class _Seg:
    __slots__ = ("a", "b", "energy", "imax", "imin", "park_s", "pmax", "pmin", "resv_s", "time_s")

    def __init__(self, a: int, b: int, energy: Decimal, time_s: Decimal, park_s: Decimal, resv_s: Decimal,
                 pmin: Decimal | None = None, pmax: Decimal | None = None,
                 imin: Decimal | None = None, imax: Decimal | None = None):
        self.a, self.b = a, b
        self.energy, self.time_s, self.park_s, self.resv_s = energy, time_s, park_s, resv_s
        self.pmin, self.pmax, self.imin, self.imax = pmin, pmax, imin, imax

    def split(self, t: int) -> tuple[_Seg, _Seg]:
        # multiply before dividing: exact whenever the share is representable
        num, den = Decimal(t - self.a), Decimal(self.b - self.a)
        e1 = self.energy * num / den if self.energy else ZERO
        t1 = self.time_s * num / den if self.time_s else ZERO
        p1 = self.park_s * num / den if self.park_s else ZERO
        r1 = self.resv_s * num / den if self.resv_s else ZERO
        first = _Seg(self.a, t, e1, t1, p1, r1, self.pmin, self.pmax, self.imin, self.imax)
        second = _Seg(t, self.b, self.energy - e1, self.time_s - t1, self.park_s - p1, self.resv_s - r1,
                      self.pmin, self.pmax, self.imin, self.imax)
        return first, second


class Env:
    """What a condition sees at a segment start. Session-level facts are on ``s``."""

    __slots__ = ("cur", "date", "day", "el", "fees", "kwh", "pw", "resv", "s", "sod", "wd")

    def __init__(self, s: SessionFacts, resv: str | None):
        self.s = s
        self.resv = resv
        self.sod = 0
        self.wd = 0
        self.day = 0
        self.date: date | None = None
        self.kwh = ZERO
        self.el = 0
        self.pw: Decimal | None = None
        self.cur: Decimal | None = None
        # (power, current) of the first charging and first reservation period, for once-per-session fees
        self.fees: dict[str, tuple[Decimal | None, Decimal | None]] = {}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(dt: datetime) -> int:
    """``int(dt.timestamp() * 1000)``: for an aware time on a whole second (most are), by integer
    arithmetic on its distance from the epoch (timestamp()'s float conversion cost a third more)."""
    try:
        d = dt - _EPOCH
    except TypeError:  # naive: timestamp() reads it as local time
        return int(dt.timestamp() * 1000)
    if d.microseconds:  # the float's truncation, as before
        return int(dt.timestamp() * 1000)
    return (d.days * 86400 + d.seconds) * 1000


def _sec(ms: int) -> Decimal:
    return Decimal(ms) / _MS_PER_S


def session_minutes(s: SessionFacts) -> tuple[Decimal, Decimal]:
    """(charging, parking) minutes of a session as rating measures them: from its periods, its
    meter values, or its ``charging_end`` (the rest of the session is parking), whichever it has.
    Statements print these, so what they show is what the blocking fee was priced on."""
    segs = base_segments(s)
    charging = sum((g.time_s for g in segs), Decimal(0)) / 60
    parking = sum((g.park_s for g in segs), Decimal(0)) / 60
    return charging, parking


def facts_minutes(facts: Mapping[str, Any] | None) -> tuple[Decimal, Decimal] | None:
    """``session_minutes`` of a session stored as its facts (the ``evbill rate`` JSON shape),
    rounded to whole minutes; None when there are no facts or they do not parse."""
    if not facts:
        return None
    try:
        charging, parking = session_minutes(SessionFacts.from_dict(facts))
    except (SessionInputError, KeyError, TypeError, ValueError):
        return None
    return charging.quantize(ONE), parking.quantize(ONE)


def base_segments(s: SessionFacts) -> list[_Seg]:
    """The session's measured stretches before any boundary splitting; a session started with a
    reservation (``reserved_from``) begins with the reserved stretch, reservation time only; a
    reservation that expired unused is a session reserved from its own start, without energy: all
    of it is reservation time."""
    if s.reserved_from is None or s.periods:
        return _measured_segments(s)
    a, b = _ms(s.reserved_from), _ms(s.start)
    if a == b and not s.energy_kwh and not s.meter_values:
        # a reservation that expired unused: reserved from its start, all of it reservation time
        e = _ms(s.end)
        return [_Seg(a, e, ZERO, ZERO, ZERO, _sec(e - a))]
    segs = _measured_segments(s)
    if a < b:
        segs.insert(0, _Seg(a, b, ZERO, ZERO, ZERO, _sec(b - a)))
    return segs


def _measured_segments(s: SessionFacts) -> list[_Seg]:
    if s.periods:
        out = []
        for p in s.periods:
            a, b = _ms(p.start), _ms(p.end)
            out.append(_Seg(a, max(a, b), p.energy_kwh, p.time_h * 3600, p.parking_h * 3600, p.reservation_h * 3600,
                            p.min_power_kw, p.max_power_kw, p.min_current_a, p.max_current_a))
        return out
    start, end = _ms(s.start), _ms(s.end)
    charge_end = min(_ms(s.charging_end), end) if s.charging_end is not None else None
    if s.meter_values:
        return _meter_segments(s, start, end, charge_end)
    ce = end if charge_end is None else max(start, charge_end)
    out = [_Seg(start, ce, s.energy_kwh, _sec(ce - start), ZERO, ZERO)]
    if ce < end:
        out.append(_Seg(ce, end, ZERO, ZERO, _sec(end - ce), ZERO))
    return out


def _meter_segments(s: SessionFacts, start: int, end: int, charge_end: int | None) -> list[_Seg]:
    mvs = [m for m in s.meter_values or () if start <= _ms(m.at) <= end]
    points: list[tuple[int, Decimal]] = [(_ms(m.at), m.energy_wh) for m in mvs]
    power_at = {_ms(m.at): m.power_w / 1000 for m in mvs if m.power_w is not None}
    out: list[_Seg] = []
    if not points or points[0][0] > start:
        base = points[0][1] if points else ZERO
        points.insert(0, (start, base))
    if points[-1][0] < end:
        points.append((end, points[-1][1]))
    if s.energy_kwh and len(points) >= 2:
        # the stop reading is authoritative; readings only say how energy spread over time
        measured = (points[-1][1] - points[0][1]) / 1000
        if measured <= 0:
            points[-1] = (points[-1][0], points[0][1] + s.energy_kwh * 1000)
    # charging lasts until the last reading that still shows energy flowing (or the charger's own
    # charging end); pauses before that are charging time, everything after it is parking
    if charge_end is None:
        charge_end = start
        for (_, ea), (b, eb) in pairwise(points):
            if eb > ea:
                charge_end = b
    for (a, ea), (b, eb) in pairwise(points):
        if b <= a:
            continue
        kwh = max(ZERO, (eb - ea) / 1000)
        secs = _sec(b - a)
        # the charger's own power readings at either end of the interval, when it sent them
        seen = [power_at[t] for t in (a, b) if t in power_at]
        pmax = max(seen) if seen else None
        if a >= charge_end:
            out.append(_Seg(a, b, kwh, ZERO, secs, ZERO, pmax=pmax))
        elif b > charge_end:
            first, second = _Seg(a, b, kwh, secs, ZERO, ZERO, pmax=pmax).split(charge_end)
            second.park_s, second.time_s = second.time_s, ZERO
            out += [first, second]
        else:
            out.append(_Seg(a, b, kwh, secs, ZERO, ZERO, pmax=pmax))
    if not out:
        out.append(_Seg(start, end, s.energy_kwh, _sec(end - start), ZERO, ZERO))
    return out


def _boundaries(prog: CutSpec, start: int, end: int, tz: ZoneInfo, ctx: RatingContext) -> list[int]:
    cuts: set[int] = set()
    if prog.day_seconds:
        key = tz.key
        d = datetime.fromtimestamp(start / 1000, tz).toordinal() - 1
        last = datetime.fromtimestamp(end / 1000, tz).toordinal() + 1
        while d <= last:
            for t in _day_cuts(key, d, prog.day_seconds):
                if start < t < end:
                    cuts.add(t)
            d += 1
    for off in prog.duration_ms:
        t = start + off
        if start < t < end:
            cuts.add(t)
    for name in prog.series:
        ser = ctx.series.get(name)
        if ser is not None:
            cuts.update(ser.boundaries(start, end))
    return sorted(cuts)


@lru_cache(maxsize=1 << 16)
def _day_cuts(tzname: str, ordinal: int, day_seconds: tuple[int, ...]) -> tuple[int, ...]:
    """UTC epoch ms of each local second-of-day boundary on one local date (DST-correct, cached)."""
    tz = zone(tzname)
    d = date.fromordinal(ordinal)
    midnight = datetime(d.year, d.month, d.day, tzinfo=tz)
    return tuple(_ms(midnight + timedelta(seconds=sod)) for sod in day_seconds)


def _split(segs: list[_Seg], cuts: list[int]) -> list[_Seg]:
    if not cuts:
        return segs
    out: list[_Seg] = []
    ci = 0
    for seg in segs:
        while ci < len(cuts) and cuts[ci] <= seg.a:
            ci += 1
        cur = seg
        j = ci
        while j < len(cuts) and cuts[j] < cur.b:
            first, cur = cur.split(cuts[j])
            out.append(first)
            j += 1
        out.append(cur)
    return out


def _split_energy(segs: list[_Seg], thresholds: tuple[Decimal, ...]) -> list[_Seg]:
    """Split where the cumulative energy crosses a threshold (constant power within a segment)."""
    out: list[_Seg] = []
    cum = ZERO
    for seg in segs:
        cur = seg
        for th in thresholds:
            if cur.energy > 0 and cum < th < cum + cur.energy and cur.b > cur.a:
                f = (th - cum) / cur.energy
                t = cur.a + int((Decimal(cur.b - cur.a) * f).to_integral_value())
                if cur.a < t < cur.b:
                    first, cur = cur.split(t)
                    # keep the energy exactly at the threshold (time was rounded to a millisecond)
                    delta = (th - cum) - first.energy
                    first.energy += delta
                    cur.energy -= delta
                    out.append(first)
                    cum += first.energy
        out.append(cur)
        cum += cur.energy
    return out


def _set_env_time(env: Env, ms: int, tz: ZoneInfo) -> None:
    dt = datetime.fromtimestamp(ms / 1000, tz)
    env.sod = dt.hour * 3600 + dt.minute * 60 + dt.second
    env.wd = dt.weekday()
    d = dt.date()
    env.date = d
    env.day = d.toordinal()


def _seg_power(seg: _Seg, s: SessionFacts) -> Decimal | None:
    if seg.pmax is not None:
        return seg.pmax
    if seg.pmin is not None:
        return seg.pmin
    # no measured power for the stretch: the EVSE's rated power decides (a tariff's "power >= 150 kW"
    # means the charger class the driver chose, not an average over a tapering charge)
    return s.max_power_kw


def _first(rules: Sequence[PricedRule], env: Env) -> PricedRule | None:
    for r in rules:
        if r.predicate is None or r.predicate(env):
            return r
    return None


_FLAT_KINDS = ("start_fee", "flat")


def _price_of(r: PricedRule, ms: int, ctx: RatingContext) -> Decimal:
    if r.price is not None:
        return r.price
    assert r.price_fn is not None
    return r.price_fn(ms, ctx.series)


_DEFAULT_CTX = RatingContext()


# a base segment as the engine walks it: (start ms, end ms, kWh, charging s, parking s, reservation s,
# power kW and current A that conditions see there)
_Piece = tuple[int, int, Decimal, Decimal, Decimal, Decimal, Decimal | None, Decimal | None]
Piece = _Piece  # what Specialised.pieces takes, one per base segment


def _segments(s: SessionFacts, start: int, end: int, thresholds: tuple[Decimal, ...]) -> list[_Piece]:
    """``base_segments`` (then ``_split_energy`` at ``thresholds``) as tuples, built directly for
    the two common shapes: CDR periods, and a plain session (charging, then parking)."""
    if s.periods and not thresholds:
        out: list[_Piece] = []
        mp = s.max_power_kw
        for p in s.periods:
            a, b = _ms(p.start), _ms(p.end)
            pw = p.max_power_kw if p.max_power_kw is not None else (
                p.min_power_kw if p.min_power_kw is not None else mp)
            out.append((a, max(a, b), p.energy_kwh, p.time_h * 3600, p.parking_h * 3600,
                        p.reservation_h * 3600, pw, p.max_current_a if p.max_current_a is not None else p.min_current_a))
        return out
    if not s.periods and not s.meter_values and not thresholds and s.reserved_from is None:
        ce = end if s.charging_end is None else max(start, min(_ms(s.charging_end), end))
        mp = s.max_power_kw
        if ce < end:
            return [(start, ce, s.energy_kwh, _sec(ce - start), ZERO, ZERO, mp, None),
                    (ce, end, ZERO, ZERO, _sec(end - ce), ZERO, mp, None)]
        return [(start, ce, s.energy_kwh, _sec(ce - start), ZERO, ZERO, mp, None)]
    segs = base_segments(s)
    if thresholds:
        segs = _split_energy(segs, thresholds)
    return [(g.a, g.b, g.energy, g.time_s, g.park_s, g.resv_s, _seg_power(g, s),
             g.imax if g.imax is not None else g.imin) for g in segs]


RateFn = Callable[[SessionFacts, "RatingContext | None"], RatingResult]
# (session facts for conditions, context, base pieces, start ms, end ms) -> (lines, kWh, charging h, parking h)
PiecesFn = Callable[[SessionFacts, "RatingContext", "list[_Piece]", int, int],
                    "tuple[list[RatedLine], Decimal, Decimal, Decimal]"]
_UTC_ZONE = zone("UTC")
_NO_FEES: dict[str, tuple[Decimal | None, Decimal | None]] = {}  # never written: only env's fees are
_NO_USES: list[tuple[str, Decimal]] = []
# RatedLine / TraceEntry from a tuple of every field, without the NamedTuple's Python-level __new__
# (rating builds several per session): the same tuples, made with one C call
_new_line: Callable[[tuple[Any, ...]], RatedLine] = partial(tuple.__new__, RatedLine)
_new_trace: Callable[[tuple[Any, ...]], TraceEntry] = partial(tuple.__new__, TraceEntry)  # never written: a discount gets a list of its own
# (rule, predicate, unit size or None, unit label, cost group, accumulator key when the price is constant)
_Entry = tuple[PricedRule, "Callable[[Env], bool] | None", "Decimal | None", str, str,
               "tuple[int, Decimal] | None"]
# a session's rating state: (start ms, zone, environment, accumulated volumes, trace, price series,
# step state (last rule and total per component) or None, idle grace used per rule or None)
_Run = tuple[int, "ZoneInfo | None", "Env | None", "dict[tuple[int, Decimal], list[Any]]", "list[TraceEntry] | None",
             "Mapping[str, PriceSeries]", "tuple[dict[str, PricedRule], dict[str, Decimal]] | None",
             "dict[int, Decimal] | None"]
_DAY_MS = 86_400_000
_Cuts = Callable[[int, int, ZoneInfo, RatingContext], list[int]]


def _rule_table(rules: Mapping[str, tuple[PricedRule, ...]], kind: str) -> tuple[_Entry, ...]:
    """Step 2's table for one component kind, in first-match order: (rule, predicate, the unit's
    size or None when volumes are already in the unit, the unit's label, the cost group, the
    accumulator key when the price is constant); () when nothing prices it."""
    return tuple((r, r.predicate, None if UNIT_SIZE[r.unit] == ONE else UNIT_SIZE[r.unit], _UNIT_LABEL[r.unit],
                  _GROUP[r.kind], None if r.price is None else (id(r), r.price)) for r in rules.get(kind, ()))


def _chooser(table: tuple[_Entry, ...]) -> Callable[[Env | None], _Entry | None]:
    """Step 2's search for one rule table as one function: the first entry whose condition holds
    (None when none does), the conditions' expressions inlined in first-match order. Built from
    the source the DSL compiler attaches to each predicate (``expr_source``: the expression over
    ``e``, the environment, and its constants); a plain search when a predicate has none."""
    params: dict[str, Any] = {}
    body: list[str] = []
    for i, entry in enumerate(table):
        params[f"_e{i}"] = entry
        pred = entry[1]
        if pred is None:
            body.append(f"    return _e{i}")
            break
        src = getattr(pred, "expr_source", None)
        if src is None:
            def search(env: Env | None) -> _Entry | None:
                for entry in table:
                    if entry[1] is None or entry[1](env):  # type: ignore[arg-type]
                        return entry
                return None
            return search
        expr, consts = src
        for name, value in consts.items():
            params[f"_r{i}{name}"] = value
        expr = re.sub(r"\b(_k\d+)\b", lambda m: f"_r{i}{m.group(1)}", expr)  # noqa: B023
        body.append(f"    if {expr}:\n        return _e{i}")
    else:
        body.append("    return None")
    code = "def choose(e" + "".join(f", {n}={n}" for n in params) + "):\n" + "\n".join(body) + "\n"
    ns = dict(params)
    exec(compile(code, "<rule choice>", "exec"), ns)
    fn: Callable[[Env | None], _Entry | None] = ns["choose"]
    return fn


def _session_test(pred: Callable[[Env], bool] | None) -> tuple[Callable[[Env], bool] | None,
                                                                  Callable[[SessionFacts], bool] | None]:
    """(pred, None), or (None, the same condition as a function of the session) when ``pred``'s
    compiled expression (``expr_source``) reads nothing but the session's facts (``e.s``): a
    group, product, token or code condition, tested without an environment."""
    src = getattr(pred, "expr_source", None)
    if src is None:
        return pred, None
    expr, consts = src
    if set(_E_FIELD.findall(expr)) != {"s"} or re.search(r"\be\b(?!\.s\b)", expr):
        return pred, None
    params = "".join(f", {n}={n}" for n in consts)
    code = f"def on_session(s{params}):\n    return bool({_E_S.sub('s', expr)})\n"
    ns = dict(consts)
    exec(compile(code, "<condition on the session>", "exec"), ns)
    return None, ns["on_session"]


_E_FIELD = re.compile(r"\be\.(\w+)")  # an environment field a compiled condition reads
_E_S = re.compile(r"\be\.s\b")


def _cutter(spec: CutSpec) -> _Cuts:
    """``_boundaries`` for one cut spec, by its cheapest means: offsets from the start alone (grace
    ends, duration rules) or one price series' own interval starts need no calendar."""
    if not spec.day_seconds and not spec.series:
        offsets = spec.duration_ms  # sorted, so the cuts come out sorted
        if len(offsets) == 1:  # one grace end or duration rule (the common case): no comprehension
            (offset,) = offsets

            def one_offset(start: int, end: int, tz: ZoneInfo, ctx: RatingContext) -> list[int]:
                t = start + offset
                return [t] if start < t < end else []
            return one_offset

        def offsets_only(start: int, end: int, tz: ZoneInfo, ctx: RatingContext) -> list[int]:
            return [t for t in (start + d for d in offsets) if start < t < end]
        return offsets_only
    if not spec.day_seconds and not spec.duration_ms and len(spec.series) == 1:
        name = spec.series[0]

        def one_series(start: int, end: int, tz: ZoneInfo, ctx: RatingContext) -> list[int]:
            ser = ctx.series.get(name)
            return ser.boundaries(start, end) if ser is not None else []
        return one_series
    if spec.series:
        return lambda start, end, tz, ctx: _boundaries(spec, start, end, tz, ctx)
    day_ms = tuple(sod * 1000 for sod in spec.day_seconds)
    durations = spec.duration_ms
    # another zone: per (zone, UTC day) every local cut of the local days that can fall within
    # that UTC day and the next (``_boundaries``' days, one more on each side), sorted
    windows: dict[tuple[str, int], list[int]] = {}
    days_only = CutSpec(day_seconds=spec.day_seconds)
    after, before = bisect.bisect_right, bisect.bisect_left

    def window(tz: ZoneInfo, day: int) -> list[int]:
        if len(windows) > 4096:
            windows.clear()
        lo, hi = day * _DAY_MS, (day + 2) * _DAY_MS
        windows[tz.key, day] = got = _boundaries(days_only, lo - 1, hi + 1, tz, _DEFAULT_CTX)
        return got

    def calendar(start: int, end: int, tz: ZoneInfo, ctx: RatingContext) -> list[int]:
        if tz is not _UTC_ZONE or start < 0:
            day = start // _DAY_MS
            if end > (day + 2) * _DAY_MS or start < 0:
                return _boundaries(spec, start, end, tz, ctx)
            # the window is sorted: the cuts strictly inside start..end are one slice of it
            w = windows.get((tz.key, day)) or window(tz, day)
            cuts = w[after(w, start):before(w, end)]
        # in UTC a local day is 86,400,000 ms long from the epoch on: the cuts are arithmetic,
        # in order (days ascending, seconds of the day ascending)
        else:
            base = start - start % _DAY_MS
            if end - base <= _DAY_MS:  # within one day (most sessions): offsets into it (sorted)
                i, j = after(day_ms, start - base), before(day_ms, end - base)
                cuts = [] if i >= j else [base + day_ms[i]] if j == i + 1 else [base + x for x in day_ms[i:j]]
            else:
                cuts = [t for d in range(start // _DAY_MS, end // _DAY_MS + 1) for t in
                        (d * _DAY_MS + x for x in day_ms) if start < t < end]
        if durations:
            cuts = sorted(set(cuts).union(t for t in (start + off for off in durations) if start < t < end))
        return cuts
    return calendar


def _env_reads(rules: Sequence[PricedRule]) -> set[str]:
    """The environment fields the rules' conditions read: from their compiled expressions
    (``expr_source``); every field when a condition has none."""
    names: set[str] = set()
    for r in rules:
        if r.predicate is not None:
            src = getattr(r.predicate, "expr_source", None)
            if src is None:
                return set(_ENV_FIELDS)
            names.update(_E_FIELD.findall(src[0]))
    return names


def _time_setter(rules: Sequence[PricedRule]) -> Callable[[Env, int, ZoneInfo], None]:
    """``_set_env_time`` computing only the local-time fields the rules' conditions read
    (``_env_reads``)."""
    names = _env_reads(rules)
    sod, wd, day = "sod" in names, "wd" in names, "day" in names or "date" in names
    fromts = datetime.fromtimestamp
    from_ordinal = date.fromordinal

    def set_time(env: Env, ms: int, tz: ZoneInfo) -> None:
        if tz is _UTC_ZONE:  # no offsets to look up
            off: int | None = 0 if ms >= 0 else None
        else:
            # another zone: its offset during the UTC day of ``ms`` (kept), when one offset holds for
            # the whole day
            days_off = _DAY_OFFSETS.get(tz)
            off = days_off.get(ms // _DAY_MS) if days_off is not None else None
            if off is None and ms >= 0:
                off = _day_offset(tz, ms // _DAY_MS)
        if off is not None:
            # the fields are arithmetic on the local epoch second (1970-01-01, ordinal 719163, was a Thursday)
            sec = (ms + off) // 1000
            days = sec // 86400
            if sod:
                env.sod = sec % 86400
            if wd:
                env.wd = (days + 3) % 7
            if day:
                env.day = days + 719163
                env.date = from_ordinal(days + 719163)
            return
        dt = fromts(ms / 1000, tz)
        if sod:
            env.sod = dt.hour * 3600 + dt.minute * 60 + dt.second
        if wd:
            env.wd = dt.weekday()
        if day:
            d = dt.date()
            env.date = d
            env.day = d.toordinal()
    return set_time


# per zone, per UTC day (epoch ms // _DAY_MS, from the epoch on): the zone's UTC offset in ms throughout
# that day (a day within which the offset changes is not kept: set_time asks the zone itself there)
_DAY_OFFSETS: dict[ZoneInfo, dict[int, int]] = {}


def _day_offset(tz: ZoneInfo, day: int) -> int | None:
    """``tz``'s offset in ms throughout UTC day ``day`` (kept in ``_DAY_OFFSETS``), or None when it
    changes within the day. The offset is read at each whole UTC hour of the day and at its last
    millisecond; one offset at all of them is one offset throughout: no zone changes its offset and
    back within an hour."""
    fromts = datetime.fromtimestamp
    first = fromts(day * 86400, tz).utcoffset()
    if first is None or first.microseconds:
        return None
    for t in range(day * 86400 + 3600, day * 86400 + 86400, 3600):
        if fromts(t, tz).utcoffset() != first:
            return None
    if fromts(day * 86400 + 86399.999, tz).utcoffset() != first:
        return None
    days = _DAY_OFFSETS.get(tz)
    if days is None or len(days) > 1 << 14:
        days = _DAY_OFFSETS[tz] = {}
    off = days[day] = (first.days * 86400 + first.seconds) * 1000
    return off


def _discount_env(s: SessionFacts, resv: str | None, env: Env | None) -> Env:
    """What discount conditions see: a fresh environment with the session's rated power, or the
    rating's own environment (rating is done with it) put back into that state."""
    if env is None:
        env = Env(s, resv)
    else:
        env.sod = env.wd = env.day = env.el = 0
        env.date = None
        env.kwh = ZERO
        env.cur = None
    env.pw = s.max_power_kw
    return env


def rate_session(prog: TariffProgram, discounts: Sequence[DiscountProgram], meta: RulesetMeta,
                 s: SessionFacts, ctx: RatingContext | None = None) -> RatingResult:
    """Rate one session with ``prog``. Pure: the same inputs give the same lines, always.

    A one-off convenience: it specialises the engine for ``prog`` on every call. Callers that rate
    many sessions keep ``specialise(prog, discounts, meta)`` (``CompiledRuleset`` does)."""
    return specialise(prog, discounts, meta)(s, ctx)


def specialise(prog: TariffProgram, discounts: Sequence[DiscountProgram], meta: RulesetMeta) -> RateFn:
    """The rating function of one tariff (``specialised(...).rate``)."""
    return specialised(prog, discounts, meta).rate


class Specialised(NamedTuple):
    """One tariff's rating, specialised (``specialised``): ``rate`` rates a session into a
    ``RatingResult``; ``pieces``, where the tariff allows it, runs the same steps on a session the
    caller has already cut into its base pieces (``_Piece``: start ms, end ms, kWh, charging s,
    parking s, reservation s, power kW, current A) -- ``pieces(facts, ctx, pieces, start ms, end
    ms)``, which is ``rate`` itself given the pieces -- and returns only the lines (after caps and the
    minimum/maximum price) and the volumes, without a trace or a result object: the OCPI CDR file
    path (``dsl.ocpi``), where nothing but the totals is printed."""

    rate: RateFn
    pieces: PiecesFn | None


def specialised(prog: TariffProgram, discounts: Sequence[DiscountProgram], meta: RulesetMeta) -> Specialised:
    """The rating algorithm, specialised for one tariff: the one implementation of rating.

    Everything that depends only on the tariff is decided here, once: which components are priced
    and by which rules (with their predicates, unit sizes, labels and groups), whether a session
    can be cut at all and where the cuts of each volume group come from, whether local time,
    power, grace periods or step sizes matter, which discounts can apply. The returned function
    rates any session shape (CDR periods, meter values, or start/charging end/end) by the
    algorithm of the module docstring:

    1. the session's base segments (``base_segments``), cut at energy thresholds and at the
       boundaries of the tariff's conditions and price series, volumes pro rata;
    2. per piece and volume, the first rule whose condition holds at the piece's start;
    3. step sizes once per session per component, then once-per-session fees, then
       ``finish_session`` (caps, minimum/maximum price, discounts).
    """
    rules = prog.rules
    cur = prog.currency
    default_tz = prog.timezone

    def table(kind: str) -> tuple[_Entry, ...]:
        return _rule_table(rules, kind)

    e_rules, t_rules, p_rules, r_rules = table("energy"), table("time"), table("parking"), table("reservation")
    # (kind, the lone unconditional entry or None, the table's choice function)
    fee_tables = tuple((kind, t[0] if len(t) == 1 and t[0][1] is None else None, _chooser(t))
                       for kind, t in ((kind, table(kind)) for kind in _FLAT_KINDS if rules.get(kind)))
    rfee_rules = table("reservation_fee")
    rfee_choose = _chooser(rfee_rules)
    # whether the once-per-session fees' rules read the environment at all (not when each fee is
    # one rule without a condition and there is no reservation fee)
    fees_read_env = bool(rfee_rules) or any(flone is None for _kind, flone, _choose in fee_tables)
    mine = tuple(d for d in discounts if not d.tariffs or prog.name in d.tariffs)
    every = [r for rs in rules.values() for r in rs]
    any_step = any(r.step for r in every)
    any_idle = any(r.grace_idle is not None for r in every)
    # conditions (and grace periods by time) read the environment; without them it is not kept
    uses_env = any(r.predicate is not None or r.grace_ms is not None for r in every)
    any_cap = any(r.cap is not None for r in every)
    bounded = prog.min_price is not None or prog.max_price is not None
    # a capped rule whose label and kind are its own (no other rule's lines carry them): its lines are
    # those it priced, so rate() sums them as it makes them instead of apply_caps' search of all lines
    rule_ids: dict[tuple[str, str], set[int]] = {}
    for r in every:
        rule_ids.setdefault((r.label, r.kind), set()).add(id(r))
    own_caps = any_cap and all(len(rule_ids[r.label, r.kind]) == 1 for r in every if r.cap is not None)
    cap_texts = {id(r): _cap_texts(r) for r in every if r.cap is not None}

    def caps(acc: dict[tuple[int, Decimal], list[Any]], sums: dict[int, list[Any]] | None, lines: list[RatedLine],
             trace: list[TraceEntry], sid: str, end: int) -> None:
        """apply_caps over the rules that priced: from the sums made with the lines, when ``own_caps``."""
        if own_caps:
            if sums is not None:
                for rr, got in sums.values():
                    if got > rr.cap:
                        _cap_line(rr, got, lines, trace, cur, sid, end, cap_texts[id(rr)])
            return
        capped = [a[0] for a in acc.values() if a[0].cap is not None]
        if capped:  # apply_caps looks only at the capped rules among those that priced
            apply_caps(lines, trace, capped, cur, sid, end)
    # a discount whose condition reads no clock is tested on the session before the discount
    # step runs at all (as _apply_discounts would test it): most sessions have none that applies
    # (a condition over the session's own facts, ``e.s``, is tested on the session itself, without
    # an environment: ``_session_test``)
    quick = tuple((d.code, *_session_test(d.predicate if not d.needs_time and d.valid_from is None
                                          and d.valid_until is None else None)) for d in mine)
    set_time = _time_setter(every)
    # the energy so far and the time elapsed are kept only where a condition reads them (or, for
    # the elapsed time, a grace period ends by it)
    reads = _env_reads(every)
    track_kwh = "kwh" in reads
    track_el = "el" in reads or any(r.grace_ms is not None for r in every)
    thresholds = prog.energy_kwh if prog.dynamic else ()
    spec_c = _cutter(prog.charge_cuts) if prog.dynamic and prog.charge_cuts.any else None
    spec_p = _cutter(prog.park_cuts) if prog.dynamic and prog.park_cuts.any else None
    time_c = prog.charge_cuts.needs_local_time
    time_p = prog.park_cuts.needs_local_time
    # the once-per-session fees set the clock only when their own conditions read it
    fee_time = prog.needs_local_time and bool(
        _env_reads([r for kind in (*_FLAT_KINDS, "reservation_fee") for r in rules.get(kind, ())])
        & {"sod", "wd", "day", "date"})
    need_power = prog.needs_power
    charged = bool(e_rules or t_rules or r_rules)
    # the zone is looked up only when something reads local time (an unknown zone is refused always)
    needs_zone = bool(prog.needs_local_time or time_c or time_p or spec_c or spec_p or mine)
    no_cuts: list[int] = []
    ms_per_s = _MS_PER_S
    new_line, new_trace = _new_line, _new_trace
    s_per_h = _S_PER_H  # a Decimal: dividing by an int would convert it on every call

    def pricer(kind: str, table: tuple[_Entry, ...]) -> Callable[[Decimal, int, int, _Run], None]:
        """Step 2 for one volume: the first rule of ``table`` whose condition holds prices ``vol``
        (its grace first). Built per table: a lone unconditional rule is taken without a search,
        grace and step bookkeeping only where the tariff has them."""
        grace = any(e[0].grace_ms is not None or e[0].grace_idle is not None for e in table)
        lone = table[0] if len(table) == 1 and table[0][1] is None else None
        choose = _chooser(table)
        step = any_step
        trace_entry = _new_trace

        def price_volume(vol: Decimal, a: int, b: int, run: _Run) -> None:
            if lone is not None:
                entry = lone
            else:
                found = choose(run[2])
                if found is None:
                    return
                entry = found
            r = entry[0]
            size = entry[2]
            if grace:
                free = ZERO
                if r.grace_ms is not None and run[2].el < r.grace_ms:  # type: ignore[union-attr]
                    free = vol  # boundaries were cut at the grace end, so the whole piece is inside
                elif r.grace_idle is not None:
                    idle_used = run[7]
                    used = idle_used.get(id(r), ZERO)  # type: ignore[union-attr]
                    free = min(vol, max(ZERO, r.grace_idle - used))
                    idle_used[id(r)] = used + vol  # type: ignore[index]
                if free:
                    if run[4] is not None:
                        run[4].append(trace_entry((kind, r.label, a, b, free if size is None else free / size, ZERO,
                                               "free (grace)")))
                    vol = vol - free
                    if not vol:
                        return
            key = entry[5]
            if key is None:
                price = r.price_fn(a, run[5])  # type: ignore[misc]
                key = (id(r), price)
            else:
                price = key[1]
            acc = run[3]
            slot = acc.get(key)
            if slot is None:
                acc[key] = [r, price, vol, entry]
            else:
                slot[2] += vol
            if step:
                last_rule, kind_total = run[6]  # type: ignore[misc]
                last_rule[kind] = r
                kind_total[kind] = kind_total.get(kind, ZERO) + vol
            if run[4] is not None:
                run[4].append(trace_entry((kind, r.label, a, b, vol if size is None else vol / size, price, "")))
        return price_volume

    price_e, price_t = pricer("energy", e_rules), pricer("time", t_rules)
    price_p, price_r = pricer("parking", p_rules), pricer("reservation", r_rules)

    def charge(a: int, b0: int, se: Decimal, st: Decimal, sr: Decimal, kwh: Decimal, cuts: list[int],
               run: _Run) -> Decimal:
        """Price a segment's charging volumes, cut at ``cuts`` exactly as _Seg.split cuts
        (multiply first); returns the energy charged so far, ``kwh`` before it."""
        env = run[2]
        if cuts:
            j, n = bisect.bisect_right(cuts, a), len(cuts)
        else:
            j = n = 0
        while True:
            if j < n and cuts[j] < b0:
                b = cuts[j]
                num, den = b - a, b0 - a  # ints: converted exactly inside the arithmetic, as Decimal(int) would
                # only volumes some rule prices are cut (energy always: conditions read it)
                e = se * num / den if se else ZERO
                se = se - e
                t = r = ZERO
                if st and t_rules:
                    t = st * num / den
                    st = st - t
                if sr and r_rules:
                    r = sr * num / den
                    sr = sr - r
                j += 1
            else:
                b, e, t, r = b0, se, st, sr
            if env is not None:
                if track_kwh:
                    env.kwh = kwh
                if track_el:
                    env.el = a - run[0]
                if time_c:
                    set_time(env, a, run[1])  # type: ignore[arg-type]
            if e and e_rules:
                price_e(e, a, b, run)
            if t and t_rules:
                price_t(t, a, b, run)
            if r and r_rules:
                price_r(r, a, b, run)
            if e and track_kwh:  # a Decimal addition costs as much as a dozen plain steps: zeros are not added
                kwh = e if kwh is ZERO else kwh + e
            if b == b0:
                return kwh
            a = b

    def park(a: int, b0: int, sp: Decimal, kwh: Decimal, cuts: list[int], run: _Run) -> None:
        """Price a segment's parking, as of the segment's start (what was charged before it),
        as in OCPI; cut at ``cuts``."""
        env = run[2]
        if env is not None and track_kwh:
            env.kwh = kwh
        if cuts:
            j, n = bisect.bisect_right(cuts, a), len(cuts)
        else:
            j = n = 0
        while True:
            if j < n and cuts[j] < b0:
                b = cuts[j]
                p = sp * (b - a) / (b0 - a) if sp else ZERO
                sp = sp - p
                j += 1
            else:
                b, p = b0, sp
            if env is not None:
                if track_el:
                    env.el = a - run[0]
                if time_p:
                    set_time(env, a, run[1])  # type: ignore[arg-type]
            if p:
                price_p(p, a, b, run)
            if b == b0:
                return
            a = b

    def rate(s: SessionFacts, ctx: RatingContext | None = None, pieces: list[_Piece] | None = None,
             p_start: int = 0, p_end: int = 0) -> Any:
        """Rate ``s`` into a RatingResult; or, given ``pieces`` (its base segments, made by the
        caller) with its start and end ms, only (lines, kWh, charging h, parking h) after caps
        and bounds, without a trace (``Specialised.pieces``)."""
        ctx = ctx or _DEFAULT_CTX
        tz: ZoneInfo | None = None
        tzname = ctx.tz or s.timezone
        if tzname or needs_zone:
            tzname = tzname or default_tz
            try:
                tz = zone(tzname)
            except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
                raise RatingError(f"session {s.id!r}: unknown time zone {tzname!r}") from None
        resv = ctx.reservation or s.reservation
        trace: list[TraceEntry] | None
        segs: list[_Piece] | None
        if pieces is None:
            start = _ms(s.start)
            end = _ms(s.end)
            segs = None if not s.periods and not s.meter_values and not thresholds and s.reserved_from is None else \
                _segments(s, start, end, thresholds)
            trace = []
        else:
            start, end, segs, trace = p_start, p_end, pieces, None
            if thresholds:  # cut where the energy so far crosses a threshold, as _segments does
                mp = s.max_power_kw
                segs = [(g.a, g.b, g.energy, g.time_s, g.park_s, g.resv_s, mp if g.pmax is None else g.pmax, g.imax)
                        for g in _split_energy([_Seg(*p[:6], None, p[6], None, p[7]) for p in pieces], thresholds)]
        env = Env(s, resv) if uses_env else None
        series = ctx.series
        sid = s.id
        plain = segs is None
        if segs:
            start = min(start, segs[0][0])
            end = max(end, segs[-1][1])
        # the cuts of each volume group, made when a piece first has such volumes
        cuts_c: list[int] | None = None if spec_c is not None else no_cuts
        cuts_p: list[int] | None = None if spec_p is not None else no_cuts
        # per (rule, unit price): [rule, price, volume, entry], in first-seen order for the lines
        acc: dict[tuple[int, Decimal], list[Any]] = {}
        steps: tuple[dict[str, PricedRule], dict[str, Decimal]] | None = ({}, {}) if any_step else None
        idle: dict[int, Decimal] | None = {} if any_idle else None
        run = (start, tz, env, acc, trace, series, steps, idle)

        # the power and current once-per-session fees are judged by (read only through env)
        fees: dict[str, tuple[Decimal | None, Decimal | None]] = env.fees if env is not None else _NO_FEES
        first_active: int | None
        if plain:
            # one charging stretch start..charging end, then parking (base_segments' plain shape)
            ce = end if s.charging_end is None else max(start, min(_ms(s.charging_end), end))
            # an int operand is converted exactly, as Decimal(int) would, without the constructor call
            tot_e, tot_t = s.energy_kwh, (ce - start) / ms_per_s
            tot_p = (end - ce) / ms_per_s if ce < end else ZERO
            first_active = start
            if env is not None:
                fees["active"] = (s.max_power_kw, None)
            if need_power:
                env.pw, env.cur = s.max_power_kw, None  # type: ignore[union-attr]
            kwh = ZERO
            if tot_e or tot_t:
                if not charged:
                    kwh = tot_e
                elif cuts_c or (cuts_c is None and (cuts_c := spec_c(start, end, tz, ctx))):  # type: ignore[misc, arg-type]
                    kwh = charge(start, ce, tot_e, tot_t, ZERO, ZERO, cuts_c, run)
                else:  # charge() of one piece
                    if env is not None:
                        env.kwh, env.el = ZERO, 0
                        if time_c:
                            set_time(env, start, tz)  # type: ignore[arg-type]
                    if tot_e and e_rules:
                        price_e(tot_e, start, ce, run)
                    if tot_t and t_rules:
                        price_t(tot_t, start, ce, run)
                    kwh = tot_e
            if tot_p and p_rules:
                if cuts_p is None:
                    cuts_p = spec_p(start, end, tz, ctx)  # type: ignore[misc, arg-type]
                park(ce, end, tot_p, kwh, cuts_p, run)
        else:
            tot_e = tot_t = tot_p = kwh = ZERO
            first_active = None
            for a0, b0, se, st, sp, sr, pw, cu in segs:  # type: ignore[union-attr]
                if first_active is None and not sr:
                    first_active = a0
                    # once-per-session fees are judged by the first charging period (its power and current)
                    if env is not None:
                        fees["active"] = (pw, cu)
                if sr and env is not None and "resv" not in fees:
                    fees["resv"] = (pw, cu)
                if need_power:
                    # a piece keeps its segment's power and current
                    env.pw = pw  # type: ignore[union-attr]
                    env.cur = cu  # type: ignore[union-attr]
                # totals are the measured volumes, not sums of the pieces they were cut into
                if se:
                    tot_e = se if tot_e is ZERO else tot_e + se
                if st:
                    tot_t = st if tot_t is ZERO else tot_t + st
                if sp:
                    tot_p = sp if tot_p is ZERO else tot_p + sp
                before = kwh
                if se or st or sr:
                    if charged:
                        if cuts_c is None:
                            cuts_c = spec_c(start, end, tz, ctx)  # type: ignore[misc, arg-type]
                        kwh = charge(a0, b0, se, st, sr, kwh, cuts_c, run)
                    elif se:
                        kwh = se if kwh is ZERO else kwh + se
                if sp and p_rules:
                    if cuts_p is None:
                        cuts_p = spec_p(start, end, tz, ctx)  # type: ignore[misc, arg-type]
                    park(a0, b0, sp, before, cuts_p, run)
            if not segs:
                first_active = start

        # step sizes: once per session per component, at the last pricing rule's step and price.
        # When parking was priced, the charging-time step is not applied (OCPI 2.2.1 mod_tariffs).
        if steps is not None:
            last_rule, kind_total = steps
            for kind, rr in last_rule.items():
                if not rr.step or (kind == "time" and kind_total.get("parking")):
                    continue
                total = kind_total[kind]
                rounded = (total / rr.step).to_integral_value(rounding=ROUND_CEILING) * rr.step
                if rounded > total:
                    for key in reversed(list(acc)):
                        if key[0] == id(rr):
                            acc[key][2] += rounded - total
                            if trace is not None:
                                trace.append(TraceEntry(kind, rr.label, end, end, _in_unit(rounded - total, rr.unit),
                                                    key[1], f"step {_in_unit(rr.step, rr.unit)} {rr.unit}"))
                            break
        lines: list[RatedLine] = []
        # what each capped rule's lines add up to (apply_caps' sums, in its order), kept as the lines are made
        sums: dict[int, list[Any]] | None = None
        for rr, price, vol, (_r, _p, size, unit, group, _k) in acc.values():
            qty = vol if size is None else vol / size
            net = qty * price
            lines.append(new_line((rr.kind, rr.title, qty, unit, price, net, rr.vat, cur, rr.label, sid, group, None)))
            if own_caps and rr.cap is not None:
                if sums is None:
                    sums = {}
                if (got := sums.get(id(rr))) is None:
                    sums[id(rr)] = [rr, ZERO + net]
                else:
                    got[1] += net

        # once-per-session fees: start and flat fees when the session charged or parked at all;
        # reservation fees when there was a reservation
        if first_active is not None and (fee_tables or rfee_rules):
            if env is not None and fees_read_env:
                env.pw, env.cur = fees.get("active", (s.max_power_kw, None))
                if fee_time:
                    set_time(env, first_active, tz)  # type: ignore[arg-type]
                env.el = first_active - start
                env.kwh = ZERO
            for kind, flone, fchoose in fee_tables:
                fentry = flone if flone is not None else fchoose(env)
                if fentry is not None:
                    fee = fentry[0]
                    price = fee.price if fee.price is not None else fee.price_fn(first_active, series)  # type: ignore[misc]
                    lines.append(new_line((kind, fee.title, ONE, "session", price, price, fee.vat, cur, fee.label,
                                           sid, "fixed", None)))
                    if trace is not None:
                        trace.append(new_trace((kind, fee.label, first_active, first_active, ONE, price, "")))
        if resv is not None and rfee_rules:
            if env is not None:
                if fee_time:
                    set_time(env, start, tz)  # type: ignore[arg-type]
                env.el = 0
                env.pw, env.cur = fees.get("resv", fees.get("active", (s.max_power_kw, None)))
            rentry = rfee_choose(env)
            if rentry is not None:
                rfee = rentry[0]
                price = rfee.price if rfee.price is not None else rfee.price_fn(start, series)  # type: ignore[misc]
                lines.append(RatedLine("reservation_fee", rfee.title, ONE, "session", price, price, rfee.vat, cur,
                                       rfee.label, sid, "reservation"))
                if trace is not None:
                    trace.append(TraceEntry("reservation_fee", rfee.label, start, start, ONE, price))
        # finish_session's steps: caps per rule, the minimum/maximum session price, discounts
        if trace is None:  # pieces: the caller prints totals (a tariff with discounts has no pieces path)
            if any_cap or bounded:
                scratch: list[TraceEntry] = []
                if any_cap:
                    caps(acc, sums, lines, scratch, sid, end)
                if bounded:
                    _clamp(prog, lines, scratch, cur, sid, end)
            return lines, tot_e, tot_t / s_per_h, tot_p / s_per_h
        if any_cap:
            caps(acc, sums, lines, trace, sid, end)
        if bounded:
            _clamp(prog, lines, trace, cur, sid, end)
        consumed: list[tuple[str, Decimal]] = _NO_USES
        if quick and lines:
            denv: Env | None = None
            for code, pred, on_s in quick:
                if code is not None and code not in s.promo_codes:
                    continue
                if on_s is not None:
                    if not on_s(s):
                        continue
                elif pred is not None:
                    if denv is None:
                        denv = _discount_env(s, resv, env)
                    if not pred(denv):
                        continue
                if denv is None:
                    denv = _discount_env(s, resv, env)
                consumed = []
                _apply_discounts(prog, mine, s, denv, start, tz or zone(tzname or default_tz), ctx, lines, trace,
                                 consumed, cur, end)
                break
        return trusted_result(sid, meta.name, ctx.version or meta.version, meta.sha256, prog.name, cur, tuple(lines),
                              tuple(trace), tot_e, tot_t / s_per_h, tot_p / s_per_h, tuple(consumed) if consumed else ())

    rate.__doc__ = (f"Rate a session with tariff '{prog.name}' of ruleset '{meta.name}' (see specialise); with "
                    "pieces, start and end ms: its lines and volumes only (see Specialised).")
    # discounts read the whole session (codes, uses, budgets): sessions of such tariffs are rated
    # by rate() alone
    return Specialised(cast(RateFn, rate), None if mine else cast(PiecesFn, rate))


def finish_session(prog: TariffProgram, discounts: Sequence[DiscountProgram], meta: RulesetMeta, s: SessionFacts,
                   ctx: RatingContext, tz: ZoneInfo, start: int, end: int, lines: list[RatedLine],
                   trace: list[TraceEntry], totals: tuple[Decimal, Decimal, Decimal],
                   priced: Sequence[PricedRule]) -> RatingResult:
    """Caps per rule, the minimum/maximum session price, then discounts; shared by both paths."""
    cur = prog.currency
    sid = s.id
    apply_caps(lines, trace, priced, cur, sid, end)

    if prog.min_price is not None or prog.max_price is not None:
        _clamp(prog, lines, trace, cur, sid, end)

    consumed: list[tuple[str, Decimal]] = []
    if discounts:
        env = Env(s, ctx.reservation or s.reservation)
        env.pw = s.max_power_kw
        _apply_discounts(prog, discounts, s, env, start, tz, ctx, lines, trace, consumed, cur, end)

    return RatingResult(
        session_id=sid, ruleset=meta.name, version=ctx.version or meta.version, sha256=meta.sha256,
        tariff=prog.name, currency=cur, lines=tuple(lines), trace=tuple(trace),
        energy_kwh=totals[0], time_h=totals[1] / 3600, parking_h=totals[2] / 3600,
        consumed=tuple(consumed),
    )


_GROUP = Component.OCPI_GROUP  # the cost group each priced component reports into


def _in_unit(vol: Decimal, unit: str) -> Decimal:
    size = UNIT_SIZE[unit]
    return vol if size == ONE else vol / size


def apply_caps(lines: list[RatedLine], trace: list[TraceEntry], priced: Sequence[PricedRule], cur: str, sid: str,
               end: int) -> None:
    """A rule's 'at most' caps what that rule's lines add up to, by a negative cap line."""
    seen: set[int] = set()  # ids: the same rule object is capped once
    for r in priced:
        if r.cap is None or id(r) in seen:
            continue
        seen.add(id(r))
        got = ZERO
        label, kind = r.label, r.kind
        for ln in lines:
            if ln.rule == label and ln.component == kind:
                got += ln.net
        if got > r.cap:
            _cap_line(r, got, lines, trace, cur, sid, end)


def _cap_line(r: PricedRule, got: Decimal, lines: list[RatedLine], trace: list[TraceEntry], cur: str, sid: str,
              end: int, texts: tuple[str, str] | None = None) -> None:
    """The negative line (and trace entry) that brings ``got``, what rule ``r``'s lines add up to, down
    to its cap; ``texts``: the line's title and the trace's note (``_cap_texts(r)``), when made ahead."""
    assert r.cap is not None
    excess = got - r.cap
    title, note = texts or _cap_texts(r)
    lines.append(_new_line((Component.CAP, title, ONE, "each", -excess, -excess, r.vat, cur, r.label, sid,
                            _GROUP[r.kind], None)))
    trace.append(_new_trace((Component.CAP, r.label, end, end, ONE, -excess, note)))


def _cap_texts(r: PricedRule) -> tuple[str, str]:
    return f"{r.title}: capped at {r.cap}", f"at most {r.cap}"


def _clamp(prog: TariffProgram, lines: list[RatedLine], trace: list[TraceEntry], cur: str, sid: str,
           end: int) -> None:
    if prog.min_price is None and prog.max_price is None:
        return
    net = sum((ln.net for ln in lines), ZERO)
    gross = sum((ln.gross for ln in lines), ZERO)
    for comp, bound, below in ((Component.MIN_PRICE, prog.min_price, True),
                               (Component.MAX_PRICE, prog.max_price, False)):
        if bound is None:
            continue
        excl, incl = bound
        d_net = (excl - net) if (net < excl if below else net > excl) else ZERO
        if incl is None:
            incl = excl * (1 + prog.vat / HUNDRED)
        d_gross = (incl - gross) if (gross < incl if below else gross > incl) else ZERO
        if d_net or d_gross:
            label = f"tariff {prog.name}: {comp} {excl}"
            title = "Minimum price" if below else "Maximum price"
            lines.append(RatedLine(comp, title, ONE, "each", d_net, d_net, prog.vat, cur, label, sid, "",
                                   gross_override=d_gross))
            trace.append(TraceEntry(comp, label, end, end, ONE, d_net, f"session total {net} -> {excl}"))
            net += d_net
            gross += d_gross


def _target_indexes(lines: list[RatedLine], target: str) -> list[int]:
    """Indexes of the lines a discount on ``target`` reduces (positive amounts only)."""
    if target == "session":
        return list(range(len(lines)))
    group = Component.OCPI_GROUP.get(target)
    picked: list[int] = []
    caps: list[int] = []
    cap = Component.CAP
    for i, ln in enumerate(lines):
        comp = ln.component
        if comp == target or (comp == "reservation_fee" and target == "reservation"):
            if ln.net > 0:
                picked.append(i)
        elif comp == cap and group and ln.group == group:
            caps.append(i)
    # a capped component is discounted on what remains after the cap: fold the cap into its lines
    return picked + caps if picked else []


def _apply_discounts(prog: TariffProgram, discounts: Sequence[DiscountProgram], s: SessionFacts, env: Env,
                     start: int, tz: ZoneInfo, ctx: RatingContext, lines: list[RatedLine],
                     trace: list[TraceEntry], consumed: list[tuple[str, Decimal]], cur: str, end: int) -> None:
    env.el = 0
    env.kwh = ZERO
    timed = False  # local time at the session start is computed only when a discount asks for it
    applicable: list[DiscountProgram] = []
    for d in discounts:
        if d.tariffs and prog.name not in d.tariffs:
            continue
        if d.code is not None and d.code not in s.promo_codes:
            continue
        if d.once == "customer" and ctx.uses.get(d.name, 0) > 0:
            continue
        if d.once == "period" and ctx.period_uses.get(d.name, 0) > 0:
            continue
        if d.budget is not None:
            used = ctx.budget_used.get(d.name, ZERO)
            if (used + 1 > d.budget) if d.budget_uses else (used >= d.budget):
                continue
        if not timed and (d.needs_time or d.valid_from is not None or d.valid_until is not None):
            _set_env_time(env, start, tz)
            timed = True
        if d.valid_from is not None and env.day < d.valid_from:
            continue
        if d.valid_until is not None and env.day >= d.valid_until:
            continue
        if d.predicate is not None and not d.predicate(env):
            continue
        applicable.append(d)
    if not applicable:
        return
    if len(applicable) > 1:
        applicable.sort(key=lambda d: (-d.priority, d.order))
    chosen = [applicable[0]] if applicable[0].exclusive else [d for d in applicable if not d.exclusive]
    base = list(lines)
    taken = [ZERO] * len(base)  # discount already allocated to each line: no line goes below zero
    for d in chosen:
        idx = _target_indexes(base, d.target)
        total = available = ZERO  # (sum()'s additions, in its order)
        for i in idx:
            total += base[i].net
        for i in idx:
            available += base[i].net - taken[i]
        if total <= 0 or available <= 0:
            continue
        amount = total * d.percent / HUNDRED if d.percent is not None else (d.fixed or ZERO)
        if d.budget is not None and not d.budget_uses:
            amount = min(amount, d.budget - ctx.budget_used.get(d.name, ZERO))
        amount = min(amount, available)
        if amount <= 0:
            continue
        by_rate: dict[Decimal, Decimal] = {}
        whole = amount >= available  # takes all that is left: each line's exact remainder, so
        # no residue of the proportional division is left for a later discount to take below zero
        for i in idx:
            share = base[i].net - taken[i] if whole else amount * (base[i].net - taken[i]) / available
            taken[i] += share
            by_rate[base[i].tax_rate] = by_rate.get(base[i].tax_rate, ZERO) + share
        for rate in sorted(by_rate):
            part = by_rate[rate]
            if part:
                lines.append(_new_line((Component.DISCOUNT, d.title, ONE, "each", -part, -part, rate, cur, d.label,
                                        s.id, "", None)))
        trace.append(_new_trace((Component.DISCOUNT, d.label, start, end, ONE, -amount,
                                 f"{d.percent}% off {d.target}" if d.percent is not None else
                                 f"{d.fixed} off {d.target}")))
        consumed.append((d.name, ONE if d.budget_uses or d.budget is None else amount))


# ---------------------------------------------------------------- billing periods
@dataclass(frozen=True, slots=True)
class PeriodResult:
    """A billing period's lines: sessions' lines plus subscription fees, allowances and tiers."""

    product: str
    currency: str
    lines: tuple[RatedLine, ...]
    sessions: int
    energy_kwh: Decimal

    @property
    def net_total(self) -> Decimal:
        return sum((ln.net_rounded() for ln in self.lines), ZERO)

    @property
    def net_unrounded(self) -> Decimal:
        return sum((ln.net for ln in self.lines), ZERO)

    def to_dict(self) -> dict[str, Any]:
        return {"product": self.product, "currency": self.currency, "sessions": self.sessions,
                "energy_kwh": str(self.energy_kwh), "net": str(self.net_total),
                "lines": [ln.to_dict() for ln in self.lines]}


_PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def rate_period(results: Sequence[RatingResult], product: ProductProgram | None, currency: str,
                months: int = 1, goodwill: Decimal = ZERO) -> PeriodResult:
    """Rate a billing period: the sessions' lines, the product's base fee for ``months``, included
    kWh or sessions credited in session order, energy repriced by graduated or volume tiers, and a
    goodwill balance used up to the period's total (it is never paid out)."""
    for r in results:
        # base fees, allowances and tiers are in the product's (the ruleset's) currency and meet
        # the sessions' amounts below: a session rated in another currency cannot be netted here
        require_currency(currency, r.currency, f"session {r.session_id}")
    ordered = sorted(results, key=lambda r: r.trace[0].start_ms if r.trace else 0)
    lines: list[RatedLine] = []
    energy_total = sum((r.energy_kwh for r in ordered), ZERO)
    label = product.label if product else ""
    vat = product.vat if product else ZERO
    tiered = product is not None and product.tier_mode is not None and product.tiers
    for r in ordered:
        for ln in r.lines:
            if tiered and ln.component == Component.ENERGY:
                continue  # energy is priced by the tiers below
            lines.append(ln)
    if product is not None:
        if product.fee is not None:
            amount, per = product.fee
            n = Decimal(months) / Decimal(_PERIOD_MONTHS[per])
            lines.append(RatedLine(Component.BASE_FEE, product.title, n, per, amount, n * amount, vat, currency,
                                   label))
        if product.included_sessions:
            for r in ordered[: product.included_sessions]:
                amt = sum((ln.net for ln in r.lines), ZERO)
                if amt:
                    lines.append(RatedLine(Component.INCLUDED, f"included session {r.session_id}", ONE, "each",
                                           -amt, -amt, r.lines[0].tax_rate if r.lines else vat, currency, label,
                                           r.session_id))
        billable_kwh = energy_total
        if product.included_kwh:
            left = product.included_kwh
            if tiered:
                free = min(left, energy_total)
                billable_kwh = energy_total - free
                if free:
                    lines.append(RatedLine(Component.INCLUDED, f"{free} kWh included", free, "kWh", ZERO, ZERO,
                                           vat, currency, label))
            else:
                for r in ordered:
                    for ln in r.lines:
                        if ln.component != Component.ENERGY or left <= 0:
                            continue
                        kwh = ln.quantity * UNIT_SIZE.get(ln.unit, ONE)
                        take = min(kwh, left)
                        left -= take
                        q = take / UNIT_SIZE.get(ln.unit, ONE)
                        lines.append(RatedLine(Component.INCLUDED, "included energy", q, ln.unit, -ln.unit_price,
                                               -(q * ln.unit_price), ln.tax_rate, currency, label, r.session_id))
        if tiered:
            lines.extend(_tier_lines(product, billable_kwh, currency))
    if goodwill > 0:
        net = sum((ln.net for ln in lines), ZERO)
        use = min(goodwill, net)
        if use > 0:
            lines.append(RatedLine(Component.GOODWILL, "goodwill credit", ONE, "each", -use, -use, vat, currency,
                                   "goodwill balance"))
    return PeriodResult(product.name if product else "", currency, tuple(lines), len(ordered), energy_total)


def _tier_lines(p: ProductProgram, kwh: Decimal, currency: str) -> list[RatedLine]:
    out: list[RatedLine] = []
    if p.tier_mode == "volume":
        # every kWh at the price of the tier the period's total falls in
        for lo, hi, price in p.tiers:
            if kwh >= lo and (hi is None or kwh < hi):
                out.append(RatedLine(Component.TIER, f"energy (volume tier from {lo} kWh)", kwh, "kWh", price,
                                     kwh * price, p.vat, currency, p.label))
                break
        return out
    for lo, hi, price in p.tiers:
        if kwh <= lo:
            break
        q = (min(kwh, hi) if hi is not None else kwh) - lo
        if q > 0:
            rng = f"{lo}..{hi if hi is not None else ''} kWh"
            out.append(RatedLine(Component.TIER, f"energy {rng}", q, "kWh", price, q * price, p.vat, currency,
                                 p.label))
    return out


def energy_stretches(s: SessionFacts, cuts: CutSpec, tz: ZoneInfo,
                     ctx: RatingContext | None = None) -> list[tuple[int, int, Decimal]]:
    """(start ms, end ms, kWh) of each stretch of ``s`` that charged energy, cut as rating cuts it:
    by periods, else meter values, else pro rata, then at every boundary ``cuts`` names. Partner
    statements price energy reimbursement on these, so the energy split is the one rating saw."""
    segs = base_segments(s)
    if segs and cuts.any:
        segs = _split(segs, _boundaries(cuts, segs[0].a, segs[-1].b, tz, ctx or _DEFAULT_CTX))
    return [(g.a, g.b, g.energy) for g in segs if g.energy]


def env_at(s: SessionFacts, ms: int, start_ms: int, tz: ZoneInfo, kwh: Decimal = ZERO) -> Env:
    """What a condition sees at ``ms`` of session ``s`` (local time, elapsed time, energy so far)."""
    env = Env(s, s.reservation)
    _set_env_time(env, ms, tz)
    env.el = ms - start_ms
    env.kwh = kwh
    env.pw = s.max_power_kw
    return env


# ---------------------------------------------------------------- fused totals (generated per tariff)
# The cost groups ``totals`` reports, in this order: the OCPI CDR's total_cost and its groups
TOTAL_GROUPS = ("total", "energy", "time", "parking", "fixed", "reservation")
# (session facts for conditions, context, base pieces, start ms, end ms) -> (excl, incl) per
# TOTAL_GROUPS, flat, then kWh, charging h, parking h; an untouched group's two amounts are ZERO itself
TotalsFn = Callable[[SessionFacts, "RatingContext", "list[_Piece]", int, int], "tuple[Decimal, ...]"]
# the environment fields a generated condition may read (``e.X`` in a predicate's ``expr_source``)
_ENV_FIELDS = frozenset({"sod", "wd", "day", "date", "kwh", "el", "pw", "cur", "resv", "s"})


def fused_totals(prog: TariffProgram, discounts: Sequence[DiscountProgram], *,
                 charging_time: bool = True) -> TotalsFn | None:
    """``Specialised.pieces`` followed by ``runtime.rated.group_totals``, generated for one tariff
    as one function of straight-line Python: the OCPI CDR file path, where only the totals per
    cost group and the volumes are printed.

    The code is generated from the same step definitions ``specialised`` runs (its rule tables
    ``_rule_table``, each condition's compiled expression ``expr_source``, the cut functions
    ``_cutter``, the local-time fields ``_time_setter`` would set, the step sizes, the unit sizes and
    groups), in the same order of operations, so every amount is the same ``Decimal``; what it
    leaves out is what only the general function needs: the environment object (its fields are
    locals), the accumulator dict (a local per rule), lines (each amount goes straight into its
    group's totals, lines in the same order), the calls per piece. A tariff using anything else --
    discounts, energy thresholds, caps, a minimum/maximum price, grace, indexed prices, conditions
    without an expression -- gets None (the caller uses ``pieces``). Held equal to ``pieces`` and
    ``group_totals`` by ``tests/dsl/test_engine_equivalence.py``. ``charging_time=False``: the
    charging hours are not summed and are None (the OCPI CDR printer never prints them); the energy
    so far is summed only where a condition reads it."""
    rules = prog.rules
    if any(not d.tariffs or prog.name in d.tariffs for d in discounts):
        return None
    if (prog.dynamic and prog.energy_kwh) or prog.min_price is not None or prog.max_price is not None:
        return None
    every = [r for rs in rules.values() for r in rs]
    if len({id(r) for r in every}) != len(every):
        return None
    for r in every:
        if r.price is None or r.grace_ms is not None or r.grace_idle is not None or r.cap is not None:
            return None
    p: dict[str, Any] = {}  # the generated function's constants (keyword defaults: local loads)
    exprs: dict[int, str] = {}  # rule id -> its condition over locals e_<field>
    read: set[str] = set()
    for k, r in enumerate(every):
        if r.predicate is None:
            continue
        src = getattr(r.predicate, "expr_source", None)
        if src is None:
            return None
        expr, consts = src
        names = set(_E_FIELD.findall(expr))
        if not names <= _ENV_FIELDS:
            return None
        read |= names
        for name, value in consts.items():
            p[f"_c{k}{name}"] = value
        expr = re.sub(r"\b(_k\d+)\b", lambda m: f"_c{k}{m.group(1)}", expr)  # noqa: B023
        exprs[id(r)] = _E_FIELD.sub(r"e_\1", expr)
    # what set_time computes (the fields conditions read; _time_setter's choice)
    t_sod, t_wd, t_day = "sod" in read, "wd" in read, "day" in read or "date" in read

    tables = {kind: _rule_table(rules, kind) for kind in ("energy", "time", "parking", "reservation")}
    fee_kinds = [kind for kind in _FLAT_KINDS if rules.get(kind)]
    rfee = _rule_table(rules, "reservation_fee")
    # accumulators: one per priced rule of the volume tables, numbered
    slots: list[_Entry] = [e for kind in ("energy", "time", "parking", "reservation") for e in tables[kind]]
    slot_of = {id(e[0]): i for i, e in enumerate(slots)}
    any_step = any(r.step for r in every)
    groups = {g: i for i, g in enumerate(TOTAL_GROUPS)}
    p.update(ZERO=ZERO, ONE=ONE, Decimal=Decimal, zone=zone, RatingError=RatingError, bisect_right=bisect.bisect_right,
             UTC_ZONE=_UTC_ZONE, fromts=datetime.fromtimestamp, from_ordinal=date.fromordinal, s_per_h=_S_PER_H,
             ROUND_CEILING=ROUND_CEILING, default_tz=prog.timezone)
    # per slot: (unit size or None, price, gross factor, group index); steps per slot
    p["SLOT"] = tuple((e[2], e[0].price, 1 + e[0].vat / 100, groups.get(e[4], -1)) for e in slots)
    p["STEP"] = tuple(e[0].step for e in slots)
    spec_c = _cutter(prog.charge_cuts) if prog.dynamic and prog.charge_cuts.any else None
    spec_p = _cutter(prog.park_cuts) if prog.dynamic and prog.park_cuts.any else None
    p["spec_c"], p["spec_p"] = spec_c, spec_p
    time_c, time_p, fee_time = prog.charge_cuts.needs_local_time, prog.park_cuts.needs_local_time, prog.needs_local_time
    needs_zone = bool(fee_time or time_c or time_p or spec_c or spec_p)
    charged = bool(tables["energy"] or tables["time"] or tables["reservation"])
    uses_env = any(r.predicate is not None or r.grace_ms is not None for r in every)
    fees_read_env = bool(rfee) or any(not (len(_rule_table(rules, k)) == 1 and rules[k][0].predicate is None)
                                      for k in fee_kinds)
    out: list[str] = []

    def emit(depth: int, *code: str) -> None:
        out.extend("    " * depth + c for c in code)

    def set_time(depth: int, at: str) -> None:
        if not (t_sod or t_wd or t_day):
            return
        emit(depth, f"if tz is UTC_ZONE and {at} >= 0:", f"    sec = {at} // 1000")
        if t_wd or t_day:
            emit(depth, "    days = sec // 86400")
        if t_sod:
            emit(depth, "    e_sod = sec % 86400")
        if t_wd:
            emit(depth, "    e_wd = (days + 3) % 7")
        if t_day:
            emit(depth, "    e_day = days + 719163", "    e_date = from_ordinal(e_day)")
        emit(depth, "else:", f"    dt = fromts({at} / 1000, tz)")
        if t_sod:
            emit(depth, "    e_sod = dt.hour * 3600 + dt.minute * 60 + dt.second")
        if t_wd:
            emit(depth, "    e_wd = dt.weekday()")
        if t_day:
            emit(depth, "    e_date = dt.date()", "    e_day = e_date.toordinal()")

    def price(depth: int, kind: str, vol: str) -> None:
        """Step 2 for one volume: the first rule whose condition holds adds ``vol`` to its slot."""
        first = True
        for e in tables[kind]:
            r = e[0]
            k = slot_of[id(r)]
            cond = exprs.get(id(r))
            if cond is None:
                emit(depth, "if True:" if first else "else:")
            else:
                emit(depth, f"{'if' if first else 'elif'} {cond}:")
            emit(depth + 1, f"if v{k} is None:", f"    v{k} = {vol}", f"    order.append({k})", "else:",
                 f"    v{k} += {vol}")
            if any_step:
                emit(depth + 1, f"last_{kind} = {k}", f"kt_{kind} = {vol} if kt_{kind} is None else kt_{kind} + {vol}")
            first = False
            if cond is None:
                break

    def walk(depth: int, cuts: str, spec: Any, full: list[tuple[str, str, str, bool]],
             body: Callable[[int], None]) -> None:
        """A piece a0..b0 cut at ``cuts`` (when the tariff has any), volumes pro rata (multiply first,
        as _Seg.split); full: (the piece's volume, its running rest, its cut, cut it at all)."""
        if spec is None:
            emit(depth, "a, b = a0, b0", *(f"{cut} = {src}" for src, _run, cut, _c in full))
            body(depth)
            return
        vols = [(run, cut, cut_it) for _src, run, cut, cut_it in full]
        # most pieces have no cut within them: priced straight, without the loop (and without
        # copying the volumes it cuts down)
        emit(depth, "a = a0",
             f"if not {cuts} or (j := bisect_right({cuts}, a)) == len({cuts}) or {cuts}[j] >= b0:",
             f"    b, {', '.join(cut for _s, _r, cut, _c in full)} = b0, {', '.join(src for src, _r, _c, _x in full)}")
        body(depth + 1)
        emit(depth, "else:")
        depth += 1
        emit(depth, f"{', '.join(run for _s, run, _c, _x in full)} = {', '.join(src for src, _r, _c, _x in full)}",
             f"n = len({cuts})", "while True:", f"    if j < n and {cuts}[j] < b0:", f"        b = {cuts}[j]")
        if len(vols) > 1:
            emit(depth + 2, "num, den = Decimal(b - a), Decimal(b0 - a)")
            first_run, first_cut, _c = vols[0]
            emit(depth + 2, f"{first_cut} = {first_run} * num / den if {first_run} else ZERO",
                 f"{first_run} = {first_run} - {first_cut}")
            rest = vols[1:]
            emit(depth + 2, " = ".join(cut for _r, cut, _c in rest) + " = ZERO")
            for run, cut, cut_it in rest:
                if cut_it:
                    emit(depth + 2, f"if {run}:", f"    {cut} = {run} * num / den", f"    {run} = {run} - {cut}")
        else:
            run, cut, _c = vols[0]
            emit(depth + 2, f"{cut} = {run} * Decimal(b - a) / Decimal(b0 - a) if {run} else ZERO",
                 f"{run} = {run} - {cut}")
        emit(depth + 2, "j += 1")
        emit(depth + 1, "else:", f"    b, {', '.join(cut for _r, cut, _c in vols)} = b0, "
             f"{', '.join(run for run, _c, _x in vols)}")
        body(depth + 1)
        emit(depth + 1, "if b == b0:", "    break", "a = b")

    # ---- the function
    emit(0, "def totals(s, ctx, pieces, start, end):")
    emit(1, "tz = None", "tzname = ctx.tz or s.timezone")
    emit(1, "if tzname" + (" or True:" if needs_zone else ":"),
         "    tzname = tzname or default_tz", "    try:", "        tz = zone(tzname)",
         "    except (KeyError, ValueError, OSError):",
         "        raise RatingError(f'session {s.id!r}: unknown time zone {tzname!r}') from None")
    emit(1, "e_resv = ctx.reservation or s.reservation", "e_s = s",
         "e_sod = e_wd = e_day = e_el = 0", "e_date = None", "e_kwh = ZERO", "e_pw = e_cur = None")
    emit(1, "if pieces:", "    start = min(start, pieces[0][0])", "    end = max(end, pieces[-1][1])")
    emit(1, "cuts_c = cuts_p = None", "order = []")
    emit(1, *(f"v{k} = None" for k in range(len(slots))))
    if any_step:
        emit(1, *(f"last_{kind} = kt_{kind} = None" for kind in tables))
    emit(1, "tot_e = tot_t = tot_p = kwh = ZERO", "first_active = fee_active = fee_resv = None")
    emit(1, "for a0, b0, se, st, sp, sr, pw, cu in pieces:")
    emit(2, "if first_active is None and not sr:", "    first_active = a0", "    fee_active = (pw, cu)")
    emit(2, "if sr and fee_resv is None:", "    fee_resv = (pw, cu)")
    if prog.needs_power:
        emit(2, "e_pw = pw", "e_cur = cu")
    emit(2, "if se:", "    tot_e = se if tot_e is ZERO else tot_e + se")
    if charging_time:
        emit(2, "if st:", "    tot_t = st if tot_t is ZERO else tot_t + st")
    emit(2, "if sp:", "    tot_p = sp if tot_p is ZERO else tot_p + sp")
    if "kwh" in read:
        emit(2, "before = kwh")
    if charged:
        emit(2, "if se or st or sr:")
        if spec_c is not None:
            emit(3, "if cuts_c is None:", "    cuts_c = spec_c(start, end, tz, ctx)")

        def charge_body(depth: int) -> None:
            if uses_env:
                if "kwh" in read:
                    emit(depth, "e_kwh = kwh")
                if "el" in read:
                    emit(depth, "e_el = a - start")
                if time_c:
                    set_time(depth, "a")
            for kind, vol in (("energy", "e"), ("time", "t"), ("reservation", "r")):
                if tables[kind]:
                    emit(depth, f"if {vol}:")
                    price(depth + 1, kind, vol)
            if "kwh" in read:  # (only conditions read the energy so far)
                emit(depth, "if e:", "    kwh = e if kwh is ZERO else kwh + e")

        walk(3, "cuts_c", spec_c, [("se", "ce", "e", True), ("st", "ct", "t", bool(tables["time"])),
                                   ("sr", "cr", "r", bool(tables["reservation"]))], charge_body)
    elif "kwh" in read:
        emit(2, "if se:", "    kwh = se if kwh is ZERO else kwh + se")
    if tables["parking"]:
        emit(2, "if sp:")
        if spec_p is not None:
            emit(3, "if cuts_p is None:", "    cuts_p = spec_p(start, end, tz, ctx)")
        if uses_env and "kwh" in read:
            emit(3, "e_kwh = before")

        def park_body(depth: int) -> None:
            if uses_env:
                if "el" in read:
                    emit(depth, "e_el = a - start")
                if time_p:
                    set_time(depth, "a")
            emit(depth, "if pk:")
            price(depth + 1, "parking", "pk")

        walk(3, "cuts_p", spec_p, [("sp", "cp", "pk", True)], park_body)
    emit(1, "if not pieces:", "    first_active = start")
    emit(1, f"vols = [{', '.join(f'v{k}' for k in range(len(slots)))}]" if slots else "vols = []")
    if any_step:
        # step sizes once per session per component; not the charging time's when parking was priced
        for kind in tables:
            if not any(e[0].step for e in tables[kind]):
                continue
            cond = f"last_{kind} is not None" + (" and not kt_parking" if kind == "time" else "")
            emit(1, f"if {cond}:", f"    step = STEP[last_{kind}]", "    if step:",
                 f"        total = kt_{kind}",
                 "        rounded = (total / step).to_integral_value(rounding=ROUND_CEILING) * step",
                 "        if rounded > total:", f"            vols[last_{kind}] += rounded - total")
    # the lines in order (accumulators as first priced, then the fees) into the group totals
    n_groups = len(TOTAL_GROUPS)
    emit(1, f"g = [ZERO] * {2 * n_groups}")
    emit(1, "for k in order:", "    size, price, factor, gi = SLOT[k]", "    qty = vols[k]",
         "    if size is not None:", "        qty = qty / size",
         "    net = qty * price", "    gross = net * factor")
    if all(not price.is_signed() and not factor.is_signed() for _s, price, factor, _g in p["SLOT"]):
        # a group's first line is its total as it is: ZERO + x is x's value, and x is no -0 here (a
        # priced volume is not zero, nor a price or VAT factor negative), nor ZERO itself
        emit(2, *(f"g[{i}] = {v} if g[{i}] is ZERO else g[{i}] + {v}" for i, v in ((0, "net"), (1, "gross"))),
             "if gi > 0:", "    i = 2 * gi", "    g[i] = net if g[i] is ZERO else g[i] + net",
             "    g[i + 1] = gross if g[i + 1] is ZERO else g[i + 1] + gross")
    else:
        emit(2, "g[0] += net", "g[1] += gross", "if gi > 0:", "    g[2 * gi] += net", "    g[2 * gi + 1] += gross")

    def fee_line(depth: int, rule: PricedRule, n: int) -> None:
        gi = groups.get(_GROUP[rule.kind], -1)
        price = rule.price
        assert price is not None  # every rule's price is constant here (checked above)
        gross = price * (1 + rule.vat / 100)
        p[f"_fee{n}"] = (price, gross)
        emit(depth, f"net, gross = _fee{n}", "g[0] += net", "g[1] += gross")
        if gi > 0:
            if price is ZERO or gross is ZERO or price.is_signed() or gross.is_signed():
                emit(depth, f"g[{2 * gi}] += net", f"g[{2 * gi + 1}] += gross")
            else:
                # a fee alone in its group is the fee's own amounts (the same objects each session:
                # a printer may keep their text); ZERO + x is x's value, and x is no -0 here
                emit(depth, *(f"g[{i}] = {v} if g[{i}] is ZERO else g[{i}] + {v}"
                              for i, v in ((2 * gi, "net"), (2 * gi + 1, "gross"))))

    def fee_choice(depth: int, table: tuple[_Entry, ...], base: int) -> None:
        first = True
        for i, e in enumerate(table):
            cond = exprs.get(id(e[0]))
            if cond is None and e[1] is not None:
                raise AssertionError("a condition without an expression")  # refused above
            emit(depth, ("if True:" if first else "else:") if cond is None else f"{'if' if first else 'elif'} {cond}:")
            fee_line(depth + 1, e[0], base + i)
            first = False
            if cond is None:
                break

    if fee_kinds or rfee:
        emit(1, "if first_active is not None:")
        if uses_env and fees_read_env:
            emit(2, "e_pw, e_cur = fee_active if fee_active is not None else (s.max_power_kw, None)")
            if fee_time:
                set_time(2, "first_active")
            emit(2, "e_el = first_active - start", "e_kwh = ZERO")
        n = 0
        for kind in fee_kinds:
            ft = _rule_table(rules, kind)
            fee_choice(2, ft, n)
            n += len(ft)
        emit(2, "pass")
        if rfee:
            emit(1, "if e_resv is not None:")
            if uses_env:
                if fee_time:
                    set_time(2, "start")
                emit(2, "e_el = 0",
                     "e_pw, e_cur = fee_resv if fee_resv is not None else fee_active if fee_active is not None "
                     "else (s.max_power_kw, None)")
            fee_choice(2, rfee, n)
    emit(1, f"return (*g, tot_e, {'tot_t / s_per_h' if charging_time else 'None'}, tot_p / s_per_h)")
    code = "\n".join(out) + "\n"
    code = code.replace("def totals(s, ctx, pieces, start, end):",
                        "def totals(s, ctx, pieces, start, end, *, " + ", ".join(f"{n}={n}" for n in p) + "):", 1)
    ns = dict(p)
    exec(compile(code, f"<totals of tariff {prog.name}>", "exec"), ns)
    fn: TotalsFn = ns["totals"]
    fn.source = code  # type: ignore[attr-defined]  # for reading and tests
    return fn
