"""Schedules follow billing accounts through the API, on a real Temporal dev server (the
time-skipping test server has no schedules): creating an account makes its schedule with the
cut-off of the ruleset's billing policy, changing the cycle moves it, closing pauses it, ad hoc and
deleting remove it, and ``POST /billing/schedules/sync`` reconciles idempotently."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import Settings, create_app
from store.models import BillingAccount
from store.tenants import bootstrap_tenant, create_user, issue_key
from workflows.billing.worker import ensure_schedule, schedule_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

RULESET = """ruleset sched currency EUR timezone Europe/Berlin
tariff ac "AC" { vat 19% energy 0.40 per kWh }
billing monthly { cycle monthly; cut_off day 5 }
billing quarterly { cycle quarterly; cut_off day 10; timezone Europe/Lisbon }
"""


class Api:
    def __init__(self, c: httpx.AsyncClient, key: str) -> None:
        self.c, self.h = c, {"Authorization": f"Bearer {key}"}

    async def __call__(self, method: str, url: str, body: Any = None, status: int | None = None) -> Any:
        r = await self.c.request(method, url, json=body, headers=self.h)
        assert r.status_code == (status or r.status_code) and r.status_code < 300, (r.status_code, r.text)
        return r.json() if r.content else None


async def _desc(client: Client, tenant: str, account: str) -> Any:
    try:
        return await client.get_schedule_handle(schedule_id(tenant, account)).describe()
    except RPCError:
        return None


def _cal(d: Any) -> tuple[Any, ...]:
    cal = d.schedule.spec.calendars[0]
    return ([(r.start, r.end or r.start) for r in cal.day_of_month],
            [(r.start, r.end or r.start, r.step or 1) for r in cal.month],
            cal.hour[0].start, cal.minute[0].start, d.schedule.spec.time_zone_name)


async def test_schedules_follow_accounts_and_sync_is_idempotent(dev: WorkflowEnvironment, engine: Engine) -> None:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "sched")
        tid = tenant.id
        keys = {}
        for role in ("approver", "operator"):
            u = create_user(db, tid, f"{role}@sched.test", role)
            db.flush()
            keys[role] = issue_key(db, tid, u.id, role)[1]
        db.commit()
    app = create_app(Settings(engine=engine, migrate=False))
    app.state.temporal = dev.client
    app.state.billing_task_queue = "sched-tq"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        api = Api(c, cred.key)
        rs = await api("POST", "/rulesets", {"name": "sched"})
        draft = await api("POST", f"/rulesets/{rs['id']}/drafts", {"source": RULESET})
        assert draft["ok"], draft
        await Api(c, keys["approver"])("POST", f"/rulesets/{rs['id']}/versions", {
            "draft_id": draft["id"], "effective_from": "2020-01-01T00:00:00Z"})
        cus = await api("POST", "/customers", {"name": "Fleet GmbH"})
        acc = (await api("POST", "/billing-accounts", {"customer_id": cus["id"], "timezone": "Europe/Berlin"},
                         status=201))["id"]
        # created with the account: the monthly policy's cut-off day 5, local 00:05 in the account's zone
        d = await _desc(dev.client, tid, acc)
        assert d is not None and not d.schedule.state.paused
        assert _cal(d) == ([(5, 5)], [(1, 12, 1)], 0, 5, "Europe/Berlin")
        action = d.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "BillingCycleWorkflow"
        assert action.task_queue == "sched-tq" and action.id == f"billing:{tid}:{acc}:scheduled"
        # quarterly: the quarterly policy (day 10, its own zone), every third month from January
        await api("PATCH", f"/billing-accounts/{acc}", {"billing_cycle": "quarterly"})
        assert _cal(await _desc(dev.client, tid, acc)) == ([(10, 10)], [(1, 10, 3)], 0, 5, "Europe/Lisbon")
        # closing pauses, reopening resumes
        await api("PATCH", f"/billing-accounts/{acc}", {"status": "closed"})
        assert (await _desc(dev.client, tid, acc)).schedule.state.paused
        await api("PATCH", f"/billing-accounts/{acc}", {"status": "active"})
        assert not (await _desc(dev.client, tid, acc)).schedule.state.paused
        # an ad-hoc account has no schedule
        await api("PATCH", f"/billing-accounts/{acc}", {"billing_cycle": "ad_hoc"})
        assert await _desc(dev.client, tid, acc) is None
        await api("PATCH", f"/billing-accounts/{acc}", {"billing_cycle": "monthly"})
        assert _cal(await _desc(dev.client, tid, acc)) == ([(5, 5)], [(1, 12, 1)], 0, 5, "Europe/Berlin")

        # accounts written behind the API's back, and a schedule whose account is gone: sync repairs
        with engine.begin() as conn:
            for n, cycle in enumerate(("monthly", "quarterly", "ad_hoc")):
                conn.execute(insert(BillingAccount.__table__).values(  # type: ignore[attr-defined]
                    id=f"acc_bulk{n}", tenant_id=tid, customer_id=cus["id"], name="", currency="EUR",
                    timezone="America/New_York", billing_cycle=cycle, payment_terms="net 14", invoice_email="",
                    street="", postal_code="", city="", country="", status="active"))
        await ensure_schedule(dev.client, tid, "acc_gone", "monthly", 1, "Europe/Berlin", task_queue="sched-tq")
        # another tenant's schedule is none of this tenant's sync's business
        await ensure_schedule(dev.client, "ten_other", "acc_x", "monthly", 1, "Europe/Berlin", task_queue="sched-tq")
        first = await api("POST", "/billing/schedules/sync")
        assert first == {"created": 2, "updated": 0, "unchanged": 1, "paused": 0, "deleted": 1, "absent": 1,
                         "failed": 0}, first
        assert _cal(await _desc(dev.client, tid, "acc_bulk1")) == ([(10, 10)], [(1, 10, 3)], 0, 5, "Europe/Lisbon")
        assert _cal(await _desc(dev.client, tid, "acc_bulk0"))[-1] == "America/New_York"
        assert await _desc(dev.client, tid, "acc_gone") is None
        second = await api("POST", "/billing/schedules/sync")
        assert second == {"created": 0, "updated": 0, "unchanged": 3, "paused": 0, "deleted": 0, "absent": 1,
                          "failed": 0}, second
        assert await _desc(dev.client, "ten_other", "acc_x") is not None

        # deleting the account deletes its schedule; only an admin may sync
        await api("DELETE", f"/billing-accounts/{acc}", status=204)
        assert await _desc(dev.client, tid, acc) is None
        r = await c.post("/billing/schedules/sync", headers={"Authorization": f"Bearer {keys['operator']}"})
        assert r.status_code == 403
