"""Schedules follow billing accounts: each active monthly or quarterly account has one Temporal
Schedule (``worker.ensure_schedule``) that starts its cycle at the cut-off; a closed account's
schedule is paused (reopening resumes it), an ad-hoc or deleted account's schedule is deleted.

The calendar comes from the same policy the cycle itself reads (``BillingActivities._policies``):
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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client, ScheduleDescription, ScheduleHandle, ScheduleSpec
from temporalio.service import RPCError, RPCStatusCode

from store import cycle as C
from workflows.billing.types import TASK_QUEUE, ScheduleSyncInput
from workflows.billing.worker import _spec, ensure_schedule, schedule_id

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
        billing = (pols.billing_named(r.billing_cycle) or pols.billing_named(None)) if pols is not None else None
        cycle = r.billing_cycle if r.billing_cycle in ("monthly", "quarterly", "ad_hoc") else \
            (billing.cycle if billing is not None else "monthly")
        out.append(SchedulePlan(r.id, None if cycle == "ad_hoc" else cycle,
                                billing.cut_off_day if billing is not None else 1,
                                (billing.timezone if billing is not None else "") or r.timezone, r.status == "active"))
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


async def follow_account(client: Client, tenant_id: str, plan: SchedulePlan, task_queue: str = TASK_QUEUE) -> str:
    """Bring one account's schedule to its plan; returns what happened: created | updated |
    unchanged | paused | deleted | absent."""
    handle = client.get_schedule_handle(schedule_id(tenant_id, plan.account_id))
    desc = await _describe(handle)
    if plan.cycle is None:
        if desc is None:
            return "absent"
        await handle.delete()
        return "deleted"
    if not plan.active:
        if desc is None:
            return "absent"  # a closed account gets no new schedule
        if desc.schedule.state.paused:
            return "unchanged"
        await handle.pause(note="billing account closed")
        return "paused"
    if desc is not None:
        action = desc.schedule.action
        same = (_signature(desc.schedule.spec) == _signature(_spec(plan.cycle, plan.cut_off_day, plan.timezone))
                and getattr(action, "task_queue", None) == task_queue and not desc.schedule.state.paused)
        if same:
            return "unchanged"
    await ensure_schedule(client, tenant_id, plan.account_id, plan.cycle, plan.cut_off_day, plan.timezone,
                          task_queue=task_queue)
    return "created" if desc is None else "updated"


async def sync_schedules(client: Client, engine: Engine, tenant_id: str, task_queue: str = TASK_QUEUE,
                         concurrency: int = 16) -> dict[str, int]:
    """Reconcile every account's schedule of the tenant, and delete schedules whose account is
    gone. Idempotent: a second run finds everything ``unchanged`` (or ``absent``)."""
    plans = await asyncio.to_thread(plan_schedules, engine, tenant_id)
    prefix = schedule_id(tenant_id, "")
    known = {p.account_id for p in plans}
    async for s in await client.list_schedules():
        if s.id.startswith(prefix) and s.id[len(prefix):] not in known:
            plans.append(SchedulePlan(s.id[len(prefix):], None))
    sem = asyncio.Semaphore(concurrency)
    counts: Counter[str] = Counter()

    async def one(p: SchedulePlan) -> None:
        async with sem:
            try:
                counts[await follow_account(client, tenant_id, p, task_queue)] += 1
            except Exception as exc:  # noqa: BLE001 - one bad account (an unusable zone) must not stop the rest
                log.warning("schedule of billing account %s not reconciled: %s", p.account_id, exc)
                counts["failed"] += 1

    await asyncio.gather(*(one(p) for p in plans))
    return {k: counts.get(k, 0) for k in ("created", "updated", "unchanged", "paused", "deleted", "absent", "failed")}


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
