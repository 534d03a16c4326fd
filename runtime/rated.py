"""What rating produces: lines with exact unrounded amounts, and a trace for the audit.

``net`` keeps full precision (quantity × unit price); rounding happens once per line, to the
currency's minor unit, when a line is put on an invoice (``RatedLine.net_rounded``). Totals are
sums of rounded lines; VAT is computed per rate group (see ``RatingResult.tax_groups``). A
result's lines are all in its currency (``CurrencyMismatch`` otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple

from runtime.money import ZERO, Money, minor_unit, quantize, require_currency, tax_groups

__all__ = ["Component", "RatedLine", "RatingResult", "TraceEntry", "group_totals"]


class Component:
    """The stable names of line components (one spelling across grammar, code and documents)."""

    START_FEE = "start_fee"
    FLAT = "flat"
    ENERGY = "energy"
    TIME = "time"
    PARKING = "parking"
    RESERVATION = "reservation"
    CAP = "cap"
    MIN_PRICE = "min_price"
    MAX_PRICE = "max_price"
    DISCOUNT = "discount"
    BASE_FEE = "base_fee"
    INCLUDED = "included"
    TIER = "tier"
    GOODWILL = "goodwill"

    # OCPI CDR cost groups each component reports into
    OCPI_GROUP: ClassVar[dict[str, str]] = {
        START_FEE: "fixed", FLAT: "fixed", ENERGY: "energy", TIME: "time", PARKING: "parking",
        RESERVATION: "reservation", "reservation_fee": "reservation",
    }


class RatedLine(NamedTuple):
    """One priced line. Immutable; a NamedTuple because rating builds millions of them."""

    component: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal  # unrounded; == quantity * unit_price
    tax_rate: Decimal  # percent, e.g. Decimal("19")
    currency: str
    rule: str  # "tariff ac_public, line 7: when time 22:00..06:00"
    session_id: str = ""
    # the OCPI group the amount belongs to (energy/time/parking/fixed/reservation), "" for others
    group: str = ""
    # tax inclusive amount override (OCPI min/max price clamp incl. VAT separately)
    gross_override: Decimal | None = None

    @property
    def gross(self) -> Decimal:
        if self.gross_override is not None:
            return self.gross_override
        return self.net * (1 + self.tax_rate / 100)

    def net_rounded(self, mode: str = "half_up") -> Decimal:
        return quantize(self.net, minor_unit(self.currency), mode)

    def money(self) -> Money:
        return Money(self.net, self.currency)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "component": self.component,
            "description": self.description,
            "quantity": _s(self.quantity),
            "unit": self.unit,
            "unit_price": _s(self.unit_price),
            "net": _s(self.net),
            "net_rounded": str(self.net_rounded()),
            "tax_rate": _s(self.tax_rate),
            "currency": self.currency,
            "rule": self.rule,
        }
        if self.session_id:
            d["session_id"] = self.session_id
        return d


class TraceEntry(NamedTuple):
    """Why an amount is what it is: which rule fired for which stretch of the session."""

    component: str
    rule: str
    start_ms: int  # UTC epoch milliseconds (formatted only when serialised: rating stays fast)
    end_ms: int
    quantity: Decimal
    unit_price: Decimal
    note: str = ""

    @property
    def start(self) -> str:
        return _iso(self.start_ms)

    @property
    def end(self) -> str:
        return _iso(self.end_ms)

    def to_dict(self) -> dict[str, Any]:
        d = {"component": self.component, "rule": self.rule, "start": self.start, "end": self.end,
             "quantity": _s(self.quantity), "unit_price": _s(self.unit_price)}
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True, slots=True)
class RatingResult:
    session_id: str
    ruleset: str
    version: str
    sha256: str
    tariff: str
    currency: str
    lines: tuple[RatedLine, ...]
    trace: tuple[TraceEntry, ...] = ()
    # volumes the session consumed (kWh, hours) — what OCPI calls total_energy/time/parking_time
    energy_kwh: Decimal = ZERO
    time_h: Decimal = ZERO
    parking_h: Decimal = ZERO
    # state the caller must persist (discount uses, promotion budgets), keyed by discount name
    consumed: tuple[tuple[str, Decimal], ...] = field(default=())
    # the tariff is legal for trade: energy came from the signed readings (``SessionFacts.signed_kwh``)
    legal_for_trade: bool = False

    def __post_init__(self) -> None:
        # every total below adds the lines' amounts: a line in another currency is refused here,
        # where the result is made, rather than added into a wrong total later
        for ln in self.lines:
            if ln.currency != self.currency:
                require_currency(self.currency, ln.currency, f"{ln.component} line of session {self.session_id}")

    @property
    def net_unrounded(self) -> Decimal:
        return sum((ln.net for ln in self.lines), ZERO)

    @property
    def net_total(self) -> Decimal:
        """Invoice net: the sum of lines each rounded to the minor unit."""
        return sum((ln.net_rounded() for ln in self.lines), ZERO)

    def tax_groups(self, mode: str = "half_up") -> dict[Decimal, tuple[Decimal, Decimal]]:
        """Per VAT rate: (net of rounded lines, tax rounded once for the group)."""
        pairs = ((ln.tax_rate, ln.net_rounded(mode)) for ln in self.lines)
        return {rate: (net, tax) for rate, net, tax in tax_groups(pairs, self.currency, mode)}

    @property
    def tax_total(self) -> Decimal:
        return sum((t for _, t in self.tax_groups().values()), ZERO)

    @property
    def gross_total(self) -> Decimal:
        return self.net_total + self.tax_total

    def group_totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Unrounded (excl, incl) VAT per OCPI cost group, plus "total"."""
        return group_totals(self.lines)

    def to_dict(self) -> dict[str, Any]:
        tg = self.tax_groups()
        return {
            "session_id": self.session_id,
            "ruleset": self.ruleset,
            "version": self.version,
            "sha256": self.sha256,
            "tariff": self.tariff,
            "currency": self.currency,
            "lines": [ln.to_dict() for ln in self.lines],
            "totals": {
                "net": str(self.net_total),
                "tax": str(self.tax_total),
                "gross": str(self.gross_total),
                "net_unrounded": _s(self.net_unrounded),
                "tax_groups": [{"rate": _s(r), "net": str(n), "tax": str(t)} for r, (n, t) in sorted(tg.items())],
            },
            "volumes": {"energy_kwh": _s(self.energy_kwh), "time_h": _s(self.time_h),
                        "parking_h": _s(self.parking_h)},
            "trace": [t.to_dict() for t in self.trace],
            **({"legal_for_trade": True} if self.legal_for_trade else {}),
        }


