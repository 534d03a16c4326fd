"""A collection run of 500 items survives its worker being SIGKILLed: a real worker process
(``python -m workflows.billing.worker``) against a real Temporal dev server, killed once while
gathering and once while submitting, restarted each time. Afterwards every item is in exactly
one file, once, and a later run finds nothing left to collect.

Where the kill lands is made certain, not left to timing:

- before the commit: the test holds the database's write lock, so the activity waits inside
  its transaction; the worker is killed there and the lock released (the retry does the work);
- after the commit, before Temporal hears of it: the test holds the lock until the activity has
  started, then stops the Temporal server (SIGSTOP), releases the lock, waits until the
  activity's transaction is visible in the database, kills the worker and lets the server go on
  (SIGCONT). The server never learns that the attempt finished; the retry on the new worker
  must find the run's work done and not do it again.

Both orders (gather killed before its commit and submit after, and the other way round) run on
SQLite, and on PostgreSQL when ``EVBILL_TEST_POSTGRES_URL`` is set. The activities heartbeat, so
a dead worker's attempt is retried after the workflow's heartbeat timeout (10 s), not after the
start-to-close timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Engine, func, select, text
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from runtime.bank.pain008 import validate_pain008
from store import collections as C
from store.billing import driver_insert
from store.db import make_engine, migrate
from store.types import utcnow
from tests.pgschema import PG_URL, pg_schema
from tests.workflows.conftest import ROOT
from tests.workflows.seed import seed_open_items, seed_tenant
from workflows.billing.embedded import free_port, start_dev_server
from workflows.collections.types import (
    CollectionRunInput,
    CollectionRunResult,
    RunDecision,
    RunStatus,
    collection_workflow_id,
)
from workflows.collections.workflows import CollectionRunWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

N_ITEMS = 500
N_ACCOUNTS = 250  # two items each
AS_OF = "2026-12-10"
DUE = date(2026, 12, 12)
IBAN = "DE89370400440532013000"


def _iban(n: int) -> str:
    bban = f"37040044{n:010d}"
    check = 98 - int(bban + "131400") % 97  # D=13, E=14
    return f"DE{check:02d}{bban}"


def seed(engine: Engine, tenant: str) -> list[str]:
    """A tenant with a creditor account, 250 accounts with an active mandate (a first collection
    for every fifth) and 500 open items due within the lead time; returns the item ids."""
    s = seed_tenant(engine, tenant, N_ACCOUNTS)
    items = seed_open_items(engine, s, N_ITEMS, due=DUE, step=Decimal("0.01"))
    now = utcnow()
    with engine.begin() as conn:
        driver_insert(conn, C.creditor_account, (
            "id", "tenant_id", "name", "iban", "bic", "creditor_id", "currency", "lead_time_days", "pain_version",
            "pass_return_charges", "created_at"),
            [(f"cra_{tenant}", tenant, "Ladestrom GmbH", IBAN, "COBADEFFXXX", "DE98ZZZ09999999999", "EUR", 5,
              "pain.008.001.08", True, now)])
        driver_insert(conn, C.mandate, (
            "id", "tenant_id", "creditor_account_id", "account_id", "reference", "signed_on", "debtor_name", "iban",
            "bic", "scheme", "status", "sequence", "original_reference", "original_iban", "last_collection_on",
            "attention_reason", "source", "created_at", "updated_at"),
            [(f"mdt_{tenant}_{k:04d}", tenant, f"cra_{tenant}", acc, f"M-{k:04d}", date(2026, 1, 5), f"Kundin {k}",
              _iban(k), "", "CORE", "active", "FRST" if k % 5 == 0 else "RCUR", "", "", None, "", "api", now, now)
             for k, acc in enumerate(s.account_ids)])
    return [it.id for it in items]


@dataclass
class Db:
    """The database under test: the worker's URL and schema, and how the test takes its write lock."""

    kind: str
    engine: Engine
    url: str
    schema: str | None
    path: Path | None

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold what the activities need to write (their transactions wait inside, never fail)."""
        if self.path is not None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("BEGIN IMMEDIATE")  # SQLite's one writer: the worker's first write waits (busy timeout 10 s)
            try:
                yield
            finally:
                con.execute("ROLLBACK")
                con.close()
        else:
            with self.engine.connect() as conn:
                # gather's first write is its run, submit's its file: both wait for this lock
                conn.execute(text("LOCK TABLE collection_run, collection_file IN EXCLUSIVE MODE"))
                try:
                    yield
                finally:
                    conn.rollback()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("collection-crash") / "evbill.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        migrate(engine)
        yield Db("sqlite", engine, url, None, path)
        engine.dispose()
        return
    if not PG_URL:
        pytest.skip("EVBILL_TEST_POSTGRES_URL is not set")
    with pg_schema("crash") as (_admin, schema):
        engine = make_engine(PG_URL, schema=schema, pool_size=2, max_overflow=2)
        try:
            migrate(engine)
            yield Db("postgresql", engine, PG_URL, schema, None)
        finally:
            engine.dispose()


class Rig:
    """A Temporal dev server process and a worker process the test can kill and restart."""

    def __init__(self, db: Db, log: Path) -> None:
        self.db, self.log = db, log
        self.port = free_port()
        self.server = start_dev_server(self.port, log.with_name(f"temporal-{self.port}.db"))
        self.address = f"127.0.0.1:{self.port}"
        self.task_queue = f"collection-crash-{uuid.uuid4().hex[:6]}"
        self.worker = self.start_worker()

    def start_worker(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "workflows.billing.worker", "--address", self.address, "--task-queue",
               self.task_queue, "--database-url", self.db.url, "--threads", "4"]
        if self.db.schema:
            cmd += ["--schema", self.db.schema]
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
                                env=dict(os.environ, EVBILL_RENDER_DOCUMENTS="0"))

    def kill_worker(self) -> None:
        os.kill(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)

    def stop(self) -> None:
        for p in (self.worker, self.server):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.terminate()
                p.wait(30)


@pytest_asyncio.fixture(loop_scope="session")
async def rig(db: Db, tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(db, tmp_path / "worker.log")
    try:
        yield r
    finally:
        r.stop()


async def started(handle: WorkflowHandle[Any, Any], activity: str, timeout: float = 60) -> None:
    """Wait until the worker has started ``activity`` (the server's pending-activity state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = await handle.describe()
        for pa in desc.raw_description.pending_activities:
            if pa.activity_type.name == activity and pa.state == 2:  # PENDING_ACTIVITY_STATE_STARTED
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{activity} never started")


async def awaiting_approval(handle: WorkflowHandle[Any, Any], timeout: float = 180) -> RunStatus:
    """The run's state once it waits for approval (the gather retried on the new worker after the
    heartbeat timeout). A query can fail while the new worker is still starting (the dead
    worker's sticky queue, no poller yet): asked again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            st: RunStatus = await handle.query(CollectionRunWorkflow.status,
                                               rpc_timeout=timedelta(seconds=10))
            if st.state == "awaiting_approval":
                return st
        except (RPCError, WorkflowQueryFailedError):
            pass  # not answerable yet: the new worker is still starting
        if time.monotonic() > deadline:
            raise AssertionError("the run never came to wait for approval")
        await asyncio.sleep(0.2)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def run_status(db: Db, tenant: str, workflow_id: str) -> str | None:
    with db.engine.connect() as conn:
        return conn.execute(select(C.collection_run.c.status).where(
            C.collection_run.c.tenant_id == tenant, C.collection_run.c.workflow_id == workflow_id)).scalar()


async def crash(rig: Rig, handle: WorkflowHandle[Any, Any], activity: str, trigger: Callable[[], Awaitable[Any]],
                when: str, committed: Callable[[], bool]) -> None:
    """Kill the worker in ``activity`` (which ``trigger`` sets going) before or after its commit,
    then start a new worker."""
    with rig.db.write_lock():
        await trigger()
        await started(handle, activity)
        await asyncio.sleep(0.5)  # the attempt is inside its transaction, waiting for the lock
        assert not committed()
        if when == "before_commit":
            rig.kill_worker()
        else:
            os.kill(rig.server.pid, signal.SIGSTOP)  # Temporal hears nothing from here on
    if when == "after_commit":
        try:
            wait_until(committed, f"{activity}'s transaction committed")
            rig.kill_worker()  # its result never reaches the server
        finally:
            os.kill(rig.server.pid, signal.SIGCONT)
    assert committed() == (when == "after_commit")
    rig.worker = rig.start_worker()


def outcome(db: Db, tenant: str, run_id: str) -> tuple[Any, bytes, list[Any]]:
    with db.engine.connect() as conn:
        run = conn.execute(select(C.collection_run).where(C.collection_run.c.id == run_id)).one()
        files = conn.execute(select(C.collection_file).where(C.collection_file.c.tenant_id == tenant)).all()
        rows = conn.execute(select(C.collection_item).where(C.collection_item.c.tenant_id == tenant)).all()
        runs = conn.execute(select(func.count()).select_from(C.collection_run)
                            .where(C.collection_run.c.tenant_id == tenant)).scalar_one()
    assert runs == 1  # the retries found the run; none made a second one
    assert len(files) == 1 and files[0].run_id == run_id and run.file_id == files[0].id
    content = bytes(files[0].content)
    assert hashlib.sha256(content).hexdigest() == files[0].sha256 and len(content) == files[0].size
    return run, content, rows


@pytest.mark.parametrize("gather_kill,submit_kill", [("before_commit", "after_commit"),
                                                     ("after_commit", "before_commit")])
async def test_worker_sigkilled_in_a_collection_run_of_500_items(db: Db, rig: Rig, gather_kill: str,
                                                                 submit_kill: str) -> None:
    tenant = f"crash_{gather_kill[:1]}{submit_kill[:1]}_{uuid.uuid4().hex[:4]}"
    items = seed(db.engine, tenant)
    client = await Client.connect(rig.address)
    cred = f"cra_{tenant}"
    wid = collection_workflow_id(tenant, cred, "crash")
    handle: WorkflowHandle[Any, CollectionRunResult] = client.get_workflow_handle(wid,
                                                                                  result_type=CollectionRunResult)

    async def start() -> None:
        await client.start_workflow(CollectionRunWorkflow.run, CollectionRunInput(tenant, cred, AS_OF, "usr_op"),
                                    id=wid, task_queue=rig.task_queue)

    await crash(rig, handle, "collections.gather", start, gather_kill,
                lambda: run_status(db, tenant, wid) == "awaiting_approval")
    st = await awaiting_approval(handle)
    with db.engine.connect() as conn:
        proposed = C.run_items(conn, st.run_id, ("proposed",))
    assert sorted(r.item_id for r in proposed) == sorted(items)  # each item proposed once

    async def approve() -> None:
        assert await handle.execute_update(CollectionRunWorkflow.approve, RunDecision("usr_ap", "approver")) == \
            "approved"

    def submitted() -> bool:
        return run_status(db, tenant, wid) == "submitted"

    await crash(rig, handle, "collections.submit", approve, submit_kill, submitted)
    res = await asyncio.wait_for(handle.result(), 180)
    assert (res.status, res.items, res.run_id) == ("submitted", N_ITEMS, st.run_id)

    run, content, rows = outcome(db, tenant, st.run_id)
    assert (run.status, run.items) == ("submitted", N_ITEMS) and res.sha256 == hashlib.sha256(content).hexdigest()
    # every item in exactly one collection row, submitted, and in the one file exactly once
    assert sorted(r.item_id for r in rows) == sorted(items) and {r.status for r in rows} == {"submitted"}
    validate_pain008(content, "pain.008.001.08")
    in_file = re.findall(rb"<EndToEndId>([^<]+)</EndToEndId>", content)
    assert sorted(in_file) == sorted(r.end_to_end_id.encode() for r in rows)
    assert len(set(in_file)) == N_ITEMS
    # each mandate moved on once (a first collection is recurrent next time; none was used twice)
    with db.engine.connect() as conn:
        seqs = {m.sequence for m in conn.execute(select(C.mandate).where(C.mandate.c.tenant_id == tenant))}
    assert seqs == {"RCUR"}
    assert content.count(b"<SeqTp>FRST</SeqTp>") == 1 and content.count(b"<SeqTp>RCUR</SeqTp>") == 1

    # a new run of the same creditor account finds nothing left to collect
    again = await client.execute_workflow(CollectionRunWorkflow.run,
                                          CollectionRunInput(tenant, cred, AS_OF, "usr_op"),
                                          id=collection_workflow_id(tenant, cred, "after"),
                                          task_queue=rig.task_queue, result_type=CollectionRunResult)
    assert (again.status, again.items) == ("empty", 0)
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(C.collection_item)
                            .where(C.collection_item.c.tenant_id == tenant)).scalar_one() == N_ITEMS
