"""``runtime.money.apportion`` and ``allocate`` (the pro-rata split built on it): the parts add up to
the total exactly, each within a unit of its exact share, whatever the signs."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from runtime.money import allocate, apportion

amounts = st.decimals(min_value=D(-10000), max_value=D(10000), places=4, allow_nan=False, allow_infinity=False)


def test_examples() -> None:
    assert allocate(D("10.00"), [D(1), D(1), D(1)], 2) == (D("3.34"), D("3.33"), D("3.33"))
    assert allocate(D("1.00"), [D(0), D(0)], 2) == (D("1.00"), D(0))
    # a negative correction beside revenue: each amount stays within a cent of its part
    assert apportion(D("0.01"), [D("10.004"), D("-9.996")], 2) == (D("10.01"), D("-10.00"))


@given(st.lists(amounts, min_size=1, max_size=12), st.sampled_from([0, 2, 3]))
def test_apportion_sums_and_stays_near(parts: list[D], places: int) -> None:
    unit = D(1).scaleb(-places)
    total = sum(parts, D(0)).quantize(unit)
    got = apportion(total, parts, places)
    assert sum(got, D(0)) == total
    assert all(abs(g - p) < unit for g, p in zip(got, parts, strict=True))


@given(st.decimals(min_value=D(-5000), max_value=D(5000), places=2, allow_nan=False, allow_infinity=False),
       st.lists(st.decimals(min_value=D("0.01"), max_value=D(1000), places=2), min_size=1, max_size=10))
def test_allocate_is_pro_rata_and_exact(total: D, weights: list[D]) -> None:
    got = allocate(total, weights, 2)
    assert sum(got, D(0)) == total
    whole = sum(weights, D(0))
    assert all(abs(g - total * w / whole) < D("0.01") for g, w in zip(got, weights, strict=True))
