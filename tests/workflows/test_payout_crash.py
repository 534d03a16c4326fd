"""A payout run of 500 refunds survives its worker being SIGKILLed in the middle of gathering and
again in the middle of submitting: afterwards every payable is in exactly one item of one file, the
file holds all 500 transfers once, and nothing is left half done.

Real components: the Temporal dev server (``start_local``) and the billing worker as a process of
its own on a SQLite file; a killed activity is retried after its start-to-close timeout (60 s), so
this test takes about two minutes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from runtime.bank.pain001 import validate_pain001
from store import collections as C
from store import payables as P
from store import receivables as R
from store.db import make_engine, migrate
from tests.workflows.conftest import DEV_SERVER, ROOT
from tests.workflows.seed import seed_tenant
from workflows.payouts.types import PayoutDecision, PayoutRunInput, PayoutRunResult
from workflows.payouts.workflows import PayoutRunWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")
N = 500
ON = date(2026, 12, 2)


def worker(address: str, tq: str, db_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, EVBILL_RENDER_DOCUMENTS="0")
    return subprocess.Popen([sys.executable, "-m", "workflows.billing.worker", "--address", address, "--task-queue",
                             tq, "--database-url", f"sqlite:///{db_path}", "--threads", "4"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env)


def seed(engine: Engine, tenant: str) -> str:
    s = seed_tenant(engine, tenant, N)
    cred = f"cra_{tenant}"
    with engine.begin() as conn:
        conn.execute(C.creditor_account.insert().values(
            id=cred, tenant_id=tenant, name="Ladestrom GmbH", iban="DE02120300000000202051", bic="",
            creditor_id="DE98ZZZ09999999999", currency="EUR", lead_time_days=5, pain_version="pain.008.001.08",
            pass_return_charges=True, created_at=datetime(2026, 12, 1, tzinfo=UTC)))
        for i, acc in enumerate(s.account_ids):
            amount = D(i % 50) + D("0.01") * (i % 100) + D("1.00")
            R.book_payment(conn, tenant, key=f"pay-{i}", customer_id=s.customer_of[acc], account_id=acc,
                           amount=amount, currency="EUR", booked_on=ON, reference="overpaid")
            P.request_refund(conn, tenant, key=f"refund-{i}", account_id=acc, currency="EUR", amount=None,
                             credit_note=None, iban="DE89370400440532013000", bic="", payee_name=f"Kunde {i}",
                             remittance=f"Refund {i}", on=ON, requested_by="usr_requester")
    return cred


async def kill_during(handle: WorkflowHandle[PayoutRunWorkflow, PayoutRunResult], activity: str,
                      w: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """SIGKILL the worker once ``activity`` is running (started, not finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = await handle.describe()
        if any(pa.activity_type.name == activity and pa.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
               for pa in desc.raw_description.pending_activities):
            os.kill(w.pid, signal.SIGKILL)
            w.wait(10)
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{activity} never started")


async def test_worker_sigkilled_while_gathering_and_while_submitting(tmp_path: Path) -> None:
    path = tmp_path / "evbill.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    tenant = "payout_kill"
    cred = seed(engine, tenant)
    with engine.connect() as conn:
        expected_total = sum((p.amount for p in P.list_payables(conn, tenant, limit=N + 1)), D(0))
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=DEV_SERVER, dev_server_log_level="error")
    tq = f"payout-kill-{uuid.uuid4().hex[:6]}"
    address = env.client.service_client.config.target_host
    log = tmp_path / "worker.log"
    w = worker(address, tq, path, log)
    try:
        handle = await env.client.start_workflow(
            PayoutRunWorkflow.run, PayoutRunInput(tenant, cred, ON.isoformat(), "usr_starter"), id=f"payout-{tq}",
            task_queue=tq, result_type=PayoutRunResult)
        await kill_during(handle, "payouts.gather", w)
        with engine.connect() as conn:
            runs_at_kill = conn.execute(select(func.count()).select_from(P.payout_run)).scalar_one()
        w = worker(address, tq, path, log)
        for _ in range(1800):
            st = await handle.query(PayoutRunWorkflow.status)
            if st.state == "awaiting_approval":
                break
            await asyncio.sleep(0.1)
        assert st.state == "awaiting_approval", st
        approve = asyncio.create_task(handle.execute_update(PayoutRunWorkflow.approve,
                                                            PayoutDecision("usr_approver", "approver", "ok")))
        await kill_during(handle, "payouts.submit", w)
        w = worker(address, tq, path, log)
        assert await approve == "approved"
        res = await handle.result()
        await asyncio.sleep(1)  # a late retry of a killed attempt must not add anything
    finally:
        w.terminate()
        w.wait(30)
        await env.shutdown()
    assert runs_at_kill in (0, 1)  # killed inside the gathering transaction (0) or just after its commit
    assert (res.status, res.items, D(res.total)) == ("submitted", N, expected_total)
    with engine.connect() as conn:
        items = conn.execute(select(P.payout_item.c.payable_id, P.payout_item.c.status)).all()
        files = conn.execute(select(P.payout_file.c.content)).all()
        statuses = {p.status for p in P.list_payables(conn, tenant, limit=N + 1)}
        runs = conn.execute(select(P.payout_run.c.status)).all()
    assert len(items) == N and len({i.payable_id for i in items}) == N and {i.status for i in items} == {"submitted"}
    assert statuses == {"submitted"} and [r.status for r in runs] == ["submitted"]
    assert len(files) == 1
    pain = bytes(files[0].content)
    validate_pain001(pain)
    assert pain.count(b"<CdtTrfTxInf>") == N and f"<CtrlSum>{expected_total:.2f}</CtrlSum>".encode() in pain
    engine.dispose()
