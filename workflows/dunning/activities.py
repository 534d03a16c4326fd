"""Dunning activities: each one transaction, each idempotent (see ``store.dunning``).

``dunning.check`` re-reads the customer's items and asks ``runtime.dunning.next_step``; it opens
the case the first time something is overdue, with the ruleset version in force that day, and
the case keeps that version (and its policy) to the end. ``dunning.reach`` plans the stage with
``runtime.dunning.plan_stage`` and stores it once (fees and interest as items of their own), then
archives the stage's letter once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from time import monotonic
from typing import Any

from sqlalchemy import Connection, Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dsl.compiler import compile_ruleset
from runtime.dunning import (
    BaseRateUnknown,
    CaseState,
    DunningPolicy,
    OverdueItem,
    StagePlan,
    debtor_kind,
    next_step,
    plan_stage,
    select_policy,
)
from store import dunning as DN
from store.billing import write_transaction
from store.cycle import ruleset_in_force
from workflows.dunning.types import CheckInput, CloseInput, StageInput, StageOutput, StepOutput, SweepInput

__all__ = ["DunningActivities"]

_log = logging.getLogger("evbill.dunning.sweep")

# the sweep's starts: at most this many at once, each pausing this long when its first workflow
# task went to the queue rather than eagerly to this worker (which then has no free slot). The
# starts' number in flight over their latency is the sweep's pace: 16 at 250 ms a start (the
# embedded server, a loaded 2-core machine) held it at 64 cases/s, 48 at 590 ms made 81/s
_STARTS_IN_FLIGHT = 64
_QUEUED_PAUSE = 0.2
_BEAT_EVERY = 1.0  # seconds between the sweep's heartbeats
# one sweep activity reads page after page for this long, then the sweep continues as new (the
# activity's 10 minutes must hold the last page's starts too: 2,000 at the slowest pace seen, 16/s)
_PAGES_FOR = 120.0


@dataclass(slots=True)
class _Known:
    """What a check read: the customer, the case (None before one opened), the ruleset version and
    policy the case keeps, the items and the case's state as they were."""

    cust: Any
    case: DN.CaseRow | None
    version: str | None
    policy: DunningPolicy
    items: list[OverdueItem]
    state: CaseState
    states: list[Any]  # the items' receivable states (accounts, credit balances)
    disputed: set[str]  # the disputed items' ids
    opened: bool = False  # the case was opened in this transaction (it has no stages yet)


