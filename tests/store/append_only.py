"""Switching the append-only triggers off for a moment, as someone with DDL rights could: the
tampering tests need it to prove the hash chain still catches what the triggers no longer stop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

from store.audit import append_only_ddl, drop_append_only_ddl


@contextmanager
def triggers_dropped(conn: Connection, table: str = "audit_entry") -> Iterator[None]:
    dialect = conn.dialect.name
    for ddl in drop_append_only_ddl(dialect, table):
        conn.execute(text(ddl))
    try:
        yield
    finally:
        for ddl in append_only_ddl(dialect, table):
            conn.execute(text(ddl))