# RatingResult's slots, in field order: their descriptors' setters
_RESULT_SET = tuple(RatingResult.__dict__[name].__set__ for name in RatingResult.__dataclass_fields__)
_new_object = object.__new__


def trusted_result(session_id: str, ruleset: str, version: str, sha256: str, tariff: str, currency: str,
                   lines: tuple[RatedLine, ...], trace: tuple[TraceEntry, ...], energy_kwh: Decimal, time_h: Decimal,
                   parking_h: Decimal, consumed: tuple[tuple[str, Decimal], ...] = (),
                   legal_for_trade: bool = False) -> RatingResult:
    """``RatingResult(...)`` of every field, without ``__post_init__``'s currency check, for the
    rating engine, which makes every line in the result's currency itself (the frozen
    dataclass's ``__init__`` and check were a tenth of rating a plain session)."""
    r = _new_object(RatingResult)
    (s_id, s_ruleset, s_version, s_sha, s_tariff, s_cur, s_lines, s_trace, s_kwh, s_time, s_park, s_consumed,
     s_legal) = _RESULT_SET
    s_id(r, session_id)
    s_ruleset(r, ruleset)
    s_version(r, version)
    s_sha(r, sha256)
    s_tariff(r, tariff)
    s_cur(r, currency)
    s_lines(r, lines)
    s_trace(r, trace)
    s_kwh(r, energy_kwh)
    s_time(r, time_h)
    s_park(r, parking_h)
    s_consumed(r, consumed)
    s_legal(r, legal_for_trade)
    return r


def group_totals(lines: Iterable[RatedLine]) -> dict[str, tuple[Decimal, Decimal]]:
    """Unrounded (excl, incl) VAT per OCPI cost group of ``lines``, plus "total" (lines in order)."""
    out: dict[str, tuple[Decimal, Decimal]] = {}
    factors = _GROSS
    for ln in lines:
        net = ln.net
        if ln.gross_override is not None:
            gross = ln.gross_override
        else:  # RatedLine.gross, its factor made once per rate
            factor = factors.get(ln.tax_rate)
            if factor is None:
                factor = factors[ln.tax_rate] = 1 + ln.tax_rate / 100
            gross = net * factor
        e, i = out.get("total", _NONE)
        out["total"] = (e + net, i + gross)
        group = ln.group
        if group:
            e, i = out.get(group, _NONE)
            out[group] = (e + net, i + gross)
    return out


_NONE = (ZERO, ZERO)
_GROSS: dict[Decimal, Decimal] = {}  # tax rate -> 1 + rate / 100


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _s(d: Decimal) -> str:
    """A decimal as a plain string without exponent and without trailing zeros noise."""
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    s = format(d.normalize(), "f")
    return s
