"""The I/O of e-mail delivery: SMTP and the delivery rows of ``store.documents``."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from store import documents as A
from store.errors import NotFound
from workflows.documents.types import DeliverDocumentInput, DeliveryOutcome, DeliverySweepInput, SweepResult

__all__ = ["DeliveryActivities"]

log = logging.getLogger("evbill.documents.delivery")


class DeliveryActivities:
    """Bound to the worker's database and SMTP settings; ``smtp`` None: e-mail delivery is off
    (nothing is sent, deliveries stay ``pending`` where an operator sees them)."""

    def __init__(self, engine: Engine, smtp: A.SmtpSettings | None, *, sender: A.Sender | None = None,
                 connections: int = 4) -> None:
        self.engine = engine
        self.smtp = smtp
        self._build = A.message_builder(engine, sender=smtp.sender) if smtp is not None else None
        self._send = sender or (A.smtp_sender(smtp) if smtp is not None else None)
        # SMTP waits run on threads of their own, not the worker's activity threads: a mail server
        # that hangs (each step may wait timeout_s) must not hold up the month-end's local
        # activities, which share those threads under a 10 s workflow-task timeout
        self._pool = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="evbill-smtp")

    def all(self) -> list[Any]:
        return [self.deliver, self.deliver_due]

    @activity.defn(name="documents.deliver")
    async def deliver(self, inp: DeliverDocumentInput) -> DeliveryOutcome:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.deliver_one, inp)

    @activity.defn(name="documents.deliver_due")
    async def deliver_due(self, inp: DeliverySweepInput) -> SweepResult:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.sweep, inp)

    def deliver_one(self, inp: DeliverDocumentInput) -> DeliveryOutcome:
        """One attempt at one delivery. A failure the server may recover from (refused for now,
        unreachable) is raised, so the workflow's retry policy tries again later; the row counts
        the attempts and gives up (``abandoned``) after ``max_attempts``."""
        s = self.smtp
        if s is None or self._build is None or self._send is None:
            return DeliveryOutcome("off", 0, "e-mail delivery is off: EVBILL_SMTP_HOST is not set")
        try:
            # the retry policy keeps the time, not the row's next_attempt_at (the sweep's clock)
            d = A.deliver(self.engine, inp.tenant_id, inp.delivery_id, self._build, self._send,
                          max_attempts=s.max_attempts, backoff=s.backoff, when_due=False)
        except NotFound as exc:
            raise ApplicationError(str(exc), type="delivery_not_found", non_retryable=True) from None
        if d.status == "sending":
            # claimed by someone else: the sweep sending it now, or an earlier attempt of this
            # activity that died between handing the message over and recording it
            if A.mark_stuck_unknown(self.engine, s.stuck_after, delivery_id=d.id):
                log.warning("delivery %s of %s: the worker stopped while sending; left for an operator",
                            d.id, d.number)
                return DeliveryOutcome("unknown", d.attempts, "the worker stopped while sending")
            # whoever holds the claim records the outcome (a failure is the sweep's to retry), or,
            # if it stopped, the sweep marks the delivery unknown once the claim is stuck_after old
            return DeliveryOutcome("sending", d.attempts, "claimed by another worker")
        if d.status == "failed":
            raise ApplicationError(f"delivery {d.id} of {d.number}, attempt {d.attempts}: {d.last_error}",
                                   type="delivery_failed")
        if d.status == "abandoned":
            log.error("delivery %s of %s to %s abandoned after %d attempts: %s", d.id, d.number, d.recipient,
                      d.attempts, d.last_error)
        return DeliveryOutcome(d.status, d.attempts, d.last_error)

    def sweep(self, inp: DeliverySweepInput) -> SweepResult:
        """The sweep: stuck deliveries become ``unknown``, then every due one is attempted once
        (the round ends at the first the server does not take: it is down)."""
        s = self.smtp
        if s is None or self._build is None or self._send is None:
            return SweepResult(off=True)
        unknown = A.mark_stuck_unknown(self.engine, s.stuck_after)
        done = A.deliver_due(self.engine, self._build, self._send, limit=inp.limit, max_attempts=s.max_attempts,
                             backoff=s.backoff, stop_on_failure=True, budget_s=inp.budget_s)
        res = SweepResult(len(done), sum(d.status == "sent" for d in done), sum(d.status == "failed" for d in done),
                          sum(d.status == "abandoned" for d in done), unknown)
        if done or unknown:
            log.info("delivery sweep: %s", res)
        return res
