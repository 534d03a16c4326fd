"""``ClearingWorkflow``: one eMSP partner's month.

    build the statement (CDRs priced through the DSL, XLSX and CDR JSON archived) ── no CDRs ── end
      └─ send: the D-7 window opens ── disputes (the partner's key or finance) for 7 days
          └─ window closed: later disputes refused ── finance resolves each (accept, keep, adjust)
              └─ the clearing invoice (PDF + e-invoice, reverse charge abroad), expected as a transfer

Disputes and resolutions arrive as Updates; their validators refuse, before anything reaches
history, a dispute after the window (``window_closed``), a partner disputing another partner's
statement, a resolution before the window closed or by someone who is not finance. Every database
touch is an activity called by name, each idempotent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.clearing.types import (
        DISPUTE_ROLES,
        RESOLVE_ROLES,
        BuildInput,
        BuildOutput,
        ClearingInput,
        ClearingResult,
        ClearingStatus,
        DisputeRecord,
        DisputeRequest,
        InvoiceRequest,
        ResolveRecord,
        ResolveRequest,
        SendInput,
    )

__all__ = ["ClearingWorkflow"]

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                     maximum_interval=timedelta(seconds=30), maximum_attempts=0,
                     non_retryable_error_types=["partner_not_found", "no_ruleset", "nothing_to_invoice",
                                                "currency_mismatch"])
_SHORT = timedelta(seconds=60)
_LONG = timedelta(minutes=30)  # a statement of 200,000 CDRs


@workflow.defn
class ClearingWorkflow:
    def __init__(self) -> None:
        self._state = "building"
        self._statement_id = ""
        self._partner_id = ""
        self._tenant_id = ""
        self._window_ends: datetime | None = None
        self._open: dict[str, str] = {}  # dispute id -> cdr id
        self._disputed: set[str] = set()
        self._busy = 0

    @workflow.run
    async def run(self, inp: ClearingInput) -> ClearingResult:
        self._partner_id = inp.partner_id
        self._tenant_id = inp.tenant_id
        b = await workflow.execute_activity(
            "clearing.build", BuildInput(inp.tenant_id, inp.partner_id, inp.month, workflow.info().workflow_id,
                                         inp.started_by),
            result_type=BuildOutput, start_to_close_timeout=_LONG, retry_policy=_RETRY)
        self._statement_id = b.statement_id
        if b.status == "empty":
            self._state = "empty"
            return ClearingResult(b.statement_id, "empty")
        sent = workflow.now()
        self._window_ends = sent + timedelta(days=inp.window_days)
        await workflow.execute_activity(
            "clearing.send", SendInput(inp.tenant_id, b.statement_id, sent.isoformat(), self._window_ends.isoformat()),
            start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        self._state = "in_review"
        await workflow.sleep(self._window_ends - workflow.now())
        # an Update already past its validator finishes recording before the window shuts
        await workflow.wait_condition(lambda: self._busy == 0)
        self._state = "resolving"
        await workflow.execute_activity("clearing.close_window", InvoiceRequest(inp.tenant_id, b.statement_id, ""),
                                        start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        await workflow.wait_condition(lambda: not self._open and self._busy == 0)
        self._state = "invoicing"
        res: ClearingResult = await workflow.execute_activity(
            "clearing.invoice", InvoiceRequest(inp.tenant_id, b.statement_id, workflow.now().date().isoformat()),
            result_type=ClearingResult, start_to_close_timeout=_LONG, retry_policy=_RETRY)
        self._state = res.status
        return res

    # ------------------------------------------------------------------------- disputes
    @workflow.update
    async def dispute(self, d: DisputeRequest) -> str:
        self._busy += 1
        try:
            dispute_id: str = await workflow.execute_activity(
                "clearing.dispute", DisputeRecord(self._tenant_id, self._statement_id, d, workflow.now().isoformat()),
                result_type=str, start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        finally:
            self._busy -= 1
        self._open[dispute_id] = d.cdr_id
        self._disputed.add(d.cdr_id)
        return dispute_id

    @dispute.validator
    def _validate_dispute(self, d: DisputeRequest) -> None:
        if self._state != "in_review" or self._window_ends is None or workflow.now() >= self._window_ends:
            raise ApplicationError(
                f"the dispute window is closed (state: {self._state}"
                + (f", it closed {self._window_ends.isoformat()})" if self._window_ends else ")"),
                type="window_closed")
        if d.role not in DISPUTE_ROLES:
            raise ApplicationError(f"disputing a CDR needs the partner's key or finance, not '{d.role}'",
                                   type="forbidden")
        if d.role == "partner" and d.partner_id != self._partner_id:
            raise ApplicationError("a partner disputes only its own statements", type="forbidden")
        if not d.reason.strip():
            raise ApplicationError("a dispute needs a reason", type="reason_required")
        if d.cdr_id in self._disputed:
            raise ApplicationError(f"CDR {d.cdr_id} is already disputed", type="already_disputed")

    @workflow.update
    async def resolve(self, r: ResolveRequest) -> str:
        self._busy += 1
        try:
            await workflow.execute_activity(
                "clearing.resolve", ResolveRecord(self._tenant_id, self._statement_id, r, workflow.now().isoformat()),
                start_to_close_timeout=_SHORT, retry_policy=_RETRY)
        finally:
            self._busy -= 1
        self._open.pop(r.dispute_id, None)
        return r.resolution

    @resolve.validator
    def _validate_resolve(self, r: ResolveRequest) -> None:
        if self._state != "resolving":
            raise ApplicationError(f"disputes are resolved after the window closes (state: {self._state})",
                                   type="not_resolving")
        if r.role not in RESOLVE_ROLES:
            raise ApplicationError(f"resolving a dispute needs the approver role, not '{r.role}'", type="forbidden")
        if r.dispute_id not in self._open:
            raise ApplicationError(f"dispute {r.dispute_id} is not open", type="not_open")
        if r.resolution not in ("accept", "keep", "adjust"):
            raise ApplicationError("resolution: accept, keep or adjust", type="invalid_resolution")
        if r.resolution == "adjust" and not r.amount:
            raise ApplicationError("adjusting needs an amount", type="amount_required")

    @workflow.query
    def status(self) -> ClearingStatus:
        return ClearingStatus(self._state, self._statement_id,
                              self._window_ends.isoformat() if self._window_ends else "", sorted(self._open))
