"""Properties of the OCPI import, guarded by hypothesis.

* Round trip: the importer builds an AST; compiling that AST directly and compiling the printed
  DSL text (what ``evbill ocpi import-tariff`` shows, parsed back) rate every CDR identically, and
  printing the re-parsed text gives the same text.
* Totals: the priced OCPI totals are the sums of the rating lines, per cost group and overall.
* Which element prices what agrees with an oracle written from the OCPI text.
* Random and mutated tariffs and CDRs raise ``OcpiError`` and nothing else.

Example counts are kept small for the everyday run; each property has also been run with 3000 to
5000 examples without a failure (raise ``max_examples`` locally to repeat that).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.compiler import _Compiler, compile_ruleset  # _Compiler: compile an AST that never was text
from dsl.ocpi import COST_FIELDS, OcpiError, cdr_to_session, import_tariff, price_cdr, tariff_to_ast
from dsl.parser import parse
from dsl.printer import print_ruleset
from runtime.rated import RatingResult
from runtime.rating import RatingContext

D = Decimal
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]

money = st.decimals(min_value=0, max_value=5, places=2, allow_nan=False, allow_infinity=False)
vats = st.sampled_from([None, D(0), D(7), D(10), D(19), D(20), D("5.2")])
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def restrictions(draw: st.DrawFn, reservation: str | None) -> dict[str, Any] | None:
    r: dict[str, Any] = {}
    if draw(st.booleans()):
        r["start_time"] = draw(hhmm)
    if draw(st.booleans()):
        r["end_time"] = draw(hhmm)
    if draw(st.integers(0, 3)) == 0:
        day = draw(st.integers(-3, 8))
        start = (T0 + timedelta(days=day)).date()
        r["start_date"] = start.isoformat()
        if draw(st.booleans()):
            r["end_date"] = (start + timedelta(days=draw(st.integers(1, 5)))).isoformat()
    elif draw(st.integers(0, 5)) == 0:
        r["end_date"] = (T0 + timedelta(days=draw(st.integers(0, 8)))).date().isoformat()
    for key, top, places in (("kwh", 60, 1), ("current", 64, 0), ("power", 50, 1), ("duration", 14400, 0)):
        for side in ("min", "max"):
            if draw(st.integers(0, 4)) == 0:
                r[f"{side}_{key}"] = draw(st.decimals(min_value=0, max_value=top, places=places,
                                                      allow_nan=False, allow_infinity=False))
    if draw(st.integers(0, 3)) == 0:
        r["day_of_week"] = draw(st.lists(st.sampled_from(DAYS), max_size=7, unique=True))
    if reservation:
        r["reservation"] = reservation
    return r or draw(st.sampled_from([None, {}]))


@st.composite
def elements(draw: st.DrawFn) -> dict[str, Any]:
    reservation = draw(st.sampled_from([None, None, None, "RESERVATION", "RESERVATION_EXPIRES"]))
    types = ["FLAT", "TIME"] if reservation else ["FLAT", "ENERGY", "TIME", "PARKING_TIME"]
    comps = []
    for typ in draw(st.lists(st.sampled_from(types), min_size=1, max_size=4)):
        c: dict[str, Any] = {"type": typ, "price": draw(money),
                             "step_size": draw(st.sampled_from([0, 1, 60, 300, 900, 1000]))}
        vat = draw(vats)
        if vat is not None:
            c["vat"] = vat
        comps.append(c)
    e: dict[str, Any] = {"price_components": comps}
    r = draw(restrictions(reservation))
    if r is not None:
        e["restrictions"] = r
    return e


@st.composite
def tariffs(draw: st.DrawFn) -> dict[str, Any]:
    t: dict[str, Any] = {"country_code": "DE", "party_id": "HYP", "id": "p", "currency": "EUR",
                         "elements": draw(st.lists(elements(), min_size=1, max_size=6))}
    lo = draw(st.one_of(st.none(), money))
    hi = draw(st.one_of(st.none(), st.decimals(min_value=0, max_value=40, places=2, allow_nan=False,
                                               allow_infinity=False)))
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    for key, v in (("min_price", lo), ("max_price", hi)):
        if v is not None:
            t[key] = {"excl_vat": v} if draw(st.booleans()) else {"excl_vat": v, "incl_vat": v * D("1.19")}
    return t


@st.composite
def cdrs(draw: st.DrawFn, all_dims: bool = False) -> dict[str, Any]:
    """CDR-shaped dicts. With ``all_dims`` every period states power and current (min = max), so
    no restriction ever needs a value the CDR does not give."""
    start = T0 + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60)))
    at = start
    periods = []
    if draw(st.integers(0, 4)) == 0:  # a reservation before the session
        mins = draw(st.integers(1, 90))
        periods.append({"start_date_time": at.isoformat(),
                        "dimensions": [{"type": "RESERVATION_TIME", "volume": (D(mins) / 60).quantize(D("0.0001"))}]
                        + (_power_dims(draw) if all_dims else [])})
        at += timedelta(minutes=mins)
    for _ in range(draw(st.integers(1, 4))):
        mins = draw(st.integers(1, 180))
        hours = (D(mins) / 60).quantize(D("0.0001"))
        dims: list[dict[str, Any]] = []
        parked = draw(st.integers(0, 3)) == 0
        dims.append({"type": "PARKING_TIME" if parked else "TIME", "volume": hours})
        if not parked:
            dims.append({"type": "ENERGY", "volume": draw(st.decimals(min_value=0, max_value=40, places=3,
                                                                      allow_nan=False, allow_infinity=False))})
            for typ, top in (("MAX_POWER", 50), ("MIN_CURRENT", 64)):
                if draw(st.booleans()) and not all_dims:
                    dims.append({"type": typ, "volume": draw(st.integers(0, top))})
        if all_dims:
            dims += _power_dims(draw)
        periods.append({"start_date_time": at.isoformat(), "dimensions": dims})
        at += timedelta(minutes=mins)
    return {"id": "hyp", "start_date_time": start.isoformat(), "end_date_time": at.isoformat(),
            "cdr_location": {"country": "DEU"}, "charging_periods": periods}


def _power_dims(draw: st.DrawFn) -> list[dict[str, Any]]:
    kw = draw(st.decimals(min_value=0, max_value=50, places=1, allow_nan=False, allow_infinity=False))
    amps = D(draw(st.integers(0, 64)))
    return [{"type": "MIN_POWER", "volume": kw}, {"type": "MAX_POWER", "volume": kw},
            {"type": "MIN_CURRENT", "volume": amps}, {"type": "MAX_CURRENT", "volume": amps}]


contexts = st.builds(lambda tz, expired: RatingContext(tz=tz, reservation="RESERVATION_EXPIRES" if expired else None),
                     st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]), st.booleans())


def _lines(r: RatingResult) -> list[tuple[Any, ...]]:
    # everything but the rule label, whose line number depends on where the rule was written
    return [(ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price, ln.net, ln.tax_rate, ln.gross,
             ln.group) for ln in r.lines]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tariffs(), st.lists(cdrs(), min_size=1, max_size=3), contexts)
def test_import_print_reparse_rates_identically(t: dict[str, Any], sessions: list[dict[str, Any]],
                                                ctx: RatingContext) -> None:
    ast = tariff_to_ast(t)
    direct = _Compiler(ast, "", "direct").build()
    text = import_tariff(t)
    assert text == print_ruleset(ast)
    res = compile_ruleset(text, "imported.evb")
    assert res.errors == [], res.render()
    assert res.ruleset is not None
    reparsed = parse(text, "imported.evb")
    assert reparsed.ruleset is not None
    assert print_ruleset(reparsed.ruleset) == text  # printing is canonical
    for c in sessions:
        s = cdr_to_session(c)
        a = direct.rate(s, ctx)
        b = res.ruleset.rate(s, ctx)
        assert _lines(a) == _lines(b)
        assert (a.energy_kwh, a.time_h, a.parking_h) == (b.energy_kwh, b.time_h, b.parking_h)


def _q(d: Decimal) -> str:
    return str(d.quantize(D("0.0001"), rounding=ROUND_HALF_UP))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tariffs(), cdrs(), contexts)
def test_priced_totals_are_sums_of_lines(t: dict[str, Any], c: dict[str, Any], ctx: RatingContext) -> None:
    res = compile_ruleset(import_tariff(t), "imported.evb")
    assert res.ruleset is not None
    r = res.ruleset.rate(cdr_to_session(c), ctx)
    net = sum((ln.net for ln in r.lines), D(0))
    gross = sum((ln.gross for ln in r.lines), D(0))
    groups = r.group_totals()
    assert groups.get("total", (D(0), D(0))) == (net, gross)
    # every line belongs to one OCPI group, except the min/max price clamp, which only moves the total
    grouped = [ln for ln in r.lines if ln.group]
    assert all(ln.group in {"energy", "time", "parking", "fixed", "reservation"} for ln in grouped)
    assert all(ln.component in ("min_price", "max_price") for ln in r.lines if not ln.group)
    for g in ("energy", "time", "parking", "fixed", "reservation"):
        mine = [ln for ln in grouped if ln.group == g]
        assert groups.get(g, (D(0), D(0))) == (sum((ln.net for ln in mine), D(0)), sum((ln.gross for ln in mine), D(0)))
    for ln in r.lines:
        if ln.component not in ("min_price", "max_price", "cap"):
            assert ln.net == ln.quantity * ln.unit_price
    # the clamp holds: min_price <= total <= max_price (excl. VAT) whenever the tariff has them
    if "min_price" in t:
        assert net >= t["min_price"]["excl_vat"]
    if "max_price" in t:
        assert net <= t["max_price"]["excl_vat"]
    # and what `evbill ocpi price` prints is these sums at 4 places
    out = price_cdr(res.ruleset, c, tz=ctx.tz or "UTC", reservation_expired=ctx.reservation is not None)
    assert out["total_cost"] == {"excl_vat": _q(net), "incl_vat": _q(gross)}
    for key, g in COST_FIELDS:
        e, i = groups.get(g, (D(0), D(0)))
        assert out[key] == {"excl_vat": _q(e), "incl_vat": _q(i)}


# ---------------------------------------------------------------- bad input never crashes
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | st.sampled_from(["", "EUR", "ENERGY", "FLAT", "TIME", "MONDAY", "RESERVATION", "09:00", "2026-01-01", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["currency", "elements", "price_components", "restrictions", "type", "price", "vat", "step_size",
         "start_time", "day_of_week", "min_kwh", "reservation", "min_price", "excl_vat", "dimensions", "volume",
         "start_date_time", "end_date_time", "charging_periods", "tariffs"]), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """A valid document with one value somewhere replaced by arbitrary JSON."""
    doc = draw(base)
    node, path = doc, []
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append((node, key))
        node = node[key]
    if path:
        parent, key = path[-1]
        parent[key] = draw(json_values)
    return doc


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, mutated(tariffs())))
def test_bad_tariffs_only_raise_ocpi_error(doc: Any) -> None:
    try:
        text = import_tariff(doc)
    except OcpiError:
        return
    assert compile_ruleset(text, "fuzz.evb").errors == []


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, mutated(cdrs())))
def test_bad_cdrs_only_raise_ocpi_error(doc: Any) -> None:
    try:
        cdr_to_session(doc)
    except OcpiError:
        pass


# ---------------------------------------------------------------- which element prices what
# An oracle written from the OCPI 2.2.1 text (and the reference's reading of it, summarised in
# ../shared/conformance/ocpi/README.md), independent of the DSL: per period and dimension, the first
# element with a component for that dimension whose restrictions all hold at the period's start.
# It only decides *which element* applies; amounts stay with the one pricing path.
_OCPI_TYPE = {"energy": "ENERGY", "time": "TIME", "parking": "PARKING_TIME", "reservation": "TIME"}
_DIM_KIND = {"ENERGY": "energy", "TIME": "time", "PARKING_TIME": "parking", "RESERVATION_TIME": "reservation"}


def _secs(hhmm_text: str) -> int:
    h, m = hhmm_text.split(":")
    return int(h) * 3600 + int(m) * 60


def _holds(r: dict[str, Any] | None, *, local: datetime, kwh_before: Decimal, elapsed_s: Decimal,
           power: Decimal, current: Decimal, reserved: bool, expired: bool) -> bool:
    if not r:
        return True
    if r.get("start_time") is not None or r.get("end_time") is not None:
        a, b = _secs(r.get("start_time") or "00:00"), _secs(r.get("end_time") or "00:00")
        t = local.hour * 3600 + local.minute * 60 + local.second
        if a < b and not a <= t < b:
            return False
        if a > b and not (t >= a or t < b):
            return False
    d = local.date().isoformat()
    if r.get("start_date") is not None and d < r["start_date"]:
        return False
    if r.get("end_date") is not None and d >= r["end_date"]:
        return False
    for key, value in (("kwh", kwh_before), ("duration", elapsed_s), ("power", power), ("current", current)):
        if r.get(f"min_{key}") is not None and not value >= r[f"min_{key}"]:
            return False
        if r.get(f"max_{key}") is not None and not value < r[f"max_{key}"]:
            return False
    if r.get("day_of_week") and DAYS[local.weekday()] not in r["day_of_week"]:
        return False
    if r.get("reservation") == "RESERVATION" and not reserved:
        return False
    return not (r.get("reservation") == "RESERVATION_EXPIRES" and not expired)


def _candidates(t: dict[str, Any], ocpi_type: str, reservation: bool) -> list[int]:
    """Element indexes in lookup order. Reservation costs come from reservation elements only,
    RESERVATION_EXPIRES ones first (the spec's note under ReservationRestrictionType)."""
    out = []
    for i, e in enumerate(t["elements"]):
        is_resv = bool((e.get("restrictions") or {}).get("reservation"))
        if is_resv == reservation and any(c["type"] == ocpi_type for c in e["price_components"]):
            out.append(i)
    if reservation:
        out.sort(key=lambda i: 0 if t["elements"][i]["restrictions"]["reservation"] == "RESERVATION_EXPIRES" else 1)
    return out


def _element(label: str) -> int:
    return int(label.rsplit("element ", 1)[1])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tariffs(), cdrs(all_dims=True), contexts)
