"""Storage fixtures: every test that takes ``engine`` runs on SQLite and, when
``EVBILL_TEST_POSTGRES_URL`` is set, on PostgreSQL in a database of its own, copied from a migrated
template (``tests.pgschema.pg_database``; a test of the migrations themselves gets an empty schema
of its own), dropped afterwards, so parallel runs never see each other's tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine

from store.db import make_engine, migrate
from tests.pgschema import PG_URL, pg_database, pg_schema

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def fresh_engine(backend: str, tmp_path: Path, *, migrated: bool = True) -> tuple[Engine, object]:
    """Returns (engine, cleanup)."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'evbill.db'}")
        if migrated:
            migrate(engine)
        return engine, engine.dispose
    stack = ExitStack()
    if migrated:
        engine = make_engine(stack.enter_context(pg_database()))
    else:
        _admin, schema = stack.enter_context(pg_schema())
        engine = make_engine(PG_URL, schema=schema)

    def cleanup() -> None:
        engine.dispose()
        stack.close()

    return engine, cleanup


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(backend, tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]
