"""``CollectionRunWorkflow``: one SEPA direct debit collection of one creditor account.

    gather items (proposed, pain.008 built and XSD-checked) ── empty ── end
        └─ awaiting approval ─┬─ approve (approver, not the starter) ── submit: rebuild from the
                              │                                          items still open, archive
                              └─ reject ── items released                the file, items submitted

The approval run itself (activities by name, each one idempotent transaction; decisions as Updates
whose validators refuse a wrong role or the starter) is ``workflows.approval_run``, shared with the
payout run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.approval_run import APPROVER_ROLES, ApprovalRunWorkflow
    from workflows.collections.types import CollectionRunInput, CollectionRunResult, GatherOutput

__all__ = ["APPROVER_ROLES", "CollectionRunWorkflow"]

# gathering and submitting a big run takes a while: a long start-to-close timeout, and heartbeats
# (every few seconds, see ``activities``) so that a dead worker's attempt is retried soon
_LONG = {"start_to_close_timeout": timedelta(minutes=15), "heartbeat_timeout": timedelta(seconds=10)}


@workflow.defn
class CollectionRunWorkflow(ApprovalRunWorkflow):
    PREFIX = "collections"
    NOUN = "collection run"
    GATHER_OUTPUT = GatherOutput
    GATHER_OPTIONS = _LONG
    SUBMIT_OPTIONS = _LONG

    @workflow.run
    async def run(self, inp: CollectionRunInput) -> CollectionRunResult:
        return await self._run(inp)
