"""The posting batch schedule: ``BatchSweepWorkflow`` cuts a daily tenant's past days and delivers
each batch to a real SFTP server (asyncssh's, on 127.0.0.1) through ``BatchDeliveryWorkflow``; a
second round starts nothing; a delivery that finally fails becomes a finance task that closes once
the batch is delivered. The Schedule itself: tests/workflows/test_dunning_schedule.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from store import accounting as A
from store import finance as F
from tests.stand_ins import open_stand_in
from tests.workflows.conftest import TEST_SERVER
from tests.workflows.seed import seed_tenant
from tests.workflows.test_batch_delivery import PASSWORD, sftp  # noqa: F401 - the SFTP server fixture
from workflows.accounting.types import BatchSweepInput, DeliveryResult, delivery_workflow_id
from workflows.accounting.workflows import BatchSweepWorkflow
from workflows.billing.worker import build_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own: after these rounds the shared one stopped
    skipping time for the tests that followed (their sleeps timed out in a whole-suite run)."""
    e = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    try:
        yield e
    finally:
        await e.shutdown()


def _tenant(engine: Engine, tenant: str, port: int, host_key: str, password: str) -> None:
    s = seed_tenant(engine, tenant, 1)
    acc = s.account_ids[0]
    for n, day in enumerate([date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)], 1):
        with engine.begin() as conn:
            open_stand_in(conn, tenant, invoice_id=f"inv_{tenant}_{n}", number=f"INV-{tenant}-{n}",
                          customer_id=s.customer_of[acc], account_id=acc, gross="11.90", issued=day, due=day)
    with engine.begin() as conn:
        A.set_batch_cadence(conn, tenant, "daily", "fin")
        A.set_sftp_target(conn, tenant, A.SftpTarget("127.0.0.1", port, "erp", password, "", "/inbox", host_key),
                          "admin")


async def _sweep(env: WorkflowEnvironment, task_queue: str, at: str, attempts: int = 8) -> list[str]:
    started: list[str] = await env.client.execute_workflow(
        BatchSweepWorkflow.run, BatchSweepInput(at, task_queue, attempts), id=f"sweep-{at}-{task_queue}",
        task_queue=task_queue, result_type=list[str])
    return started


async def test_a_round_cuts_and_delivers_past_days(env: WorkflowEnvironment, engine: Engine, task_queue: str,
                                                   sftp: dict[str, Any]) -> None:  # noqa: F811
    _tenant(engine, "sched1", sftp["port"], sftp["host_key"], PASSWORD)
    async with build_worker(env.client, engine, task_queue):
        # 10:00 UTC on the 3rd: the 1st and the 2nd are past, the 3rd is today
        started = await _sweep(env, task_queue, "2026-12-03T10:00:00+00:00")
        with engine.connect() as conn:
            batches = A.batches(conn, "sched1")
        assert [b["period"] for b in batches] == ["2026-12-01", "2026-12-02"]
        assert started == [b["id"] for b in batches]
        for b in batches:
            res = await env.client.get_workflow_handle(delivery_workflow_id("sched1", b["id"]),
                                                       result_type=DeliveryResult).result()
            assert res.status == "delivered", res
        # the same round again: nothing cut, nothing started
        assert await _sweep(env, task_queue, "2026-12-03T11:00:00+00:00") == []
    names = {p.name for p in (sftp["root"] / "inbox").iterdir()}
    assert {f["filename"] for b in batches for f in b["files"]} == names


async def test_a_failed_delivery_becomes_a_finance_task(env: WorkflowEnvironment, engine: Engine, task_queue: str,
                                                        sftp: dict[str, Any]) -> None:  # noqa: F811
    _tenant(engine, "sched2", sftp["port"], sftp["host_key"], "wrong")
    async with build_worker(env.client, engine, task_queue):
        [bid] = await _sweep(env, task_queue, "2026-12-02T10:00:00+00:00", attempts=2)
        res = await env.client.get_workflow_handle(delivery_workflow_id("sched2", bid),
                                                   result_type=DeliveryResult).result()
        assert res.status == "failed"
        with engine.connect() as conn:
            [task] = F.finance_tasks(conn, "sched2", status="open", after_id=None, limit=10)
        assert (task.kind, task.subject_id, task.workflow_id) == ("batch_delivery", bid,
                                                                  delivery_workflow_id("sched2", bid))
        # the recorded failure keeps the round from trying again; fixed and delivered, the task closes
        with engine.begin() as conn:
            A.set_sftp_target(conn, "sched2", A.SftpTarget("127.0.0.1", sftp["port"], "erp", PASSWORD, "", "/inbox",
                                                           sftp["host_key"]), "admin")
        assert await _sweep(env, task_queue, "2026-12-02T11:00:00+00:00") == []
        from workflows.accounting.types import DeliverBatchInput
        from workflows.accounting.workflows import BatchDeliveryWorkflow

        again = await env.client.execute_workflow(
            BatchDeliveryWorkflow.run, DeliverBatchInput("sched2", bid), id=delivery_workflow_id("sched2", bid) + ":2",
            task_queue=task_queue, result_type=DeliveryResult)
        assert again.status == "delivered"
    with engine.connect() as conn:
        assert F.finance_tasks(conn, "sched2", status="open", after_id=None, limit=10) == []

