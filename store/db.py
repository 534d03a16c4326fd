"""Engines, sessions and migrations.

``database_url()`` picks SQLite under ``var/`` unless ``EVBILL_DATABASE_URL`` says otherwise;
``migrate(engine)`` brings any database to the head revision programmatically, so nobody has to run
alembic by hand (``evbill serve`` calls it at start).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "alembic_config",
    "database_url",
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


def make_engine(url: str | None = None, *, schema: str | None = None, **kw: Any) -> Engine:
    """An engine for ``url``; ``schema`` puts every PostgreSQL table into that schema
    (tests use a fresh one per run so parallel runs do not collide)."""
    url = url or database_url()
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": 10}
        engine = create_engine(url, connect_args=connect_args, **kw)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    kw.setdefault("pool_size", 20)
    kw.setdefault("max_overflow", 40)
    kw.setdefault("pool_recycle", 1800)
    return create_engine(url, connect_args=connect_args, **kw)


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