def test_the_element_that_prices_each_period_is_the_ocpi_first_match(t: dict[str, Any], c: dict[str, Any],
                                                                      ctx: RatingContext) -> None:
    from zoneinfo import ZoneInfo

    rs = _Compiler(tariff_to_ast(t, base_lines=False), "", "labels").build()
    s = cdr_to_session(c)
    r = rs.rate(s, ctx)
    tz = ZoneInfo(ctx.tz or "UTC")
    expired = ctx.reservation is not None
    periods = s.periods or ()
    reserved = expired or any(p.reservation_h for p in periods)
    begin = min(s.start, periods[0].start)

    def _env(at: datetime, p: Any, kwh_before: Decimal) -> dict[str, Any]:
        # what the restrictions see at ``at``: power and current from the period's dimensions
        return {"local": at.astimezone(tz), "kwh_before": kwh_before, "elapsed_s": D((at - begin).total_seconds()),
                "power": p.max_power_kw, "current": p.max_current_a, "reserved": reserved, "expired": expired}
    by_start: dict[tuple[int, str], int] = {}
    for te in r.trace:
        if te.component in _OCPI_TYPE and not te.note:
            by_start.setdefault((te.start_ms, te.component), _element(te.rule))
    kwh = D(0)
    for p in periods:
        env = _env(p.start, p, kwh)
        ms = int(p.start.timestamp() * 1000)
        for kind, vol in (("energy", p.energy_kwh), ("time", p.time_h), ("parking", p.parking_h),
                          ("reservation", p.reservation_h)):
            if not vol:
                continue
            want = next((i for i in _candidates(t, _OCPI_TYPE[kind], kind == "reservation")
                         if _holds(t["elements"][i].get("restrictions"), **env)), None)
            assert by_start.get((ms, kind)) == want, (kind, p.start.isoformat())
        kwh += p.energy_kwh
    # FLAT: once, by the element that matches where the session (not the reservation) begins
    fixed = [ln for ln in r.lines if ln.component == "flat"]
    active = next((p for p in periods if not p.reservation_h), None)
    want_flat = None
    if active is not None:
        env = _env(active.start, active, D(0))
        want_flat = next((i for i in _candidates(t, "FLAT", False) if _holds(t["elements"][i].get("restrictions"), **env)),
                         None)
    assert [_element(ln.rule) for ln in fixed] == ([] if want_flat is None else [want_flat])
    # the reservation's FLAT: when there is a reservation, matched where it begins
    fees = [ln for ln in r.lines if ln.component == "reservation_fee"]
    want_fee = None
    if reserved:
        first = next((p for p in periods if p.reservation_h), None)
        env = _env(first.start if first else s.start, first if first is not None else periods[0], D(0))
        want_fee = next((i for i in _candidates(t, "FLAT", True) if _holds(t["elements"][i].get("restrictions"), **env)),
                        None)
    assert [_element(ln.rule) for ln in fees] == ([] if want_fee is None else [want_fee])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tariffs(), cdrs(), contexts)
def test_unrestricted_elements_as_base_lines_price_like_when_always(t: dict[str, Any], c: dict[str, Any],
                                                                    ctx: RatingContext) -> None:
    """Unrestricted elements become unconditional lines only where that cannot change the winner."""
    s = cdr_to_session(c)
    a = _Compiler(tariff_to_ast(t), "", "a").build().rate(s, ctx)
    b = _Compiler(tariff_to_ast(t, base_lines=False), "", "b").build().rate(s, ctx)

    def key(r: RatingResult) -> list[tuple[Any, ...]]:
        return [x[:1] + x[2:] for x in _lines(r)]  # descriptions name the condition ("always")
    assert key(a) == key(b)
