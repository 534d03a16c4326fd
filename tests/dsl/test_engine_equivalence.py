"""The specialised engine (``runtime.rating.specialise``, the product path) and the plain oracle
(``tests/runtime/rating_oracle.py``, the algorithm as written before issue 17) give identical
results, line for line and trace entry for trace entry, or the same error.

Covered: a ruleset that uses every feature (conditions of every kind, steps, grace periods by time
and by idle volume, caps, minimum and maximum price, indexed prices, discounts), all five worked
rulesets under ``rulesets/``, and every OCPI conformance case (fixtures, the spec's worked examples,
the reservation CDRs), each with plain sessions, CDR periods and meter values where they apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import CompiledRuleset, PriceSeries, RatingContext
from dsl.ocpi import cdr_to_session, import_tariff, load_json
from runtime import rating
from runtime.money import ZERO
from runtime.rated import group_totals
from runtime.rating import RatingError
from runtime.sessions import ChargingPeriod, MeterValue, SessionFacts
from tests.dsl import test_ocpi_conformance as conf
from tests.runtime import rating_oracle

ROOT = Path(__file__).resolve().parents[2]

RS = CompiledRuleset.from_source('''ruleset cg currency EUR timezone Europe/Berlin holidays DE-BE
groups employees, fleet, new_customers
series spot
tariff everything "Everything" {
  vat 19%
  when group employees { energy 0.25 per kWh; start_fee 0 }
  when dc and power >= 150 kW { energy 0.69 per kWh step 1 Wh; parking 0.20 per min after 90 min, at most 15 }
  when time 22:00..06:00 and not weekend { energy 0.39 per kWh step 100 Wh }
  when holiday or days sun { energy 0.35 per kWh }
  when date 2026-12-24..2026-12-27 { flat 1.00 "Christmas surcharge" }
  when duration >= 120 min { time 0.02 per min step 1 min }
  when energy >= 30 kWh { energy 0.44 per kWh }
  when current >= 32 A { time 0.03 per min }
  start_fee 0.35
  energy 0.49 per kWh step 1 Wh
  time 0.01 per min step 5 min
  parking 0.10 per min after 240 min, at most 12.00
  min_price 1.00
  max_price 80.00
}
tariff idle { vat 7%; parking 0.05 per min after 30 min idle, at most 3; energy 0.30 per kWh }
tariff indexed { vat 19%; energy index(spot) * 1.1 + 0.12 per kWh; when group fleet { energy index(spot) per kWh } }
tariff reserved {
  vat 19%
  when reservation_expires { reservation_fee 2.00; reservation 3.00 per h }
  when reservation { reservation 5.00 per h }
  energy 0.30 per kWh
  flat 0.50
}
discount promo { 10% off energy; for group new_customers; tariffs everything indexed }
discount night { 0.50 off session; for time 23:00..05:00; priority 2 }
discount xmas { 5% off session; valid 2026-12-20..2027-01-07; exclusive; priority 1 }
''', "equivalence.evb")

T0 = datetime(2026, 10, 20, tzinfo=UTC)
SPOT = PriceSeries.from_points("spot", [(T0 + timedelta(minutes=15 * i), D(i % 37) / 100 - D("0.05"))
                                        for i in range(4 * 24 * 120)])


def _series_for(rs: CompiledRuleset) -> RatingContext:
    """A price series for every series the ruleset declares (hourly, over the sessions' months)."""
    names = [n.value for n in rs.ast.series]
    return RatingContext(series={n: replace(SPOT, name=n) for n in names})


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except RatingError as exc:  # the same refusal, with the same words
        return (type(exc).__name__, str(exc))


def assert_same(rs: CompiledRuleset, s: SessionFacts, ctx: RatingContext | None, tariff: str | None = None) -> None:
    prog = rs.tariff_for(s, tariff)
    got = outcome(lambda: rs.rate(s, ctx, tariff))
    want = outcome(lambda: rating_oracle.rate_session(prog, rs.discounts, rs.meta, s, ctx))
    assert got == want
    assert_pieces_same(rs, s, ctx, prog.name, got)


def assert_pieces_same(rs: CompiledRuleset, s: SessionFacts, ctx: RatingContext | None, tariff: str,
                       rated: Any) -> None:
    """The pieces path (``Specialised.pieces``, what ``evbill ocpi price`` runs on CDR files) gives
    a session of CDR periods the lines and volumes the engine gives it, or the same error."""
    fn = rs.piece_engines[tariff]
    if fn is None or not s.periods:
        return
    start, end = int(s.start.timestamp() * 1000), int(s.end.timestamp() * 1000)
    pieces = rating._segments(s, start, end, ())
    got = outcome(lambda: fn(s, ctx or RatingContext(), pieces, start, end))
    if isinstance(rated, tuple):  # the same refusal
        assert got == rated
        return
    assert got == (list(rated.lines), rated.energy_kwh, rated.time_h, rated.parking_h)
    assert_totals_same(rs, s, ctx, tariff, pieces, start, end, rated)


def assert_totals_same(rs: CompiledRuleset, s: SessionFacts, ctx: RatingContext | None, tariff: str,
                       pieces: list[Any], start: int, end: int, rated: Any) -> bool:
    """The fused totals (``runtime.rating.fused_totals``, generated per tariff) give the group
    totals of the engine's lines (``group_totals``) and its volumes, or the same error; False when
    the tariff has none."""
    fn = rs.totals_engine(tariff)
    if fn is None:
        return False
    got = outcome(lambda: fn(s, ctx or RatingContext(), pieces, start, end))
    # the CDR printer's form: the same but for the charging hours, which it does not sum
    printed = rs.totals_engine(tariff, charging_time=False)
    assert printed is not None
    got_printed = outcome(lambda: printed(s, ctx or RatingContext(), pieces, start, end))
    if isinstance(rated, tuple):
        assert got == rated
        assert got_printed == rated
        return True
    assert isinstance(got_printed, tuple) and isinstance(got, tuple)
    assert got_printed[13] is None
    assert got_printed[:13] == got[:13] and got_printed[14] == got[14]
    assert [x is ZERO for x in got_printed[:-3]] == [x is ZERO for x in got[:-3]]
    groups = group_totals(rated.lines)
    want = (*(x for g in rating.TOTAL_GROUPS for x in groups.get(g, (ZERO, ZERO))),
            rated.energy_kwh, rated.time_h, rated.parking_h)
    assert got == want
    # an untouched group is ZERO itself (printed without quantizing), a touched one never is
    assert [x is ZERO for x in got[:-3]] == [g not in groups for g in rating.TOTAL_GROUPS for _x in (0, 1)]
    return True


# ---------------------------------------------------------------- session shapes
_GROUPS = ["employees", "fleet", "new_customers", "pool_cars", "management"]


@st.composite
def sessions(draw: st.DrawFn, products: tuple[str, ...] = ("",),
             shapes: tuple[str, ...] = ("plain", "plain", "periods", "meters")) -> SessionFacts:
    start = T0 + timedelta(seconds=draw(st.integers(0, 60 * 60 * 24 * 100)))
    shape = draw(st.sampled_from(shapes))
    common: dict[str, Any] = dict(
        id="g", customer_groups=frozenset(draw(st.lists(st.sampled_from(_GROUPS), max_size=2))),
        power_type=draw(st.sampled_from(["AC", "DC"])),
        max_power_kw=draw(st.sampled_from([None, D(11), D(50), D(150), D(300)])),
        timezone=draw(st.sampled_from(["", "Europe/Lisbon", "America/New_York"])),
        product=draw(st.sampled_from(products)), customer_id=draw(st.sampled_from(["c1", "c2"])),
        reservation=draw(st.sampled_from([None, None, "RESERVATION"])),
        promo_codes=frozenset(draw(st.lists(st.sampled_from(["WINTER", "X"]), max_size=1))))
    if shape == "plain":
        dur = draw(st.integers(0, 60 * 60 * 30))
        frac = draw(st.integers(0, 100))
        return SessionFacts(start=start, end=start + timedelta(seconds=dur),
                            charging_end=(start + timedelta(seconds=dur * frac // 100)) if frac < 100 else None,
                            energy_kwh=draw(st.decimals(min_value=0, max_value=150, places=4)), **common)
    if shape == "periods":
        n = draw(st.integers(1, 6))
        periods = []
        t = start
        for _ in range(n):
            secs = draw(st.integers(0, 60 * 60 * 6))
            kind = draw(st.sampled_from(["charge", "charge", "park", "resv"]))
            h = D(secs) / 3600
            vols: dict[str, Any] = {}
            if kind == "charge":
                vols = dict(energy_kwh=draw(st.decimals(min_value=0, max_value=60, places=3)), time_h=h,
                            max_power_kw=draw(st.sampled_from([None, D(7), D(22), D(150)])),
                            max_current_a=draw(st.sampled_from([None, D(16), D(32), D(63)])),
                            min_current_a=draw(st.sampled_from([None, D(10)])))
            elif kind == "park":
                vols = dict(parking_h=h)
            else:
                vols = dict(reservation_h=h)
            periods.append(ChargingPeriod(start=t, end=t + timedelta(seconds=secs), **vols))
            t += timedelta(seconds=secs)
        return SessionFacts(start=start, end=t, periods=tuple(periods), **common)
    n = draw(st.integers(0, 6))
    t, wh = start, D(draw(st.integers(0, 10_000)))
    mvs = []
    for _ in range(n):
        t += timedelta(seconds=draw(st.integers(0, 60 * 60 * 3)))
        wh += draw(st.integers(0, 30_000))
        mvs.append(MeterValue(t, wh, draw(st.sampled_from([None, D(7400), D(150000)]))))
    end = t + timedelta(seconds=draw(st.integers(0, 60 * 60 * 4)))
    return SessionFacts(start=start, end=end, meter_values=tuple(mvs),
                        energy_kwh=draw(st.decimals(min_value=0, max_value=80, places=3)), **common)


CTXS = st.builds(lambda tz, resv, version: RatingContext(series={"spot": SPOT}, tz=tz, reservation=resv,
                                                        version=version),
                 st.sampled_from([None, None, "UTC", "Asia/Kolkata", "No/Such_Zone"]),
                 st.sampled_from([None, None, "RESERVATION_EXPIRES"]), st.sampled_from(["", "v9"]))


@settings(max_examples=500, deadline=None)
@given(sessions(), st.sampled_from(["everything", "idle", "indexed", "reserved"]), CTXS)
def test_engine_equals_oracle_on_every_feature(s: SessionFacts, tariff: str, ctx: RatingContext) -> None:
    assert_same(RS, s, ctx, tariff)


def test_engine_equals_oracle_without_a_series() -> None:
    s = SessionFacts(id="m", start=T0, end=T0 + timedelta(hours=1), energy_kwh=D(5))
    assert_same(RS, s, None, "indexed")  # both refuse: series 'spot' was not supplied


# tariffs whose pieces path is generated as one function (fused_totals): no discounts, caps,
# grace, minimum/maximum price, energy thresholds or indexed prices
RS_FUSED = CompiledRuleset.from_source('''ruleset fused currency EUR timezone Europe/Berlin holidays DE-BE
tariff windows "Windows" {
  vat 19%
  when current < 32 A { time 1 per h step 900 s vat 20% }
  when current >= 32 A and weekdays { time 2 per h step 600 s vat 20% }
  when time 09:00..18:00 and weekdays { parking 5 per h step 300 s vat 10% }
  when time 22:00..06:00 and not weekend { energy 0.39 per kWh step 100 Wh }
  when holiday or days sun { energy 0.35 per kWh }
  when dc and power >= 150 kW { energy 0.69 per kWh step 1 Wh }
  when date 2026-12-24..2026-12-27 { flat 1.00 "Christmas surcharge" }
  when duration >= 120 min { time 0.02 per min step 1 min }
  start_fee 0.35
  energy 0.49 per kWh
  flat 2.5 vat 15%
}
tariff plain { vat 7%; energy 0.30 per kWh; parking 0.10 per min step 5 min; time 0.01 per min }
tariff reserved {
  vat 19%
  when reservation_expires { reservation_fee 2.00; reservation 3.00 per h }
  when reservation { reservation 5.00 per h step 15 min }
  when power >= 22 kW { start_fee 1.00 }
  energy 0.30 per kWh
  flat 0.50
}
''', "fused.evb")


@pytest.mark.parametrize("tariff", ["windows", "plain", "reserved"])
def test_fused_tariffs_have_fused_totals(tariff: str) -> None:
    assert RS_FUSED.totals_engine(tariff) is not None


@settings(max_examples=600, deadline=None)
@given(sessions(shapes=("periods",)), st.sampled_from(["windows", "plain", "reserved"]), CTXS)
def test_fused_totals_equal_the_engine(s: SessionFacts, tariff: str, ctx: RatingContext) -> None:
    assert_same(RS_FUSED, s, ctx, tariff)


# ---------------------------------------------------------------- the five worked rulesets
WORKED_RULESETS = sorted((ROOT / "rulesets").glob("*/*.evb"))


def test_five_worked_rulesets() -> None:
    assert len(WORKED_RULESETS) == 5


@pytest.mark.parametrize("path", WORKED_RULESETS, ids=[p.stem for p in WORKED_RULESETS])
def test_engine_equals_oracle_on_worked_ruleset(path: Path) -> None:
    rs = CompiledRuleset.from_source(path.read_text(encoding="utf-8"), path.name)
    ctx = _series_for(rs)
    products = ("", *rs.products)

    @settings(max_examples=150, deadline=None)
    @given(sessions(products), st.sampled_from([None, *rs.tariffs]))
    def check(s: SessionFacts, tariff: str | None) -> None:
        assert_same(rs, s, ctx, tariff)

    check()


# ---------------------------------------------------------------- every OCPI conformance case
def _ocpi_cases() -> list[tuple[str, Path, Path, tuple[str, ...]]]:
    cases = [(c.id, c.tariff, c.cdr, c.args) for c in conf.CASES]
    cases += [(name, conf.FIXTURES / name, conf.FIXTURES / name, args) for name, args, _ in conf.RESERVATIONS]
    return cases


OCPI_CASES = _ocpi_cases()


def _tariff_doc(path: Path) -> Any:
    doc = load_json(path.read_text(encoding="utf-8"))
    return doc["tariffs"][0] if "elements" not in doc else doc


def _priced(rs: CompiledRuleset, session: SessionFacts, args: tuple[str, ...]) -> None:
    tz = args[args.index("--tz") + 1] if "--tz" in args else "UTC"
    for resv in (None, "RESERVATION_EXPIRES"):
        assert_same(rs, session, RatingContext(tz=tz, reservation=resv))


@conf.needs_conf
def test_every_conformance_case_is_covered() -> None:
    assert len(conf.CASES) == 15 and len(OCPI_CASES) == 15 + len(conf.RESERVATIONS)


@pytest.mark.parametrize("case", OCPI_CASES, ids=[c[0] for c in OCPI_CASES])
def test_engine_equals_oracle_on_ocpi_case(case: tuple[str, Path, Path, tuple[str, ...]]) -> None:
    _id, tariff, cdr, args = case
    if not tariff.exists():
        pytest.skip(f"OCPI conformance data absent: {tariff}")
    rs = CompiledRuleset.from_source(import_tariff(_tariff_doc(tariff)), f"{tariff.name} (imported)")
    _priced(rs, cdr_to_session(load_json(cdr.read_text(encoding="utf-8"))), args)
    _printed_alike(rs, cdr.read_text(encoding="utf-8"), args)


def _printed_alike(rs: CompiledRuleset, text: str, args: tuple[str, ...]) -> None:
    """``evbill ocpi price --cdrs``'s pieces path prints for the CDR what the exact path prints."""
    from dsl import ocpi

    doc = load_json(text)
    cdrs = doc if isinstance(doc, list) else [doc]
    tz = args[args.index("--tz") + 1] if "--tz" in args else "UTC"
    for expired in (False, True):
        ctx = RatingContext(tz=tz, reservation="RESERVATION_EXPIRES" if expired else None)
        fast = ocpi._fast_pricer(rs, ctx)
        assert fast is not None  # an imported OCPI tariff always has the pieces path
        for c in cdrs:
            line = ocpi_line(c)
            want = ocpi._price_one(rs, "f", load_json(line), "cdr-1", tz, expired)
            assert ocpi._price_line(rs, ctx, line, "f", "cdr-1", tz, expired) == want
            try:
                got = fast(line)
            except ocpi._Slow:  # the fast path leaves it to the exact path (sub-second timestamps)
                continue
            assert (got, False) == want


def ocpi_line(doc: Any) -> str:
    """A CDR as one JSON line, every number written as it was read (exact decimals)."""
    import json
    import re

    text = json.dumps(doc, default=lambda o: f"@@{o}@@" if isinstance(o, D) else o)
    return re.sub(r'"@@([^@"]+)@@"', r"\1", text)


@conf.needs_conf
@pytest.mark.parametrize("w", conf.WORKED, ids=[w.id for w in conf.WORKED])
def test_engine_equals_oracle_on_spec_worked_example(w: conf.Worked) -> None:
    import json

    rs = CompiledRuleset.from_source(import_tariff(_tariff_doc(conf.SPEC / w.tariff)), w.tariff)
    _priced(rs, cdr_to_session(load_json(json.dumps(w.cdr, default=float))), ())
    _printed_alike(rs, json.dumps(w.cdr, default=float), ())
