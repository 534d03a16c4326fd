"""A PostgreSQL schema of a test's own, and its removal.

Every test that runs on PostgreSQL (``EVBILL_TEST_POSTGRES_URL``) migrates a fresh schema and drops
it afterwards: a migrated schema has 370 relations and 2,275 ``pg_attribute`` rows (counted in
session 14), made and removed each time. Where the server runs without autovacuum (the project's
machine and CI do), those dead rows stay in the catalogs for good: with up to ~330 PostgreSQL tests a
suite run leaves up to ~750k in ``pg_attribute`` by that count (session 13 found 791k after a day of
runs), and every later migration and catalog lookup slows. So every ``VACUUM_EVERY``-th drop of this
process vacuums the catalogs the migrations write (a superuser's or the catalogs' owner's right;
where the role lacks it, PostgreSQL only warns and the tests go on)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from store.db import make_engine

PG_URL = os.environ.get("EVBILL_TEST_POSTGRES_URL", "").strip()
VACUUM_EVERY = 20
CATALOGS = ("pg_attribute", "pg_class", "pg_depend", "pg_type", "pg_constraint", "pg_index", "pg_attrdef",
            "pg_trigger", "pg_namespace", "pg_sequence", "pg_description")
_drops = 0


def vacuum_catalogs(admin: Engine) -> None:
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM " + ", ".join(f"pg_catalog.{c}" for c in CATALOGS)))


def drop_schema(admin: Engine, schema: str) -> None:
    """Drops ``schema`` with all it holds; every ``VACUUM_EVERY``-th drop vacuums the catalogs."""
    global _drops
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    _drops += 1
    if _drops % VACUUM_EVERY == 0:
        vacuum_catalogs(admin)


@contextmanager
def pg_schema(prefix: str = "evbill_test") -> Iterator[tuple[Engine, str]]:
    """A fresh, empty schema on ``PG_URL`` and an admin engine outside it; dropped on exit."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL, pool_size=1, max_overflow=0)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield admin, schema
    finally:
        try:
            drop_schema(admin, schema)
        finally:
            admin.dispose()
