"""``BillingCycleWorkflow``: one billing account, one period, from cut-off to hand-over.

Orchestration only: every database touch is an activity (``workflows.billing.activities``, called
by name so the sandbox never imports SQLAlchemy), time is ``workflow.now()``, waits are
``workflow.wait_condition(..., timeout=...)``. Finance decisions arrive as Updates whose validators
refuse what may not happen (wrong role, four-eyes violation, nothing to decide) before anything is
written to history.

    assemble draft ──(no hold)──────────────────────────────┐
        └─(hold reasons)─ finance task ── wait ─┬─ approve ──┤── finalize (number) ── hand-over
                             ▲   escalate ◄─────┤  auto-release┘
                             └── adjust ◄───────┤
                                                └─ reject ── rejected
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.billing.types import (
        AdjustInput,
        ApproveInput,
        AssembleInput,
        BillingCycleInput,
        BillingCycleResult,
        CloseTaskInput,
        CollectPaymentInput,
        CycleStatus,
        DraftSummary,
        EscalateInput,
        FinalizeInput,
        FinalizeOutput,
        HandOverResult,
        OpenTaskInput,
        PostingInput,
        RejectInput,
        ReleaseHoldInput,
        RenderDocumentsInput,
        RepriceInput,
    )
    from workflows.documents.types import DeliverDocumentInput, delivery_workflow_id

__all__ = ["ADJUSTER_ROLES", "APPROVER_ROLES", "BillingCycleWorkflow"]

APPROVER_ROLES = ("approver",)
# hold reasons only a person may decide (runtime.invoicing.APPROVAL_REQUIRED; spelled out here so
# the workflow module imports nothing but its types)
_APPROVAL_ONLY = ("unpriced_service", "currency_mismatch", "meter_signature_invalid", "meter_mismatch")
ADJUSTER_ROLES = ("approver", "operator", "admin")

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(seconds=30), maximum_attempts=0,
                     non_retryable_error_types=["account_not_found", "ruleset_invalid", "period_required", "invoice_not_open",
                                                "invoice_not_finalizable"])
# a worker that dies mid-activity is noticed when the attempt times out: keep the limits short
# (every activity is idempotent, so an attempt that merely ran long and is retried does no harm)
_SHORT = timedelta(seconds=30)
_ASSEMBLE = timedelta(seconds=60)


class _Decision:
    def __init__(self, kind: str, user_id: str, reason: str = "", role: str = "") -> None:
        self.kind = kind  # approve | reject | auto_release | manual_release
        self.user_id = user_id
        self.reason = reason
        self.role = role


@workflow.defn
class BillingCycleWorkflow:
    def __init__(self) -> None:
        self._state = "assembling"
        self._inp: BillingCycleInput | None = None
        self._draft: DraftSummary | None = None
        self._task_id = ""
        self._decision: _Decision | None = None
        self._adjusters: list[str] = []
        self._adjusting = 0
        self._level = 0
        self._number = ""
        self._as_of = ""
        self._finalize_clean = False
        self._local = False

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, inp: BillingCycleInput) -> BillingCycleResult:
        self._inp = inp
        self._as_of = as_of = inp.as_of or workflow.now().isoformat()
        # one patch marks the current generation: the short steps (assembly, the hand-overs) run
        # as local activities, so a clean cycle is one workflow task from start to finish with the
        # steps as markers instead of three activity round trips through the server; a clean
        # draft is finalized inside the assembling activity; the hand-overs run side by side. One
        # marker instead of one per change: each patch also upserts a search attribute, which is
        # work for the server's visibility store in every one of month-end's ten thousand cycles.
        # Histories of older generations replay through the individual patches below.
        self._local = workflow.patched("month-end-v4")
        self._finalize_clean = self._local or workflow.patched("finalize-clean-drafts")
        self._draft = draft = await self._assemble(as_of)
        if draft.finalized_now:
            self._number = draft.number
            self._state = "finalized"
            fin = FinalizeOutput(draft.invoice_id, draft.number, draft.kind, draft.gross)
            await self._hand_over(fin)
            await self._tell_dunning(draft.dunning_workflows)
            return BillingCycleResult(draft.invoice_id, "finalized", fin.number, fin.kind, fin.gross)
        if draft.status in ("finalized", "rejected", "empty"):
            # a re-run of a cycle that already ended: report what happened, change nothing
            self._state = draft.status
            return BillingCycleResult(draft.invoice_id, draft.status, draft.number, draft.kind, draft.gross)
        decided_by = ""
        if draft.reasons:
            self._state = "held"
            self._task_id = await self._open_task(draft)
            decision = await self._wait_for_decision(draft)
            if decision.kind == "reject":
                await workflow.execute_activity(
                    "billing.reject_invoice", CloseTaskInput(inp.tenant_id, self._task_id, draft.invoice_id,
                                                             "rejected", decision.user_id, decision.reason,
                                                             decision.role),
                    start_to_close_timeout=_SHORT, retry_policy=_RETRY)
                self._state = "rejected"
                return BillingCycleResult(draft.invoice_id, "rejected", "", draft.kind, self._draft.gross,
                                          decision.user_id, decision.reason)
            decided_by = decision.user_id
            await workflow.execute_activity(
                "billing.close_task", CloseTaskInput(inp.tenant_id, self._task_id, draft.invoice_id,
                                                     "approved" if decision.kind == "approve" else "released",
                                                     decision.user_id, decision.reason, decision.role),
                start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        self._state = "finalizing"
        # the number is allocated inside this activity's transaction, once per invoice: a retry
        # after a crash returns the number the first attempt committed
        fin = await workflow.execute_activity(
            "billing.finalize_invoice",
            # the document is dated the day finance decided, in workflow time (the same on replay);
            # only the input changes, not the commands, so no patch marker is needed
            FinalizeInput(inp.tenant_id, draft.invoice_id, decided_by, workflow.now().isoformat()),
            result_type=FinalizeOutput, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        if not fin.number and workflow.patched("nothing-to-number"):
            # approved without a single line (only an unpriced service item or amounts in another
            # currency held it): the activity
            # closed the draft as empty, so there is no number and nothing to hand over
            self._state = "empty"
            return BillingCycleResult(draft.invoice_id, "empty", "", fin.kind, fin.gross, decided_by)
        self._number = fin.number
        self._state = "finalized"
        if self._local or workflow.patched("explicit-hand-over"):
            await self._hand_over(fin)
        await self._tell_dunning(fin.dunning_workflows)
        return BillingCycleResult(draft.invoice_id, "finalized", fin.number, fin.kind, fin.gross, decided_by)

    async def _assemble(self, as_of: str) -> DraftSummary:
        assert self._inp is not None
        inp = self._inp
        arg = AssembleInput(inp.tenant_id, inp.account_id, as_of, workflow.info().workflow_id, inp.period,
                            inp.cycle_key, finalize_if_clean=self._finalize_clean and self._state == "assembling",
                            now=workflow.now().isoformat())
        if self._local:
            return await workflow.execute_local_activity(
                "billing.assemble_draft", arg, result_type=DraftSummary, start_to_close_timeout=_ASSEMBLE,
                retry_policy=_RETRY)
        return await workflow.execute_activity(
            "billing.assemble_draft", arg, result_type=DraftSummary, start_to_close_timeout=_ASSEMBLE,
            retry_policy=_RETRY)

    async def _open_task(self, draft: DraftSummary) -> str:
        """The held draft's finance task (the activity opens it once and refreshes it after)."""
        assert self._inp is not None
        return await workflow.execute_activity(
            "billing.open_task", OpenTaskInput(self._inp.tenant_id, draft.invoice_id, self._inp.account_id,
                                               workflow.info().workflow_id, draft.reasons, draft.comparison),
            result_type=str, start_to_close_timeout=_SHORT, retry_policy=_RETRY)

    async def _wait_for_decision(self, draft: DraftSummary) -> _Decision:
        assert self._inp is not None
        inp = self._inp
        esc_s = inp.escalate_after_s if inp.escalate_after_s is not None else draft.escalate_after_s
        auto_s = inp.auto_release_after_s if inp.auto_release_after_s is not None else (
            None if draft.approval_required else draft.auto_release_after_s)
        if auto_s is not None and any(r.get("kind") in _APPROVAL_ONLY for r in draft.reasons) \
                and workflow.patched("unpriced-never-auto-releases"):
            # not even a cycle's own auto-release override lets an unpriced item, or an amount in
            # another currency, go out unseen (the same patch: no history before it held for a
            # currency, so its command sequence is unchanged for every recorded one)
            auto_s = None
        started = workflow.now()
        next_escalation = started + timedelta(seconds=esc_s) if esc_s else None
        auto_at = started + timedelta(seconds=auto_s) if auto_s else None
        while True:
            deadlines = [d for d in (next_escalation, auto_at) if d is not None]
            timeout = max(min(deadlines) - workflow.now(), timedelta(seconds=1)) if deadlines else None
            try:
                await workflow.wait_condition(lambda: self._decision is not None and self._adjusting == 0,
                                              timeout=timeout)
            except TimeoutError:
                pass
            if self._decision is not None and self._adjusting == 0:
                return self._decision
            now = workflow.now()
            if auto_at is not None and now >= auto_at:
                self._decision = _Decision("auto_release", "system", "auto-released by the hold policy")
                return self._decision
            if next_escalation is not None and now >= next_escalation:
                self._level += 1
                await workflow.execute_activity(
                    "billing.escalate_task", EscalateInput(inp.tenant_id, self._task_id, self._level),
                    start_to_close_timeout=_SHORT, retry_policy=_RETRY)
                assert esc_s is not None
                next_escalation = (now + timedelta(seconds=esc_s)) if self._level < inp.max_escalations else None

    async def _hand_over(self, fin: FinalizeOutput) -> None:
        """The explicit hand-over to documents and payment collection (a later issue): activities
        by name; the documents' e-mail then leaves in a child workflow (``deliver-documents``)."""
        assert self._inp is not None
        t = self._inp.tenant_id
        run = workflow.execute_local_activity if self._local else workflow.execute_activity
        render = run("documents.render_invoice", RenderDocumentsInput(t, fin.invoice_id, fin.number),
                     result_type=HandOverResult, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        collect = run("payments.collect_invoice", CollectPaymentInput(t, fin.invoice_id, fin.number, fin.gross,
                                                                      fin.kind),
                      result_type=HandOverResult, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        if self._local or workflow.patched("parallel-hand-over"):
            # both hand-overs are independent: scheduling them together saves a workflow task per
            # invoice at month-end; histories recorded before this change replay the sequential path
            rendered, _ = await asyncio.gather(render, collect)
        else:
            rendered = await render
            await collect
        # the e-mail leaves in a workflow of its own, retried for as long as the mail server may
        # need, while the cycle ends now (a worker without SMTP names no delivery: it stays pending)
        if rendered.delivery_id and workflow.patched("deliver-documents"):
            await self._start_delivery(rendered.delivery_id, fin.number)

    async def _tell_dunning(self, workflow_ids: list[str]) -> None:
        """A credit note was finalized: its customer's open dunning case re-reads its items now (it
        may close) instead of at its next stage day. Histories from before name no workflows (the
        activities' results had no such field), so the patch is asked only when there are some."""
        if not workflow_ids or not workflow.patched("credit-note-tells-dunning"):
            return
        for wid in workflow_ids:
            try:
                await workflow.get_external_workflow_handle(wid).signal("changed", "credit_note")
            except FailureError:
                pass  # the case's workflow ended meanwhile (not found): nothing left to tell

    async def _start_delivery(self, delivery_id: str, number: str) -> None:
        assert self._inp is not None
        t = self._inp.tenant_id
        try:
            await workflow.start_child_workflow(
                "DocumentDeliveryWorkflow", DeliverDocumentInput(t, delivery_id, number),
                id=delivery_workflow_id(t, delivery_id), parent_close_policy=workflow.ParentClosePolicy.ABANDON)
        except WorkflowAlreadyStartedError:
            pass  # this delivery is already on its way

    # ------------------------------------------------------------------ finance decisions
    def _require_held(self) -> None:
        if self._state != "held" or self._decision is not None:
            raise ApplicationError(f"the invoice is not waiting for a decision (state: {self._state})",
                                   type="not_held")

    @workflow.update
    async def approve(self, inp: ApproveInput) -> str:
        self._decision = _Decision("approve", inp.user_id, inp.note, inp.role)
        return "approved"

    @approve.validator
    def _validate_approve(self, inp: ApproveInput) -> None:
        self._require_held()
        if inp.role not in APPROVER_ROLES:
            raise ApplicationError(f"approving needs the approver role, not '{inp.role}'", type="forbidden")
        if inp.user_id in self._adjusters:
            raise ApplicationError("four eyes: the person who adjusted this invoice cannot approve it",
                                   type="four_eyes")
        if self._adjusting:
            raise ApplicationError("an adjustment is still being applied", type="busy")

    @workflow.update
    async def reject(self, inp: RejectInput) -> str:
        self._decision = _Decision("reject", inp.user_id, inp.reason, inp.role)
        return "rejected"

    @reject.validator
    def _validate_reject(self, inp: RejectInput) -> None:
        self._require_held()
        if inp.role not in APPROVER_ROLES:
            raise ApplicationError(f"rejecting needs the approver role, not '{inp.role}'", type="forbidden")
        if not inp.reason.strip():
            raise ApplicationError("a rejection needs a reason", type="reason_required")

    @workflow.update
    async def adjust(self, inp: AdjustInput) -> DraftSummary:
        assert self._inp is not None and self._draft is not None
        self._adjusting += 1
        try:
            if inp.user_id not in self._adjusters:
                self._adjusters.append(inp.user_id)
            await workflow.execute_activity(
                "billing.add_posting",
                PostingInput(self._inp.tenant_id, self._draft.invoice_id, f"pst_{workflow.uuid4().hex}",
                             inp.description, inp.amount, inp.tax_rate, inp.user_id, inp.role),
                start_to_close_timeout=_SHORT, retry_policy=_RETRY)
            # re-assemble with the posting: rounding and VAT groups stay the pure code's job
            self._draft = await self._assemble(self._as_of)
            return self._draft
        finally:
            self._adjusting -= 1

    def _require_adjuster(self, role: str, doing: str) -> None:
        self._require_held()
        if role not in ADJUSTER_ROLES:
            raise ApplicationError(f"{doing} needs one of the roles {', '.join(ADJUSTER_ROLES)}", type="forbidden")

    @adjust.validator
    def _validate_adjust(self, inp: AdjustInput) -> None:
        self._require_adjuster(inp.role, "adjusting")
        try:
            amount, rate = Decimal(inp.amount), Decimal(inp.tax_rate)
        except InvalidOperation:
            raise ApplicationError("amount and tax rate must be decimal strings", type="invalid_amount") from None
        if not amount.is_finite() or amount == 0 or not rate.is_finite() or not 0 <= rate <= 100:
            raise ApplicationError("the amount must be non-zero and the tax rate within 0..100",
                                   type="invalid_amount")
        if not inp.description.strip():
            raise ApplicationError("an adjustment needs a description", type="reason_required")

    @workflow.update
    async def reprice(self, inp: RepriceInput) -> DraftSummary:
        """Re-assemble the held draft with today's data (a newly published price, an ended service
        item) and refresh the finance task's reasons. The invoice stays held for a decision. A
        handler of its own (no patch needed): histories that never call it replay unchanged."""
        assert self._inp is not None and self._draft is not None
        self._adjusting += 1
        try:
            self._draft = draft = await self._assemble(self._as_of)
            await self._open_task(draft)  # the existing task takes the new reasons
            return draft
        finally:
            self._adjusting -= 1

    @reprice.validator
    def _validate_reprice(self, inp: RepriceInput) -> None:
        self._require_adjuster(inp.role, "re-pricing")
        if self._adjusting:
            raise ApplicationError("an adjustment is still being applied", type="busy")

    @workflow.update
    async def release_hold(self, inp: ReleaseHoldInput) -> str:
        self._decision = _Decision("manual_release", inp.user_id, f"manual hold {inp.hold_id} released",
                                   inp.role)
        return "released"

    @release_hold.validator
    def _validate_release(self, inp: ReleaseHoldInput) -> None:
        self._require_held()
        if inp.role not in APPROVER_ROLES + ("admin",):
            raise ApplicationError("releasing a hold needs the approver role", type="forbidden")
        assert self._draft is not None
        if any(r.get("kind") != "manual" for r in self._draft.reasons):
            raise ApplicationError("other hold reasons remain: approve or reject the invoice", type="not_manual")
        if inp.user_id in self._adjusters:
            raise ApplicationError("four eyes: the person who adjusted this invoice cannot release it",
                                   type="four_eyes")

    @workflow.query
    def status(self) -> CycleStatus:
        d = self._draft
        return CycleStatus(self._state, d.invoice_id if d else "", self._task_id, list(d.reasons) if d else [],
                           list(self._adjusters), self._level, d.net if d else "", d.gross if d else "",
                           self._number)
