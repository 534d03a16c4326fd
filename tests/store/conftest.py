"""Storage fixtures: every test that takes ``engine`` runs on SQLite and, when
``EVBILL_TEST_POSTGRES_URL`` is set, on PostgreSQL in a schema of its own (dropped afterwards),
so parallel runs never see each other's tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from store.db import make_engine, migrate

PG_URL = os.environ.get("EVBILL_TEST_POSTGRES_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def fresh_engine(backend: str, tmp_path: Path, *, migrated: bool = True) -> tuple[Engine, object]:
    """Returns (engine, cleanup)."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'evbill.db'}")
        if migrated:
            migrate(engine)
        return engine, engine.dispose
    schema = f"evbill_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL, pool_size=1, max_overflow=0)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, schema=schema)
    if migrated:
        migrate(engine)

    def cleanup() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, cleanup


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(backend, tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]