class DunningActivities:
    def __init__(self, engine: Engine, letters: bool | None = None, client: Any = None,
                 delivers_email: bool | None = None) -> None:
        self.engine = engine
        self.client = client  # the worker's Temporal client: the sweep starts the cases' workflows with it
        self._eager_seen = False  # a start of the sweep got its first workflow task eagerly on this worker
        # EVBILL_RENDER_DOCUMENTS=0 (benchmarks) reaches stages without rendering their letters
        self.letters = letters if letters is not None else os.environ.get("EVBILL_RENDER_DOCUMENTS", "1") != "0"
        # a worker that sends e-mail (default: EVBILL_SMTP_HOST is set, as the workers' SMTP
        # settings read it) names a new letter's queued e-mail to the workflow, which starts its
        # DocumentDeliveryWorkflow; otherwise the delivery sweep sends it
        self.delivers_email = delivers_email if delivers_email is not None else \
            bool(os.environ.get("EVBILL_SMTP_HOST", "").strip())

    def all(self) -> list[Any]:
        return [self.check, self.advance, self.request_approval, self.reach, self.refuse, self.close, self.pending,
                self.start_pending, self.escalate]

    # ------------------------------------------------------------------ policy
    def _policy(self, conn: Connection, tenant_id: str, version_id: str | None, name: str | None,
                groups: list[str], on: date) -> tuple[str | None, DunningPolicy | None]:
        if version_id:
            row = DN.ruleset_source(conn, tenant_id, version_id)
        else:
            row = ruleset_in_force(conn, tenant_id, datetime.combine(on, time(23, 59), tzinfo=UTC))
        if row is None:
            return None, None
        res = compile_ruleset(row.source, f"{row.dsl_name or row.id}.evb")
        if res.ruleset is None:
            raise ApplicationError(f"ruleset version {row.id} no longer compiles:\n{res.render()}",
                                   type="ruleset_invalid", non_retryable=True)
        policies = res.ruleset.policies.dunning
        if name:
            return row.id, next((p for p in policies if p.name == name), None)
        return row.id, select_policy(policies, groups)

    def _local(self, inp: CheckInput, conn: Connection | None = None) -> tuple[CheckInput, Any]:
        """The input with ``today`` the tenant's day of the workflow's moment, and the zone (read
        in ``conn``'s transaction when given)."""
        if not inp.now:
            return inp, None
        from zoneinfo import ZoneInfo

        from store.billing import tenant_zone

        if conn is None:
            with self.engine.connect() as own:
                zone = ZoneInfo(tenant_zone(own, inp.tenant_id, "UTC"))
        else:
            zone = ZoneInfo(tenant_zone(conn, inp.tenant_id, "UTC"))
        return replace(inp, today=datetime.fromisoformat(inp.now).astimezone(zone).date().isoformat()), zone

    # ------------------------------------------------------------------ activities
    @activity.defn(name="dunning.check")
    def check(self, inp: CheckInput) -> StepOutput:
        local, zone = self._local(inp)
        with write_transaction(self.engine) as conn:
            return _zoned(self._check(conn, local)[0], local, zone)

    def _check(self, conn: Connection, inp: CheckInput, known: _Known | None = None,
               state: CaseState | None = None) -> tuple[StepOutput, _Known | None]:
        """What is due (opening the case the first time something is), and what it was read from:
        ``advance`` reaches a due stage with the same reads and passes them back in (``known``:
        customer, case, policy and which items are disputed; the items are read again) with the
        case's state the stage left (``state``)."""
        today = date.fromisoformat(inp.today)
        if known is None:
            cust = DN.customer_facts(conn, inp.tenant_id, inp.customer_id)
            if cust is None:
                return StepOutput("close", inp.case_id, reason="customer_not_found"), None
            case = DN.case(conn, inp.tenant_id, inp.case_id) if inp.case_id else None
            if case is not None and case.status == "closed":
                return StepOutput("close", case.id, reason=case.reason or "closed"), None
            version, policy = self._policy(conn, inp.tenant_id, case.ruleset_version_id if case else None,
                                           case.policy if case else None, list(cust.groups or []), today)
            if policy is None:
                return StepOutput("close", inp.case_id, reason="no_dunning_policy"), None
            if policy.currency != inp.currency:
                # the ruleset's policy is written in its currency; a case in another applies its rules as such
                policy = replace(policy, currency=inp.currency)
        else:
            cust, case, version, policy = known.cust, known.case, known.version, known.policy
        opened = known.opened if known is not None else False
        items, states, disputed = DN.case_item_states(conn, inp.tenant_id, inp.customer_id, inp.currency,
                                                      known.disputed if known is not None else None)
        if state is None:
            state = DN.case_state(conn, inp.tenant_id, case.id) if case else CaseState()
        step = next_step(policy, items, today, state)
        if case is not None and case.hold_reason is not None and step.kind != "close":
            # paused by hand (POST /dunning/cases/{id}/pause): no stage until it is resumed
            step = replace(step, kind="paused", on=None, stage=0, reason="paused_by_hand")
        overdue_now = step.kind in ("stage", "paused", "done") or (step.kind == "wait" and step.stage > 0)
        if case is None and overdue_now:
            oldest = min((s for s in states if s.open > 0 and s.kind != "credit_balance"),
                         key=lambda s: (s.due_date, s.id))
            case, opened = DN.open_case_made(conn, inp.tenant_id, customer_id=inp.customer_id,
                                             account_id=oldest.account_id, currency=inp.currency,
                                             workflow_id=inp.workflow_id, ruleset_version_id=version,
                                             policy=policy.name, debtor=debtor_kind(cust.kind), today=today)
        cid = case.id if case else ""
        approval = False
        if case is not None:
            if step.kind == "wait":
                DN.set_status(conn, inp.tenant_id, cid, "waiting", next_stage=step.stage or None, next_on=step.on,
                              reason=step.reason)
            elif step.kind in ("paused", "done"):
                DN.set_status(conn, inp.tenant_id, cid, step.kind, reason=step.reason)
            elif step.kind == "stage":
                st = policy.stage(step.stage)
                approval = bool(st and st.approval)
        out = StepOutput(step.kind, cid, step.on.isoformat() if step.on else "", step.stage, approval,
                         format(step.overdue, "f"), step.currency, step.reason, policy.name, version or "",
                         state.stage, (policy.escalate_after_days or 0) if approval else 0)
        return out, _Known(cust, case, version, policy, items, state, states, disputed, opened)

    @activity.defn(name="dunning.advance")
    def advance(self, inp: CheckInput) -> StepOutput:
        """``check``, and while a stage that needs no approval is due, ``reach`` it and check again:
        what a wake-up does, in one transaction, reading the customer, the case and its policy once.
        Idempotent as each step is; a stage reached before a crash without its letter gets it here."""
        with write_transaction(self.engine) as conn:
            local, zone = self._local(inp, conn)
            step, known = self._check(conn, local)
            for _ in range(20):  # a policy's stages, at most
                if step.kind != "stage" or step.approval or known is None or known.case is None:
                    break
                arg = StageInput(inp.tenant_id, step.case_id, step.stage, local.today)
                # a case opened in this transaction has no stage rows to read
                row = None if known.opened else DN.stage_row(conn, arg.case_id, arg.stage)
                res = self._reach_in(conn, arg, self._plan_from(arg, known, row), known=known, row=row)
                step, known = self._check(conn, replace(local, case_id=step.case_id), known, res.get("state"))
        if self.letters and step.case_id:
            step.deliveries = self._deliveries(inp.tenant_id, step.case_id,
                                               self._missing_letters(inp.tenant_id, step.case_id))
        # a case whose policy hands nothing over has no exports to look for
        if step.case_id and (known is None or any("hand_over" in st.actions for st in known.policy.stages)):
            self._missing_handovers(inp.tenant_id, step.case_id)
        return _zoned(step, local, zone)

    def _reach_stage(self, inp: StageInput) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            return self._reach_in(conn, inp, self._plan(conn, inp)[1])

    def _reach_in(self, conn: Connection, inp: StageInput, plan: StagePlan, known: _Known | None = None,
                  row: Any = None) -> dict[str, Any]:
        """Reach the stage; ``known`` (with the stage's ``row``): what ``_check`` read in this transaction."""
        try:
            if known is None:
                res: dict[str, Any] = DN.reach_stage(conn, inp.tenant_id, inp.case_id, plan, inp.decided_by,
                                                     inp.reason)
            else:
                res = DN.reach_stage(conn, inp.tenant_id, inp.case_id, plan, inp.decided_by, inp.reason,
                                     cas=known.case, row=row, states=known.states, state=known.state)
        except ValueError as exc:
            raise ApplicationError(str(exc), type="stage_refused", non_retryable=True) from None
        if inp.decided_by != "system" and not res["duplicate"]:
            _audit(conn, inp.tenant_id, inp.decided_by, "dunning_stage.approve", f"{inp.case_id}:{inp.stage}",
                   {"stage": inp.stage, "total": format(plan.total, "f"), "reason": inp.reason})
        return res

    def _missing_letters(self, tenant_id: str, case_id: str) -> list[int]:
        """Archive the letter of every reached stage that has none; the stages it archived."""
        with self.engine.connect() as conn:
            reached = [x["stage"] for x in DN.stages_of(conn, tenant_id, case_id) if x["status"] == "reached"]
            have = {lt["stage"] for lt in DN.letters_of(conn, tenant_id, case_id)}
        done = []
        for stage in reached:
            if stage not in have:
                self._letter(tenant_id, case_id, stage)
                done.append(stage)
        return done

    def _deliveries(self, tenant_id: str, case_id: str, stages: list[int]) -> list[str]:
        """The queued e-mails of these stages' letters, handed over to the workflow to send."""
        if not self.delivers_email:
            return []
        from workflows.dunning.letters import hand_letter_over

        return [d for d in (hand_letter_over(self.engine, tenant_id, case_id, s) for s in stages) if d]

    def _missing_handovers(self, tenant_id: str, case_id: str) -> None:
        """The collection agency's export (CSV and JSON) of every reached stage that hands the
        case over, archived once per stage and format (after the stage's letter: it lists it)."""
        from workflows.dunning.letters import archive_handover

        with self.engine.connect() as conn:
            due = [x["stage"] for x in DN.stages_of(conn, tenant_id, case_id)
                   if x["status"] == "reached" and "hand_over" in x["detail"].get("actions", [])]
            if not due:
                return
            have = {(h["stage"], h["format"]) for h in DN.handovers_of(conn, tenant_id, case_id)}
        for stage in due:
            if (stage, "csv") not in have or (stage, "json") not in have:
                archive_handover(self.engine, tenant_id, case_id, stage)

    def _plan(self, conn: Connection, inp: StageInput) -> Any:
        case = DN.case(conn, inp.tenant_id, inp.case_id)
        cust = DN.customer_facts(conn, inp.tenant_id, case.customer_id)
        # the day the stage became due: an approval task keeps the day it was opened
        planned = DN.stage_planned_on(conn, inp.case_id, inp.stage) or date.fromisoformat(inp.today)
        _, policy = self._policy(conn, inp.tenant_id, case.ruleset_version_id, case.policy,
                                 list(cust.groups or []) if cust else [], planned)
        if policy is None:
            raise ApplicationError(f"the case's policy '{case.policy}' is gone from its ruleset version",
                                   type="ruleset_invalid", non_retryable=True)
        if policy.currency != case.currency:
            policy = replace(policy, currency=case.currency)
        items = DN.case_items(conn, inp.tenant_id, case.customer_id, case.currency)
        state = DN.case_state(conn, inp.tenant_id, case.id)
        return case, self._planned(policy, inp.stage, items, planned, state, case)

    def _plan_from(self, inp: StageInput, known: _Known, row: Any) -> StagePlan:
        """``_plan`` from what ``_check`` read just now (the case's policy: the version it keeps) and
        the stage's row (``DN.stage_row``: the day an approval task was opened)."""
        assert known.case is not None
        planned = (row.planned_on if row is not None else None) or date.fromisoformat(inp.today)
        return self._planned(known.policy, inp.stage, known.items, planned, known.state, known.case)

    @staticmethod
    def _planned(policy: DunningPolicy, stage: int, items: list[OverdueItem], planned: date, state: CaseState,
                 case: DN.CaseRow) -> StagePlan:
        try:
            return plan_stage(policy, stage, items, planned, state, case.debtor)
        except BaseRateUnknown as exc:
            # the case's ruleset version has no base rate for these days and never will: the stage
            # goes out without interest rather than never (said in the worker's log)
            activity.logger.warning("dunning case %s stage %s without interest: %s", case.id, stage, exc)
            return plan_stage(replace(policy, interest=()), stage, items, planned, state, case.debtor)

    @activity.defn(name="dunning.request_approval")
    def request_approval(self, inp: StageInput) -> StageOutput:
        with write_transaction(self.engine) as conn:
            _, plan = self._plan(conn, inp)
            status = DN.request_approval(conn, inp.tenant_id, inp.case_id, plan)
        return StageOutput(inp.stage, status)

    @activity.defn(name="dunning.reach")
    def reach(self, inp: StageInput) -> StageOutput:
        res = self._reach_stage(inp)
        letter_id = ""
        if self.letters:
            letter_id = self._letter(inp.tenant_id, inp.case_id, inp.stage)
        self._missing_handovers(inp.tenant_id, inp.case_id)
        # a retried reach finds its letter archived: its e-mail is named again while still queued
        # (the workflow's start of its delivery is refused by id if one started it already)
        deliveries = self._deliveries(inp.tenant_id, inp.case_id, [inp.stage]) if letter_id else []
        return StageOutput(inp.stage, "reached", list(res["charge_items"]), letter_id, bool(res["duplicate"]),
                           deliveries)

    def _letter(self, tenant_id: str, case_id: str, stage: int) -> str:
        from workflows.dunning.letters import archive_letter

        return archive_letter(self.engine, tenant_id, case_id, stage)

    @activity.defn(name="dunning.refuse")
    def refuse(self, inp: StageInput) -> None:
        with write_transaction(self.engine) as conn:
            DN.refuse_stage(conn, inp.tenant_id, inp.case_id, inp.stage, inp.decided_by, inp.reason)
            _audit(conn, inp.tenant_id, inp.decided_by, "dunning_stage.reject", f"{inp.case_id}:{inp.stage}",
                   {"stage": inp.stage, "reason": inp.reason})

    @activity.defn(name="dunning.close")
    def close(self, inp: CloseInput) -> list[str]:
        with write_transaction(self.engine) as conn:
            return DN.close_case(conn, inp.tenant_id, inp.case_id, date.fromisoformat(inp.today), inp.reason)

    @activity.defn(name="dunning.escalate")
    def escalate(self, inp: StageInput) -> bool:
        """The stage's approval task was left open past the policy's ``escalate after``: it goes to
        the admin role (``store.dunning.escalate_stage``, once)."""
        with write_transaction(self.engine) as conn:
            done = DN.escalate_stage(conn, inp.tenant_id, inp.case_id, inp.stage, "admin")
            if done:
                _audit(conn, inp.tenant_id, "system", "dunning_stage.escalate", f"{inp.case_id}:{inp.stage}",
                       {"stage": inp.stage, "assigned_role": "admin"})
        return done

    @activity.defn(name="dunning.pending")
    def pending(self, inp: SweepInput) -> list[list[str]]:
        with self.engine.connect() as conn:
            after = (inp.after[0], inp.after[1], inp.after[2]) if len(inp.after) == 3 else None
            return [list(p) for p in DN.overdue_pairs(conn, inp.tenant_id or None, date.fromisoformat(inp.as_of),
                                                      after=after, limit=inp.page or None)]

    @activity.defn(name="dunning.start_pending")
    async def start_pending(self, inp: SweepInput) -> list[Any]:
        """Start missing cases' workflows from here, side by side (child workflows of one sweep
        started a few per second: the server records each start in the parent's history), a page
        after another for up to ``_PAGES_FOR`` seconds: the next page is read while the last starts
        of the one before are still in flight (waiting for a page to drain cost ~4 s each: 2,000
        starts tail off to none in flight). Returns [started, last pair of the last page read
        (empty: that page was not full, nothing is left)]."""
        import asyncio

        from temporalio.common import WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        from workflows.dunning.types import DunningInput, dunning_workflow_id

        if self.client is None:
            raise ApplicationError("the dunning activities were built without a Temporal client",
                                   type="no_client", non_retryable=True)
        queue = inp.task_queue or activity.info().task_queue
        sem = asyncio.Semaphore(_STARTS_IN_FLIGHT)
        eager = queue == activity.info().task_queue
        queued = 0
        last_beat = 0.0
        waited = 0.0  # seconds the starts took, summed (the sweep's log: what limits its pace)

        def beat() -> None:
            # a sweep whose worker died is retried within the heartbeat timeout (30 s): a heartbeat
            # a second is plenty (one per start cost the worker ~0.2 ms of CPU each)
            nonlocal last_beat
            if monotonic() - last_beat >= _BEAT_EVERY:
                last_beat = monotonic()
                activity.heartbeat()

        outstanding = 0  # starts created and not finished (in flight or waiting for the semaphore)

        async def one(tenant_id: str, customer_id: str, currency: str) -> int:
            nonlocal outstanding
            try:
                return await start(tenant_id, customer_id, currency)
            finally:
                outstanding -= 1

        async def start(tenant_id: str, customer_id: str, currency: str) -> int:
            nonlocal queued, waited
            async with sem:
                began = monotonic()
                try:
                    h = await self.client.start_workflow(
                        "DunningWorkflow", DunningInput(tenant_id, customer_id, currency),
                        id=dunning_workflow_id(tenant_id, customer_id, currency), task_queue=queue,
                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                        # the first workflow task comes back with the start when this worker has a
                        # free slot for it (workflows.dunning.worker keeps some): no task queue
                        # round trip on the server; otherwise it is queued as usual
                        request_eager_start=eager)
                except WorkflowAlreadyStartedError:
                    return 0
                finally:
                    waited += monotonic() - began
                    beat()
                if eager and getattr(h, "__temporal_eagerly_started", False):
                    self._eager_seen = True
                elif eager and self._eager_seen:
                    # a worker that starts workflows eagerly (workflows.dunning.worker) is full: the
                    # task waits on the queue for a free worker; starting faster than the workers
                    # take them only grows the server's backlog (a worker whose polls hold every
                    # slot, the billing worker, never starts one eagerly and is not slowed down)
                    queued += 1
                    await asyncio.sleep(_QUEUED_PAUSE)
                return 1

        activity.heartbeat()
        tasks: list[asyncio.Task[int]] = []
        until, page, last = monotonic() + _PAGES_FOR, inp, list(inp.after)
        while True:
            pairs = await asyncio.to_thread(self.pending, page)
            outstanding += len(pairs)
            tasks += [asyncio.ensure_future(one(*p)) for p in pairs]
            full = bool(inp.page) and len(pairs) == inp.page
            last = list(pairs[-1]) if full else []
            if not full or monotonic() >= until:
                break
            # read the next page while this one's last starts are in flight (pairs with an open
            # case are not read again, and the next page begins after this one's last pair)
            while outstanding > 2 * _STARTS_IN_FLIGHT:
                await asyncio.sleep(0.05)
            page = replace(inp, after=last)
        started = sum(await asyncio.gather(*tasks))
        _log.info("dunning sweep: %d workflows started, %d of them queued (no eager start); "
                             "%.0f ms a start, %d at once", started, queued,
                             1000 * waited / max(len(tasks), 1), _STARTS_IN_FLIGHT)
        return [started, last]


def _audit(conn: Any, tenant_id: str, user_id: str, action: str, entity_id: str, data: dict[str, Any]) -> None:
    from workflows.billing.activities import _audit as billing_audit

    billing_audit(conn, tenant_id, user_id, "approver", action, "dunning_stage", entity_id, data)


def _zoned(out: StepOutput, local: CheckInput, zone: Any) -> StepOutput:
    """Tell the workflow the day decided on and when a wait's day begins in the tenant's zone."""
    if zone is not None:
        out.today = local.today
        if out.kind == "wait" and out.on:
            out.wake_at = datetime.combine(date.fromisoformat(out.on), time(0, 0), tzinfo=zone).isoformat()
    return out
