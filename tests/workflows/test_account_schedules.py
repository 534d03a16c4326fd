"""Run schedules follow billing accounts through the API, on a real Temporal dev server (the
time-skipping test server has no schedules): creating an account makes its calendar's run schedule
(one per tenant, cycle and zone) with the cut-off of the ruleset's billing policy, changing the
cycle makes the other calendar's and removes the one left without accounts, ad hoc and deleting
remove it, an account's own schedule of before is replaced, and ``POST /billing/schedules/sync``
reconciles idempotently."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete, insert
from sqlalchemy.orm import Session
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import Settings, create_app
from store.models import BillingAccount
from store.tenants import bootstrap_tenant, create_user, issue_key
from workflows.billing.worker import ensure_run_schedule, ensure_schedule, run_schedule_id, schedule_id

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
    """An account's own schedule (how month-end was started before the run schedules)."""
    try:
        return await client.get_schedule_handle(schedule_id(tenant, account)).describe()
    except RPCError:
        return None


async def _run(client: Client, tenant: str, cycle: str, zone: str) -> Any:
    """The run schedule of the tenant's accounts billed on ``cycle`` in ``zone``."""
    try:
        return await client.get_schedule_handle(run_schedule_id(tenant, cycle, zone)).describe()
    except RPCError:
        return None


async def _runs(client: Client, tenant: str, expect: list[str] | None = None) -> list[str]:
    """The calendars of the tenant's run schedules (cycle:zone) as the server lists them; the
    listing lags behind the writes, so it is read again for a while until it is ``expect``."""
    prefix = run_schedule_id(tenant, "", "")[:-1]
    for _ in range(100):
        got = sorted([s.id[len(prefix):] async for s in await client.list_schedules() if s.id.startswith(prefix)])
        if expect is None or got == expect:
            break
        await asyncio.sleep(0.1)
    return got


async def _listed(client: Client, ids: set[str]) -> None:
    """Wait until the (lagging) listing shows every schedule of ``ids``: the sync reconciles what
    the server lists."""
    for _ in range(100):
        if ids <= {s.id async for s in await client.list_schedules()}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedules never listed: {ids}")


