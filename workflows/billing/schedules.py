"""Schedules start month-end: one Temporal Schedule per tenant and calendar (cycle, cut-off day,
zone: ``worker.ensure_run_schedule``) starts one ``BillingRunWorkflow`` at each cut-off, which
bills every active account of that calendar in batches and gives an account that needs a person
(a held draft, an approval) its own ``BillingCycleWorkflow``. A closed account is skipped by the
run (reopening bills it again), an ad-hoc account is in no calendar; a calendar without accounts
loses its schedule.

Before the runs, each account had a Schedule of its own (``worker.ensure_schedule``) that started
a ``BillingCycleWorkflow`` per cut-off; the sync deletes those and bills their accounts by the run
schedules. ``POST /billing/schedules/sync`` still counts per account what happened to the
schedule that bills it (created, updated, unchanged, paused, deleted, absent, failed) and adds the
run schedules' own counts (``runs_*``).

The calendar comes from the same policy the cycle itself reads (``activities.account_calendar``):
the account's cycle, the cut-off day of the ruleset's ``billing`` block named by that cycle (else
the first one; day 1 without any), and the block's time zone, else the account's.

A published ruleset version whose billing policies differ from those it follows
(``billing_policy_change``: the cycle, cut-off day and time zone of its ``billing`` blocks) has
the API resync the tenant's schedules: at once when it is already in force, else by
``ScheduleSyncWorkflow``, which waits durably until the version takes effect and then runs
``sync_schedules`` as an activity (``ScheduleActivities``). A schedule always follows the policy in
force *now*, so a version effective next month must not move it today: until then the current
policy's cut-offs still close the current periods.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleSpec,
)
from temporalio.service import RPCError, RPCStatusCode

from store import cycle as C
from workflows.billing.activities import account_calendar
from workflows.billing.types import TASK_QUEUE, ScheduleSyncInput, run_schedule_id
from workflows.billing.worker import _spec, ensure_run_schedule, schedule_id

__all__ = ["PolicyChange", "ScheduleActivities", "SchedulePlan", "billing_policy_change", "follow_account",
           "plan_schedules", "sync_schedules"]

log = logging.getLogger("evbill.billing.schedules")


@dataclass(frozen=True, slots=True)
class SchedulePlan:
    """What an account's schedule should be: ``cycle`` None means no schedule (ad hoc, deleted)."""

    account_id: str
    cycle: str | None
    cut_off_day: int = 1
    timezone: str = ""
    active: bool = True


def _read_policies(row: Any) -> Any:
    from dsl.compiler import compile_ruleset

    if row is None:
        return None
    res = compile_ruleset(row.source, f"{row.dsl_name or row.id}.evb")
    return res.ruleset.policies if res.ruleset is not None else None


def _policies(engine: Engine, tenant_id: str, at: datetime) -> Any:
    """The billing policies of the tenant's ruleset version in force at ``at`` (None without one)."""
    with engine.connect() as conn:
        return _read_policies(C.version_in_force(conn, tenant_id, at))


def _calendars(pols: Any) -> tuple[tuple[str, str, int, str], ...]:
    """What of the billing policies the schedules depend on."""
    return tuple((b.name, b.cycle, b.cut_off_day, b.timezone) for b in pols.billing) if pols is not None else ()


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A published version's billing calendars against those of the version it follows."""

    version_id: str
    effective_from: datetime
    before: tuple[tuple[str, str, int, str], ...]
    after: tuple[tuple[str, str, int, str], ...]


def billing_policy_change(engine: Engine, tenant_id: str, version_id: str) -> PolicyChange | None:
    """How ``version_id`` changes the billing policies the schedules follow (cycle, cut-off day, time
    zone of each ``billing`` block) against the version in force just before its effective date;
    None when it changes none of them (or is not the tenant's)."""
    with engine.connect() as conn:
        new = C.version(conn, tenant_id, version_id)
        if new is None:
            return None
        before = C.version_in_force(conn, tenant_id, new.effective_from, but=new.id)
    old_cal, new_cal = _calendars(_read_policies(before)), _calendars(_read_policies(new))
    if old_cal == new_cal:
        return None
    eff = new.effective_from if new.effective_from.tzinfo else new.effective_from.replace(tzinfo=UTC)
    return PolicyChange(new.id, eff, old_cal, new_cal)


