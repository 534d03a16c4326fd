"""OCPI 2.2.1 as the outside check: tariffs become DSL rulesets, CDRs are priced through them.

``import_tariff`` translates an OCPI Tariff object into the equivalent DSL ruleset text (built as
``dsl.ast`` nodes and printed by ``dsl.printer``). ``price_cdrs_cli`` implements
``evbill ocpi price``: it imports the tariff, compiles the DSL with ``compile_ruleset`` and rates
each CDR with ``CompiledRuleset.rate``. Nothing in this module computes a price: there is one
pricing path, and OCPI is only a way in and a way out.

Translation (OCPI 2.2.1 mod_tariffs):

* every TariffElement becomes a ``when`` block whose condition is the conjunction of its
  restrictions; the DSL's "first matching rule per component" is OCPI's "first element with a
  price component for that dimension whose restrictions hold", so element order is kept;
* an element without restrictions becomes ``when always { ... }``, or unconditional tariff lines
  when no later element prices any of its dimensions (unconditional lines are tried last, so that
  placement cannot change which element wins);
* FLAT -> ``flat`` (once per session), ENERGY -> ``energy .. per kWh step N Wh``, TIME ->
  ``time .. per h step N s``, PARKING_TIME -> ``parking .. per h step N s``; inside a reservation
  element FLAT -> ``reservation_fee`` and TIME -> ``reservation .. per h`` (the spec allows only
  these two there);
* RESERVATION_EXPIRES elements are placed before RESERVATION elements: the spec says an expired
  reservation's time is priced by the RESERVATION_EXPIRES element when both price TIME, and
  reservation elements price only reservation components, so the move changes nothing else;
* a missing ``vat`` is written as ``vat 0%`` (the spec: "if omitted, no VAT is applicable");
* ``min_price``/``max_price`` keep their excl. and incl. VAT amounts; when every component has
  the same VAT rate the tariff states it too (``vat N%``), so the adjustment line carries that rate
  and a bound without ``incl_vat`` is taken as excl. x (1 + rate).
"""

from __future__ import annotations

import argparse
import json
import mmap
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, getcontext
from pathlib import Path
from typing import Any, ClassVar, Union

import msgspec

from dsl import ast as A
from dsl.compiler import CompiledRuleset, compile_ruleset
from dsl.printer import print_ruleset
from runtime.money import ZERO as RZERO
from runtime.rated import group_totals
from runtime.rating import TOTAL_GROUPS, RatingContext, RatingError, zone
from runtime.sessions import ChargingPeriod, SessionFacts, SessionInputError, parse_datetime

__all__ = ["COST_FIELDS", "OcpiError", "cdr_to_session", "import_tariff", "load_json", "price_cdr",
           "price_cdrs_cli", "tariff_to_ast"]

_SPAN = A.Span.unknown()
_DAY_INDEX = {"MONDAY": 0, "TUESDAY": 1, "WEDNESDAY": 2, "THURSDAY": 3, "FRIDAY": 4, "SATURDAY": 5, "SUNDAY": 6}
_COMPONENT_TYPES = ("FLAT", "ENERGY", "TIME", "PARKING_TIME")
_RESERVATION_TYPES = ("RESERVATION", "RESERVATION_EXPIRES")
_RESTRICTION_KEYS = frozenset({
    "start_time", "end_time", "start_date", "end_date", "min_kwh", "max_kwh", "min_current", "max_current",
    "min_power", "max_power", "min_duration", "max_duration", "day_of_week", "reservation",
})
# the CDR fields `evbill ocpi price` prints, and the rating group each one sums
COST_FIELDS = (
    ("total_cost", "total"), ("total_energy_cost", "energy"), ("total_time_cost", "time"),
    ("total_parking_cost", "parking"), ("total_fixed_cost", "fixed"), ("total_reservation_cost", "reservation"),
)
assert tuple(group for _key, group in COST_FIELDS) == TOTAL_GROUPS  # fused totals come in this order
_FOUR = Decimal("0.0001")
_ZERO = Decimal(0)


class OcpiError(ValueError):
    """OCPI input that cannot be translated or priced; the message names the field and why."""


def load_json(text: str) -> Any:
    """Parse JSON keeping every number exact (floats would turn 0.1 into 0.1000000000000000055)."""
    return json.loads(text, parse_float=Decimal)


