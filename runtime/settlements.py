"""Energy reimbursement and commissions, priced per session for partner statements.

Pure like rating: the DSL (``dsl/revenue_share.py``) turns ``reimburse energy at ...`` statements,
``reimbursement`` blocks and ``commission`` blocks into the values below; statements
(``runtime.statements``) price each session with them.

**Energy reimbursement** (``EnergyReimbursement``): prices in the order tariffs use (those with a
``when`` first, in source order, the one without last); a session's energy is split as rating splits
it (``runtime.rating.energy_stretches``: periods, else meter values, else pro rata; then at every
time-of-day boundary a ``when`` names and every interval start and end of the series a price
reads), and each stretch is priced by the first price whose condition holds at its start, at the
series' value in force then ("indexing happens per session against the purchase price applicable
at the moment of charging"). Series are per kWh (a ``per MWh`` series is divided by 1000 when it
is loaded), so ``index(spot_de) + 0.02 per kWh`` is exact in Decimal. A moment no interval covers
raises ``SettlementError`` naming the session, the stretch and the gap: never a zero.

**Commissions** (``CommissionTerms``): each rule of a block applies on its own (they combine):
``per session`` (or ``per transaction``), ``per kWh``, ``% of net revenue`` for every session its
``for`` condition selects (customer group, site, token type, ... evaluated at the session start),
``per month`` as a flat fee pro rata by the days of each month the statement and the block's
validity cover. ``charge host`` makes the amounts the partner's debt (negative on its statement),
``pay host`` / ``pay partner`` its earnings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from runtime.money import ZERO
from runtime.rating import (
    CutSpec,
    Env,
    MissingPrice,
    PriceSeries,
    RatingContext,
    energy_stretches,
    env_at,
    zone,
)
from runtime.sessions import SessionFacts

__all__ = ["COMMISSION_KINDS", "CommissionRule", "CommissionTerms", "EnergyReimbursement", "EnergyRule",
           "SettlementError", "Stretch"]

COMMISSION_KINDS = ("per_session", "per_kwh", "percent", "monthly")


class SettlementError(ValueError):
    """A session a statement cannot settle (a price series has no value for one of its stretches,
    or the session's facts are missing); the message names the session and the interval."""

    def __init__(self, session_id: str, message: str) -> None:
        super().__init__(message)
        self.session_id = session_id


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _f(d: Decimal) -> str:
    return format(d, "f")


@dataclass(frozen=True, slots=True)
class EnergyRule:
    label: str  # "revenue_share hotel_adler, line 5"
    text: str  # the statement as written (canonical form)
    constant: Decimal | None  # per kWh, when the price reads no series
    price_fn: Callable[[int, Mapping[str, PriceSeries]], Decimal] | None  # per kWh at a moment
    series: tuple[str, ...] = ()
    predicate: Callable[[Env], bool] | None = None

    def per_kwh(self, ms: int, series: Mapping[str, PriceSeries]) -> Decimal:
        if self.constant is not None:
            return self.constant
        assert self.price_fn is not None
        return self.price_fn(ms, series)


@dataclass(frozen=True, slots=True)
class Stretch:
    """One priced stretch of a session: ``kwh`` at ``unit_price`` per kWh under rule ``rule``."""

    session_id: str
    rule: int
    start_ms: int
    end_ms: int
    kwh: Decimal
    unit_price: Decimal
    amount: Decimal  # exact
    inputs: tuple[tuple[str, Decimal], ...] = ()  # the series values it read (per kWh)

    def trace(self) -> dict[str, Any]:
        out: dict[str, Any] = {"session_id": self.session_id, "kwh": _f(self.kwh),
                               "unit_price": _f(self.unit_price), "amount": _f(self.amount)}
        if self.end_ms > self.start_ms:
            out["from"], out["to"] = _iso(self.start_ms), _iso(self.end_ms)
        if self.inputs:
            out["series"] = {name: _f(v) for name, v in self.inputs}
        return out


@dataclass(frozen=True, slots=True)
class EnergyReimbursement:
    """The energy prices of a revenue share or a ``reimbursement`` block, in matching order."""

    rules: tuple[EnergyRule, ...]
    cuts: CutSpec
    timezone: str  # the ruleset's: conditions are read in the session's zone, else this one
    source: str
    groups: frozenset[str] = frozenset()  # only sessions of customers in these groups (empty: all)
    valid_from: date | None = None
    valid_until: date | None = None  # exclusive

    @property
    def static(self) -> Decimal | None:
        """The one constant price per kWh, when there is nothing to look at per session."""
        if len(self.rules) == 1 and self.rules[0].predicate is None and not self.groups:
            return self.rules[0].constant
        return None

    @property
    def series(self) -> tuple[str, ...]:
        return tuple(sorted({n for r in self.rules for n in r.series}))

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or day >= self.valid_from) and (
            self.valid_until is None or day < self.valid_until)

    def price(self, session_id: str, local_date: date, energy_kwh: Decimal, facts: SessionFacts | None,
              series: Mapping[str, PriceSeries]) -> list[Stretch]:
        """The session's reimbursed stretches (empty: outside validity or groups)."""
        if not self.covers(local_date):
            return []
        static = self.static
        if static is not None:
            return [Stretch(session_id, 0, 0, 0, energy_kwh, static, energy_kwh * static)]
        if facts is None:
            raise SettlementError(session_id, f"session {session_id} has no stored facts (times, meter values): "
                                              f"{self.source} prices its energy per interval")
        if self.groups and self.groups.isdisjoint(facts.customer_groups):
            return []
        try:
            tz = zone(facts.timezone or self.timezone)
        except (KeyError, ValueError, OSError):
            raise SettlementError(session_id, f"session {session_id}: unknown time zone "
                                              f"{facts.timezone!r}") from None
        start = int(facts.start.timestamp() * 1000)
        out: list[Stretch] = []
        cum = ZERO
        conditional = any(r.predicate is not None for r in self.rules)
        for a, b, kwh in energy_stretches(facts, self.cuts, tz, RatingContext(series=series)):
            if conditional:
                env = env_at(facts, a, start, tz, cum)
                k, rule = next(((k, r) for k, r in enumerate(self.rules) if r.predicate is None or r.predicate(env)),
                               (-1, None))
            else:
                k, rule = 0, self.rules[0]
            cum += kwh
            if rule is None:
                continue  # no price holds at this time (no price without a condition): not reimbursed
            try:
                price = rule.per_kwh(a, series)
                inputs = tuple((n, series[n].at(a)) for n in rule.series if n in series)
            except MissingPrice as exc:
                raise SettlementError(session_id, f"session {session_id}, energy charged {_iso(a)}..{_iso(b)} "
                                                  f"({_f(kwh)} kWh): {exc}; import the missing prices "
                                                  f"({rule.label}: {rule.text})") from None
            out.append(Stretch(session_id, k, a, b, kwh, price, kwh * price, inputs))
        return out


