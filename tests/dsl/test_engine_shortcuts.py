"""The engine's compile-time shortcuts give what the plain oracle gives (``assert_same``): caps summed
as the lines are made (several prices of one capped rule; a label two rules share, where the engine
searches the lines as ``apply_caps`` does), discount conditions tested on the session alone (group,
product) or on an environment (power), and indexed prices computed once per series value and kept
(``dsl.compiler._price_fn``): the same price in another decimal context is computed again, and a
series that ends (``BoundedSeries``) still refuses a moment it has no value for."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from decimal import localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import CompiledRuleset, RatingContext
from runtime.rating import MissingPrice, _rule_table
from runtime.series import BoundedSeries
from runtime.sessions import SessionFacts
from tests.dsl.test_engine_equivalence import CTXS, SPOT, T0, assert_same, sessions

SOURCE = '''ruleset shortcuts currency EUR timezone Europe/Berlin
groups fleet
series spot
tariff capped {
  vat 19%
  when time 08:00..20:00 { energy index(spot) * 1.1 + 0.12 per kWh, at most 4 }
  energy -index(spot) + 0.40 per kWh, at most 3
  parking index(spot) * 0.5 + 0.05 per min after 30 min, at most 2
}
tariff twin { vat 19%; when time 08:00..20:00 { parking 0.10 per min, at most 1 }; when time 08:00..20:00 { parking 0.20 per min, at most 2 }; energy index(spot) per kWh, at most 3 }
product van { tariff capped }
discount fast { 1.00 off session; for power >= 100 kW; tariffs capped }
discount fleet { 10% off energy; for group fleet or product van; tariffs capped twin }
'''
RS = CompiledRuleset.from_source(SOURCE, "shortcuts.evb")


def test_the_twin_tariff_shares_a_capped_label() -> None:
    """(so that the engine takes apply_caps' search there, not its sums)"""
    labels = [(e[0].label, e[0].kind) for e in _rule_table(RS.tariffs["twin"].rules, "parking")]
    assert len(labels) == 2 and labels[0] == labels[1]


@settings(max_examples=400, deadline=None)
@given(sessions(products=("", "van")), st.sampled_from(["capped", "twin"]), CTXS)
def test_shortcuts_equal_the_oracle(s: SessionFacts, tariff: str, ctx: RatingContext) -> None:
    assert_same(RS, s, ctx, tariff)


def _long_session(i: int) -> SessionFacts:
    start = T0 + timedelta(hours=i, minutes=7 * i)
    return SessionFacts(id=f"s{i}", start=start, end=start + timedelta(hours=5), charging_end=start + timedelta(hours=3),
                        energy_kwh=D("31.337"), customer_groups=frozenset({"fleet"}) if i % 2 else frozenset())


def test_an_indexed_price_kept_for_one_decimal_context_is_not_used_in_another() -> None:
    ctx = RatingContext(series={"spot": SPOT})
    wide = [RS.rate(_long_session(i), ctx, "capped") for i in range(20)]  # kept: the default context's prices
    # a ruleset compiled afresh (nothing kept) in a two-digit context against the one that kept them
    fresh = CompiledRuleset.from_source(SOURCE + "# fresh\n", "fresh.evb")
    with localcontext() as narrow:
        narrow.prec = 2
        for i in range(20):
            expected = fresh.rate(_long_session(i), ctx, "capped")
            got = RS.rate(_long_session(i), ctx, "capped")
            assert got.lines == expected.lines and got.trace == expected.trace
            # (the context does change the prices themselves)
            assert {ln.unit_price for ln in got.lines} != {ln.unit_price for ln in wide[i].lines}


def test_a_bounded_series_still_refuses_its_gaps() -> None:
    t = datetime(2026, 10, 20, tzinfo=UTC)
    bounded = BoundedSeries.of("spot", [(t, t + timedelta(hours=1), D("0.10")),
                                        (t + timedelta(hours=2), None, D("0.20"))])
    ctx = RatingContext(series={"spot": bounded})
    inside = SessionFacts(id="in", start=t + timedelta(minutes=5), end=t + timedelta(minutes=50),
                          energy_kwh=D(10))
    assert RS.rate(inside, ctx, "capped").lines  # priced within the first interval (kept from here on)
    gap = replace(inside, id="gap", start=t + timedelta(minutes=70), end=t + timedelta(minutes=100))
    with pytest.raises(MissingPrice, match="nothing is imported"):
        RS.rate(gap, ctx, "capped")
