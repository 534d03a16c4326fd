"""The dunning worker SIGKILLed mid-stage and restarted: every case reaches stage 1 exactly once,
with exactly one fee item and one letter, whatever the kill interrupted (a stage committed and its
letter not yet rendered, a letter rendered and not yet archived, an activity not yet reported).

Real processes: a Temporal dev server (``start_local``), the billing worker as a process of its own
(``python -m workflows.billing.worker``), the sweep starting the cases as ``evbill serve``'s
schedule would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from store import dunning as DN
from store import receivables as R
from store.db import make_engine, migrate
from tests.workflows.conftest import DEV_SERVER, ROOT
from tests.workflows.seed import RULESET, seed_tenant
from workflows.dunning.types import SweepInput
from workflows.dunning.workflows import DunningSweepWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")
N = 24
POLICY = """
dunning standard {
  stage 1 after 7 days fee 2.50
  stage 2 after 14 days fee 5.00
}
"""


def _worker(address: str, tq: str, db: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "workflows.billing.worker", "--address", address, "--task-queue",
                             tq, "--database-url", f"sqlite:///{db}", "--threads", "4"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _count(engine: object, table: object, tenant: str) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(table).where(
            table.c.tenant_id == tenant)).scalar_one())  # type: ignore[attr-defined]


async def test_sigkill_at_stage_boundaries(tmp_path: Path) -> None:
    db = tmp_path / "evbill.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    tenant = f"crash{uuid.uuid4().hex[:6]}"
    s = seed_tenant(engine, tenant, N, ruleset=RULESET + POLICY)
    today = datetime.now(UTC).date()
    with engine.begin() as conn:
        for n, acc in enumerate(s.account_ids):
            R.open_invoice_item(conn, tenant, SimpleNamespace(
                id=f"inv_{n}", kind="invoice", number=f"INV-{n:06d}", customer_id=s.customer_of[acc], account_id=acc,
                currency="EUR", gross_total=D("30.00") + n, issue_date=today - timedelta(days=30),
                due_date=today - timedelta(days=10), corrects=[]))
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    address = env.client.service_client.config.target_host
    tq = f"dun-crash-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "worker.log"
    w = _worker(address, tq, db, log)
    try:
        # pages of 10, read one after another by one sweep activity (it continues as new after two
        # minutes of pages)
        await env.client.start_workflow(DunningSweepWorkflow.run, SweepInput(today.isoformat(), tenant, page=10),
                                        id=f"sweep-{uuid.uuid4().hex}", task_queue=tq)
        deadline = time.monotonic() + 420
        # kill it at a stage boundary: a few letters archived and a stage committed whose letter is
        # still being rendered (its activity not reported to Temporal yet)
        while not (_count(engine, DN.dunning_letter, tenant) >= 3
                   and _count(engine, DN.dunning_stage, tenant) > _count(engine, DN.dunning_letter, tenant)):
            assert time.monotonic() < deadline, (_count(engine, DN.dunning_stage, tenant),
                                                 _count(engine, DN.dunning_letter, tenant), log.read_text()[-3000:])
            await asyncio.sleep(0.02)
        os.kill(w.pid, signal.SIGKILL)
        w.wait()
        in_flight = _count(engine, DN.dunning_stage, tenant) - _count(engine, DN.dunning_letter, tenant)
        print(f"killed with {_count(engine, DN.dunning_letter, tenant)} letters, {in_flight} stages without one")
        w = _worker(address, tq, db, log)
        while _count(engine, DN.dunning_letter, tenant) < N:
            assert time.monotonic() < deadline, (_count(engine, DN.dunning_stage, tenant),
                                                 _count(engine, DN.dunning_letter, tenant), log.read_text()[-3000:])
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything a retry would still add shows now
        with engine.connect() as conn:
            cases = DN.cases(conn, tenant, limit=1000)
            assert len(cases) == N and len({c.customer_id for c in cases}) == N
            for c in cases:
                assert [(x["stage"], x["status"]) for x in DN.stages_of(conn, tenant, c.id)] == [(1, "reached")]
                assert [lt["stage"] for lt in DN.letters_of(conn, tenant, c.id)] == [1]
            fees = [i for i in R.item_states(conn, tenant) if i.kind == "dunning_fee"]
        assert len(fees) == N and {f.amount for f in fees} == {D("2.50")}
        assert _count(engine, DN.dunning_stage, tenant) == N and _count(engine, DN.dunning_letter, tenant) == N
    finally:
        w.kill()
        w.wait()
        await env.shutdown()
        engine.dispose()
