"""Billing workflow fixtures: one time-skipping Temporal test server per module, a fresh
task queue (and a fresh database) per test, a worker running the real activities."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from store.db import make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]
# the checkout's venv, else the venv running the tests (a git worktree shares the main checkout's)
_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin" / "temporal-test-server").exists() \
    else Path(sys.executable).parent
TEST_SERVER = str(_BIN / "temporal-test-server")
DEV_SERVER = str(_BIN / "temporal")
PG_URL = os.environ.get("EVBILL_TEST_POSTGRES_URL", "").strip()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server per test module. One server for the whole session let a module
    that left activities in flight (deliveries retrying, workers gone mid-activity) stop the server
    skipping time for every module after it: their sleeps and queries timed out ("Timeout expired")
    in whole-suite runs only. Starting a server costs about a second."""
    e = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    try:
        yield e
    finally:
        await e.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def dev() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the time-skipping test server has no schedules)."""
    e = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    try:
        yield e
    finally:
        await e.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"billing-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'evbill.db'}")
    migrate(eng)
    yield eng
    eng.dispose()
