"""A posting batch delivered to a real SFTP server (asyncssh's, on 127.0.0.1) by
``BatchDeliveryWorkflow``: every file arrives with its bytes under its final name, a half file a
crashed attempt left is replaced and nothing else stays behind, delivering again sends nothing
twice, and a server that does not show the pinned host key gets nothing and the failure is recorded
on the batch for finance."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncssh
import pytest
import pytest_asyncio
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from store import accounting as A
from store import receivables as R
from tests.workflows.conftest import TEST_SERVER
from tests.workflows.seed import seed_tenant
from workflows.accounting.types import DeliverBatchInput, DeliveryResult, delivery_workflow_id
from workflows.accounting.workflows import BatchDeliveryWorkflow
from workflows.billing.worker import build_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own: after these deliveries (retries with backoff)
    the shared one stopped answering the next module's sleeps and queries in time."""
    e = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    try:
        yield e
    finally:
        await e.shutdown()

PASSWORD = "s3cret-erp"


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "erp" and password == PASSWORD


@pytest_asyncio.fixture(loop_scope="session")
async def sftp(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    root = tmp_path / "sftp-root"
    (root / "inbox").mkdir(parents=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[key], server_factory=_Server,
                                   sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)))
    port = server.sockets[0].getsockname()[1]
    try:
        yield {"root": root, "port": port, "host_key": key.export_public_key().decode().strip()}
    finally:
        server.close()
        await server.wait_closed()


def _batch(engine: Engine, tenant: str) -> dict[str, Any]:
    s = seed_tenant(engine, tenant, 1)
    acc = s.account_ids[0]
    with engine.begin() as conn:
        R.open_invoice_item(conn, tenant, SimpleNamespace(
            id="inv_sftp", kind="invoice", number="INV-000001", customer_id=s.customer_of[acc], account_id=acc,
            currency="EUR", gross_total=D("11.90"), issue_date=date(2026, 12, 1), due_date=date(2026, 12, 15),
            corrects=[], tax_groups=[{"rate": "19", "net": "10.00", "tax": "1.90"}]))
        return A.create_batch(conn, tenant, "2026-12", "fin")


async def test_a_batch_arrives_once_and_whole(env: WorkflowEnvironment, engine: Engine, task_queue: str,
                                              sftp: dict[str, Any]) -> None:
    batch = _batch(engine, "sftp1")
    with engine.begin() as conn:
        A.set_sftp_target(conn, "sftp1", A.SftpTarget("127.0.0.1", sftp["port"], "erp", PASSWORD, "", "/inbox",
                                                      sftp["host_key"]), "admin")
        files = A.batch_files(conn, "sftp1", batch["id"])
    inbox = sftp["root"] / "inbox"
    # what a crashed attempt leaves: half a file under the temporary name
    datev = next(f for f in files if f.format == "datev")
    (inbox / f".{datev.filename}.part").write_bytes(datev.content[:100])
    async with build_worker(env.client, engine, task_queue):
        res = await env.client.execute_workflow(
            BatchDeliveryWorkflow.run, DeliverBatchInput("sftp1", batch["id"]),
            id=delivery_workflow_id("sftp1", batch["id"]), task_queue=task_queue, result_type=DeliveryResult)
        assert res.status == "delivered", res
        assert sorted(p.name for p in inbox.iterdir()) == sorted(f.filename for f in files)
        for f in files:
            assert hashlib.sha256((inbox / f.filename).read_bytes()).hexdigest() == f.sha256
        # delivered again (a second workflow for the same batch): nothing new, nothing twice
        stamp = {p.name: p.stat().st_mtime_ns for p in inbox.iterdir()}
        again = await env.client.execute_workflow(
            BatchDeliveryWorkflow.run, DeliverBatchInput("sftp1", batch["id"]),
            id=delivery_workflow_id("sftp1", batch["id"]) + ":again", task_queue=task_queue,
            result_type=DeliveryResult)
        assert again.status == "delivered" and {p.name: p.stat().st_mtime_ns for p in inbox.iterdir()} == stamp
    with engine.connect() as conn:
        d = A.delivery(conn, "sftp1", batch["id"])
    assert d is not None and d["status"] == "delivered" and d["target"] == f"erp@127.0.0.1:{sftp['port']}/inbox"
    assert {f["sha256"] for f in d["files"]} == {f.sha256 for f in files}


async def test_a_server_without_the_pinned_host_key_gets_nothing(env: WorkflowEnvironment, engine: Engine,
                                                                  task_queue: str, sftp: dict[str, Any]) -> None:
    batch = _batch(engine, "sftp2")
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    with engine.begin() as conn:
        A.set_sftp_target(conn, "sftp2", A.SftpTarget("127.0.0.1", sftp["port"], "erp", PASSWORD, "", "/inbox",
                                                      other), "admin")
    async with build_worker(env.client, engine, task_queue):
        res = await env.client.execute_workflow(
            BatchDeliveryWorkflow.run, DeliverBatchInput("sftp2", batch["id"], max_attempts=3),
            id=delivery_workflow_id("sftp2", batch["id"]), task_queue=task_queue, result_type=DeliveryResult)
    assert res.status == "failed" and "pinned host key" in res.error
    assert list((sftp["root"] / "inbox").iterdir()) == []
    with engine.connect() as conn:
        d = A.delivery(conn, "sftp2", batch["id"])
    assert d is not None and d["status"] == "failed" and "pinned host key" in d["error"]


async def test_a_lasting_failure_is_retried_then_recorded(env: WorkflowEnvironment, engine: Engine,
                                                          task_queue: str, sftp: dict[str, Any]) -> None:
    batch = _batch(engine, "sftp3")
    with engine.begin() as conn:  # a wrong password: refused on every attempt
        A.set_sftp_target(conn, "sftp3", A.SftpTarget("127.0.0.1", sftp["port"], "erp", "wrong", "", "/inbox",
                                                      sftp["host_key"]), "admin")
    async with build_worker(env.client, engine, task_queue):
        handle = await env.client.start_workflow(
            BatchDeliveryWorkflow.run, DeliverBatchInput("sftp3", batch["id"], max_attempts=3),
            id=delivery_workflow_id("sftp3", batch["id"]), task_queue=task_queue)
        res = await handle.result()
        attempts = [e for e in [ev async for ev in handle.fetch_history_events()]
                    if e.HasField("activity_task_started_event_attributes")]
    assert res.status == "failed" and res.error
    assert attempts and max(e.activity_task_started_event_attributes.attempt for e in attempts) == 3
    with engine.connect() as conn:
        d = A.delivery(conn, "sftp3", batch["id"])
    assert d is not None and d["status"] == "failed"
