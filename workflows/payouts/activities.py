"""Payout run activities: each one transaction, each idempotent (see ``store.payables``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runtime.bank.pain001 import Pain001Error
from store import payables as P
from workflows.payouts.types import (
    DecideInput,
    GatherInput,
    GatherOutput,
    PayoutRunResult,
    PayoutSweepInput,
    ScheduledRun,
    payout_workflow_id,
    scheduled_payout_key,
)

__all__ = ["PayoutActivities"]


class PayoutActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[Any]:
        return [self.gather, self.submit, self.reject, self.due_runs]

    @activity.defn(name="payouts.gather")
    def gather(self, inp: GatherInput) -> GatherOutput:
        with self.engine.begin() as conn:
            if not P.creditor_account_exists(conn, inp.tenant_id, inp.creditor_account_id):
                raise ApplicationError(f"account {inp.creditor_account_id} not found",
                                       type="creditor_account_not_found")
            g = P.gather(conn, inp.tenant_id, inp.creditor_account_id, inp.workflow_id,
                         date.fromisoformat(inp.as_of[:10]), inp.started_by)
            if g.status == "awaiting_approval":
                try:  # the file as it would go out: a value the XSD refuses stops the run here
                    P.preview(conn, inp.tenant_id, g.run_id,
                              datetime.combine(date.fromisoformat(inp.as_of[:10]), datetime.min.time()))
                except Pain001Error as exc:
                    raise ApplicationError(str(exc), type="pain_invalid") from None
            if g.items:
                _audit(conn, inp.tenant_id, inp.started_by, "operator", "payout_run.gather", g.run_id,
                       {"status": g.status, "items": g.items, "total": format(g.total, "f")})
        return GatherOutput(g.run_id, g.status, g.items, format(g.total, "f"), g.currency, inp.started_by,
                            g.requested_by)

    @activity.defn(name="payouts.submit")
    def submit(self, inp: DecideInput) -> PayoutRunResult:
        with self.engine.begin() as conn:
            try:
                run = P.submit_run(conn, inp.tenant_id, inp.run_id, inp.user_id, datetime.fromisoformat(inp.now),
                                   inp.reason)
            except Pain001Error as exc:
                raise ApplicationError(str(exc), type="pain_invalid") from None
            sha = P.file_sha256(conn, run.file_id) if run.file_id else ""
            _audit(conn, inp.tenant_id, inp.user_id, "approver", "payout_run.approve", run.id,
                   {"status": run.status, "items": run.items, "total": format(run.total, "f"), "sha256": sha})
        return PayoutRunResult(run.id, run.status, run.items, format(run.total, "f"), run.file_id or "", sha,
                               inp.user_id)

    @activity.defn(name="payouts.reject")
    def reject(self, inp: DecideInput) -> None:
        with self.engine.begin() as conn:
            P.reject_run(conn, inp.tenant_id, inp.run_id, inp.user_id, inp.reason)
            _audit(conn, inp.tenant_id, inp.user_id, "approver", "payout_run.reject", inp.run_id,
                   {"reason": inp.reason})

    @activity.defn(name="payouts.due_runs")
    def due_runs(self, inp: PayoutSweepInput) -> list[ScheduledRun]:
        """The runs the monthly schedule starts at ``inp.at``: an account's run of the month that
        is already in the store (started and gathered) is not started again."""
        with self.engine.begin() as conn:
            out = []
            for d in P.due_scheduled_runs(conn, datetime.fromisoformat(inp.at)):
                wid = payout_workflow_id(d.tenant_id, d.creditor_account_id, scheduled_payout_key(d.month))
                if not P.run_exists(conn, d.tenant_id, wid):
                    out.append(ScheduledRun(wid, d.tenant_id, d.creditor_account_id, d.as_of.isoformat()))
        return out


def _audit(conn: Any, tenant_id: str, user_id: str, role: str, action: str, entity_id: str,
           data: dict[str, Any]) -> None:
    from workflows.billing.activities import _audit as billing_audit

    billing_audit(conn, tenant_id, user_id, role, action, "payout_run", entity_id, data)
