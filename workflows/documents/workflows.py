"""E-mail delivery of issued documents, durably retried by Temporal.

``DocumentDeliveryWorkflow``: one queued delivery (the billing cycle starts one for each invoice it
hands over, as an abandoned child, so the cycle does not wait for the mail server). Its one
activity, ``documents.deliver``, sends through SMTP and records the outcome on the delivery row;
a failure the server may recover from is raised, so the retry policy below waits and tries again,
as many times as the row allows (``SmtpSettings.max_attempts``). The row keeps the truth: a
delivery already ``sent`` is never sent again, one claimed by a worker that died mid-send becomes
``unknown`` for a person to decide.

``DocumentDeliverySweepWorkflow``: what a Temporal Schedule starts every minute (``schedules.py``):
every due ``pending`` or ``failed`` delivery of every tenant is attempted once, whoever queued it
(a credit note, a re-send through the API, a cycle that finished before its child started, a worker
that was down), and deliveries stuck in ``sending`` become ``unknown``.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.documents.types import (
        DeliverDocumentInput,
        DeliveryOutcome,
        DeliverySweepInput,
        SweepResult,
    )

__all__ = ["DELIVERY_RETRY", "DocumentDeliverySweepWorkflow", "DocumentDeliveryWorkflow"]

# the waits of SmtpSettings.backoff (1 min, 5 min, 30 min, 2 h) as an exponential series: 1, 5,
# 25 min, 2 h; as many attempts as a delivery row allows (SmtpSettings.max_attempts)
DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(minutes=1), backoff_coefficient=5.0,
                             maximum_interval=timedelta(hours=2), maximum_attempts=5,
                             non_retryable_error_types=["delivery_not_found"])
# one SMTP exchange, each step bounded by SmtpSettings.timeout_s, plus reading the archive
_SEND = timedelta(minutes=2)


@workflow.defn(name="DocumentDeliveryWorkflow")
class DocumentDeliveryWorkflow:
    @workflow.run
    async def run(self, inp: DeliverDocumentInput) -> DeliveryOutcome:
        try:
            out: DeliveryOutcome = await workflow.execute_activity(
                "documents.deliver", inp, result_type=DeliveryOutcome, start_to_close_timeout=_SEND,
                retry_policy=DELIVERY_RETRY)
            return out
        except ActivityError as exc:
            # the row stays pending/failed: the sweep goes on while its own attempts last
            cause = exc.cause if exc.cause is not None else exc
            return DeliveryOutcome("failed", 0, f"the workflow's attempts ran out: {cause}")


@workflow.defn(name="DocumentDeliverySweepWorkflow")
class DocumentDeliverySweepWorkflow:
    @workflow.run
    async def run(self, inp: DeliverySweepInput) -> SweepResult:
        # one attempt: the next sweep is the retry
        res: SweepResult = await workflow.execute_activity(
            "documents.deliver_due", inp, result_type=SweepResult,
            start_to_close_timeout=timedelta(seconds=inp.budget_s) + _SEND,
            retry_policy=RetryPolicy(maximum_attempts=1))
        return res
