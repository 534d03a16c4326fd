"""Collection run activities: each one transaction, each idempotent (see ``store.collections``).

A run of 100,000 items takes seconds, not milliseconds, so gathering and submitting have a long
start-to-close timeout and heartbeat while they work (``_heartbeats``): a worker that dies mid-run
(SIGKILL, a lost machine) is noticed after the workflow's heartbeat timeout and the activity is
retried on another worker, where the run is found by its workflow id and nothing is done twice.
Results carry ids and counts, never the items: the file stays in the database."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runtime.bank.pain008 import Pain008Error
from store import collections as C
from workflows.collections.types import CollectionRunResult, DecideInput, GatherInput, GatherOutput

__all__ = ["CollectionActivities"]


SKIPPED_SHOWN = 100  # accounts left out that a gather result names (all of them are on the run's row)
HEARTBEAT_EVERY = 2.0  # seconds


@contextmanager
def _heartbeats() -> Iterator[None]:
    """Heartbeat from a helper thread while the activity's one transaction runs."""
    stop = threading.Event()
    ctx = contextvars.copy_context()  # the activity's context: heartbeat() finds its activity there

    def beat() -> None:
        while not stop.wait(HEARTBEAT_EVERY):
            activity.heartbeat()

    t = threading.Thread(target=ctx.run, args=(beat,), daemon=True, name="collection-heartbeat")
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


class CollectionActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[Any]:
        return [self.gather, self.submit, self.reject]

    @activity.defn(name="collections.gather")
    def gather(self, inp: GatherInput) -> GatherOutput:
        with _heartbeats(), self.engine.begin() as conn:
            if not C.creditor_account_exists(conn, inp.tenant_id, inp.creditor_account_id):
                raise ApplicationError(f"creditor account {inp.creditor_account_id} not found",
                                       type="creditor_account_not_found")
            # the file as it would go out is built and checked as the items are gathered: a value
            # the XSD refuses stops the run here
            created = (datetime.fromisoformat(inp.as_of) if "T" in inp.as_of
                       else datetime.combine(date.fromisoformat(inp.as_of), datetime.min.time()))
            try:
                g = C.gather(conn, inp.tenant_id, inp.creditor_account_id, inp.workflow_id,
                             date.fromisoformat(inp.as_of[:10]), inp.started_by, check_at=created)
            except Pain008Error as exc:
                raise ApplicationError(str(exc), type="pain_invalid") from None
        return GatherOutput(g.run_id, g.status, g.items, format(g.total, "f"), g.currency, inp.started_by,
                            g.skipped[:SKIPPED_SHOWN], len(g.skipped))

    @activity.defn(name="collections.submit")
    def submit(self, inp: DecideInput) -> CollectionRunResult:
        with _heartbeats(), self.engine.begin() as conn:
            try:
                run = C.submit_run(conn, inp.tenant_id, inp.run_id, inp.user_id, datetime.fromisoformat(inp.now),
                                   inp.reason)
            except Pain008Error as exc:
                raise ApplicationError(str(exc), type="pain_invalid") from None
            sha = ""
            if run.file_id:
                sha = C.file_sha256(conn, run.file_id)
            _audit(conn, inp.tenant_id, inp.user_id, "collection_run.approve", run.id,
                   {"status": run.status, "items": run.items, "total": format(run.total, "f"), "sha256": sha})
        return CollectionRunResult(run.id, run.status, run.items, format(run.total, "f"), run.file_id or "", sha,
                                   inp.user_id)

    @activity.defn(name="collections.reject")
    def reject(self, inp: DecideInput) -> None:
        with self.engine.begin() as conn:
            C.reject_run(conn, inp.tenant_id, inp.run_id, inp.user_id, inp.reason)
            _audit(conn, inp.tenant_id, inp.user_id, "collection_run.reject", inp.run_id, {"reason": inp.reason})


def _audit(conn: Any, tenant_id: str, user_id: str, action: str, entity_id: str, data: dict[str, Any]) -> None:
    from workflows.billing.activities import _audit as billing_audit

    billing_audit(conn, tenant_id, user_id, "approver", action, "collection_run", entity_id, data)
