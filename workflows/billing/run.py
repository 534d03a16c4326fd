"""``BillingRunWorkflow``: month-end of a tenant's accounts at one cut-off, in batches.

A ``BillingCycleWorkflow`` per account costs the Temporal server a workflow and a dozen events per
account, most of month-end's CPU when nobody has to look at the invoices. The run pages through
the accounts (``billing.account_page``) and hands each page's batches to ``billing.assemble_batch``,
which assembles, finalizes and hands over every account on its own, idempotent by (account, cycle
key), exactly as a cycle's first step does. Only an account that needs a person (a hold rule
stopped its draft) or that failed with a business error gets its durable per-account workflow: a
``BillingCycleWorkflow`` started as an abandoned child under the id ``cycle_workflow_id`` (the id
``start_cycles`` gives), which finds the draft the batch wrote and goes on from there (finance
task, approval, escalation, rejection).

A tenant's run schedule (``worker.ensure_run_schedule``, one per calendar: cycle and zone) starts
one run at each cut-off, for the accounts of its zone (``BillingRunInput.timezone``).

    page of accounts ─► batches ─► assemble_batch (heartbeats; retried whole, each account idempotent)
                                        ├─ finalized, handed over
                                        └─ held / failed ─► BillingCycleWorkflow (its own, durable)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.billing.types import (
        AccountPage,
        AccountPageInput,
        AssembleBatchInput,
        BatchOutcome,
        BillingCycleInput,
        BillingRunInput,
        BillingRunResult,
        cycle_workflow_id,
    )

__all__ = ["BillingRunWorkflow"]

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(seconds=30), maximum_attempts=0)
# a batch heartbeats after every account: a worker killed mid-batch is noticed after this long,
# and the retry skips the hand-over of the accounts the heartbeats reported finished (20 s were
# too short on a machine at load 12: an attempt alive but starved of CPU was cancelled and redone)
_HEARTBEAT = timedelta(seconds=30)
_BATCH = timedelta(minutes=30)
# accounts read per page: several batches' worth, so the batches of a page run side by side
_PAGE_BATCHES = 8


@workflow.defn
class BillingRunWorkflow:
    def __init__(self) -> None:
        self._result = BillingRunResult()

    @workflow.run
    async def run(self, inp: BillingRunInput) -> BillingRunResult:
        as_of = inp.as_of or workflow.now().isoformat()
        now = workflow.now().isoformat()
        size = max(1, inp.batch_size)
        batches: list[asyncio.Task[None]] = []

        def start(ids: list[str]) -> None:
            for i in range(0, len(ids), size):
                batches.append(asyncio.ensure_future(self._batch(inp, ids[i:i + size], as_of, now)))

        if inp.account_ids is not None:
            start(list(inp.account_ids))
        else:
            after = ""
            while True:
                page = await workflow.execute_activity(
                    "billing.account_page",
                    AccountPageInput(inp.tenant_id, inp.cycle, after, size * _PAGE_BATCHES, inp.timezone),
                    result_type=AccountPage, start_to_close_timeout=timedelta(seconds=60), retry_policy=_RETRY)
                start(page.account_ids)
                if not page.last:
                    break
                after = page.last
        await asyncio.gather(*batches)
        return self._result

    async def _batch(self, inp: BillingRunInput, ids: list[str], as_of: str, now: str) -> None:
        out = await workflow.execute_activity(
            "billing.assemble_batch", AssembleBatchInput(inp.tenant_id, ids, as_of, now), result_type=BatchOutcome,
            start_to_close_timeout=_BATCH, heartbeat_timeout=_HEARTBEAT, retry_policy=_RETRY)
        r = self._result
        r.accounts += len(ids)
        r.finalized += out.finalized
        r.empty += out.empty
        r.rejected += out.rejected
        r.failed += out.failed
        await asyncio.gather(*(self._own_cycle(inp, a, as_of) for a in out.held))
        for wid in out.dunning_workflows:
            # a credit note took off what its customer owes: the open dunning case re-reads now
            try:
                await workflow.get_external_workflow_handle(wid).signal("changed", "credit_note")
            except FailureError:
                pass  # the case ended meanwhile

    async def _own_cycle(self, inp: BillingRunInput, account_id: str, as_of: str) -> None:
        """The account's durable cycle: it finds the draft the batch wrote and waits for finance."""
        wid = cycle_workflow_id(inp.tenant_id, account_id, as_of)
        try:
            await workflow.start_child_workflow(
                "BillingCycleWorkflow",
                BillingCycleInput(inp.tenant_id, account_id, as_of=as_of, escalate_after_s=inp.escalate_after_s,
                                  auto_release_after_s=inp.auto_release_after_s, max_escalations=inp.max_escalations),
                id=wid, parent_close_policy=workflow.ParentClosePolicy.ABANDON)
        except WorkflowAlreadyStartedError:
            pass  # started already (by ``start_cycles`` or an earlier run): it goes on by itself
        self._result.held.append(wid)

    @workflow.query
    def progress(self) -> BillingRunResult:
        return self._result
