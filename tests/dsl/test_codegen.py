"""The generated fast path and the reference engine must give identical results, line for line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import CompiledRuleset, PriceSeries, RatingContext
from runtime.sessions import SessionFacts

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
  start_fee 0.35
  energy 0.49 per kWh step 1 Wh
  time 0.01 per min step 5 min
  parking 0.10 per min after 240 min, at most 12.00
  min_price 1.00
  max_price 80.00
}
tariff idle { vat 7%; parking 0.05 per min after 30 min idle, at most 3; energy 0.30 per kWh }
tariff indexed { vat 19%; energy index(spot) * 1.1 + 0.12 per kWh; when group fleet { energy index(spot) per kWh } }
discount promo { 10% off energy; for group new_customers; tariffs everything indexed }
discount night { 0.50 off session; for time 23:00..05:00; priority 2 }
discount xmas { 5% off session; valid 2026-12-20..2027-01-07; exclusive; priority 1 }
''', "codegen.evb")

T0 = datetime(2026, 10, 20, tzinfo=UTC)
SPOT = PriceSeries.from_points("spot", [(T0 + timedelta(minutes=15 * i), D(i % 37) / 100 - D("0.05"))
                                        for i in range(4 * 24 * 90)])
CTX = RatingContext(series={"spot": SPOT})

sessions = st.builds(
    lambda start, dur, frac, kwh, groups, dc, power, tz: SessionFacts(
        id="g", start=T0 + timedelta(seconds=start), end=T0 + timedelta(seconds=start + dur),
        charging_end=(T0 + timedelta(seconds=start + dur * frac // 100)) if frac < 100 else None,
        energy_kwh=kwh, customer_groups=frozenset(groups), power_type="DC" if dc else "AC",
        max_power_kw=D(power) if power else None, timezone=tz),
    start=st.integers(0, 60 * 60 * 24 * 80),
    dur=st.integers(0, 60 * 60 * 30),
    frac=st.integers(0, 100),
    kwh=st.decimals(min_value=0, max_value=150, places=4),
    groups=st.lists(st.sampled_from(["employees", "fleet", "new_customers"]), max_size=2),
    dc=st.booleans(),
    power=st.sampled_from([0, 11, 50, 150, 300]),
    tz=st.sampled_from(["", "Europe/Lisbon", "America/New_York"]),
)


@settings(max_examples=400, deadline=None)
@given(sessions, st.sampled_from(["everything", "idle", "indexed"]))
def test_generated_equals_reference(s: SessionFacts, tariff: str) -> None:
    assert tariff in RS.plain, "every tariff without energy thresholds gets a generated fast path"
    fast = RS.rate(s, CTX, tariff)
    ref = RS.rate_generic(s, CTX, tariff)
    assert fast == ref


def test_fast_path_is_really_used() -> None:
    s = SessionFacts(id="x", start=T0, end=T0 + timedelta(hours=1), energy_kwh=D(10))
    assert RS.plain["everything"](s, None) is not None
    # sessions with meter values or a reservation go through the reference engine
    assert RS.plain["everything"](SessionFacts(id="r", start=T0, end=T0, reservation="RESERVATION"), None) is None
    assert "def rate_plain" in (RS.plain["everything"].__doc__ or "")
