"""Issue 13's later parts on a time-skipping server of this module's own: a credit note finalized by
a ``BillingCycleWorkflow`` tells the customer's open case (it closes without the clock moving), an
approval task left open escalates, a case paused and resumed through its workflow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import pytest_asyncio
from sqlalchemy import Engine, select
from temporalio.testing import WorkflowEnvironment

from store import billing as B
from store import dunning as DN
from store import receivables as R
from tests.workflows.conftest import TEST_SERVER
from tests.workflows.recording import record_history
from tests.workflows.seed import RULESET, insert_sessions, rerate_session, seed_tenant
from tests.workflows.test_dunning import _today, _until
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow
from workflows.dunning.types import DunningInput, dunning_workflow_id
from workflows.dunning.workflows import DunningWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


POLICY = """
dunning standard "Standard" {
  stage 1 after 7 days reminder
  stage 2 after 14 days fee 5.00
  stage 3 after 14 days fee 10.00, approval required then block_tokens
  ignore below 15.00
  escalate after 3 days
}
"""


@pytest_asyncio.fixture(loop_scope="session")
async def menv() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test: one shared by these tests stopped skipping time for the
    next test after the credit-note test's cycles (its sleeps timed out)."""
    e = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    try:
        yield e
    finally:
        await e.shutdown()