ZERO_RUNS = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}


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
        # created with the account: its calendar's run schedule, the monthly policy's cut-off day 5,
        # local 00:05 in the account's zone; no schedule of the account's own
        d = await _run(dev.client, tid, "monthly", "Europe/Berlin")
        assert d is not None and not d.schedule.state.paused and await _desc(dev.client, tid, acc) is None
        assert _cal(d) == ([(5, 5)], [(1, 12, 1)], 0, 5, "Europe/Berlin")
        action = d.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "BillingRunWorkflow"
        assert action.task_queue == "sched-tq" and action.id == f"billing-run:{tid}:monthly:Europe/Berlin:scheduled"
        [run_input] = await dev.client.data_converter.decode(action.args)  # type: ignore[arg-type]
        assert (run_input["tenant_id"], run_input["as_of"], run_input["account_ids"], run_input["cycle"],
                run_input["timezone"]) == (tid, None, None, "monthly", "Europe/Berlin")
        # quarterly: the quarterly policy (day 10, its own zone), every third month from January; the
        # monthly calendar has no account left
        await api("PATCH", f"/billing-accounts/{acc}", {"billing_cycle": "quarterly"})
        assert await _runs(dev.client, tid, ["quarterly:Europe/Lisbon"]) == ["quarterly:Europe/Lisbon"]
        assert _cal(await _run(dev.client, tid, "quarterly", "Europe/Lisbon")) == \
            ([(10, 10)], [(1, 10, 3)], 0, 5, "Europe/Lisbon")
        # a closed account is skipped by the runs: no calendar left; reopening brings it back
        await api("PATCH", f"/billing-accounts/{acc}", {"status": "closed"})
        assert await _runs(dev.client, tid, []) == []
        await api("PATCH", f"/billing-accounts/{acc}", {"status": "active"})
        assert await _runs(dev.client, tid, ["quarterly:Europe/Lisbon"]) == ["quarterly:Europe/Lisbon"]
        # an ad-hoc account is in no calendar
        await api("PATCH", f"/billing-accounts/{acc}", {"billing_cycle": "ad_hoc"})
        assert await _runs(dev.client, tid, []) == []
        await api("PATCH", f"/billing-accounts/{acc}", {"billing_cycle": "monthly"})
        assert _cal(await _run(dev.client, tid, "monthly", "Europe/Berlin")) == \
            ([(5, 5)], [(1, 12, 1)], 0, 5, "Europe/Berlin")

        # accounts written behind the API's back, an account with its own schedule of before, one
        # whose account is gone, and a run schedule of a calendar nobody is in: sync repairs
        with engine.begin() as conn:
            for n, cycle in enumerate(("monthly", "quarterly", "ad_hoc", "monthly", "monthly")):
                conn.execute(insert(BillingAccount.__table__).values(  # type: ignore[attr-defined]
                    id=f"acc_bulk{n}", tenant_id=tid, customer_id=cus["id"], name="", currency="EUR",
                    timezone="America/New_York" if n < 3 else "Europe/Berlin", billing_cycle=cycle,
                    payment_terms="net 14", invoice_email="", street="", postal_code="", city="", country="",
                    status="closed" if n == 4 else "active"))
        for old in ("acc_bulk3", "acc_bulk4", "acc_gone"):
            await ensure_schedule(dev.client, tid, old, "monthly", 1, "Europe/Berlin", task_queue="sched-tq")
        await ensure_run_schedule(dev.client, tid, "monthly", 1, "Asia/Tokyo", task_queue="sched-tq")
        # another tenant's schedules are none of this tenant's sync's business
        await ensure_schedule(dev.client, "ten_other", "acc_x", "monthly", 1, "Europe/Berlin", task_queue="sched-tq")
        await ensure_run_schedule(dev.client, "ten_other", "monthly", 1, "Europe/Berlin", task_queue="sched-tq")
        await _listed(dev.client, {schedule_id(tid, a) for a in ("acc_bulk3", "acc_bulk4", "acc_gone")}
                      | {run_schedule_id(tid, "monthly", "Asia/Tokyo")})
        first = await api("POST", "/billing/schedules/sync")
        # acc and acc_bulk3 (its own schedule replaced) share Berlin's; New York's and Lisbon's are new;
        # acc_bulk4 is closed (own schedule removed), acc_bulk2 ad hoc, acc_gone gone; Tokyo's deleted
        assert first == {"created": 2, "updated": 1, "unchanged": 1, "paused": 1, "deleted": 1, "absent": 1,
                         "failed": 0, "runs": {"created": 2, "updated": 0, "unchanged": 1, "deleted": 1,
                                               "failed": 0}}, first
        calendars = ["monthly:America/New_York", "monthly:Europe/Berlin", "quarterly:Europe/Lisbon"]
        assert await _runs(dev.client, tid, calendars) == calendars
        assert _cal(await _run(dev.client, tid, "quarterly", "Europe/Lisbon")) == \
            ([(10, 10)], [(1, 10, 3)], 0, 5, "Europe/Lisbon")
        assert _cal(await _run(dev.client, tid, "monthly", "America/New_York"))[-1] == "America/New_York"
        for old in ("acc_bulk3", "acc_bulk4", "acc_gone"):
            assert await _desc(dev.client, tid, old) is None
        second = await api("POST", "/billing/schedules/sync")
        assert second == {"created": 0, "updated": 0, "unchanged": 4, "paused": 0, "deleted": 0, "absent": 2,
                          "failed": 0, "runs": {**ZERO_RUNS, "unchanged": 3}}, second
        assert await _desc(dev.client, "ten_other", "acc_x") is not None
        assert await _run(dev.client, "ten_other", "monthly", "Europe/Berlin") is not None

        # deleting the last accounts of a calendar deletes its schedule; only an admin may sync
        await api("DELETE", f"/billing-accounts/{acc}", status=204)
        assert await _run(dev.client, tid, "monthly", "Europe/Berlin") is not None  # acc_bulk3's
        with engine.begin() as conn:
            conn.execute(delete(BillingAccount.__table__).where(  # type: ignore[attr-defined]
                BillingAccount.__table__.c.id == "acc_bulk3"))  # type: ignore[attr-defined]
        assert (await api("POST", "/billing/schedules/sync"))["runs"]["deleted"] == 1
        assert await _run(dev.client, tid, "monthly", "Europe/Berlin") is None
        r = await c.post("/billing/schedules/sync", headers={"Authorization": f"Bearer {keys['operator']}"})
        assert r.status_code == 403