def plan_schedules(engine: Engine, tenant_id: str, account_ids: list[str] | None = None) -> list[SchedulePlan]:
    """The wanted schedule of the given accounts of the tenant (all of them when None); an id that
    names no account of the tenant plans none."""
    with engine.connect() as conn:
        rows = C.schedule_accounts(conn, tenant_id, account_ids)
    pols = _policies(engine, tenant_id, datetime.now(UTC)) if rows else None
    out = []
    for r in rows:
        cycle, day, zone = account_calendar(pols, r.billing_cycle, r.timezone)
        out.append(SchedulePlan(r.id, None if cycle == "ad_hoc" else cycle, day, zone, r.status == "active"))
    found = {p.account_id for p in out}
    out += [SchedulePlan(a, None) for a in account_ids or () if a not in found]
    return out


def _ranges(rs: Any) -> list[tuple[int, int, int]]:
    return [(r.start, r.end or r.start, r.step or 1) for r in rs]


def _signature(spec: ScheduleSpec) -> tuple[Any, ...]:
    cals = tuple((tuple(_ranges(c.day_of_month)), tuple(_ranges(c.month)), tuple(_ranges(c.hour)),
                  tuple(_ranges(c.minute))) for c in spec.calendars)
    return cals, spec.time_zone_name or ""


async def _describe(handle: ScheduleHandle) -> ScheduleDescription | None:
    try:
        return await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _follow_run(client: Client, tenant_id: str, cycle: str, cut_off_day: int, timezone: str,
                      task_queue: str) -> str:
    """Bring one calendar's run schedule to its plan: created | updated | unchanged."""
    desc = await _describe(client.get_schedule_handle(run_schedule_id(tenant_id, cycle, timezone)))
    if desc is not None:
        action = desc.schedule.action
        if (_signature(desc.schedule.spec) == _signature(_spec(cycle, cut_off_day, timezone))
                and isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "BillingRunWorkflow"
                and action.task_queue == task_queue and not desc.schedule.state.paused):
            return "unchanged"
    await ensure_run_schedule(client, tenant_id, cycle, cut_off_day, timezone, task_queue)
    return "created" if desc is None else "updated"


async def _delete(client: Client, sid: str) -> bool:
    """Delete a schedule; False when there was none."""
    try:
        await client.get_schedule_handle(sid).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


_COUNTS = ("created", "updated", "unchanged", "paused", "deleted", "absent", "failed")
_RUN_COUNTS = ("runs_created", "runs_updated", "runs_unchanged", "runs_deleted", "runs_failed")


