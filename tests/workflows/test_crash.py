"""Month-end of 500 accounts survives crashes: the worker process SIGKILLed mid-run and restarted,
and the Temporal server process killed mid-run and restarted on its history file. Afterwards:
exactly one invoice per account, numbers gapless, totals identical to an uninterrupted run. Both
ways to run month-end: a ``BillingCycleWorkflow`` per account (``start_cycles``) and the batched
``BillingRunWorkflow`` (``start_run``), against the same reference.

Real servers: the uninterrupted run and the worker crash use ``start_local`` with the venv's
``temporal`` binary; the server crash runs the same binary as a process of its own (the test must
be able to kill it and start it again on the same ``--db-filename``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from store import accounting as A
from store import billing as B
from store import receivables as R
from store.db import make_engine, migrate
from tests.pgschema import PG_URL, pg_schema
from tests.store.conftest import BACKENDS
from tests.workflows.conftest import DEV_SERVER, ROOT
from tests.workflows.seed import RULESET, insert_sessions, seed_tenant
from workflows.billing.worker import start_cycles, start_run

pytestmark = pytest.mark.asyncio(loop_scope="session")
N = 500
CUT_OFF = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
# no account reaches the total threshold: nothing waits for a person
NO_HOLDS = RULESET.replace("hold when total > 1000.00", "hold when total > 1000000.00")


def seed(engine: Engine, tenant: str) -> None:
    s = seed_tenant(engine, tenant, N, ruleset=NO_HOLDS)
    start = datetime(2026, 11, 1, 8, tzinfo=UTC)
    insert_sessions(engine, s, [
        (acc, f"{tenant}_{i}_{j}", start + timedelta(days=j * 7, minutes=i), D(i % 37) + D(j) / 3 + D("0.125"))
        for i, acc in enumerate(s.account_ids) for j in range(4)])


def worker(address: str, tq: str, db: tuple[Engine, Path, list[str]], log: Path) -> subprocess.Popen[bytes]:
    # the billing run only: document rendering (issue 6) has its own tests
    env = dict(os.environ, EVBILL_RENDER_DOCUMENTS="0")
    return subprocess.Popen([sys.executable, "-m", "workflows.billing.worker", "--address", address, "--task-queue",
                             tq, *db[2], "--threads", "4"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env)


def finalized(engine: Engine, tenant: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(B.invoice).where(
            B.invoice.c.tenant_id == tenant, B.invoice.c.status == "finalized")).scalar_one())


async def wait_finalized(engine: Engine, tenant: str, at_least: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while finalized(engine, tenant) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {finalized(engine, tenant)} of {at_least} invoices finalized in time")
        await asyncio.sleep(0.2)


def totals(engine: Engine, tenant: str) -> dict[str, tuple[D, D, D, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(B.invoice.c.account_id, B.invoice.c.net_total, B.invoice.c.tax_total,
                                   B.invoice.c.gross_total, B.invoice.c.sessions)
                            .where(B.invoice.c.tenant_id == tenant)).all()
    out = {}
    for r in rows:
        key = r.account_id.rsplit("_", 1)[1]  # the account's index: the same data in every tenant
        assert key not in out, f"two invoices for account {r.account_id}"
        out[key] = (r.net_total, r.tax_total, r.gross_total, r.sessions)
    return out


def check(engine: Engine, tenant: str, reference: dict[str, tuple[D, D, D, int]]) -> None:
    got = totals(engine, tenant)
    assert len(got) == N  # exactly one invoice per account
    with engine.connect() as conn:
        nums = sorted(r[0] for r in conn.execute(select(B.invoice.c.number_seq).where(B.invoice.c.tenant_id == tenant)))
        billed = conn.execute(select(func.count()).select_from(B.billed_session)
                              .where(B.billed_session.c.tenant_id == tenant)).scalar_one()
    assert nums == list(range(1, N + 1))  # gapless, no duplicate
    assert billed == 4 * N  # every session billed once
    assert got == reference
    # each invoice's number is on its receivable item and event and its journal entry
    with engine.connect() as conn:
        numbers = dict(conn.execute(select(B.invoice.c.id, B.invoice.c.number).where(
            B.invoice.c.tenant_id == tenant)).all())
        items = dict(conn.execute(select(R.receivable_item.c.invoice_id, R.receivable_item.c.number).where(
            R.receivable_item.c.tenant_id == tenant)).all())
        events = {str(k).removeprefix("invoice:"): (ev_id, ref) for ev_id, k, ref in conn.execute(
            select(R.receivable_event.c.id, R.receivable_event.c.key, R.receivable_event.c.reference).where(
                R.receivable_event.c.tenant_id == tenant, R.receivable_event.c.kind == "invoice"))}
        journal = dict(conn.execute(select(A.journal_entry.c.source_id, A.journal_entry.c.document).where(
            A.journal_entry.c.tenant_id == tenant)).all())
    assert items == numbers
    assert {i: ref for i, (_e, ref) in events.items()} == numbers
    assert {i: journal.get(e) for i, (e, _ref) in events.items()} == numbers


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[tuple[Engine, Path, list[str]]]:
    """The database (SQLite, and PostgreSQL in a schema of its own when ``EVBILL_TEST_POSTGRES_URL``
    is set), the directory's file for logs and histories, and the workers' database arguments."""
    path = tmp_path_factory.mktemp("crash") / "evbill.db"
    with ExitStack() as stack:
        if request.param == "sqlite":
            engine, args = make_engine(f"sqlite:///{path}"), ["--database-url", f"sqlite:///{path}"]
        else:
            _admin, schema = stack.enter_context(pg_schema())
            engine, args = make_engine(PG_URL, schema=schema), ["--database-url", PG_URL, "--schema", schema]
        stack.callback(engine.dispose)
        migrate(engine)
        for t in ("ref", "kill_worker", "kill_server", "run_kill_worker", "run_kill_server"):
            seed(engine, t)
        yield engine, path, args


@pytest.fixture(scope="module")
def reference(db: tuple[Engine, Path, list[str]]) -> dict[str, tuple[D, D, D, int]]:
    engine, path, _args = db

    async def run() -> None:
        env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
        tq = f"ref-{uuid.uuid4().hex[:6]}"
        w = worker(env.client.service_client.config.target_host, tq, db, path.with_suffix(".ref.log"))
        try:
            await start_cycles(env.client, "ref", _ids(engine, "ref"), CUT_OFF, task_queue=tq)
            await wait_finalized(engine, "ref", N)
        finally:
            w.terminate()
            w.wait(30)
            await env.shutdown()

    asyncio.run(run())
    ref = totals(engine, "ref")
    assert len(ref) == N and all(v[3] == 4 for v in ref.values())
    return ref


def _ids(engine: Engine, tenant: str) -> list[str]:
    from store.models import BillingAccount

    t = BillingAccount.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(t.c.id).where(t.c.tenant_id == tenant).order_by(t.c.id))]


async def _month_end(client: Client, engine: Engine, tenant: str, tq: str, batched: bool) -> None:
    if batched:  # batches of 25: twenty batch activities, several in flight when the kill comes
        await start_run(client, tenant, CUT_OFF, task_queue=tq, batch_size=25)
    else:
        await start_cycles(client, tenant, _ids(engine, tenant), CUT_OFF, task_queue=tq)


@pytest.mark.parametrize("batched", [False, True], ids=["cycles", "run"])
async def test_worker_sigkilled_mid_run(db: tuple[Engine, Path, list[str]], reference: dict[str, Any],
                                       batched: bool) -> None:
    engine, path, _args = db
    tenant = "run_kill_worker" if batched else "kill_worker"
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    tq = f"kill-{uuid.uuid4().hex[:6]}"
    address = env.client.service_client.config.target_host
    log = path.with_suffix(f".{tenant}.log")
    w = worker(address, tq, db, log)
    try:
        await _month_end(env.client, engine, tenant, tq, batched)
        await wait_finalized(engine, tenant, N // 5)
        os.kill(w.pid, signal.SIGKILL)  # mid-run: activities in flight, some invoices numbered, most not
        w.wait(10)
        killed_at = finalized(engine, tenant)
        assert killed_at < N, "the run finished before the kill: nothing was tested"
        w = worker(address, tq, db, log)
        await wait_finalized(engine, tenant, N)
        await asyncio.sleep(1)  # late retries of killed attempts must not add anything
    finally:
        w.terminate()
        w.wait(30)
        await env.shutdown()
    check(engine, tenant, reference)


@pytest.mark.parametrize("batched", [False, True], ids=["cycles", "run"])
async def test_temporal_server_restarted_mid_run(db: tuple[Engine, Path, list[str]], reference: dict[str, Any],
                                                 batched: bool) -> None:
    from workflows.billing.embedded import free_port, start_dev_server

    engine, path, _args = db
    tenant = "run_kill_server" if batched else "kill_server"
    port = free_port()
    history = path.with_name(f"temporal-history-{tenant}.db")
    server = start_dev_server(port, history)
    address = f"127.0.0.1:{port}"
    tq = f"srv-{uuid.uuid4().hex[:6]}"
    log = path.with_suffix(f".{tenant}.log")
    w = worker(address, tq, db, log)
    try:
        client = await Client.connect(address)
        await _month_end(client, engine, tenant, tq, batched)
        await wait_finalized(engine, tenant, N // 5)
        server.kill()  # SIGKILL: no graceful shutdown of the history store
        server.wait(10)
        assert finalized(engine, tenant) < N, "the run finished before the restart: nothing was tested"
        await asyncio.sleep(2)
        server = start_dev_server(port, history)
        await wait_finalized(engine, tenant, N)
        await asyncio.sleep(1)
    finally:
        w.terminate()
        w.wait(30)
        server.terminate()
        server.wait(30)
    check(engine, tenant, reference)
