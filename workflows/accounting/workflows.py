"""``BatchDeliveryWorkflow``: one posting batch to the tenant's ERP over SFTP.

    deliver (retried with backoff up to max_attempts) ── delivered
        └─ still failing, or refused for good (no target, the host key is not the pinned one)
           ── the failure recorded on the batch for finance ── failed

Every database and network touch is an activity called by name; the upload is idempotent (files
under a temporary name, renamed when complete; a delivered batch is not sent again)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.accounting.types import DeliverBatchInput, DeliveryFailedInput, DeliveryResult

__all__ = ["BatchDeliveryWorkflow"]

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