async def test_a_credit_note_from_the_cycle_closes_the_case_at_once(menv: WorkflowEnvironment, engine: Engine,
                                                                    task_queue: str) -> None:
    env = menv
    tid = f"t{uuid.uuid4().hex[:8]}"
    s = seed_tenant(engine, tid, 1, ruleset=RULESET + POLICY)
    acc = s.account_ids[0]
    cust = s.customer_of[acc]
    from runtime.invoicing import ad_hoc_period

    now = await env.get_current_time()
    today = now.date()
    started = datetime(today.year, today.month, today.day, 9, tzinfo=UTC) - timedelta(days=3)
    insert_sessions(engine, s, [(acc, "s1", started, D(500))])
    # the clock moves only when told: waiting for a cycle's result would otherwise run the case's timers
    with env.auto_time_skipping_disabled():
        async with build_worker(env.client, engine, task_queue):
            first = ad_hoc_period(today - timedelta(days=5), today - timedelta(days=1), "Europe/Berlin")
            res = await env.client.execute_workflow(
                BillingCycleWorkflow.run, BillingCycleInput(tid, acc, as_of=first.end.isoformat(),
                                                            period=first.to_dict(), cycle_key=first.key),
                id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
            assert (res.status, res.kind) == ("finalized", "invoice"), res
            with engine.connect() as conn:
                inv = conn.execute(select(B.invoice).where(B.invoice.c.number == res.number)).one()
            # the case runs on its own clock, stage 1 due: a reminder, then a wait of 14 days
            h = await env.client.start_workflow(
                DunningWorkflow.run, DunningInput(tid, cust, "EUR", as_of=(inv.due_date + timedelta(days=8)).isoformat()),
                id=dunning_workflow_id(tid, cust, "EUR"), task_queue=task_queue)
            st = await _until(h, "waiting", 1)
            # a corrected rating takes the energy off: the next cycle is a credit note
            rerate_session(engine, s, acc, "s1", started, D(500), D("0.00"))
            cn_id = f"wf-{uuid.uuid4().hex}"
            second = ad_hoc_period(today, today + timedelta(days=1), "Europe/Berlin")
            cn = await env.client.execute_workflow(
                BillingCycleWorkflow.run, BillingCycleInput(tid, acc, as_of=second.end.isoformat(),
                                                            period=second.to_dict(), cycle_key=second.key),
                id=cn_id, task_queue=task_queue)
            assert (cn.status, cn.kind) == ("finalized", "credit_note"), cn
            done = await asyncio.wait_for(h.result(), 30)
            # test_replay.py replays it
            await record_history(env.client.get_workflow_handle(cn_id), "credit_note_tells_dunning_v7")
            assert (await env.get_current_time()).date() == today  # no clock moved: the signal woke it
    assert (done.status, done.stage, done.case_id) == ("closed", 1, st.case_id)
    with engine.connect() as conn:
        case = DN.case(conn, tid, st.case_id)
        left = sum((i.open for i in R.item_states(conn, tid) if i.open > 0), D(0))
        assert [x["stage"] for x in DN.stages_of(conn, tid, st.case_id)] == [1]
    assert case.status == "closed" and case.reason in ("below_minimum", "nothing_overdue")
    assert left < D("15.00")


HARD = """
dunning standard "Standard" {
  stage 1 after 7 days reminder
  stage 2 after 14 days fee 5.00 then suspend_contract and hand_over
  ignore below 5.00
}
"""


async def test_pause_resume_suspend_and_hand_over_through_the_api(menv: WorkflowEnvironment, engine: Engine,
                                                                   task_queue: str) -> None:
    """Paused by hand with a reason, the case reaches no stage however long it waits; resumed, the
    stage whose day passed is reached at once: it suspends the customer's contract (the case as the
    reason) and hands the case over (CSV and JSON to download). Paid, the contract is active again."""
    import csv
    import io

    from sqlalchemy.orm import Session

    from store.models import Contract
    from store.tenants import bootstrap_tenant
    from tests.workflows.seed import seed_accounts
    from tests.workflows.test_billing_api import api_client, h, keys
    from tests.workflows.test_dunning import _invoice, _owed

    env = menv
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, f"dunning-pause-{uuid.uuid4().hex[:6]}")
    k = keys(engine, tenant.id)
    s = seed_accounts(engine, tenant.id, 1, ruleset=RULESET + HARD)
    acc = s.account_ids[0]
    cust = s.customer_of[acc]
    today = await _today(env)
    _invoice(engine, s, 1, "80.00", today - timedelta(days=10))
    ct = Contract.__table__  # type: ignore[attr-defined]

    def contract() -> tuple[str, str]:
        with engine.connect() as conn:
            r = conn.execute(select(ct.c.status, ct.c.status_reason).where(ct.c.id == s.contract_of[acc])).one()
        return r.status, r.status_reason

    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        handle = await env.client.start_workflow(DunningWorkflow.run, DunningInput(tenant.id, cust, "EUR"),
                                                 id=dunning_workflow_id(tenant.id, cust, "EUR"), task_queue=task_queue)
        st = await _until(handle, "waiting", 1)
        op, au = h(k["operator1"]), h(k["auditor1"])
        url = f"/dunning/cases/{st.case_id}"
        assert (await c.post(f"{url}/pause", headers=au, json={"reason": "x"})).status_code == 403
        assert (await c.post(f"{url}/pause", headers=op, json={"reason": ""})).status_code in (400, 422)
        r = await c.post(f"{url}/pause", headers=op, json={"reason": "customer in hospital"})
        assert r.status_code == 201, r.text
        assert (r.json()["status"], r.json()["hold_reason"], r.json()["reason"]) == (
            "paused", "customer in hospital", "paused_by_hand")
        assert (await c.post(f"{url}/pause", headers=op, json={"reason": "again"})).status_code == 409
        await _until(handle, "paused")
        # stage 2's day passes while paused: nothing happens. Half a day more than whole days: the
        # paused case re-reads daily on a timer, and a resume that lands within milliseconds of that
        # timer firing meets a time-skipping test server bug (its CancelTimer for the timer it just
        # fired is refused, "invalid history builder state for action", and the run gets no further
        # workflow task: temporalio/sdk-java#2606, #3088); the real server drops the fired timer
        await env.sleep(timedelta(days=20, hours=12))
        assert (await handle.query(DunningWorkflow.status)).stage == 1 and contract() == ("active", "")
        r = await c.post(f"{url}/resume", headers=op, json={"reason": "back home"})
        assert r.status_code == 201, r.text
        await _until(handle, "done")
        assert (await c.post(f"{url}/resume", headers=op, json={})).status_code == 409
        assert contract() == ("suspended", f"dunning case {st.case_id}")
        detail = (await c.get(url, headers=au)).json()
        assert detail["hold_reason"] is None and detail["stage"] == 2
        [block_s] = [b for b in detail["blocks"] if b["action"] == "suspend_contract"]
        assert block_s["detail"] == {"contracts": [s.contract_of[acc]]}
        assert [(x["stage"], x["format"]) for x in detail["hand_overs"]] == [(2, "csv"), (2, "json")]
        got = await c.get(f"{url}/hand-over", headers=au)
        assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv"), got.text
        rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig")), delimiter=";"))
        assert sorted(r["claim_kind"] for r in rows) == ["dunning_fee", "invoice"]
        doc = (await c.get(f"{url}/hand-over", headers=au, params={"format": "json"})).json()
        assert doc["stage"] == 2 and [lt["stage"] for lt in doc["letters"]] == ["1", "2"]
        assert doc["total_open"] == "85.00" and doc["debtor"]["number"]
        assert (await c.get(f"{url}/hand-over", headers=au, params={"stage": 1})).status_code == 404
        assert (await c.get(f"{url}/hand-over", headers=au, params={"format": "xml"})).status_code == 422
        from store.models import AuditEntry

        at = AuditEntry.__table__  # type: ignore[attr-defined]
        with engine.connect() as conn:
            trail = conn.execute(select(at.c.action, at.c.after).where(
                at.c.tenant_id == tenant.id, at.c.entity == "dunning_case").order_by(at.c.seq)).all()
        assert [(a.action, a.after["reason"]) for a in trail] == [
            ("dunning_case.pause", "customer in hospital"), ("dunning_case.resume", "back home")]
        r = await c.post("/receivables/payments", headers=op, json={
            "account_id": acc, "amount": str(_owed(engine, s)), "currency": "EUR",
            "booked_on": (today + timedelta(days=21)).isoformat(), "idempotency_key": "pay-hard"})
        assert r.status_code == 201, r.text
        res = await asyncio.wait_for(handle.result(), 30)
    assert res.status == "closed" and res.released == ["suspend_contract"]
    assert contract() == ("active", "")


