"""Engines, sessions and migrations.

``database_url()`` picks SQLite under ``var/`` unless ``EVBILL_DATABASE_URL`` says otherwise;
``migrate(engine)`` brings any database to the head revision programmatically, so nobody has to run
alembic by hand (``evbill serve`` calls it at start).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

import store.customers  # noqa: F401  (numbers every customer a session inserts, whoever opens it)

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "ReadBatcher",
    "RowReader",
    "alembic_config",
    "close_database",
    "database_url",
    "fold_sqlite_wal",
    "make_engine",
    "migrate",
    "session_factory",
]

DEFAULT_SQLITE_PATH = Path("var") / "evbill.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def database_url() -> str:
    url = os.environ.get("EVBILL_DATABASE_URL", "").strip()
    if url:
        return url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run while the importer writes; foreign keys are off by default in SQLite
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_savepoint(conn: Any, _name: str | None) -> None:
    # pysqlite issues its implicit BEGIN only before INSERT, UPDATE, DELETE and REPLACE. A SAVEPOINT
    # outside a transaction (the caller has only read so far) starts one of its own, which the
    # savepoint's RELEASE commits: the "nested" block's writes were committed at once, and the
    # caller's rollback afterwards found none of them to undo. Begin the caller's transaction first.
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        dbapi.execute("BEGIN")


def make_engine(url: str | None = None, *, schema: str | None = None, **kw: Any) -> Engine:
    """An engine for ``url``; ``schema`` puts every PostgreSQL table into that schema
    (tests use a fresh one per run so parallel runs do not collide)."""
    url = url or database_url()
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": 10}
        engine = create_engine(url, connect_args=connect_args, **kw)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_savepoint)
        return engine
    connect_args = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    kw.setdefault("pool_size", 20)
    kw.setdefault("max_overflow", 40)
    kw.setdefault("pool_recycle", 1800)
    engine = create_engine(url, connect_args=connect_args, **kw)
    if engine.dialect.driver == "psycopg":
        from store.pg_lists import register_plain_lists  # id lists dumped by one join (month-end)

        event.listen(engine, "connect", register_plain_lists)
    return engine


class _Compiled:
    __slots__ = ("columns", "dialect", "keep", "names", "positional", "processors", "sql")

    def __init__(self, stmt: Select[Any], engine: Engine) -> None:
        dialect = self.dialect = engine.dialect
        compiled = stmt.compile(dialect=dialect)
        self.keep = stmt  # the cache is keyed by id(stmt): keep the statement alive
        self.sql = str(compiled)
        self.positional = compiled.positiontup
        if any(b.type._cached_bind_processor(dialect) for b in compiled.binds.values()):
            raise ValueError("RowReader binds plain values only")
        self.columns = list(stmt.selected_columns)
        self.names = tuple(c.name for c in self.columns)
        self.processors: tuple[Callable[[Any], Any] | None, ...] | None = None

    def process(self, cursor: Any, row: Any) -> dict[str, Any]:
        if self.processors is None:
            description = cursor.description  # psycopg builds it anew on each access: only once
            # like SQLAlchemy's own results: a processor may depend on the driver's type code
            # (psycopg's NUMERIC vs FLOAT8), known from the first result's description
            self.processors = tuple(c.type.dialect_impl(self.dialect).result_processor(self.dialect, d[1])
                                    for c, d in zip(self.columns, description, strict=True))
        return {n: (p(v) if p is not None else v) for n, p, v in zip(self.names, self.processors, row, strict=True)}


class RowReader:
    """One-row reads for hot GET paths: a Core ``select`` compiled once per engine and run on one
    DBAPI connection and cursor per thread, kept for the process (autocommit on PostgreSQL, so every
    read sees the latest commit and no transaction is left open; SQLite never opens one for a
    SELECT). Values go through the columns' own SQLAlchemy result processors, so a row reads the
    same as through a Session; only the per-call Connection, Result and event machinery is skipped
    (measured for one customer row: about 70 -> 10 us of CPU on SQLite, 230 -> 40 us on
    PostgreSQL, against ``engine.connect()`` + ``execute`` + ``first``). DBAPI errors come out as
    SQLAlchemy's exceptions, and a failed connection is dropped and replaced on the next call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._compiled: dict[int, _Compiled] = {}
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _cursor(self) -> tuple[Any, Any]:
        held = getattr(self._local, "held", None)
        if held is None:
            fairy = self.engine.raw_connection()  # held for good: never back in the shared pool
            if self.engine.dialect.name != "sqlite":
                fairy.driver_connection.autocommit = True
            held = self._local.held = (fairy, fairy.cursor())
            with self._lock:
                self._all.append(fairy)
        return held

    def close(self) -> None:
        """Close every connection this reader holds (app shutdown)."""
        with self._lock:
            held, self._all = self._all, []
        for fairy in held:
            fairy.invalidate()  # closes the DBAPI connection; the pool opens a new one when asked
        self._local = threading.local()

    def _run(self, stmt: Select[Any], params: Mapping[str, Any]) -> tuple[_Compiled, Any, list[Any]]:
        c = self._compiled.get(id(stmt))
        if c is None:
            c = self._compiled[id(stmt)] = _Compiled(stmt, self.engine)
        args: Any = tuple(params[n] for n in c.positional) if c.positional else params
        fairy, cur = self._cursor()
        try:
            cur.execute(c.sql, args)
            # fetchall, not fetchone: a SQLite statement left unfinished would keep its read
            # snapshot (and hold back WAL checkpoints) until the next call
            rows = cur.fetchall()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            self._local.held = None
            with self._lock:
                if fairy in self._all:
                    self._all.remove(fairy)
            fairy.invalidate()
            raise DBAPIError.instance(c.sql, args, exc, self.engine.dialect.loaded_dbapi.Error) from exc
        return c, cur, rows

    def first(self, stmt: Select[Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
        c, cur, rows = self._run(stmt, params)
        return c.process(cur, rows[0]) if rows else None

    def all(self, stmt: Select[Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
        c, cur, rows = self._run(stmt, params)
        return [c.process(cur, row) for row in rows]


class ReadBatcher:
    """Coalesces the by-id reads that requests on one event loop make at the same moment into one
    query per statement and tenant (``... WHERE tenant_id = :tenant_id AND id = ANY(:ids)``): one
    round trip to PostgreSQL, and one wake-up of the process, for the handful of lookups that
    arrive together under load, where each used to cost its own. A read waits for nothing: the
    batch goes out as soon as the requests already running on the loop have had their turn, and
    a read alone goes out as the single-row statement. Only the event loop's thread uses it."""

    def __init__(self, reader: RowReader) -> None:
        self.reader = reader
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[tuple[int, str], tuple[Select[Any], Select[Any], list[tuple[str, Any]]]] = {}

    def first(self, one: Select[Any], many: Select[Any], tenant_id: str, obj_id: str) -> Awaitable[dict[str, Any] | None]:
        """``one`` binds ``tenant_id`` and ``id``; ``many`` the same rows by ``tenant_id`` and a list ``ids``."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (a test client's): what a stopped one left is moot
            self._loop, self._pending = loop, {}
        fut: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        group = self._pending.get((id(many), tenant_id))
        if group is None:
            group = self._pending[(id(many), tenant_id)] = (one, many, [])
        group[2].append((obj_id, fut))
        return fut

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for (_, tenant_id), (one, many, waiting) in pending.items():
            try:
                if len(waiting) == 1:
                    found = {waiting[0][0]: self.reader.first(one, {"tenant_id": tenant_id, "id": waiting[0][0]})}
                else:
                    ids = list(dict.fromkeys(obj_id for obj_id, _ in waiting))
                    found = {row["id"]: row for row in self.reader.all(many, {"tenant_id": tenant_id, "ids": ids})}
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                for _, fut in waiting:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for obj_id, fut in waiting:
                if not fut.done():  # a request cancelled meanwhile (its client went away)
                    fut.set_result(found.get(obj_id))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (all heads: features add their own branches)."""
    from alembic import command

    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def fold_sqlite_wal(path: str | Path) -> None:
    """Copy a SQLite file's write-ahead log into the database and let SQLite delete the ``-wal``
    and ``-shm`` files, which it does when the last connection to the file closes. Call it when
    every other connection is gone (a stopped server's history file, a disposed engine's)."""
    import sqlite3

    if not Path(path).exists():
        return
    con = sqlite3.connect(str(path), timeout=10)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def close_database(engine: Engine, *, remove_lock_file: bool = True) -> None:
    """Close every pooled connection of ``engine``; on a SQLite file also fold the WAL into the
    database and release the write-lock file, so the database is one self-contained file again.
    Connections held outside the pool (a RowReader's, a gateway's own engine) must be closed
    first, or SQLite keeps the log for them."""
    from store.writelock import release_write_lock

    engine.dispose()
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if db and db != ":memory:" and not db.startswith("file:"):
        fold_sqlite_wal(db)
        release_write_lock(engine, remove=remove_lock_file)
