"""The Temporal Schedules that start the billing runs (one per tenant and calendar): the manual
sync, the resync after a ruleset publication, and the middleware that makes the schedules follow
the accounts' writes."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from litestar import Request

from api.areas.billing.common import app_client, task_queue, temporal_client, temporal_configured
from api.auth import actor_of
from api.crud import ReadModel, route

__all__ = ["ScheduleResync", "ScheduleSync", "follow_schedules", "handlers", "resync_after_publish"]

log = logging.getLogger("evbill.billing.api")


class RunScheduleSync(ReadModel):
    """How many run schedules (one per calendar: cycle and zone) were created, updated, left as
    they were, deleted (no account left in their calendar), or failed."""

    created: int
    updated: int
    unchanged: int
    deleted: int
    failed: int


class ScheduleSync(ReadModel):
    """Per account, what happened to the schedule that bills it (its calendar's run schedule, which
    starts one billing run for all of the calendar's accounts at the cut-off): created, updated
    (also: its own schedule of before replaced by the run schedule), left as it was, paused (a
    closed account whose own schedule was removed: the runs skip it until it is reopened), deleted
    (ad-hoc or deleted accounts whose own schedule was removed), had none to touch, or failed; and
    the run schedules' own counts (``runs``)."""

    created: int
    updated: int
    unchanged: int
    paused: int
    deleted: int
    absent: int
    failed: int
    runs: RunScheduleSync

    @classmethod
    def of(cls, counts: dict[str, int]) -> ScheduleSync:
        runs = RunScheduleSync(**{k[5:]: v for k, v in counts.items() if k.startswith("runs_")})
        return cls(runs=runs, **{k: v for k, v in counts.items() if not k.startswith("runs_")})


@route("POST", "/billing/schedules/sync", operation_id="sync_billing_schedules", roles="admin", status_code=200,
       summary="Reconcile the Temporal Schedules that start the billing runs of all billing accounts "
               "(idempotent)")
async def sync_billing_schedules(request: Request[Any, Any, Any]) -> ScheduleSync:
    from workflows.billing.schedules import sync_schedules

    actor = actor_of(request)
    client = await temporal_client(request)
    counts = await sync_schedules(client, request.app.state.engine, actor.tenant_id, task_queue(request.app))
    return ScheduleSync.of(counts)


class ScheduleResync(ReadModel):
    """What publishing a ruleset version did to the tenant's billing Schedules: ``not_configured``
    (no Temporal server: nothing), ``not_needed`` (its billing policies' cycle, cut-off day and time
    zone are those of the version it follows), ``synced`` (in force now: resynced at once, with the
    counts of ``POST /billing/schedules/sync``), ``deferred`` (in force from ``effective_from``: a
    durable workflow resyncs then), ``failed`` (Temporal could not be reached: the version is
    published all the same; ``POST /billing/schedules/sync`` repairs)."""

    status: Literal["not_configured", "not_needed", "synced", "deferred", "failed"]
    detail: str
    effective_from: datetime | None = None
    counts: ScheduleSync | None = None


# a publication waits this long for an immediate resync before it answers with a warning
RESYNC_TIMEOUT_S = 60.0


async def resync_after_publish(app: Any, tenant_id: str, version_id: str) -> ScheduleResync:
    """Resync the tenant's schedules after ``version_id`` was published (and committed), when it
    changes a billing policy: now if it is in force now, else when it takes effect. Never raises:
    the publication stands whatever Temporal says."""
    from workflows.billing.schedules import billing_policy_change, sync_schedules

    if not temporal_configured(app):
        return ScheduleResync(status="not_configured", detail="no Temporal server is configured: schedules unchanged")
    change = await asyncio.to_thread(billing_policy_change, app.state.engine, tenant_id, version_id)
    if change is None:
        return ScheduleResync(status="not_needed",
                              detail="the billing policies' cycle, cut-off day and time zone are unchanged")
    queue = task_queue(app)
    try:
        client = await app_client(app)
        if change.effective_from <= datetime.now(UTC):
            counts = await asyncio.wait_for(sync_schedules(client, app.state.engine, tenant_id, queue),
                                            RESYNC_TIMEOUT_S)
            return ScheduleResync(status="synced", detail="the tenant's billing schedules follow the new policy",
                                  effective_from=change.effective_from, counts=ScheduleSync.of(counts))
        await _start_deferred_sync(client, tenant_id, version_id, change.effective_from, queue)
    except Exception as exc:  # noqa: BLE001 - the version is published; the manual sync repairs
        log.warning("ruleset version %s changes billing policies; schedules not resynced: %r", version_id, exc)
        return ScheduleResync(status="failed", effective_from=change.effective_from,
                              detail=f"billing schedules not resynced ({type(exc).__name__}: {exc}); "
                                     "run POST /billing/schedules/sync once Temporal is reachable"
                                     + ("" if change.effective_from <= datetime.now(UTC)
                                        else " and again after the version takes effect"))
    return ScheduleResync(status="deferred", effective_from=change.effective_from,
                          detail="the billing schedules are resynced when the version takes effect")


async def _start_deferred_sync(client: Any, tenant_id: str, version_id: str, at: datetime, queue: str) -> None:
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from workflows.billing.schedule_sync import ScheduleSyncWorkflow, schedule_sync_workflow_id
    from workflows.billing.types import ScheduleSyncInput

    try:
        await client.start_workflow(ScheduleSyncWorkflow.run, ScheduleSyncInput(tenant_id, at.isoformat(), queue,
                                                                                 version_id),
                                    id=schedule_sync_workflow_id(tenant_id, version_id), task_queue=queue)
    except WorkflowAlreadyStartedError:
        pass  # a retried publication: the version's sync is already waiting


def follow_schedules(app: Any) -> Any:
    """ASGI middleware for the billing-account routes: after a successful write, the tenant's run
    schedules follow it (its calendar's created for an active account, a calendar left without
    accounts deleted, the account's own schedule of before removed). Without a Temporal server
    configured it does nothing at all; a schedule that cannot be written is logged
    (``POST /billing/schedules/sync`` repairs it) and never fails the account write, which is
    committed by then."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") == "GET" or not temporal_configured(scope["app"]):
            await app(scope, receive, send)
            return
        sent: list[Any] = []

        async def keep(message: Any) -> None:
            sent.append(message)

        try:
            was = await _calendar_before(scope)
        except Exception as exc:  # noqa: BLE001 - the write goes on; a sync repairs what is left
            log.warning("billing account calendar not read before the write: %s", exc)
            was = None
        await app(scope, receive, keep)
        try:
            await _follow_written(scope, sent, was)
        except Exception as exc:  # noqa: BLE001 - see above: the write stands, sync repairs the schedule
            log.warning("billing account schedule not updated: %s", exc)
        for message in sent:
            await send(message)

    return middleware


async def _calendar_before(scope: Any) -> str | None:
    """The id of the run schedule that bills the account before the write (None: a create, or an
    account in no calendar): should the write move it, that calendar may be left without accounts,
    and the schedule listing, which lags behind, may not show it yet."""
    from workflows.billing.schedules import plan_schedules
    from workflows.billing.types import run_schedule_id

    account_id = scope.get("path_params", {}).get("billing_account_id")
    user = scope.get("user")
    if account_id is None or user is None:
        return None
    [plan] = await asyncio.to_thread(plan_schedules, scope["app"].state.engine, user.tenant_id, [account_id])
    return run_schedule_id(user.tenant_id, plan.cycle, plan.timezone) if plan.cycle is not None else None


async def _follow_written(scope: Any, sent: list[Any], was: str | None = None) -> None:
    import json

    from workflows.billing.schedules import follow_account

    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None or not 200 <= start["status"] < 300:
        return
    account_id = scope.get("path_params", {}).get("billing_account_id")
    if account_id is None:  # a create: the new id is in the response
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        account_id = json.loads(body)["id"]
    app, tenant_id = scope["app"], scope["user"].tenant_id
    client = await app_client(app)
    outcome = await follow_account(client, app.state.engine, tenant_id, account_id, task_queue(app),
                                   also=[was] if was else [])
    log.info("billing account %s: schedule %s", account_id, outcome)


handlers = [sync_billing_schedules]