async def test_an_approval_task_left_open_escalates(menv: WorkflowEnvironment, engine: Engine,
                                                    task_queue: str) -> None:
    """``escalate after 3 days``: stage 3's approval task still open after three days goes to the
    admin role (once), the case list says so, and the task can still be decided."""
    from tests.workflows.test_dunning import _invoice
    from workflows.dunning.types import StageDecision

    env = menv
    tid = f"t{uuid.uuid4().hex[:8]}"
    s = seed_tenant(engine, tid, 1, ruleset=RULESET + POLICY)
    cust = s.customer_of[s.account_ids[0]]
    today = await _today(env)
    _invoice(engine, s, 1, "80.00", today - timedelta(days=40))
    async with build_worker(env.client, engine, task_queue):
        h = await env.client.start_workflow(DunningWorkflow.run, DunningInput(tid, cust, "EUR"),
                                            id=dunning_workflow_id(tid, cust, "EUR"), task_queue=task_queue)
        await _until(h, "waiting", 1)
        await env.sleep(timedelta(days=15))
        await _until(h, "waiting", 2)  # reached on day 14 (its timer's day), stage 3 is due on day 28
        await env.sleep(timedelta(days=13))
        st = await _until(h, "awaiting_approval", 3)
        with engine.connect() as conn:
            assert DN.stages_of(conn, tid, st.case_id)[2]["escalated_at"] is None
        await env.sleep(timedelta(days=2))  # day 30: two days open
        with engine.connect() as conn:
            assert DN.stages_of(conn, tid, st.case_id)[2]["escalated_at"] is None
        await env.sleep(timedelta(days=1))  # day 31: three days open
        for _ in range(200):
            with engine.connect() as conn:
                third = DN.stages_of(conn, tid, st.case_id)[2]
            if third["escalated_at"] is not None:
                break
            await asyncio.sleep(0.05)
        assert (third["status"], third["assigned_role"]) == ("awaiting_approval", "admin")
        with engine.connect() as conn:
            [case] = DN.cases(conn, tid, status="awaiting_approval")
            assert [c.id for c in DN.cases(conn, tid, status="escalated")] == [case.id]
        assert case.reason == "approval_escalated"
        assert await h.execute_update(DunningWorkflow.approve, StageDecision("usr_ap", "approver", "ok")) == \
            "stage 3 approved"
        await _until(h, "done")
        await h.terminate("test over")
        await record_history(h, "dunning_escalated_v3")  # test_dunning_replay.py replays it
    with engine.connect() as conn:
        assert [x["status"] for x in DN.stages_of(conn, tid, st.case_id)] == ["reached"] * 3


async def test_stage_days_are_the_tenants_days(menv: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    """A tenant whose day is not the UTC day (a zone 14 hours ahead, or 11 behind, whichever makes
    the difference now): stage 1, due 7 days after the due date, is reached on the tenant's day."""
    from store.models import Tenant
    from tests.workflows.test_dunning import _invoice

    env = menv
    now = await env.get_current_time()
    zone, local = ("Pacific/Kiritimati", (now + timedelta(hours=14)).date()) if now.hour >= 10 else \
        ("Pacific/Pago_Pago", (now - timedelta(hours=11)).date())
    assert local != now.date()
    tid = f"t{uuid.uuid4().hex[:8]}"
    s = seed_tenant(engine, tid, 1, ruleset=RULESET + POLICY)
    tt = Tenant.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(tt.update().where(tt.c.id == tid).values(timezone=zone))
    cust = s.customer_of[s.account_ids[0]]
    _invoice(engine, s, 1, "80.00", local - timedelta(days=7))  # stage 1 falls due on the tenant's today
    async with build_worker(env.client, engine, task_queue):
        h = await env.client.start_workflow(DunningWorkflow.run, DunningInput(tid, cust, "EUR"),
                                            id=dunning_workflow_id(tid, cust, "EUR"), task_queue=task_queue)
        st = await _until(h, "waiting", 1)
        assert st.next_on == (local + timedelta(days=14)).isoformat()
        with engine.connect() as conn:
            [one] = DN.stages_of(conn, tid, st.case_id)
            assert (one["reached_on"], DN.case(conn, tid, st.case_id).started_on) == (local, local)
        await h.terminate("test over")
