"""Load limits: the pure allocation of a location's capacity (runtime/load.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.load import Demand, allocate, amperes, electrical, plan_changes

D = Decimal


def test_two_share_a_third_of_higher_priority_takes_from_them() -> None:
    two = [Demand("a", 20, D(22000), D(1380)), Demand("b", 20, D(22000), D(1380))]
    assert allocate(D(30000), two) == {"a": D(15000), "b": D(15000)}
    fleet = [*two, Demand("f", 0, D(22000), D(1380))]
    assert allocate(D(30000), fleet) == {"f": D(22000), "a": D(4000), "b": D(4000)}
    # the fleet stops: the capacity goes back
    assert allocate(D(30000), two) == {"a": D(15000), "b": D(15000)}


def test_enough_capacity_everyone_gets_the_evse_maximum() -> None:
    ds = [Demand(i, 10, D(11000)) for i in range(4)]
    assert allocate(D(50000), ds) == dict.fromkeys(range(4), D(11000))


def test_below_the_minimum_the_newest_waits() -> None:
    ds = [Demand(i, 20, D(22000), D(4000)) for i in range(3)]
    # 10 kW: three would get 3.33 kW each, below 4 kW; the newest (last) is paused
    assert allocate(D(10000), ds) == {0: D(5000), 1: D(5000), 2: D(0)}


def test_water_filling_a_small_evse_keeps_what_it_wants() -> None:
    ds = [Demand("small", 10, D(3700)), Demand("x", 10, D(22000)), Demand("y", 10, D(22000))]
    assert allocate(D(20000), ds) == {"small": D(3700), "x": D(8150), "y": D(8150)}


def test_steps_and_odd_units_go_to_the_oldest() -> None:
    ds = [Demand(i, 10, D(22000)) for i in range(3)]
    got = allocate(D(10000), ds, step_w=D(100))
    assert got == {0: D(3400), 1: D(3300), 2: D(3300)}
    with pytest.raises(ValueError):
        allocate(D(10000), ds, step_w=D(0))


def test_no_capacity_nobody_charges() -> None:
    assert allocate(D(0), [Demand("a", 0, D(11000))]) == {"a": D(0)}
    assert allocate(D(1000), [Demand("a", 0, D(11000), D(1380))]) == {"a": D(0)}


demand = st.builds(
    Demand, key=st.just(None), priority=st.sampled_from([0, 10, 20]),
    max_w=st.decimals(min_value=0, max_value=350000, places=1),
    min_w=st.sampled_from([D(0), D(1380), D(4140), D(10000)]))


@settings(max_examples=400, deadline=None)
@given(capacity=st.decimals(min_value=0, max_value=2_000_000, places=3),
       raw=st.lists(demand, max_size=40), step=st.sampled_from([D(1), D(100), D("0.1")]))
def test_properties(capacity: Decimal, raw: list[Demand], step: Decimal) -> None:
    ds = [Demand(i, d.priority, d.max_w, d.min_w) for i, d in enumerate(raw)]
    got = allocate(capacity, ds, step)
    assert set(got) == {d.key for d in ds}
    # the sum never exceeds the capacity
    assert sum(got.values(), D(0)) <= capacity
    floor_max = {d.key: (d.max_w // step) * step for d in ds}
    for d in ds:
        lim = got[d.key]
        assert D(0) <= lim <= d.max_w
        assert lim % step == 0
        assert lim == 0 or lim >= d.min_w  # paused, or at least the minimum rate
    wants_more = {d.key for d in ds if got[d.key] < floor_max[d.key] and floor_max[d.key] >= max(d.min_w, step)}
    for a in ds:
        for b in ds:
            if a.key in wants_more and a.priority < b.priority:
                # a higher priority that wants more: every lower one gets nothing
                assert got[b.key] == 0
            if (a.priority == b.priority and a.key in wants_more and b.key in wants_more
                    and got[a.key] > 0 and got[b.key] > 0):
                assert abs(got[a.key] - got[b.key]) <= step  # equal shares within a priority
    # capacity for everyone: everyone gets the maximum (in steps)
    if sum(floor_max.values(), D(0)) <= capacity:
        assert all(got[d.key] == floor_max[d.key] or floor_max[d.key] < max(d.min_w, step) for d in ds)


def test_small_increases_held_back_decreases_and_unpauses_always_sent() -> None:
    cap = D(100_000)
    got = plan_changes(cap, [("a", D(15000), D(14900)), ("b", D(15000), D(15100)), ("c", D(0), D(1400)),
                             ("d", D(15000), D(17000)), ("e", D(15000), D(15000))], D(1000), D("0.02"))
    assert got.down == [("a", D(14900))]
    assert got.up == [("c", D(1400)), ("d", D(17000))]  # an unpause, and an increase over the deadband
    assert got.held == [("b", D(15100))]
    # limits lifted (no capacity): everyone back to the maximum, however small the step
    lifted = plan_changes(None, [("b", D(21900), D(22000))], D(1000), D("0.02"))
    assert lifted.up == [("b", D(22000))] and not lifted.held


def test_held_back_increases_leave_at_most_the_share_unused() -> None:
    # 10 sessions each 500 W short; 2 % of 100 kW = 2 kW may stay unused: four held (equal gaps: the
    # oldest), six sent
    got = plan_changes(D(100_000), [(i, D(9000), D(9500)) for i in range(10)], D(1000), D("0.02"))
    assert [k for k, _ in got.held] == [0, 1, 2, 3]
    assert sorted(k for k, _ in got.up) == [4, 5, 6, 7, 8, 9]
    # different sizes: the largest are sent first
    got = plan_changes(D(100_000), [("big", D(9000), D(9900)), ("mid", D(9000), D(9600)), ("s1", D(9000), D(9100)),
                                    ("s2", D(9000), D(9100))], D(1000), D("0.005"))
    assert {k for k, _ in got.held} == {"s1", "s2"} and [k for k, _ in got.up] == ["mid", "big"]


@settings(max_examples=300, deadline=None)
@given(capacity=st.decimals(min_value=1, max_value=2_000_000, places=0),
       raw=st.lists(demand, max_size=40), step=st.sampled_from([D(1), D(100)]),
       deadband=st.sampled_from([D(0), D(500), D(1000), D(5000)]), share=st.sampled_from([D(0), D("0.02"), D("0.1")]),
       data=st.data())
def test_plan_properties(capacity: Decimal, raw: list[Demand], step: Decimal, deadband: Decimal, share: Decimal,
                         data: st.DataObject) -> None:
    ds = [Demand(i, d.priority, d.max_w, d.min_w) for i, d in enumerate(raw)]
    before = allocate(capacity, ds, step)  # what chargers were told last time
    # the site changes: another capacity; chargers have the old limits
    cap2 = data.draw(st.decimals(min_value=1, max_value=2_000_000, places=0))
    after = allocate(cap2, ds, step)
    plan = plan_changes(cap2, [(d.key, before[d.key], after[d.key]) for d in ds], deadband, share)
    have = dict(before)
    # decreases first: once they are through, and after every increase, the sum of the limits
    # chargers have is under the new capacity
    for k, t in plan.down:
        assert t < have[k]
        have[k] = t
    assert sum(have.values(), D(0)) <= cap2
    for k, t in plan.up:
        assert t > have[k]
        have[k] = t
        assert sum(have.values(), D(0)) <= cap2
    held = dict(plan.held)
    gaps = [held[k] - have[k] for k in held]
    assert all(D(0) < g < deadband for g in gaps) and all(have[k] > 0 for k in held)  # paused ones never wait
    assert sum(gaps, D(0)) <= cap2 * share  # what the deadband leaves unused is bounded
    for d in ds:  # every session ends at its new limit or (held) just under it
        assert have[d.key] == after[d.key] or d.key in held


def test_watts_to_amperes_rounds_down_to_a_tenth() -> None:
    assert electrical("AC") == (3, 230) and electrical("DC") == (1, 1000)
    assert amperes(D(11040), 3, 230) == D(16)  # 16 A on three phases is 11.04 kW
    assert amperes(D(11000), 3, 230) == D("15.9")  # 15.94... A: 15.9 A, never more than 11 kW
    assert amperes(D(4000), 3, 230) == D("5.7") and amperes(D(0), 3, 230) == D(0)
    assert amperes(D(50000), 1, 1000) == D(50)


@settings(max_examples=400, deadline=None)
@given(capacity=st.decimals(min_value=0, max_value=2_000_000, places=3),
       raw=st.lists(st.tuples(demand, st.sampled_from(["AC", "DC"]), st.booleans()), max_size=40),
       step=st.sampled_from([D(1), D(100)]))
def test_limits_converted_to_amperes_stay_within_the_capacity(capacity: Decimal,
                                                             raw: list[tuple[Demand, str, bool]],
                                                             step: Decimal) -> None:
    """Chargers that take only amperes get each limit converted with their phases and voltage;
    summed back in watts (A x V x phases), the limits still never exceed the capacity."""
    ds = [Demand(i, d.priority, d.max_w, d.min_w) for i, (d, _, _) in enumerate(raw)]
    got = allocate(capacity, ds, step)
    back = Decimal(0)
    for i, (_, power_type, in_amperes) in enumerate(raw):
        if in_amperes:
            phases, volts = electrical(power_type)
            a = amperes(got[i], phases, volts)
            assert a >= 0 and a == a.quantize(D("0.1"))
            assert got[i] - a * phases * volts < D("0.1") * phases * volts  # at most a tenth of an ampere lost
            back += a * phases * volts
        else:
            back += got[i]
    assert back <= capacity