# ---------------------------------------------------------------- small validators
def _num(value: object, where: str, *, minimum: Decimal | None = None) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise OcpiError(f"{where}: expected a number, found {json.dumps(value)}")
    if isinstance(value, float):
        # callers that parsed JSON without parse_float=Decimal: repr() is the shortest text that
        # round-trips, i.e. what the JSON said
        value = Decimal(repr(value))
    if isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise OcpiError(f"{where}: expected a number, found {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise OcpiError(f"{where}: expected a finite number, found {value}")
    if minimum is not None and value < minimum:
        raise OcpiError(f"{where}: must be at least {minimum}, found {value}")
    return value


def _int(value: object, where: str) -> int:
    d = _num(value, where, minimum=_ZERO)
    if d != d.to_integral_value():
        raise OcpiError(f"{where}: expected a whole number, found {d}")
    return int(d)


def _obj(value: object, where: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    if not isinstance(value, Mapping):
        raise OcpiError(f"{where}: expected an object, found {_kind(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise OcpiError(f"{where}: expected a list, found {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise OcpiError(f"{where}: expected a string, found {_kind(value)}")
    return value


_TIME_RX = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_DATE_RX = re.compile(r"\d{4}-\d{2}-\d{2}")


def _time_of_day(value: object, where: str, *, end: bool) -> str:
    s = _text(value, where)
    if end and s == "24:00":
        return "00:00"  # some CPOs write the end of the day as 24:00; 00:00 wraps to the same moment
    if not _TIME_RX.fullmatch(s):
        raise OcpiError(f"{where}: expected a time of day HH:MM (00:00..23:59), found {s!r}")
    return s


def _date(value: object, where: str) -> str:
    s = _text(value, where)
    try:
        if not _DATE_RX.fullmatch(s):
            raise ValueError
        date.fromisoformat(s)
    except ValueError:
        raise OcpiError(f"{where}: expected a date YYYY-MM-DD, found {s!r}") from None
    return s


def _name(*parts: object) -> str:
    """A DSL identifier from OCPI ids (which may hold any character)."""
    raw = "_".join(str(p) for p in parts if p not in (None, ""))
    s = re.sub(r"[^A-Za-z0-9_]", "_", raw).strip("_") or "tariff"
    return s if re.match(r"[A-Za-z_]", s) else "_" + s


# ---------------------------------------------------------------- tariff -> AST
def _cmp(kind: str, op: str, value: Decimal, unit: str) -> A.Atom:
    return A.Atom(kind, (op, value, unit), _SPAN)


def _restrictions(raw: object, where: str) -> tuple[list[A.Cond], str | None]:
    """The element's restrictions as DSL atoms, and its reservation kind (if any)."""
    if raw is None:
        return [], None
    r = _obj(raw, where)
    unknown = sorted(k for k in r if k not in _RESTRICTION_KEYS)
    if unknown:
        raise OcpiError(f"{where}: unknown restriction {unknown[0]!r} (OCPI 2.2.1 TariffRestrictions has "
                        f"{', '.join(sorted(_RESTRICTION_KEYS))})")
    conds: list[A.Cond] = []
    get = r.get  # a null restriction and an absent one mean the same: no restriction
    st, et = get("start_time"), get("end_time")
    if st is not None or et is not None:
        start = _time_of_day(st, f"{where}.start_time", end=False) if st is not None else "00:00"
        # a missing end_time means "until midnight"; 00:00 as an end wraps to the end of the day
        end = _time_of_day(et, f"{where}.end_time", end=True) if et is not None else "00:00"
        if start != end:  # equal start and end restrict nothing (the DSL and the reference agree)
            conds.append(A.Atom("time", (start, end), _SPAN))
    sd, ed = get("start_date"), get("end_date")
    if sd is not None:
        s = _date(sd, f"{where}.start_date")
        e = _date(ed, f"{where}.end_date") if ed is not None else None
        if e is not None and e <= s:
            raise OcpiError(f"{where}: start_date {s} is not before end_date {e} (end_date is exclusive), "
                            "so the element could never apply")
        conds.append(A.Atom("date", (s, e), _SPAN))
    elif ed is not None:
        # the DSL's date range needs a start: "before end_date" is "not from end_date on"
        conds.append(A.Not(A.Atom("date", (_date(ed, f"{where}.end_date"), None), _SPAN), _SPAN))
    # min_* inclusive, max_* exclusive (OCPI 2.2.1 TariffRestrictions)
    for key, kind, unit in (("kwh", "energy", "kWh"), ("current", "current", "A"), ("power", "power", "kW"),
                            ("duration", "duration", "s")):
        lo, hi = get(f"min_{key}"), get(f"max_{key}")
        if lo is not None:
            conds.append(_cmp(kind, ">=", _num(lo, f"{where}.min_{key}", minimum=_ZERO), unit))
        if hi is not None:
            conds.append(_cmp(kind, "<", _num(hi, f"{where}.max_{key}", minimum=_ZERO), unit))
    dow = get("day_of_week")
    if dow is not None:
        days: set[int] = set()
        for i, d in enumerate(_list(dow, f"{where}.day_of_week")):
            if not isinstance(d, str) or d not in _DAY_INDEX:
                raise OcpiError(f"{where}.day_of_week[{i}]: expected one of {', '.join(_DAY_INDEX)}, found {_kind(d)}")
            days.add(_DAY_INDEX[d])
        if days and len(days) < 7:  # an empty list or all seven days restrict nothing
            conds.append(A.Atom("days", tuple(sorted(days)), _SPAN))
    resv = get("reservation")
    if resv is not None:
        if resv not in _RESERVATION_TYPES:
            raise OcpiError(f"{where}.reservation: expected RESERVATION or RESERVATION_EXPIRES, found {_kind(resv)}")
        conds.append(A.Atom("reservation_expires" if resv == "RESERVATION_EXPIRES" else "reservation", (), _SPAN))
    return conds, resv


def _component(raw: object, where: str, reservation: bool) -> A.ComponentDef:
    pc = _obj(raw, where)
    typ = pc.get("type")
    if typ not in _COMPONENT_TYPES:
        raise OcpiError(f"{where}.type: expected one of {', '.join(_COMPONENT_TYPES)}, found {_kind(typ)}")
    if "price" not in pc:
        raise OcpiError(f"{where}.price: missing")
    price = _num(pc["price"], f"{where}.price")
    vat_raw = pc.get("vat")
    vat = _ZERO if vat_raw is None else _num(vat_raw, f"{where}.vat", minimum=_ZERO)
    if vat > 100:
        raise OcpiError(f"{where}.vat: a VAT percentage above 100 ({vat}) is not plausible")
    if "step_size" not in pc:
        raise OcpiError(f"{where}.step_size: missing (OCPI requires it; 0 or 1 for no rounding)")
    step = _int(pc["step_size"], f"{where}.step_size")
    pnum: A.PriceExpr = A.Num(price, _SPAN)
    if typ == "FLAT":
        # the step of a FLAT component has no unit and no meaning
        return A.ComponentDef("reservation_fee" if reservation else "flat", pnum, "session", _SPAN, vat=vat)
    if reservation and typ != "TIME":
        raise OcpiError(f"{where}.type: a reservation element can only have FLAT and TIME components, found {typ}")
    kind, unit, step_unit = {
        "ENERGY": ("energy", "kWh", "Wh"),
        "TIME": ("reservation" if reservation else "time", "h", "s"),
        "PARKING_TIME": ("parking", "h", "s"),
    }[str(typ)]
    return A.ComponentDef(kind, pnum, unit, _SPAN, step=(Decimal(step), step_unit) if step else None, vat=vat)


def _price_bound(raw: object, where: str) -> tuple[Decimal, Decimal | None] | None:
    if raw is None:
        return None
    p = _obj(raw, where)
    if p.get("excl_vat") is None:
        raise OcpiError(f"{where}.excl_vat: missing")
    excl = _num(p["excl_vat"], f"{where}.excl_vat", minimum=_ZERO)
    incl = p.get("incl_vat")
    return excl, (None if incl is None else _num(incl, f"{where}.incl_vat", minimum=_ZERO))


@dataclass(frozen=True, slots=True)
class _Element:
    index: int
    conds: tuple[A.Cond, ...]
    reservation: str | None
    components: tuple[A.ComponentDef, ...]


def tariff_to_ast(tariff: Mapping[str, Any], *, base_lines: bool = True) -> A.Ruleset:
    """An OCPI 2.2.1 Tariff object as a DSL ruleset AST (one tariff). Raises ``OcpiError``.

    With ``base_lines=False`` every element stays a ``when`` block labelled ``element N`` (its
    index in the OCPI list); tests use that to check the placement of unrestricted elements and
    to tell which element priced what.
    """
    t = _obj(tariff, "tariff")
    if "elements" not in t and isinstance(t.get("tariffs"), list):
        raise OcpiError("tariff: this looks like a CDR; pass its tariff (cdr.tariffs[0]) instead")
    currency = t.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise OcpiError(f"currency: expected an ISO 4217 code such as 'EUR', found {_kind(currency)}")
    elements = _list(t.get("elements"), "elements")
    if not elements:
        raise OcpiError("elements: a tariff needs at least one element")
    parsed: list[_Element] = []
    for i, raw in enumerate(elements):
        where = f"elements[{i}]"
        el = _obj(raw, where)
        conds, resv = _restrictions(el.get("restrictions"), f"{where}.restrictions")
        comps_raw = _list(el.get("price_components"), f"{where}.price_components")
        if not comps_raw:
            raise OcpiError(f"{where}.price_components: an element needs at least one price component")
        comps: list[A.ComponentDef] = []
        for j, pc in enumerate(comps_raw):
            cd = _component(pc, f"{where}.price_components[{j}]", resv is not None)
            # the same dimension twice in one element: the first is the one OCPI's lookup finds
            if all(c.kind != cd.kind for c in comps):
                comps.append(cd)
        parsed.append(_Element(i, tuple(conds), resv, tuple(comps)))
    # RESERVATION_EXPIRES elements go before RESERVATION ones (see the module docstring)
    order = sorted(parsed, key=lambda e: 0 if e.reservation == "RESERVATION_EXPIRES" else 1)
    rules: list[A.Rule] = []
    base: list[A.ComponentDef] = []
    for pos, elem in enumerate(order):
        kinds = {c.kind for c in elem.components}
        later = {c.kind for e in order[pos + 1:] for c in e.components}
        if base_lines and not elem.conds and not (kinds & later):
            base.extend(elem.components)
            continue
        cond: A.Cond
        if not elem.conds:
            cond = A.Atom("always", (), _SPAN)
        elif len(elem.conds) == 1:
            cond = elem.conds[0]
        else:
            cond = A.And(elem.conds, _SPAN)
        rules.append(A.Rule(cond, elem.components, _SPAN, f"element {elem.index}"))
    if base:
        rules.append(A.Rule(None, tuple(base), _SPAN, "base"))
    min_p = _price_bound(t.get("min_price"), "min_price")
    max_p = _price_bound(t.get("max_price"), "max_price")
    if min_p and max_p and min_p[0] > max_p[0]:
        raise OcpiError(f"min_price {min_p[0]} is above max_price {max_p[0]}")
    tid = t.get("id", "")
    name = _name("ocpi", t.get("country_code"), t.get("party_id"), tid)
    title = " ".join(str(x) for x in (t.get("country_code"), t.get("party_id"), tid) if x not in (None, ""))
    title = re.sub(r"\s+", " ", title).strip() or "OCPI tariff"
    # the rate a min/max price adjustment line carries, and what derives a missing incl_vat bound:
    # the tariff's one VAT rate when every component has the same; else none (0%), so a bound
    # without incl_vat then also caps the amount incl. VAT at the excl. figure
    rates = {c.vat for e in parsed for c in e.components}
    tariff_vat = next(iter(rates)) if (min_p or max_p) and len(rates) == 1 else None
    tariff_ast = A.Tariff(_name("t", tid) if tid not in (None, "") else "t", title, tuple(rules), _SPAN,
                          vat=tariff_vat, min_price=min_p, max_price=max_p)
    # conditions are written in UTC; `evbill ocpi price --tz` evaluates them in another zone
    return A.Ruleset(name, currency, "UTC", _SPAN, tariffs=(tariff_ast,))


def import_tariff(tariff_json: Mapping[str, Any]) -> str:
    """An OCPI 2.2.1 Tariff object as DSL ruleset text. Raises ``OcpiError`` for invalid input."""
    return print_ruleset(tariff_to_ast(tariff_json))


# ---------------------------------------------------------------- CDR -> session facts
_DIMENSIONS = {  # OCPI 2.2.1 CdrDimensionType -> ChargingPeriod field (None: not used for pricing)
    "ENERGY": "energy_kwh", "TIME": "time_h", "PARKING_TIME": "parking_h", "RESERVATION_TIME": "reservation_h",
    "MIN_POWER": "min_power_kw", "MAX_POWER": "max_power_kw", "MIN_CURRENT": "min_current_a",
    "MAX_CURRENT": "max_current_a",
    "CURRENT": None, "POWER": None, "ENERGY_EXPORT": None, "ENERGY_IMPORT": None, "STATE_OF_CHARGE": None,
}


def _when(value: object, where: str) -> datetime:
    try:
        return parse_datetime(value, where)
    except SessionInputError as exc:
        raise OcpiError(str(exc)) from None


def cdr_to_session(cdr: Mapping[str, Any], default_id: str = "cdr") -> SessionFacts:
    """An OCPI CDR as ``SessionFacts``: one charging period per CDR period, volumes taken from the
    period's dimensions (as the reference does), each period ending where the next begins.

    A period with a RESERVATION_TIME dimension marks the session as reserved ("RESERVATION");
    whether the reservation expired is the caller's to say (``--reservation-expired``).
    """
    c = _obj(cdr, "cdr")
    sid = str(c.get("id") or default_id)
    start = _when(c.get("start_date_time"), "start_date_time")
    end = _when(c.get("end_date_time"), "end_date_time")
    if end < start:
        raise OcpiError(f"end_date_time {end.isoformat()} is before start_date_time {start.isoformat()}")
    raw_periods = _list(c.get("charging_periods"), "charging_periods")
    if not raw_periods:
        raise OcpiError("charging_periods: a CDR needs at least one charging period")
    starts = [_when(_obj(p, f"charging_periods[{i}]").get("start_date_time"), f"charging_periods[{i}].start_date_time")
              for i, p in enumerate(raw_periods)]
    for i in range(1, len(starts)):
        if starts[i] < starts[i - 1]:
            raise OcpiError(f"charging_periods[{i}].start_date_time: {starts[i].isoformat()} is before the previous "
                            "period's start; periods must be in chronological order")
    if starts[-1] > end:
        raise OcpiError(f"charging_periods[{len(starts) - 1}].start_date_time: {starts[-1].isoformat()} is after "
                        f"end_date_time {end.isoformat()}")
    periods = []
    reserved = False
    for i, p in enumerate(raw_periods):
        vals: dict[str, Decimal] = {}
        for j, d in enumerate(_list(p.get("dimensions"), f"charging_periods[{i}].dimensions")):
            where = f"charging_periods[{i}].dimensions[{j}]"
            dim = _obj(d, where)
            typ = dim.get("type")
            if not isinstance(typ, str) or typ not in _DIMENSIONS:
                raise OcpiError(f"{where}.type: unknown CDR dimension {_kind(typ)}")
            vol = _num(dim.get("volume"), f"{where}.volume", minimum=_ZERO)
            field = _DIMENSIONS[typ]
            if field is None:
                continue
            if field in vals:
                raise OcpiError(f"{where}.type: {typ} appears twice in one period")
            vals[field] = vol
        if "reservation_h" in vals:
            reserved = True
        pend = starts[i + 1] if i + 1 < len(starts) else end
        periods.append(ChargingPeriod(start=starts[i], end=pend, **vals))
    loc = c.get("cdr_location")
    country = ""
    power_type = "AC"
    if isinstance(loc, Mapping):
        country = str(loc.get("country") or "")
        if str(loc.get("connector_power_type") or "").upper() == "DC":
            power_type = "DC"
    try:
        return SessionFacts(id=sid, start=start, end=end, periods=tuple(periods), country=country,
                            power_type=power_type, evse_id=str(loc.get("evse_id") or "") if isinstance(loc, Mapping) else "",
                            reservation="RESERVATION" if reserved else None)
    except SessionInputError as exc:
        raise OcpiError(str(exc)) from None


def _hours(a: datetime, b: datetime) -> Decimal:
    delta = b - a
    micro = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micro) / Decimal(3_600_000_000)


def _total_time(session: SessionFacts) -> Decimal:
    """OCPI total_time: the whole session (charging and not), from the first period that is not
    only a reservation — a CDR's periods may start before its start_date_time — to the end."""
    periods = list(session.periods or ())
    first = next((i for i, p in enumerate(periods)
                  if p.energy_kwh or p.time_h or p.parking_h or not p.reservation_h), None)
    return _span(first, [p.start for p in periods], session.start, session.end, _hours)


def _span(first: int | None, starts: list[Any], start: Any, end: Any, hours: Callable[[Any, Any], Decimal]) -> Decimal:
    """total_time from the first period that is not only a reservation (``first``), the periods'
    starts, the session's start and end, in datetimes or in epoch ms (``hours`` measures them)."""
    if first is None:
        return _ZERO  # only a reservation: there was no charging session
    # after a reservation the session begins with its first period (the CDR's start_date_time is
    # then the reservation's start); otherwise at the earlier of start_date_time and that period
    begin = starts[first] if first else min(start, starts[0])
    return max(_ZERO, hours(begin, end))


def _fmt(d: Decimal) -> str:
    if d is _ZERO:  # the common absent cost group
        return "0.0000"
    return str(d.quantize(_FOUR, rounding=ROUND_HALF_UP))


def price_cdr(ruleset: CompiledRuleset, cdr: Mapping[str, Any], *, tz: str = "UTC",
              reservation_expired: bool = False, default_id: str = "cdr") -> dict[str, Any]:
    """Rate one CDR through a compiled ruleset and report the OCPI CDR totals (money per cost
    group from ``RatingResult.group_totals``, rounded half-up to 4 places only for printing)."""
    session = cdr_to_session(cdr, default_id)
    ctx = RatingContext(tz=tz, reservation="RESERVATION_EXPIRES" if reservation_expired else None)
    return _totals(ruleset, session, ctx, cdr)


def _totals(ruleset: CompiledRuleset, session: SessionFacts, ctx: RatingContext,
            cdr: Mapping[str, Any]) -> dict[str, Any]:
    result = ruleset.rate(session, ctx)
    groups = result.group_totals()
    out: dict[str, Any] = {}
    if cdr.get("id"):
        out["id"] = str(cdr["id"])
    out["currency"] = result.currency
    for key, group in COST_FIELDS:
        excl, incl = groups.get(group, (_ZERO, _ZERO))
        out[key] = {"excl_vat": _fmt(excl), "incl_vat": _fmt(incl)}
    out["total_energy"] = _fmt(result.energy_kwh)
    out["total_time"] = _fmt(_total_time(session))
    out["total_parking_time"] = _fmt(result.parking_h)
    return out


# ---------------------------------------------------------------- the fast path for CDR files
# `evbill ocpi price --cdrs` on many CDRs: msgspec decodes a line straight into the few fields
# pricing reads (typed structs, in C), every volume as its raw JSON text, which becomes a Decimal
# exactly as ``load_json`` makes it (``Decimal(text)``, or ``Decimal(int)`` for a whole number), so
# no number ever passes through a float (each distinct text converted once). ``_fast_pricer`` turns
# the periods into the rating engine's pieces and prices them with the tariff's specialised steps
# (no SessionFacts, trace or RatingResult per CDR); the totals are printed from one template
# without json.dumps. Anything else -- a field
# of an unexpected type, JSON that msgspec refuses, any error at all -- sends the line down the
# exact path (``load_json``, ``cdr_to_session``, ``price_cdr``), so both print the same bytes and
# every error reads the same.
# CDR dimension -> index into a period's volumes (energy, time, parking, reservation, min/max power,
# min/max current, as ``runtime.rating``'s pieces hold them); 8: a known dimension pricing ignores
# (its volume is still read, so a bad one is refused as the exact path refuses it, but never used)
_DIM_INDEX = {typ: 8 if field is None else ("energy_kwh", "time_h", "parking_h", "reservation_h", "min_power_kw",
                                             "max_power_kw", "min_current_a", "max_current_a").index(field)
              for typ, field in _DIMENSIONS.items()}


class _Dim(msgspec.Struct, tag_field="type", gc=False):
    volume: msgspec.Raw
    # the period volume this dimension gives (_DIM_INDEX), its bit in the set of volumes seen (0
    # for ignored ones: they may repeat), and its volume's JSON text -> the piece's value: the
    # cache (a dict: the compiled fast path reads it without a call) and the function that makes
    # and caches a value it does not have
    kb: ClassVar[tuple[int, int, dict[bytes, Decimal], Callable[[bytes], Decimal]]]


def _volume_cache(scale: Decimal | None) -> tuple[dict[bytes, Decimal], Callable[[bytes], Decimal]]:
    """A volume's JSON text -> ``_volume(text)`` (times ``scale``: hours -> the pieces' seconds),
    each distinct text converted once (the cache is emptied when it grows past 200,000)."""
    cache: dict[bytes, Decimal] = {}

    def make(text: bytes) -> Decimal:
        v = _volume(text)
        if scale is not None:
            v = v * scale
        if len(cache) > 200_000:
            cache.clear()
        cache[text] = v
        return v
    return cache, make


_S_PER_H = Decimal(3600)  # ChargingPeriod hours -> piece seconds (_segments multiplies by int 3600: the same)
# kWh, kW and A as they are; charging, parking and reservation hours as seconds
_AS_IS, _AS_SECONDS = _volume_cache(None), _volume_cache(_S_PER_H)

# one struct per known dimension type, told apart by msgspec on "type" (an unknown type: DecodeError)
_DIMS = tuple(msgspec.defstruct(f"_Dim{typ.title().replace('_', '')}", [], bases=(_Dim,), tag=typ,
                                namespace={"kb": (k, 0 if k == 8 else 1 << k,
                                                  *(_AS_SECONDS if k in (1, 2, 3) else _AS_IS))})
              for typ, k in _DIM_INDEX.items())


class _Period(msgspec.Struct, gc=False):
    start_date_time: str
    dimensions: list[Union[_DIMS]]  # type: ignore[valid-type]  # noqa: UP007


class _Location(msgspec.Struct, gc=False):
    country: str | None = None
    evse_id: str | None = None
    connector_power_type: str | None = None


class _Cdr(msgspec.Struct, gc=False):
    start_date_time: str
    end_date_time: str
    charging_periods: list[_Period]
    id: str | None = None
    cdr_location: _Location | None = None


_DECODE_CDR = msgspec.json.Decoder(_Cdr).decode
_DUMP_STR = json.encoder.encode_basestring_ascii  # what json.dumps uses for str
_fromisoformat = datetime.fromisoformat


class _Slow(Exception):
    """The fast path does not take this CDR; the exact path will (and says what is wrong)."""


def _epoch_ms(value: str) -> int:
    # the common shape (2026-07-22T17:14:33Z): fromisoformat reads the Z as UTC itself, which is
    # what parse_datetime makes of it; anything else goes through parse_datetime. Whole seconds
    # only: the pieces are in ms, while the exact path measures total_time in microseconds
    try:
        if len(value) == 20 and value[19] == "Z" and value[10] == "T":
            return int(_fromisoformat(value).timestamp()) * 1000
        dt = parse_datetime(value)
    except (SessionInputError, ValueError):
        raise _Slow from None
    if dt.microsecond:
        raise _Slow
    return int(dt.timestamp()) * 1000


_ZERO_GROUP = (_ZERO, _ZERO)


def _fast_pricer(ruleset: CompiledRuleset, ctx: RatingContext) -> Callable[[str], str] | None:
    """The fast path for one tariff and context: a CDR line -> its printed totals (``_Slow`` or an
    error for anything unusual). The CDR's periods become the rating engine's pieces directly
    (``Specialised.pieces``: the same steps as ``CompiledRuleset.rate``, without a ``SessionFacts``,
    a trace or a ``RatingResult``); the session-level facts conditions may read (country, EVSE, AC
    or DC, reserved) come from one ``SessionFacts`` per distinct set of them. None when the tariff
    has no pieces path (discounts, VAT rate classes): then every CDR takes the exact path. The
    function is ``dsl.ocpi_fast.pricer``'s (compiled where ``make install`` built it)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    probe = SessionFacts(id="", start=epoch, end=epoch)
    prog = ruleset.tariff_for(probe)  # a CDR names no product: the ruleset's default tariff
    pieces_fn = ruleset.piece_engines.get(prog.name)
    if pieces_fn is None:
        return None
    facts: dict[tuple[str | None, str | None, str | None, bool], SessionFacts] = {}  # by the raw location fields

    def facts_of(key: tuple[str | None, str | None, str | None, bool]) -> SessionFacts:
        if len(facts) > 4096:
            facts.clear()
        f = facts[key] = SessionFacts(
            id="", start=epoch, end=epoch, country=key[0] or "", evse_id=key[1] or "",
            power_type="DC" if (key[2] or "").upper() == "DC" else "AC",
            reservation="RESERVATION" if key[3] else None)
        return f

    fn: Callable[[str], str] = _fast_module().pricer(
        _DECODE_CDR, _epoch_ms, facts, facts_of,
        # the same steps and group totals as one generated function, where the tariff has one
        ruleset.totals_engine(prog.name, charging_time=False), pieces_fn, group_totals,
        tuple(group for _key, group in COST_FIELDS),
        ctx, _ZERO, RZERO, _half_up().quantize, _FOUR, _fmt(_ZERO), _DUMP_STR,
        _text_parts(_DUMP_STR(prog.currency)), _Slow)
    return fn


# json.dumps of what _totals returns, after the id: the currency, the cost groups, the volumes
_TEMPLATE = ('"currency": %s, ' + "".join(f'"{key}": {{"excl_vat": "%s", "incl_vat": "%s"}}, ' for key, _g in COST_FIELDS)
             + '"total_energy": "%s", "total_time": "%s", "total_parking_time": "%s"}')


def _text_parts(currency_json: str) -> tuple[str, ...]:
    """``_TEMPLATE``'s literal parts around its 15 texts, the currency (its JSON text) put in: the
    fast path prints the head, then each part followed by its text, then the last part."""
    parts = _TEMPLATE.split("%s")
    return (parts[0] + currency_json + parts[1], *parts[2:])


def _half_up() -> Context:
    """The current context with half-up rounding: its ``quantize(x, _FOUR)`` is ``_fmt``'s
    ``x.quantize(_FOUR, rounding=ROUND_HALF_UP)`` (the same precision, traps and limits), without
    parsing keyword arguments per call."""
    ctx = getcontext().copy()
    ctx.rounding = ROUND_HALF_UP
    return ctx


def _volume(text: bytes) -> Decimal:
    # a JSON number's text as Decimal is what load_json makes of it (parse_float=Decimal for a
    # fraction or exponent; int then Decimal(int) for a whole number: the same but for "-0")
    try:
        v = Decimal(text.decode("ascii"))
    except (ArithmeticError, UnicodeDecodeError):  # a string, true, null, an object: not a number
        raise _Slow from None
    if v.is_signed() or not v.is_finite():  # negative (or -0): the exact path says what it makes of it
        raise _Slow
    return v


_FAST: list[tuple[CompiledRuleset, RatingContext, Callable[[str], str] | None]] = []
# (an invalid date in a timestamp is a ValueError of fromisoformat; any error at all is the exact path's)
_FAST_ERRORS = (_Slow, msgspec.DecodeError, OcpiError, RatingError, SessionInputError, ValueError,
                ArithmeticError)


_FAST_MODULE: list[Any] = []


def _fast_module() -> Any:
    """``dsl.ocpi_fast``, compiled (``dsl._ocpi_fast_c``, built by ``make install``: ``dsl.native``)
    where that was built from the source as it is now, else the plain module; the plain one also
    where ``EVBILL_OCPI_NATIVE=0``. Decided once per process."""
    if not _FAST_MODULE:
        import hashlib
        import importlib
        import os

        from dsl import ocpi_fast

        module: Any = ocpi_fast
        if os.environ.get("EVBILL_OCPI_NATIVE", "").strip() != "0":
            try:
                native = importlib.import_module("dsl._ocpi_fast_c")
                sha = hashlib.sha256(Path(ocpi_fast.__file__).read_bytes()).hexdigest()
            except (ImportError, OSError):
                pass
            else:
                if getattr(native, "SOURCE_SHA256", None) == sha:
                    module = native
        _FAST_MODULE.append(module)
    return _FAST_MODULE[0]


def _fast_for(ruleset: CompiledRuleset, ctx: RatingContext) -> Callable[[str], str] | None:
    """``_fast_pricer(ruleset, ctx)``, made once per process for the pair last asked for."""
    if not _FAST or _FAST[0][0] is not ruleset or _FAST[0][1] is not ctx:
        _FAST[:] = [(ruleset, ctx, _fast_pricer(ruleset, ctx))]
    return _FAST[0][2]


def _price_line(ruleset: CompiledRuleset, ctx: RatingContext, line: str, label: str, default_id: str,
                tz: str, expired: bool) -> tuple[str, bool]:
    """One line of a CDR file as the command prints it, and whether it failed."""
    fast = _fast_for(ruleset, ctx)
    if fast is not None:
        try:
            return fast(line), False
        except _FAST_ERRORS:
            pass  # the exact path below prices it or says why not, in its own words
    return _price_exact(ruleset, line, label, default_id, tz, expired)


def _price_exact(ruleset: CompiledRuleset, line: str, label: str, default_id: str, tz: str,
                 expired: bool) -> tuple[str, bool]:
    cdr: Any
    try:
        cdr = load_json(line)
    except json.JSONDecodeError as exc:
        cdr = OcpiError(f"not valid JSON: {exc.msg} (column {exc.colno})")
    return _price_one(ruleset, label, cdr, default_id, tz, expired)


def _price_one(ruleset: CompiledRuleset, label: str, cdr: Any, default_id: str, tz: str,
               expired: bool) -> tuple[str, bool]:
    try:
        if isinstance(cdr, OcpiError):
            raise cdr
        out = price_cdr(ruleset, _obj(cdr, "cdr"), tz=tz, reservation_expired=expired, default_id=default_id)
    except (OcpiError, RatingError) as exc:
        err: dict[str, Any] = {"cdr": label}
        if isinstance(cdr, Mapping) and cdr.get("id"):
            err["id"] = str(cdr["id"])
        err["error"] = str(exc)
        return json.dumps(err), True
    return json.dumps(out), False


# the state a worker process prices with (inherited through fork, so nothing is pickled but the
# bounds of a part of the file and what it prints)
_WORKER: tuple[CompiledRuleset, RatingContext] | None = None
_TEXT: list[str | bytes | mmap.mmap] = []  # the file's text (or, all ASCII, its bytes, mapped: the same characters)
# where workers put the fast path's text (the spool directory, inherited through fork; empty when the
# parent prints what the workers hand back) and, in a worker, its own file there: (fd, path, bytes in it)
_SPOOL: list[str] = []
_SPOOL_FILE: list[Any] = []
PARALLEL_MIN = 4000  # CDRs below which one process is quicker than starting workers
# a part of the file priced: what its lines print, in order (runs of the fast path's text -- or, spooled,
# the run's length in bytes in the worker's spool file -- and as (line offset, CDR offset, line) each
# line the fast path left to the exact path, which needs the line's number and the CDR's position in
# the whole file); its lines and its CDRs; the spool file and where the part's text begins in it
_Part = tuple[list["str | int | tuple[int, int, str]"], int, int, str, int]


def _price_part(bounds: tuple[int, int]) -> _Part:
    """The lines of ``_TEXT[0][a:b]`` (a and b at line starts) through the fast path."""
    assert _WORKER is not None
    ruleset, ctx = _WORKER
    fast = _fast_for(ruleset, ctx)
    out: list[str | int | tuple[int, int, str]] = []
    run: list[str] = []
    i = 0
    part = _TEXT[0][bounds[0]:bounds[1]]
    lines = _lines(part)
    spool = _spool_file() if _SPOOL else None
    begin = spool[2] if spool is not None else 0
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        if fast is not None:
            try:
                run.append(fast(line))
                i += 1
                continue
            except _FAST_ERRORS:
                pass
        if run:
            out.append(_run_out(run, spool))
            run = []
        out.append((n, i, line))
        i += 1
    if run:
        out.append(_run_out(run, spool))
    return out, len(lines), i, spool[1] if spool is not None else "", begin


# the line breaks of str.splitlines in ASCII besides \n and \r (bytes parts have no \r: _read_cdrs)
_OTHER_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")


def _lines(part: str | bytes) -> list[str]:
    """``part.splitlines()`` as text: for ASCII bytes without the rarer line breaks, a split at each
    newline (a few times quicker than splitlines' look at every character)."""
    if isinstance(part, str):
        return part.splitlines()
    text = part.decode("ascii")
    if any(c in part for c in _OTHER_BREAKS):
        return text.splitlines()
    lines = text.split("\n")
    if lines[-1] == "":  # a part ending in a newline (splitlines gives no empty last line)
        lines.pop()
    return lines


def _spool_file() -> list[Any]:
    """This worker's spool file, opened when first asked for: [fd, path, bytes written]."""
    import os

    if not _SPOOL_FILE:
        path = os.path.join(_SPOOL[0], str(os.getpid()))
        _SPOOL_FILE[:] = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path, 0]
    return _SPOOL_FILE


def _run_out(run: list[str], spool: list[Any] | None) -> str | int:
    """A run of the fast path's lines as printed: the text, or (spooled) its length in the spool file."""
    text = "\n".join(run) + "\n"
    if spool is None:
        return text
    import os

    data = text.encode("utf-8")  # (ASCII: JSON strings are escaped as json.dumps escapes them)
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(spool[0], view):]
    except OSError:  # the spool's file system is full: this run goes back as text, as without a spool
        os.ftruncate(spool[0], spool[2])
        os.lseek(spool[0], spool[2], os.SEEK_SET)
        return text
    spool[2] += len(data)
    return len(data)


def _parts(text: str | bytes | mmap.mmap, workers: int) -> list[tuple[int, int]]:
    """Bounds of parts of ``text`` that end just after a newline (or at the end), about 16 per
    worker and at most 1 MB: each part's ``splitlines()`` are the whole text's lines there."""
    size = min(1 << 20, max(1 << 14, len(text) // (16 * workers)))
    newline: Any = "\n" if isinstance(text, str) else b"\n"
    out = []
    a = 0
    while a < len(text):
        b = text.find(newline, a + size)
        b = len(text) if b < 0 else b + 1
        out.append((a, b))
        a = b
    return out


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _lines_up_to(text: str | bytes | mmap.mmap, cap: int, window: int = 1 << 20) -> int:
    """``min(cap, text.count(newline) + 1)``, counting only as far as it must: a count through the
    whole of a 200 MB file costs a third of a second, and ``_workers`` needs to know no more than
    whether there are ``PARALLEL_MIN // 2`` lines per core."""
    newline: Any = "\n" if isinstance(text, str) else b"\n"
    n = 1
    a = 0
    while a < len(text) and n < cap:
        b = min(len(text), a + window)
        n += text[a:b].count(newline)  # (a slice: a mapped file has no count)
        a = b
    return min(n, cap)


def _workers(count: int) -> int:
    """Worker processes for ``count`` CDRs: the usable cores (``EVBILL_OCPI_WORKERS`` overrides),
    one (no workers) for small files or where fork is unavailable."""
    import multiprocessing
    import os

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    env = os.environ.get("EVBILL_OCPI_WORKERS", "").strip()
    if env:
        return max(1, int(env)) if env.isdigit() else 1
    if count < PARALLEL_MIN:
        return 1
    return max(1, min(_cpus(), count // (PARALLEL_MIN // 2)))


def _price_file(ruleset: CompiledRuleset, path: str, text: str | bytes | mmap.mmap, tz: str, expired: bool) -> bool:
    """Price every line of a CDR file, printing in input order; True when one failed.

    The file is cut into parts at line ends; workers (forked: they hold the text already) price a
    part's lines by the fast path, and this process prints the parts in order, pricing by the
    exact path the few lines left to it, with their line numbers and positions in the file. Where
    standard output is a file descriptor taking UTF-8, each worker writes its text to a spool file of
    its own and this process copies it out (``os.sendfile``: the kernel copies; nothing is pickled,
    decoded or encoded again here), so it prints the same bytes with little of this process's time."""
    import gc

    global _WORKER
    ctx = RatingContext(tz=tz, reservation="RESERVATION_EXPIRES" if expired else None)
    workers = _workers(_lines_up_to(text, PARALLEL_MIN + (PARALLEL_MIN // 2) * _cpus()))
    parts = _parts(text, workers)
    write = sys.stdout.write
    failed = False
    _WORKER = (ruleset, ctx)
    _TEXT[:] = [text]
    out_fd = _stdout_fd() if workers > 1 else None
    if out_fd is not None:
        import tempfile

        # room for the output (about half the input's size here) twice over
        _SPOOL[:] = [tempfile.mkdtemp(prefix="evbill-ocpi-", dir=_spool_dir(len(text)))]
    spooled: dict[str, int] = {}  # a worker's spool file -> this process's descriptor of it
    # all made so far is never garbage: out of the collector's sight, a full collection does not
    # walk it, nor do forked workers copy the pages it would touch
    gc.freeze()
    lines = cdrs = 0  # before the part being printed
    try:
        if workers <= 1:
            results: Iterator[_Part] = map(_price_part, parts)
        else:
            import multiprocessing

            sys.stdout.flush()
            pool = multiprocessing.get_context("fork").Pool(workers)
            results = pool.imap(_price_part, parts)
        for out, n_lines, n_cdrs, spool, at in results:
            for item in out:
                if type(item) is str:
                    write(item)
                    if out_fd is not None:
                        sys.stdout.flush()  # a worker's run its spool had no room for (_run_out)
                    continue
                if type(item) is int:
                    fd = spooled.get(spool)
                    if fd is None:
                        import os

                        fd = spooled[spool] = os.open(spool, os.O_RDONLY)
                    assert out_fd is not None
                    _copy_out(fd, at, item, out_fd)
                    at += item
                    continue
                assert isinstance(item, tuple)
                n, i, line = item
                printed, bad = _price_exact(ruleset, line, f"{path}:{lines + n + 1}", f"cdr-{cdrs + i + 1}", tz,
                                            expired)
                write(printed + "\n")
                if out_fd is not None:
                    sys.stdout.flush()  # before the next spooled text goes out past the text layer
                failed = failed or bad
            lines += n_lines
            cdrs += n_cdrs
        if workers > 1:
            pool.close()
            pool.join()
        return failed
    finally:
        if workers > 1:
            pool.terminate()
        _WORKER = None
        _TEXT.clear()
        gc.unfreeze()
        if _SPOOL:
            import os
            import shutil

            for fd in spooled.values():
                os.close(fd)
            shutil.rmtree(_SPOOL[0], ignore_errors=True)
            _SPOOL.clear()


def _stdout_fd() -> int | None:
    """Standard output's file descriptor when text written to it is its UTF-8 bytes with newlines
    as they are (so bytes written to the descriptor after a flush read as the same output); None
    otherwise (a test's capture object, another encoding)."""
    import codecs
    import os

    out = sys.stdout
    try:
        fd = out.fileno()
        enc = codecs.lookup(out.encoding).name
    except (AttributeError, OSError, ValueError, LookupError, TypeError):
        return None
    return fd if enc == "utf-8" and os.linesep == "\n" else None


def _spool_dir(need: int) -> str | None:
    """Memory-backed /dev/shm where there is one with room for ``need`` bytes (the spool is read back
    at once; a container's is often only 64 MB), else the default temporary folder."""
    import os

    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return "/dev/shm" if st.f_bavail * st.f_frsize >= need and os.access("/dev/shm", os.W_OK) else None


def _copy_out(src: int, offset: int, count: int, dst: int) -> None:
    """``count`` bytes of file ``src`` from ``offset`` onto ``dst``: by ``os.sendfile``, or by reads and
    writes where the kernel refuses it for this output (a terminal, an append-only file)."""
    import os

    end = offset + count
    try:
        while offset < end:
            sent = os.sendfile(dst, src, offset, end - offset)
            if sent == 0:
                raise OSError("sendfile: no progress")
            offset += sent
        return
    except BrokenPipeError:
        raise
    except OSError:
        pass
    while offset < end:
        data = os.pread(src, min(1 << 20, end - offset), offset)
        if not data:
            raise OSError(f"spool file shorter than expected ({offset} < {end})")
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]
        offset += len(data)


# ---------------------------------------------------------------- the command
def _err(msg: str) -> None:
    print(f"evbill: {msg}", file=sys.stderr)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OcpiError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise OcpiError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise OcpiError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise OcpiError(f"{path}: {exc.strerror}") from None


def _read_cdrs(path: str) -> str | bytes | mmap.mmap:
    """``_read(path)``; or, for a file all ASCII without a carriage return (whose text is then its
    bytes, character for character), its bytes: not decoding 200 MB before the workers start
    saves start-up time; each worker decodes only its part. A regular file's bytes are mapped
    (read-only ``mmap``), not read: this process does not copy the whole file before the workers
    start (a third of its serial time on 200 MB); each worker's slice of its part reads the page cache.
    The file must stay as it is while it is priced (cut short under the mapping, a read of the lost
    pages ends the process by SIGBUS; read whole, it would be priced as first read)."""
    try:
        with open(path, "rb") as f:
            try:
                data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError, OverflowError):  # empty, not a regular file (a pipe), no mmap
                data = f.read()
    except OSError:
        return _read(path)  # the same error, in _read's words
    if _ascii(data) and data.find(b"\r") < 0:
        return data
    return _read(path)  # read_text's decoding and newline translation


def _ascii(data: bytes | mmap.mmap, window: int = 1 << 18) -> bool:
    """``data.isascii()``, for a mapped file a window at a time (no copy of the whole file)."""
    if isinstance(data, bytes):
        return data.isascii()
    return all(data[a:a + window].isascii() for a in range(0, len(data), window))


def _tariff_of(doc: Any, path: str) -> Mapping[str, Any]:
    """The Tariff in a file: a Tariff object, or a CDR carrying it as ``tariffs[0]``."""
    if isinstance(doc, Mapping) and "elements" not in doc and isinstance(doc.get("tariffs"), list):
        if not doc["tariffs"]:
            raise OcpiError(f"{path}: a CDR without an embedded tariff (tariffs is empty)")
        return _obj(doc["tariffs"][0], f"{path}: tariffs[0]")
    return _obj(doc, path)


def _cdr_inputs(args: argparse.Namespace) -> Iterator[tuple[str, Any]]:
    """(label, parsed CDR) for every CDR in the ``--cdr`` file (a CDR or a list of CDRs)."""
    text = _read(args.cdr)
    try:
        doc = load_json(text)
    except json.JSONDecodeError as exc:
        raise OcpiError(f"{args.cdr}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if isinstance(doc, list):  # an OCPI GET answer is a list of CDRs
        for i, item in enumerate(doc):
            yield f"{args.cdr}[{i}]", item
    else:
        yield args.cdr, doc


def price_cdrs_cli(args: argparse.Namespace) -> int:
    """``evbill ocpi price --tariff T.json (--cdr C.json | --cdrs C.jsonl) [--tz Z] [--reservation-expired]``.

    One JSON object per CDR on stdout; a CDR that cannot be priced gets ``{"error": ...}`` and
    the others are still priced. Exit 1 if the tariff is unusable or any CDR failed.

    ``--tariff`` may also name a CDR file: its embedded ``tariffs[0]`` is used. The CDRs being
    priced are always priced against that one tariff, whatever tariffs they embed themselves.
    """
    tz = getattr(args, "tz", None) or "UTC"
    try:
        zone(tz)
    except Exception:  # noqa: BLE001 - any failure means the zone is unusable
        _err(f"--tz: unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)")
        return 1
    try:
        text = _read(args.tariff)
        try:
            doc = load_json(text)
        except json.JSONDecodeError as exc:
            raise OcpiError(f"{args.tariff}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") \
                from None
        try:
            source = import_tariff(_tariff_of(doc, args.tariff))
        except OcpiError as exc:
            raise OcpiError(f"{args.tariff}: {exc}") from None
    except OcpiError as exc:
        _err(str(exc))
        return 1
    res = compile_ruleset(source, f"{args.tariff} (imported)")
    if res.ruleset is None:
        # the importer produced DSL the compiler refuses: a bug here, not bad input
        _err(f"{args.tariff}: the imported ruleset does not compile:\n{res.render()}")
        return 1
    ruleset = res.ruleset
    expired = bool(getattr(args, "reservation_expired", False))
    if args.cdr is None:
        try:
            data = _read_cdrs(args.cdrs)
        except OcpiError as exc:
            _err(str(exc))
            return 1
        return 1 if _price_file(ruleset, args.cdrs, data, tz, expired) else 0
    failed = False
    try:
        inputs = list(_cdr_inputs(args))
    except OcpiError as exc:
        _err(str(exc))
        return 1
    for i, (label, cdr) in enumerate(inputs):
        out, bad = _price_one(ruleset, label, cdr, f"cdr-{i + 1}", tz, expired)
        failed = failed or bad
        print(out)
    return 1 if failed else 0
