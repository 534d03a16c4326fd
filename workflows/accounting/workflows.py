"""``BatchDeliveryWorkflow``: one posting batch to the tenant's ERP over SFTP.

    deliver (retried with backoff up to max_attempts) ── delivered
        └─ still failing, or refused for good (no target, the host key is not the pinned one)
           ── the failure recorded on the batch for finance ── failed

Every database and network touch is an activity called by name; the upload is idempotent (files
under a temporary name, renamed when complete; a delivered batch is not sent again).

``BatchSweepWorkflow``: one round of the batch schedule (a Temporal Schedule, see
``workflows.accounting.schedules``): cut each scheduled tenant's due batches (daily or monthly),
then start a ``BatchDeliveryWorkflow`` for every batch of a tenant with an SFTP target that has no
delivery yet; a delivery already running is found by its id and left alone."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.accounting.types import (
        BatchSweepInput,
        DeliverBatchInput,
        DeliveryFailedInput,
        DeliveryResult,
        DueBatch,
        delivery_workflow_id,
    )

__all__ = ["BatchDeliveryWorkflow", "BatchSweepWorkflow"]

_SHORT = timedelta(seconds=120)


@workflow.defn
class BatchDeliveryWorkflow:
    @workflow.run
    async def run(self, inp: DeliverBatchInput) -> DeliveryResult:
        retry = RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
                            maximum_interval=timedelta(minutes=10), maximum_attempts=max(1, inp.max_attempts),
                            non_retryable_error_types=["sftp_target_missing", "batch_not_found", "host_key_mismatch"])
        try:
            res: DeliveryResult = await workflow.execute_activity(
                "accounting.deliver_batch", inp, result_type=DeliveryResult, start_to_close_timeout=_SHORT,
                retry_policy=retry)
            return res
        except ActivityError as exc:
            cause = exc.cause
            error = str(cause.message if cause is not None and hasattr(cause, "message") else exc)
            await workflow.execute_activity(
                "accounting.delivery_failed", DeliveryFailedInput(inp.tenant_id, inp.batch_id, error),
                start_to_close_timeout=_SHORT, retry_policy=RetryPolicy(maximum_attempts=20))
            return DeliveryResult("failed", error=error)


@workflow.defn
class BatchSweepWorkflow:
    @workflow.run
    async def run(self, inp: BatchSweepInput) -> list[str]:
        at = inp.at or workflow.now().isoformat()
        due: list[DueBatch] = await workflow.execute_activity(
            "accounting.cut_due_batches", BatchSweepInput(at, inp.task_queue, inp.max_attempts),
            result_type=list[DueBatch], start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=5))
        started = []
        for b in due:
            try:
                await workflow.start_child_workflow(
                    BatchDeliveryWorkflow.run, DeliverBatchInput(b.tenant_id, b.batch_id, inp.max_attempts),
                    id=delivery_workflow_id(b.tenant_id, b.batch_id),
                    task_queue=inp.task_queue or workflow.info().task_queue,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON)
                started.append(b.batch_id)
            except WorkflowAlreadyStartedError:
                pass  # its delivery runs already (or ran: then it recorded what became of it)
        return started
