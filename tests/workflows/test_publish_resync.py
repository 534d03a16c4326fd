"""Publishing a ruleset version that changes a billing policy (cycle, cut-off day, time zone)
resyncs the tenant's Temporal Schedules, on a real dev server: at once for a version already in
force, when it takes effect for a future one (a durable workflow waits for it), not at all for a
version whose billing policies are unchanged or without Temporal; an unreachable Temporal server
does not fail the publication but says so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from api.app import Settings, create_app
from store.tenants import bootstrap_tenant, create_user, issue_key
from tests.workflows.test_account_schedules import ZERO_RUNS, Api, _cal, _run, _runs
from workflows.billing.embedded import free_port
from workflows.billing.schedule_sync import ScheduleSyncWorkflow, schedule_sync_workflow_id
from workflows.billing.worker import build_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


def ruleset(billing: str, energy: str = "0.40") -> str:
    return f"""ruleset resync currency EUR timezone Europe/Berlin
tariff ac "AC" {{ vat 19% energy {energy} per kWh }}
billing monthly {{ {billing} }}
"""


class Tenant:
    def __init__(self, engine: Engine, name: str) -> None:
        with Session(engine) as db:
            tenant, cred = bootstrap_tenant(db, name)
            self.id, self.admin_key = tenant.id, cred.key
            u = create_user(db, tenant.id, f"approver@{name}.test", "approver")
            db.flush()
            self.approver_key = issue_key(db, tenant.id, u.id, "approver")[1]
            db.commit()
        self.ruleset_id = ""

    async def publish(self, c: httpx.AsyncClient, source: str, effective: datetime) -> dict[str, Any]:
        admin = Api(c, self.admin_key)
        if not self.ruleset_id:
            self.ruleset_id = (await admin("POST", "/rulesets", {"name": "resync"}))["id"]
        draft = await admin("POST", f"/rulesets/{self.ruleset_id}/drafts", {"source": source})
        assert draft["ok"], draft
        # the author may not publish: the approver does
        return await Api(c, self.approver_key)("POST", f"/rulesets/{self.ruleset_id}/versions", {
            "draft_id": draft["id"], "effective_from": effective.isoformat()}, status=201)


async def _wait_for_day(dev: WorkflowEnvironment, tid: str, zone: str, day: int, seconds: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        d = await _run(dev.client, tid, "monthly", zone)
        cal = _cal(d) if d is not None else None
        if (cal is not None and cal[0] == [(day, day)]) or asyncio.get_running_loop().time() > deadline:
            return cal
        await asyncio.sleep(0.2)


async def test_publishing_a_billing_policy_change_resyncs_schedules(dev: WorkflowEnvironment, engine: Engine,
                                                                    task_queue: str) -> None:
    t = Tenant(engine, "resync")
    app = create_app(Settings(engine=engine, migrate=False))
    app.state.temporal = dev.client
    app.state.billing_task_queue = task_queue
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c, \
            build_worker(dev.client, engine, task_queue):
        api = Api(c, t.admin_key)
        v1 = await t.publish(c, ruleset("cycle monthly; cut_off day 5"), datetime(2020, 1, 1, tzinfo=UTC))
        # the first billing policy: a sync with no account yet
        assert v1["schedules"]["status"] == "synced" and v1["warnings"] == []
        assert v1["schedules"]["counts"] == {"created": 0, "updated": 0, "unchanged": 0, "paused": 0, "deleted": 0,
                                             "absent": 0, "failed": 0, "runs": ZERO_RUNS}
        cus = await api("POST", "/customers", {"name": "Fleet GmbH"})
        await api("POST", "/billing-accounts", {"customer_id": cus["id"], "timezone": "Europe/Berlin"}, status=201)
        assert _cal(await _run(dev.client, t.id, "monthly", "Europe/Berlin")) == \
            ([(5, 5)], [(1, 12, 1)], 0, 5, "Europe/Berlin")

        # a new energy price, the same billing policy: the schedules are left alone
        v2 = await t.publish(c, ruleset("cycle monthly; cut_off day 5", "0.45"), datetime(2021, 1, 1, tzinfo=UTC))
        assert v2["schedules"] == {"status": "not_needed", "effective_from": None, "counts": None,
                                   "detail": "the billing policies' cycle, cut-off day and time zone are unchanged"}

        # another cut-off day, in force at once: resynced by the publication itself
        v3 = await t.publish(c, ruleset("cycle monthly; cut_off day 12"), datetime(2022, 1, 1, tzinfo=UTC))
        assert v3["schedules"]["status"] == "synced", v3
        assert v3["schedules"]["counts"]["updated"] == 1 and v3["schedules"]["counts"]["failed"] == 0
        assert v3["schedules"]["counts"]["runs"] == {**ZERO_RUNS, "updated": 1}
        assert _cal(await _run(dev.client, t.id, "monthly", "Europe/Berlin")) == \
            ([(12, 12)], [(1, 12, 1)], 0, 5, "Europe/Berlin")

        # a future version in another zone: today's cut-offs stay until it takes effect, then the
        # schedules follow it (the zone's calendar is a new schedule, Berlin's is deleted)
        soon = datetime.now(UTC) + timedelta(seconds=4)
        v4 = await t.publish(c, ruleset("cycle monthly; cut_off day 20; timezone Europe/Lisbon"), soon)
        assert v4["schedules"]["status"] == "deferred" and v4["warnings"] == []
        assert datetime.fromisoformat(v4["schedules"]["effective_from"]) == soon
        assert _cal(await _run(dev.client, t.id, "monthly", "Europe/Berlin"))[0] == [(12, 12)]
        handle = dev.client.get_workflow_handle(schedule_sync_workflow_id(t.id, v4["id"]))
        counts = await asyncio.wait_for(handle.result(), 60)
        assert counts["created"] == 1 and counts["failed"] == 0
        assert (counts["runs_created"], counts["runs_deleted"]) == (1, 1)
        assert datetime.now(UTC) >= soon
        # orchestration only: its history replays in the SDK's sandbox
        await Replayer(workflows=[ScheduleSyncWorkflow], workflow_runner=SandboxedWorkflowRunner()).replay_workflow(
            await handle.fetch_history())
        assert await _wait_for_day(dev, t.id, "Europe/Lisbon", 20) == ([(20, 20)], [(1, 12, 1)], 0, 5, "Europe/Lisbon")
        assert await _runs(dev.client, t.id, ["monthly:Europe/Lisbon"]) == ["monthly:Europe/Lisbon"]


async def test_without_temporal_or_when_it_is_unreachable_the_version_is_published(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Tenant(engine, "resync2")
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    app = create_app(Settings(engine=engine, migrate=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        v1 = await t.publish(c, ruleset("cycle monthly; cut_off day 5"), datetime(2020, 1, 1, tzinfo=UTC))
        assert v1["schedules"]["status"] == "not_configured" and v1["warnings"] == []
        # a Temporal address where nothing listens: published all the same, with a warning
        monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
        v2 = await t.publish(c, ruleset("cycle monthly; cut_off day 9"), datetime(2021, 1, 1, tzinfo=UTC))
        assert v2["schedules"]["status"] == "failed"
        [warning] = v2["warnings"]
        assert warning.startswith("billing schedules not resynced (") and "POST /billing/schedules/sync" in warning
        listed = await Api(c, t.admin_key)("GET", f"/rulesets/{t.ruleset_id}/versions")
        assert [v["version"] for v in listed["items"]] == [1, 2]
