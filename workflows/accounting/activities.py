"""Batch delivery activities: the upload (retried by the workflow with backoff), the record of a
lasting failure for finance (on the batch, and as a finance task), and the schedule's round that
cuts the due batches."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from store import accounting as A
from workflows.accounting.types import (
    BatchSweepInput,
    DeliverBatchInput,
    DeliveryFailedInput,
    DeliveryResult,
    DueBatch,
)

__all__ = ["AccountingActivities"]


class AccountingActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[Any]:
        return [self.deliver, self.failed, self.cut_due]

    @activity.defn(name="accounting.deliver_batch")
    def deliver(self, inp: DeliverBatchInput) -> DeliveryResult:
        from workflows.accounting.sftp import HostKeyMismatch, upload

        with self.engine.connect() as conn:
            target = A.sftp_target(conn, inp.tenant_id)
            files = A.batch_files(conn, inp.tenant_id, inp.batch_id)
            done = A.delivery(conn, inp.tenant_id, inp.batch_id)
        if done is not None and done["status"] == "delivered":
            return DeliveryResult("delivered", done["target"], [f["name"] for f in done["files"]])
        if target is None:
            raise ApplicationError("the tenant has no SFTP target", type="sftp_target_missing", non_retryable=True)
        if not files:
            raise ApplicationError(f"posting batch {inp.batch_id} not found", type="batch_not_found",
                                   non_retryable=True)
        try:
            paths = asyncio.run(upload(host=target.host, port=target.port, username=target.username,
                                       password=target.password, private_key=target.private_key,
                                       directory=target.directory, host_key=target.host_key,
                                       files=[(f.filename, f.content) for f in files]))
        except HostKeyMismatch as exc:
            raise ApplicationError(str(exc), type="host_key_mismatch", non_retryable=True) from None
        # anything else (refused, reset, timeout, a full disk) is retried by the workflow
        with self.engine.begin() as conn:
            A.record_delivery(conn, inp.tenant_id, inp.batch_id, "delivered", target.where,
                              [{"name": p, "sha256": f.sha256} for p, f in zip(paths, files, strict=True)])
        return DeliveryResult("delivered", target.where, paths)

    @activity.defn(name="accounting.delivery_failed")
    def failed(self, inp: DeliveryFailedInput) -> None:
        with self.engine.begin() as conn:
            target = A.sftp_target(conn, inp.tenant_id)
            A.record_delivery(conn, inp.tenant_id, inp.batch_id, "failed", target.where if target else "", [],
                              inp.error)
            # finance sees it in its task list (GET /billing/tasks, kind batch_delivery)
            A.open_delivery_task(conn, inp.tenant_id, inp.batch_id, activity.info().workflow_id or "", inp.error)

    @activity.defn(name="accounting.cut_due_batches")
    def cut_due(self, inp: BatchSweepInput) -> list[DueBatch]:
        from datetime import datetime

        with self.engine.begin() as conn:
            due = A.cut_due_batches(conn, datetime.fromisoformat(inp.at))
        return [DueBatch(t, b) for t, b in due]
