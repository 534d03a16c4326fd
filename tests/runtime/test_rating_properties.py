"""Money invariants of rating, guarded by hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dsl import CompiledRuleset
from runtime.money import quantize
from runtime.sessions import MeterValue, SessionFacts

RULESET = CompiledRuleset.from_source('''ruleset p currency EUR timezone Europe/Berlin
groups employees
tariff complex "Complex" {
  vat 19%
  start_fee 0.35
  energy 0.49 per kWh step 1 Wh
  time 0.01 per min step 1 min
  parking 0.10 per min after 240 min, at most 12.00
  when time 22:00..06:00 { energy 0.39 per kWh }
  when group employees { energy 0.25 per kWh; start_fee 0 }
  when weekend and energy >= 30 kWh { energy 0.44 per kWh }
  min_price 1.00
}
tariff flat_energy { vat 19%; energy 0.4321 per kWh; time 0.0123 per min }
discount ten { 10% off energy; for group employees }
discount two { 2.00 off session; priority 1 }
''', "props.evb")

T0 = datetime(2026, 1, 1, tzinfo=UTC)

sessions = st.builds(
    lambda start_min, dur_min, charge_frac, kwh, emp, weekend: SessionFacts(
        id="p", start=T0 + timedelta(minutes=start_min),
        end=T0 + timedelta(minutes=start_min + dur_min),
        charging_end=T0 + timedelta(minutes=start_min + dur_min * charge_frac // 100),
        energy_kwh=kwh, customer_groups=frozenset({"employees"} if emp else ()),
    ),
    start_min=st.integers(0, 60 * 24 * 400),
    dur_min=st.integers(0, 60 * 30),
    charge_frac=st.integers(0, 100),
    kwh=st.decimals(min_value=0, max_value=200, places=3, allow_nan=False, allow_infinity=False),
    emp=st.booleans(),
    weekend=st.booleans(),
)


# found by hypothesis: "2.00 off session" took all that was left, then "10% off energy" took the
# 3E-30 residue of the proportional split and the session ended at -3E-30
_RESIDUE = SessionFacts(id="p", start=datetime(2026, 1, 1, 3, 15, tzinfo=UTC),
                        end=datetime(2026, 1, 1, 7, 13, tzinfo=UTC),
                        charging_end=datetime(2026, 1, 1, 5, 54, tzinfo=UTC),
                        energy_kwh=D("0.074"), customer_groups=frozenset({"employees"}))


@settings(max_examples=300, deadline=None)
@example(_RESIDUE)
@given(sessions)
def test_total_is_sum_of_lines_and_tax_per_group(s: SessionFacts) -> None:
    res = RULESET.rate(s, tariff="complex")
    assert res.net_total == sum((quantize(ln.net, 2) for ln in res.lines), D(0))
    assert res.net_unrounded == sum((ln.net for ln in res.lines), D(0))
    groups = res.tax_groups()
    assert res.tax_total == sum((quantize(n * r / 100, 2) for r, (n, _) in groups.items()), D(0))
    assert res.gross_total == res.net_total + res.tax_total
    assert res.net_unrounded >= 0  # the minimum price and discounts never take a session below zero


@settings(max_examples=300, deadline=None)
@given(sessions)
def test_line_net_is_quantity_times_unit_price(s: SessionFacts) -> None:
    for ln in RULESET.rate(s, tariff="complex").lines:
        assert ln.net == ln.quantity * ln.unit_price, ln
        assert ln.currency == "EUR"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 600), st.lists(st.integers(1, 10_000), min_size=0, max_size=30, unique=True),
       st.integers(1, 100))
def test_meter_value_chunking_does_not_change_the_price(minutes: int, cuts: list[int], kw36: int) -> None:
    """With no tariff boundary inside the session, how readings slice it changes nothing.

    Power is a multiple of 3.6 kW so every reading is an exact number of Wh (chargers report
    registers, not fractions of a repeating decimal)."""
    start = datetime(2026, 3, 4, 10, tzinfo=UTC)  # a Wednesday, inside one tariff window
    total_ms = minutes * 60_000
    wh_per_ms = D(kw36) / D(1000)
    points = sorted({0, total_ms} | {c * total_ms // 10_000 for c in cuts})

    def mv(ms: int) -> MeterValue:
        return MeterValue(start + timedelta(milliseconds=ms), wh_per_ms * ms)

    kwh = wh_per_ms * total_ms / 1000
    base = dict(id="c", start=start, end=start + timedelta(milliseconds=total_ms), energy_kwh=kwh)
    chunked = SessionFacts(**base, meter_values=tuple(mv(p) for p in points))  # type: ignore[arg-type]
    whole = SessionFacts(**base, meter_values=(mv(0), mv(total_ms)))  # type: ignore[arg-type]
    a = RULESET.rate(chunked, tariff="flat_energy")
    b = RULESET.rate(whole, tariff="flat_energy")
    assert a.net_unrounded == b.net_unrounded
    assert a.energy_kwh == b.energy_kwh == kwh


@settings(max_examples=200, deadline=None)
@given(sessions)
def test_discounts_never_make_a_session_negative(s: SessionFacts) -> None:
    res = RULESET.rate(s, tariff="flat_energy")
    assert res.net_unrounded >= 0
