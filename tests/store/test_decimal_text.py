"""SQLite stores an exact amount as its fixed-point text, ``format(d, "f")``; month-end writes a
million of them through ``ExactDecimal.bind_decimals``/``fast_bind``, which take ``str(d)`` where
that has no exponent (the same text) and ``format`` otherwise."""

from __future__ import annotations

import random
from decimal import Decimal

from sqlalchemy.dialects import sqlite

from store.types import ExactDecimal, plain_texts

_TRICKY = ["0", "-0", "0.00", "-0.000", "19", "0.50", "4.29960", "0E-7", "1E+2", "-1E+3", "0.0000001", "1.2E-7",
           "123E-9", "12345678901234567890.123456789", "-0.000001", "1E-6", "NaN", "Infinity", "-Infinity"]


def _random(n: int) -> list[Decimal]:
    rnd = random.Random(17)
    return [Decimal((rnd.randint(0, 1), tuple(rnd.randint(0, 9) for _ in range(rnd.randint(1, 28))),
                     rnd.randint(-30, 8))) for _ in range(n)]


def test_plain_texts_are_format_f_for_every_decimal() -> None:
    values = [Decimal(s) for s in _TRICKY] + _random(20_000)
    assert plain_texts(values) == [format(d, "f") for d in values]
    plain = [d for d in values if "E" not in str(d)]
    assert plain_texts(plain) == [format(d, "f") for d in plain]


def test_the_sqlite_bind_processors_write_format_f() -> None:
    dialect = sqlite.dialect()
    t = ExactDecimal()
    one, column = t.fast_bind(dialect), ExactDecimal.bind_decimals(dialect)
    values = [Decimal(s) for s in _TRICKY] + _random(2_000)
    want = [t.process_bind_param(d, dialect) for d in values]
    assert [one(d) for d in values] == want
    assert list(column(values)) == want
    assert one(None) is None and one(3) == "3"
