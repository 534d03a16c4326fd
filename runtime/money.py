"""Exact money: ``Decimal`` amounts that always carry their currency.

Floats are refused, currencies never mix, and rounding happens only where a caller asks for it
(once per invoice line, per DESIGN.md). Rounding follows the currency's minor unit, half-up unless
a ruleset asks for another mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from typing import Final

__all__ = [
    "MINOR_UNITS",
    "ROUNDING_MODES",
    "ZERO",
    "CurrencyMismatch",
    "Money",
    "allocate",
    "minor_unit",
    "quantize",
    "require_currency",
    "tax_groups",
    "to_decimal",
]

ZERO: Final = Decimal(0)

# ISO 4217 minor units (list one, as published by the maintenance agency, through the ``iso4217``
# package): JPY 0 places, EUR 2, KWD 3, CLF 4. Codes without a minor unit (XAU, XXX, XDR: metals,
# funds, "no currency") are not money an invoice can be written in and are left out. CLDR (babel)
# is not the source here: its "digits" are display conventions (HUF 0, IQD 0) where ISO says 2 and 3.
# The DSL checker and the API refuse codes missing here; ``minor_unit`` of an unknown code is 2.
# The package parses its XML table when imported (~95M instructions, a third of a second at a busy
# moment: most of what ``evbill ocpi price`` starts up with besides its own modules), so the table
# is read when first needed beyond the common currencies below (the same values: tested).
_COMMON_MINOR_UNITS: Final[dict[str, int]] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "HUF": 2,
    "JPY": 0, "KWD": 3,
}


class _MinorUnits(Mapping[str, int]):
    """``MINOR_UNITS``: ISO 4217 code -> minor unit, the ``iso4217`` package's table read at the
    first look-up of a code outside ``_COMMON_MINOR_UNITS`` (or a walk over all codes)."""

    def __init__(self) -> None:
        self._table: dict[str, int] | None = None

    def _all(self) -> dict[str, int]:
        if self._table is None:
            from iso4217 import Currency

            self._table = {c.code: c.exponent for c in Currency if c.exponent is not None}
        return self._table

    def __getitem__(self, code: str) -> int:
        places = _COMMON_MINOR_UNITS.get(code)
        return places if places is not None else self._all()[code]

    def __contains__(self, code: object) -> bool:
        return code in _COMMON_MINOR_UNITS or code in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


MINOR_UNITS: Final[Mapping[str, int]] = _MinorUnits()

ROUNDING_MODES: Final[dict[str, str]] = {
    "half_up": ROUND_HALF_UP,
    "half_even": ROUND_HALF_EVEN,
    "up": ROUND_UP,
    "down": ROUND_DOWN,
}

_QUANTS: Final[dict[int, Decimal]] = {p: Decimal(1).scaleb(-p) for p in range(9)}


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies met in one operation. ``expected`` is the currency of
    the sum (the invoice's, the document's), ``got`` the other one, ``where`` what carried it."""

    def __init__(self, message: str, expected: str = "", got: str = "", where: str = "") -> None:
        super().__init__(message)
        self.expected, self.got, self.where = expected, got, where


def require_currency(expected: str, got: str, where: str = "") -> None:
    """Raise ``CurrencyMismatch`` unless ``got`` is ``expected``: the check at every seam where
    amounts of one total meet (invoice assembly, rated totals, period rating)."""
    if got != expected:
        at = f" ({where})" if where else ""
        raise CurrencyMismatch(f"an amount in {got}{at} cannot be added to a total in {expected}",
                               expected, got, where)


def minor_unit(currency: str) -> int:
    places = _COMMON_MINOR_UNITS.get(currency)  # a plain dict first: callers run per line
    return places if places is not None else MINOR_UNITS.get(currency, 2)


def quantize(amount: Decimal, places: int, mode: str = "half_up") -> Decimal:
    """Round ``amount`` to ``places`` decimals with a named mode (see ``ROUNDING_MODES``)."""
    return amount.quantize(_QUANTS[places], rounding=ROUNDING_MODES[mode])


def quantum(places: int, mode: str = "half_up") -> tuple[Decimal, str]:
    """``quantize``'s exponent and rounding for a loop that calls ``Decimal.quantize`` itself:
    ``amount.quantize(exp, rounding=rounding)`` is ``quantize(amount, places, mode)``."""
    return _QUANTS[places], ROUNDING_MODES[mode]


def tax_groups(nets: Iterable[tuple[Decimal, Decimal | Money]], currency: str,
               mode: str = "half_up") -> tuple[tuple[Decimal, Decimal, Decimal], ...]:
    """VAT per rate group, the one rule rating, invoices and documents share: ``nets`` are
    (rate, rounded net) pairs; each group's VAT is its summed net x rate, rounded once to the
    currency's minor unit with ``mode``. Returns (rate, net, tax) sorted by rate.

    A net given as ``Money`` must be in ``currency`` (``CurrencyMismatch`` otherwise); a plain
    ``Decimal`` is taken to be in it (callers whose amounts all come from one document)."""
    groups: dict[Decimal, Decimal] = {}
    for rate, net in nets:
        if isinstance(net, Money):
            require_currency(currency, net.currency, f"VAT group {rate}%")
            net = net.amount
        groups[rate] = groups.get(rate, ZERO) + net
    places = minor_unit(currency)
    return tuple((r, n, quantize(n * r / 100, places, mode)) for r, n in sorted(groups.items()))