async def _sync(client: Client, engine: Engine, tenant_id: str, task_queue: str, concurrency: int,
                also: Sequence[str] = ()) -> tuple[dict[str, str], Counter[str]]:
    """Reconcile the tenant's run schedules with its accounts' calendars and delete the accounts'
    own schedules of before; what happened per account, and to the run schedules. ``also``: run
    schedules that may exist though the listing does not show them yet."""
    plans = await asyncio.to_thread(plan_schedules, engine, tenant_id)
    own_prefix, run_prefix = schedule_id(tenant_id, ""), run_schedule_id(tenant_id, "", "")[:-1]
    own: set[str] = set()
    runs: set[str] = set()
    async for s in await client.list_schedules():
        if s.id.startswith(own_prefix):
            own.add(s.id[len(own_prefix):])
        elif s.id.startswith(run_prefix):
            runs.add(s.id)
    wanted: dict[tuple[str, str], int] = {}
    for p in plans:
        if p.cycle is not None and p.active:
            wanted.setdefault((p.cycle, p.timezone), p.cut_off_day)
    # the listing is eventually consistent: a calendar a closed account was in a moment ago may not
    # be listed yet
    runs |= {run_schedule_id(tenant_id, p.cycle, p.timezone) for p in plans if p.cycle is not None}
    runs |= {sid for sid in also if sid.startswith(run_prefix)}
    sem = asyncio.Semaphore(concurrency)
    run_counts: Counter[str] = Counter()
    outcome: dict[tuple[str, str], str] = {}

    async def run(cycle: str, zone: str, day: int) -> None:
        async with sem:
            try:
                outcome[cycle, zone] = await _follow_run(client, tenant_id, cycle, day, zone, task_queue)
            except Exception as exc:  # noqa: BLE001 - one bad calendar (an unusable zone) must not stop the rest
                log.warning("run schedule of tenant %s, %s in %r, not reconciled: %s", tenant_id, cycle, zone, exc)
                outcome[cycle, zone] = "failed"
            run_counts["runs_" + outcome[cycle, zone]] += 1

    async def drop(sid: str) -> None:
        async with sem:
            if await _delete(client, sid):
                run_counts["runs_deleted"] += 1

    await asyncio.gather(*(run(c, z, d) for (c, z), d in wanted.items()),
                         *(drop(sid) for sid in runs - {run_schedule_id(tenant_id, c, z) for c, z in wanted}))

    known = {p.account_id for p in plans}
    gone = own - known  # schedules whose account is gone
    plans += [SchedulePlan(a, None) for a in sorted(gone)]
    per_account: dict[str, str] = {}

    async def one(p: SchedulePlan) -> None:
        async with sem:
            had_own = p.account_id in own
            try:
                if had_own:
                    had_own = await _delete(client, schedule_id(tenant_id, p.account_id))
            except Exception as exc:  # noqa: BLE001 - one account's old schedule must not stop the rest
                log.warning("old schedule of billing account %s not deleted: %s", p.account_id, exc)
                per_account[p.account_id] = "failed"
                return
            if p.cycle is None:
                if p.account_id in gone and not had_own:
                    return  # the listing (eventually consistent) still showed a schedule already deleted
                per_account[p.account_id] = "deleted" if had_own else "absent"
            elif not p.active:
                per_account[p.account_id] = "paused" if had_own else "absent"
            else:
                run_outcome = outcome[p.cycle, p.timezone]
                per_account[p.account_id] = "updated" if had_own and run_outcome == "unchanged" else run_outcome

    await asyncio.gather(*(one(p) for p in plans))
    return per_account, run_counts


async def follow_account(client: Client, engine: Engine, tenant_id: str, account_id: str,
                         task_queue: str = TASK_QUEUE, also: Sequence[str] = ()) -> str:
    """After an account was written: the tenant's run schedules follow its calendars (one created
    for a new calendar, one left without accounts deleted) and the account's own schedule of
    before is gone; returns what happened to the schedule that bills the account (as counted by
    ``sync_schedules``): created | updated | unchanged | paused | deleted | absent | failed.
    ``also``: the run schedule that billed the account before its write (``_sync``)."""
    per_account, _runs = await _sync(client, engine, tenant_id, task_queue, 16, also)
    return per_account.get(account_id, "absent")


async def sync_schedules(client: Client, engine: Engine, tenant_id: str, task_queue: str = TASK_QUEUE,
                         concurrency: int = 16) -> dict[str, int]:
    """Reconcile the tenant's run schedules and delete its accounts' own schedules of before.
    Idempotent: a second run finds everything ``unchanged`` (or ``absent``). The counts are per
    account (``_COUNTS``: what happened to the schedule that bills it) and per run schedule
    (``_RUN_COUNTS``)."""
    per_account, run_counts = await _sync(client, engine, tenant_id, task_queue, concurrency)
    counts = Counter(per_account.values())
    return {k: counts.get(k, 0) for k in _COUNTS} | {k: run_counts.get(k, 0) for k in _RUN_COUNTS}


class ScheduleActivities:
    """The schedule sync as an activity, for ``ScheduleSyncWorkflow`` (the worker's own client
    writes the schedules)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[Any]:
        return [self.sync]

    @activity.defn(name="billing.sync_schedules")
    async def sync(self, inp: ScheduleSyncInput) -> dict[str, int]:
        counts = await sync_schedules(activity.client(), self.engine, inp.tenant_id, inp.task_queue)
        log.info("schedules of tenant %s resynced for ruleset version %s: %s", inp.tenant_id, inp.version_id,
                 counts)
        return counts
