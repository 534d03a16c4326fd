"""Load limits (issue 18): a location's capacity shared among its running sessions by priority.

``allocate`` is pure: capacity and the sessions' demands in, one limit per session out. The
gateway (``api.ocpp.load``) turns the limits into charging profiles.

The rules, in this order:
- priorities are served strictly one after another, lowest number first (the depot owner's fleet
  0, partners 10, ad-hoc 20): a group gets all it wants before the next gets anything, and when a
  group cannot be served in full, later groups get nothing (what one group could not use is less
  than a session's minimum rate; giving it away would let a lower priority charge while a higher
  one waits);
- within a group the capacity is shared equally (water-filling: a session that wants less than
  the equal share keeps what it wants, the rest is shared by the others);
- a session gets 0 (paused) or at least its minimum rate (below ~6 A a car stops charging anyway):
  when the group's equal share is below a session's minimum, the newest sessions of the group
  (last in the order given) are paused until the others reach theirs;
- limits are whole multiples of ``step_w`` (a charger cannot follow a few watts; fewer changes
  mean fewer profiles sent), the sum never exceeds the capacity.
All arithmetic is in integer steps, so the sum is exact.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

__all__ = ["AC_PHASES", "AC_VOLTAGE_V", "DC_VOLTAGE_V", "Changes", "Demand", "allocate", "amperes", "electrical",
           "plan_changes"]

# For chargers that take charging profiles in amperes only: the watts are converted with the
# connector's phases and voltage. evbill's EVSE data has neither, so AC is taken as 3 phases of
# 230 V (a car on fewer phases draws less than the limit, never more) and DC as 1000 V, the top of
# what DC chargers deliver (a battery at a lower voltage draws less power at that current, never
# more): a limit in A never lets a session draw more watts than it was allocated.
AC_PHASES, AC_VOLTAGE_V, DC_VOLTAGE_V = 3, 230, 1000
_TENTH = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class Demand:
    """A running session as the allocation sees it (watts)."""

    key: Hashable
    priority: int
    max_w: Decimal  # what its EVSE (connector) can deliver
    min_w: Decimal = Decimal(0)  # below this it cannot charge: 0 or at least this


def _units(w: Decimal, step: Decimal, rounding: str) -> int:
    return int((w / step).to_integral_value(rounding=rounding)) if w > 0 else 0


def _waterfill(budget: int, caps: list[int]) -> list[int]:
    """Share ``budget`` equally among sessions wanting at most ``caps`` units each; the units an
    equal share leaves over go to the first sessions (the order given), one each."""
    n = len(caps)
    out = [0] * n
    order = sorted(range(n), key=lambda i: caps[i])
    left, rest = budget, n
    k = 0
    while k < n and caps[order[k]] * rest <= left:
        i = order[k]
        out[i] = caps[i]
        left -= caps[i]
        rest -= 1
        k += 1
    if rest:
        level, extra = divmod(left, rest)
        # the ones still open, back in the order given (the older sessions get the odd units)
        for i in sorted(order[k:]):
            out[i] = level + (1 if extra > 0 else 0)
            extra -= 1
    return out


def _share_group(budget: int, caps: list[int], mins: list[int]) -> list[int]:
    """Water-filling with minimum rates: the longest prefix (oldest first) whose equal shares all
    reach their minimums charges, the others wait (0). Feasibility only grows as sessions leave,
    so the prefix is found by bisection."""

    def fill(k: int) -> list[int] | None:
        shares = _waterfill(budget, caps[:k])
        return shares if all(s >= m for s, m in zip(shares, mins[:k])) else None

    best = fill(len(caps))
    if best is not None:
        return best
    lo, hi = 0, len(caps)  # fill(lo) works (nobody), fill(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fill(mid) is not None:
            lo = mid
        else:
            hi = mid
    shares = fill(lo) or []
    return shares + [0] * (len(caps) - lo)


def allocate(capacity_w: Decimal, demands: Sequence[Demand], step_w: Decimal = Decimal(1)) -> dict[Hashable, Decimal]:
    """-> the limit (W, a multiple of ``step_w``) of every session in ``demands``. Within a
    priority the order given is the seniority (oldest first)."""
    if step_w <= 0:
        raise ValueError("step_w must be positive")
    budget = _units(capacity_w, step_w, ROUND_FLOOR)
    out: dict[Hashable, Decimal] = {}
    groups: dict[int, list[Demand]] = {}
    for d in demands:
        groups.setdefault(d.priority, []).append(d)
    starved = False
    for prio in sorted(groups):
        group = groups[prio]
        caps = [_units(d.max_w, step_w, ROUND_FLOOR) for d in group]
        if starved or budget <= 0:
            for d in group:
                out[d.key] = Decimal(0)
            continue
        mins = [max(1, _units(d.min_w, step_w, ROUND_CEILING)) for d in group]
        # a session that cannot reach its own minimum even alone never charges
        caps = [c if c >= m else 0 for c, m in zip(caps, mins)]
        if sum(caps) <= budget:
            shares = caps
        else:
            shares = _share_group(budget, caps, [m if c else 0 for c, m in zip(caps, mins)])
            starved = True
        for d, s in zip(group, shares):
            out[d.key] = s * step_w
        budget -= sum(shares)
    return out


@dataclass(frozen=True, slots=True)
class Changes:
    """What to send after an allocation: ``down`` first (their answers awaited), then ``up``;
    ``held`` are increases not sent (the deadband)."""

    down: list[tuple[Hashable, Decimal]]
    up: list[tuple[Hashable, Decimal]]
    held: list[tuple[Hashable, Decimal]]


def plan_changes(capacity_w: Decimal | None, limits: Sequence[tuple[Hashable, Decimal, Decimal]],
                 deadband_w: Decimal = Decimal(0), deadband_share: Decimal = Decimal(0)) -> Changes:
    """``limits``: (key, the limit the charger has now, the new one) of each session -> the
    profiles to send. Every decrease is sent (what others gain must be free first). An increase
    smaller than ``deadband_w`` is held back, unless the session is paused (0: it gets going
    whatever the amount), the capacity was lifted (None: everyone back to the maximum), or the
    increases held back would leave more than ``deadband_share`` of the capacity unused: then
    the largest of them are sent until the rest fits. Holding an increase back never raises the
    sum of the limits chargers have, so it stays under the capacity."""
    down: list[tuple[Hashable, Decimal]] = []
    up: list[tuple[Hashable, Decimal]] = []
    small: list[tuple[Decimal, int, Hashable, Decimal]] = []
    for i, (key, now, target) in enumerate(limits):
        if target < now:
            down.append((key, target))
        elif target > now:
            if capacity_w is not None and now > 0 and target - now < deadband_w:
                small.append((target - now, i, key, target))
            else:
                up.append((key, target))
    held: list[tuple[Hashable, Decimal]] = []
    if small:
        allowance = (capacity_w or Decimal(0)) * deadband_share
        kept = Decimal(0)
        for gap, _, key, target in sorted(small, key=lambda x: (x[0], x[1])):  # the smallest held first
            if kept + gap <= allowance:
                kept += gap
                held.append((key, target))
            else:
                up.append((key, target))
    return Changes(down, up, held)


def electrical(power_type: str) -> tuple[int, int]:
    """-> (phases, volts per phase) a limit in watts is converted to amperes with (see above)."""
    return (1, DC_VOLTAGE_V) if power_type == "DC" else (AC_PHASES, AC_VOLTAGE_V)


def amperes(limit_w: Decimal, phases: int, voltage_v: int) -> Decimal:
    """The current per phase (A, one decimal, as OCPP's charging rate limits take it) that draws at
    most ``limit_w``: rounded down, so ``amperes(w) * phases * voltage_v <= w``."""
    if limit_w <= 0:
        return Decimal(0)
    return (limit_w / (phases * voltage_v)).quantize(_TENTH, rounding=ROUND_FLOOR)
