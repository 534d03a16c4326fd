"""A PostgreSQL schema or database of a test's own, and its removal.

A test on PostgreSQL (``EVBILL_TEST_POSTGRES_URL``) that takes a schema of its own (``pg_schema``)
migrates it and drops it afterwards: a migrated schema has 370 relations and 2,275 ``pg_attribute`` rows (counted in
session 14), made and removed each time. Where the server runs without autovacuum (the project's
machine and CI do), those dead rows stay in the catalogs for good: when all ~330 PostgreSQL tests did so (before
session 15), a suite run left up to ~750k in ``pg_attribute`` by that count (session 13 found 791k after a day of
runs), and every later migration and catalog lookup slows. So every ``VACUUM_EVERY``-th drop of this
process vacuums the catalogs the migrations write (a superuser's or the catalogs' owner's right;
where the role lacks it, PostgreSQL only warns and the tests go on).

A test that needs a migrated database and nothing else gets one from ``pg_database`` instead: a
database of its own, copied by the server from a template database migrated once per version of the
store's code (``CREATE DATABASE ... TEMPLATE``: 0.3-0.5 s against 5.7-7.7 s for migrating a schema,
both at load ~10 in session 15), whose catalogs go with it when it is dropped. Dropping a database
makes the server checkpoint (0.3-7 s each at load 6-12), so a thread of this process drops the
finished copies while the next tests run, and the process waits for it when it exits. Migrations
themselves (``migrated=False`` in ``tests.store.conftest.fresh_engine``) still run in a schema."""

from __future__ import annotations

import atexit
import hashlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, make_url, text

from store.db import make_engine, migrate

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


# ---------------------------------------------------------------- databases copied from a migrated template
STALE_S = 6 * 3600  # a copy left this long by a killed run is dropped by the next run that starts
LOCK = 0x65766231  # pg_advisory_lock key: one process builds a template, the others wait for it
_STORE = Path(__file__).resolve().parent.parent / "store"
_state: dict[str, object] = {}
_finished: queue.Queue[str | None] = queue.Queue()


def _url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def _admin() -> Engine:
    eng = _state.get("admin")
    if eng is None:
        eng = make_engine(PG_URL, pool_size=1, max_overflow=0).execution_options(isolation_level="AUTOCOMMIT")
        _state["admin"] = eng
        atexit.register(_at_exit)
    assert isinstance(eng, Engine)
    return eng


def _digest() -> str:
    """What the migrated schema depends on: the store's code (migrations may use its tables)."""
    h = hashlib.sha256()
    for f in sorted(_STORE.rglob("*")):
        if f.is_file() and f.suffix in (".py", ".mako", ".sql") and "__pycache__" not in f.parts:
            h.update(f.relative_to(_STORE).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _template() -> str:
    """The migrated template database of this store code (built by the first process that asks)."""
    name = _state.get("template")
    if isinstance(name, str):
        return name
    name = f"evbill_tmpl_{_digest()}"
    with _admin().connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK})
        try:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                _build(conn, name)
            _sweep(conn, name)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK})
    _state["template"] = name
    return name


def _build(conn: Connection, name: str) -> None:
    """Migrates ``name``: built under another name and renamed, so no process copies a half-built one;
    no connections allowed afterwards (a copy needs a template nobody is connected to)."""
    build = f"{name}_build"
    conn.execute(text(f'DROP DATABASE IF EXISTS "{build}" WITH (FORCE)'))
    conn.execute(text(f'CREATE DATABASE "{build}"'))
    eng = make_engine(_url(build), pool_size=1, max_overflow=0)
    try:
        migrate(eng)
    finally:
        eng.dispose()
    conn.execute(text(f'ALTER DATABASE "{build}" RENAME TO "{name}"'))
    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
    conn.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{int(time.time())}'"))


def _sweep(conn: Connection, keep: str) -> None:
    """Drops what killed runs left: copies named with a start time older than ``STALE_S``, and
    templates of other store code built that long ago (another checkout may still copy a newer one)."""
    cutoff = time.time() - STALE_S
    rows = conn.execute(text("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                             "WHERE datname LIKE 'evbill\\_t\\_%' OR datname LIKE 'evbill\\_tmpl\\_%'")).all()
    for datname, comment in rows:
        parts = datname.split("_")
        if datname.startswith("evbill_t_"):
            stamp = parts[2] if len(parts) > 3 else ""
        else:
            stamp = comment or ""
        if stamp.isdigit() and int(stamp) < cutoff and datname != keep:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{datname}" WITH (FORCE)'))


def _dropper() -> None:
    """Drops the finished copies, one by one, until told to stop (``None``)."""
    eng = make_engine(PG_URL, pool_size=1, max_overflow=0).execution_options(isolation_level="AUTOCOMMIT")
    try:
        while (name := _finished.get()) is not None:
            with eng.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        eng.dispose()


def _at_exit() -> None:
    thread = _state.pop("dropper", None)
    try:
        if isinstance(thread, threading.Thread):
            _finished.put(None)
            thread.join()
    finally:
        eng = _state.pop("admin", None)
        if isinstance(eng, Engine):
            eng.dispose()


@contextmanager
def pg_database() -> Iterator[str]:
    """The URL of a fresh, migrated database of its own on ``PG_URL``'s server (a copy of the
    template), dropped by the dropper thread once the test is done with it."""
    template = _template()
    name = f"evbill_t_{int(time.time())}_{uuid.uuid4().hex[:10]}"
    with _admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _url(name)
    finally:
        if "dropper" not in _state:
            _state["dropper"] = thread = threading.Thread(target=_dropper, name="pg-dropper", daemon=True)
            thread.start()
        _finished.put(name)