@dataclass(frozen=True, slots=True)
class CommissionRule:
    label: str  # "commission sales, line 4"
    text: str
    kind: str  # per_session | per_kwh | percent | monthly
    amount: Decimal  # per unit (currency), or percent
    predicate: Callable[[Env], bool] | None = None


@dataclass(frozen=True, slots=True)
class CommissionTerms:
    """One ``commission`` block as a partner's statement applies it."""

    name: str
    source: str  # "ruleset x v3, commission booking_fee"
    direction: str  # charge (the partner pays) | pay (the partner is paid)
    party: str  # host | partner | emsp
    rules: tuple[CommissionRule, ...]
    timezone: str
    valid_from: date | None = None
    valid_until: date | None = None  # exclusive

    @property
    def sign(self) -> Decimal:
        return Decimal(-1) if self.direction == "charge" else Decimal(1)

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or day >= self.valid_from) and (
            self.valid_until is None or day < self.valid_until)

    def matches(self, rule: CommissionRule, session_id: str, facts: SessionFacts | None) -> bool:
        if rule.predicate is None:
            return True
        if facts is None:
            raise SettlementError(session_id, f"session {session_id} has no stored facts: {rule.label} "
                                              f"({rule.text}) selects sessions by them")
        try:
            tz = zone(facts.timezone or self.timezone)
        except (KeyError, ValueError, OSError):
            raise SettlementError(session_id, f"session {session_id}: unknown time zone "
                                              f"{facts.timezone!r}") from None
        start = int(facts.start.timestamp() * 1000)
        return rule.predicate(env_at(facts, start, start, tz))

    def session_amounts(self, session_id: str, local_date: date, energy_kwh: Decimal,
                        net: Decimal, facts: SessionFacts | None) -> list[tuple[int, Decimal, Decimal]]:
        """(rule index, quantity, signed exact amount) of each per-session rule the session falls under;
        quantity: 1 session, the kWh, or the net revenue a percentage is taken of."""
        if not self.covers(local_date):
            return []
        out = []
        for k, r in enumerate(self.rules):
            if r.kind == "monthly" or not self.matches(r, session_id, facts):
                continue
            if r.kind == "per_session":
                out.append((k, Decimal(1), self.sign * r.amount))
            elif r.kind == "per_kwh":
                out.append((k, energy_kwh, self.sign * energy_kwh * r.amount))
            else:
                out.append((k, net, self.sign * net * r.amount / 100))
        return out


def commission_days(terms: CommissionTerms, first: date, end: date) -> tuple[date, date] | None:
    """The days of ``[first, end)`` within the block's validity (None: none)."""
    a = max(first, terms.valid_from) if terms.valid_from else first
    b = min(end, terms.valid_until) if terms.valid_until else end
    return (a, b) if a < b else None


def stretches_total(stretches: Sequence[Stretch]) -> Decimal:
    return sum((x.amount for x in stretches), ZERO)
