"""Column types that keep money and time exact on every database we run on.

SQLite has no decimal type (SQLAlchemy's ``Numeric`` goes through float there), so amounts are
stored as decimal strings on SQLite and as ``NUMERIC`` on PostgreSQL; either way a ``Decimal``
comes back exactly as it went in. Timestamps are stored as UTC and always come back aware.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["ExactDecimal", "UTCDateTime", "new_id", "plain_texts", "utcnow"]


class ExactDecimal(TypeDecorator[Decimal]):
    """``Decimal`` stored without ever passing through a float."""

    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            # unconstrained NUMERIC keeps every digit rating produced
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("refusing to store a float as money: use Decimal")
        d = value if isinstance(value, Decimal) else Decimal(str(value))
        if dialect.name == "postgresql":
            return d
        return format(d, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal

    def fast_bind(self, dialect: Dialect) -> Any:
        """The bind processor as one plain function (``store.billing.driver_insert`` runs it on a
        million values at month-end): a ``Decimal`` goes straight through, anything else the
        checked way (``process_bind_param``: a float is refused)."""
        slow = self.process_bind_param
        if dialect.name == "postgresql":
            return lambda v: v if type(v) is Decimal else slow(v, dialect)

        def text(v: Any) -> Any:
            if type(v) is Decimal:
                s = str(v)
                return s if "E" not in s else format(v, "f")
            return slow(v, dialect)

        return text

    @staticmethod
    def bind_decimals(dialect: Dialect) -> Callable[[Sequence[Decimal]], Sequence[Any]]:
        """``fast_bind`` of a whole column whose values are all ``Decimal``, in one call: as they
        are on PostgreSQL, their ``"f"`` text on SQLite."""
        if dialect.name == "postgresql":
            return lambda col: col
        return plain_texts


def plain_texts(col: Sequence[Decimal]) -> list[str]:
    """``format(d, "f")`` of each ``Decimal``: its ``str`` wherever that has no exponent (the same
    text then, at half the cost: ``format`` parses its spec each call), else ``format``'s."""
    out = list(map(str, col))
    if "E" in "".join(out):
        out = [t if "E" not in t else format(d, "f") for t, d in zip(out, col, strict=True)]
    return out


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC timestamps on both dialects (SQLite drops offsets, so we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, found {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("refusing a naive timestamp: every stored time is aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


_last_ms = 0
_counter = 0


def new_id(prefix: str) -> str:
    """Sortable ids (``cus_<time><counter><random>``): creation order is id order, which is what
    cursor pagination walks, and the prefix tells an operator what kind of object an id names."""
    global _last_ms, _counter
    ms = int(time.time() * 1000)
    if ms == _last_ms:
        _counter += 1
    else:
        _last_ms, _counter = ms, 0
    return f"{prefix}_{ms:012x}{_counter & 0xFFFF:04x}{os.urandom(5).hex()}"