def apportion(total: Decimal, parts: Sequence[Decimal], places: int) -> tuple[Decimal, ...]:
    """``total`` (the rounding of ``sum(parts)``, in ``places``) as one amount per exact part: each
    part rounded down to the unit, the units left over to the largest remainders (earlier parts
    first on ties), or taken from the smallest when the total lies below. Unlike a pro-rata split,
    each amount stays within a unit of its part whatever the parts' signs (a negative correction
    beside positive revenue)."""
    if not parts:
        return ()
    unit = Decimal(1).scaleb(-places)
    floors = [(p / unit).to_integral_value(rounding=ROUND_FLOOR) for p in parts]
    left = int((total / unit).to_integral_value() - sum(floors, ZERO))
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] / unit - floors[i]), i))
    if left < 0:
        order, step = order[::-1], -1
    else:
        step = 1
    for n in range(abs(left)):
        floors[order[n % len(order)]] += step
    return tuple((f * unit).quantize(unit) for f in floors)


def allocate(total: Decimal, weights: Sequence[Decimal], places: int) -> tuple[Decimal, ...]:
    """Split ``total`` (already in ``places``) over ``weights`` pro rata, in units of ``places``,
    so that the parts add up to ``total`` exactly (largest remainder: every part is its exact share
    rounded down, and the units left over go to the largest fractions, earlier ones first on ties:
    ``apportion`` of the exact shares). With weights summing to zero the exact shares are
    undefined: all parts but the first are zero."""
    if not weights:
        return ()
    whole = sum(weights, ZERO)
    if whole == 0:
        return (total,) + (ZERO,) * (len(weights) - 1)
    return apportion(total, [total * w / whole for w in weights], places)


def to_decimal(value: object) -> Decimal:
    """Convert user input to ``Decimal``; floats are refused because they are not exact."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (bool, float)):
        raise TypeError(f"refusing {type(value).__name__} {value!r}: use a decimal string")
    if isinstance(value, (int, str)):
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
        if not d.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        return d
    raise TypeError(f"cannot make a decimal from {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. ``Money * Money`` and mixed currencies are errors."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            object.__setattr__(self, "amount", to_decimal(self.amount))
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    @classmethod
    def of(cls, amount: object, currency: str) -> Money:
        return cls(to_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(ZERO, currency)

    @classmethod
    def total(cls, amounts: Iterable[Money], currency: str, where: str = "") -> Money:
        """The sum of ``amounts``, all in ``currency`` (an empty sum is zero in it, not an
        ambiguous int 0); the first amount in another currency raises ``CurrencyMismatch``."""
        acc = ZERO
        for m in amounts:
            require_currency(currency, m.currency, where)
            acc += m.amount
        return cls(acc, currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} and {other.currency}", self.currency,
                                   other.currency)

    def __add__(self, other: object) -> Money:
        if isinstance(other, Money):
            self._same(other)
            return Money(self.amount + other.amount, self.currency)
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented

    def __radd__(self, other: object) -> Money:
        # makes sum() work: sum(moneys) starts from int 0
        return self.__add__(other)

    def __sub__(self, other: object) -> Money:
        if isinstance(other, Money):
            self._same(other)
            return Money(self.amount - other.amount, self.currency)
        return NotImplemented

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, Money):
            raise TypeError("cannot multiply money by money")
        if isinstance(factor, float):
            raise TypeError("refusing to multiply money by a float")
        if isinstance(factor, (Decimal, int)) and not isinstance(factor, bool):
            return Money(self.amount * factor, self.currency)
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, divisor: object) -> Money:
        if isinstance(divisor, (Decimal, int)) and not isinstance(divisor, bool):
            return Money(self.amount / divisor, self.currency)
        raise TypeError(f"cannot divide money by {type(divisor).__name__}")

    def _cmp(self, other: object) -> Decimal:
        if not isinstance(other, Money):
            raise TypeError(f"cannot compare money with {type(other).__name__}")
        self._same(other)
        return self.amount - other.amount

    def __lt__(self, other: object) -> bool:
        return self._cmp(other) < 0

    def __le__(self, other: object) -> bool:
        return self._cmp(other) <= 0

    def __gt__(self, other: object) -> bool:
        return self._cmp(other) > 0

    def __ge__(self, other: object) -> bool:
        return self._cmp(other) >= 0

    def __bool__(self) -> bool:
        return bool(self.amount)

    def rounded(self, mode: str = "half_up") -> Money:
        """Round to the currency's minor unit (the one place amounts are rounded)."""
        return Money(quantize(self.amount, minor_unit(self.currency), mode), self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
