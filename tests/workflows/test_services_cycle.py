"""A billing cycle with service products and period discounts set up through the API: services
named from the ruleset's ``service`` block are priced by it, explicit ones by their own price, a
10% discount reduces the period, and the invoice total is the hand-computed one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from api.app import Settings, create_app
from store import billing as B
from store.tenants import bootstrap_tenant
from tests.workflows.seed import RULESET, insert_sessions, seed_accounts, seed_tenant
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVICES = RULESET + """
service supervision "Charger supervision" {
  vat 19%
  ac_charger 9.00 per month
  dc_charger 57.00 per quarter "DC charger supervision"
  rfid_card 5.00 each
}
"""


async def test_services_and_a_ten_percent_discount(env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "services")
        tid = tenant.id
    s = seed_accounts(engine, tid, 1, ruleset=SERVICES)
    acc = s.account_ids[0]
    # November: 10 kWh and 20 kWh at 0.50 start + 0.40/kWh = 4.50 + 8.50 = 13.00; the flex fee 4.99
    insert_sessions(engine, s, [(acc, "sv1", datetime(2026, 11, 5, 10, tzinfo=UTC), D(10)),
                                (acc, "sv2", datetime(2026, 11, 20, 18, tzinfo=UTC), D(20))])
    app = create_app(Settings(engine=engine, migrate=False))
    h = {"Authorization": f"Bearer {cred.key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        async def post(url: str, body: dict[str, Any]) -> None:
            r = await c.post(url, json=body, headers=h)
            assert r.status_code == 201, r.text

        items, discounts = f"/billing/accounts/{acc}/service-items", f"/billing/accounts/{acc}/discounts"
        # billed in November:
        await post(items, {"service": "supervision.ac_charger", "quantity": "2", "valid_from": "2026-10-15"})  # 18.00
        await post(items, {"service": "supervision.dc_charger", "valid_from": "2026-11-01"})  # 57.00 / 3 = 19.00
        await post(items, {"service": "supervision.rfid_card", "quantity": "3", "valid_from": "2026-11-10"})  # 15.00
        await post(items, {"description": "Maintenance contract", "unit_price": "100.00", "per": "year",
                           "tax_rate": "19", "valid_from": "2026-01-01"})  # 100 / 12 = 8.333... -> 8.33
        # not billed in November: a card bought in October, a SIM ended before, a charger from December
        await post(items, {"service": "supervision.rfid_card", "valid_from": "2026-10-02"})
        await post(items, {"description": "SIM card", "unit_price": "2.50", "per": "month", "tax_rate": "19",
                           "valid_from": "2026-01-01", "valid_to": "2026-11-01"})
        await post(items, {"service": "supervision.ac_charger", "valid_from": "2026-12-01"})
        await post(discounts, {"description": "Framework agreement 10%", "percent": "10", "valid_from": "2026-11-01"})
        await post(discounts, {"description": "Summer goodwill", "amount": "3.00", "valid_from": "2026-08-01",
                               "valid_to": "2026-10-01"})
    async with build_worker(env.client, engine, task_queue):
        res = await env.client.execute_workflow(
            BillingCycleWorkflow.run, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
            id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
    assert res.status == "finalized", res
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == tid)).one()
        lines = conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == inv.id)
                             .order_by(B.invoice_line.c.seq)).all()
    services = [(ln.description, ln.quantity, ln.unit, ln.net) for ln in lines if ln.kind == "service"]
    assert services == [
        ("Maintenance contract", D(1), "month", D("8.33")),
        ("Charger supervision: ac charger", D(2), "month", D("18.00")),
        ("DC charger supervision", D(1), "month", D("19.00")),
        ("Charger supervision: rfid card", D(3), "each", D("15.00")),
    ]
    assert [ln.rule for ln in lines if ln.kind == "service"][1].startswith("service supervision.ac_charger, line")
    # 13.00 + 4.99 + 8.33 + 18.00 + 19.00 + 15.00 = 78.32; 10% of it: 7.832 -> 7.83
    [disc] = [ln for ln in lines if ln.kind == "discount"]
    assert (disc.description, disc.net, disc.tax_rate) == ("Framework agreement 10%", D("-7.83"), D(19))
    assert inv.net_total == D("70.49")
    assert inv.tax_total == D("13.39")  # 19% of 70.49 = 13.3931
    assert inv.gross_total == D("83.88") and inv.currency == "EUR"
    assert sum((ln.net for ln in lines), D(0)) == inv.net_total


# ---------------------------------------------------------------- unpriced service items
# the hold policy would release on its own after an hour: an unpriced item must wait for a person
AUTO = SERVICES.replace("  approval required\n", "  auto_release after 1 hours\n")
WITHOUT_DC = AUTO.replace('  dc_charger 57.00 per quarter "DC charger supervision"\n', "")
assert "auto_release" in AUTO and "dc_charger" not in WITHOUT_DC


def add_version(engine: Engine, s: Any, n: int, source: str, effective: datetime) -> str:
    """Publish ``source`` as version ``n`` of the seeded ruleset, in force from ``effective``."""
    import hashlib

    from sqlalchemy import insert

    from store.models import RulesetDraft, RulesetVersion

    t, sha = s.tenant_id, hashlib.sha256(source.encode()).hexdigest()
    rs_id, dr_id, rv_id = f"rs_{t}", f"rd_{t}_{n}", f"rv_{t}_{n}"
    with engine.begin() as conn:
        conn.execute(insert(RulesetDraft.__table__).values(  # type: ignore[attr-defined]
            id=dr_id, tenant_id=t, ruleset_id=rs_id, source=source, sha256=sha, ok=True, diagnostics=[],
            author_id="seed", created_at=effective))
        conn.execute(insert(RulesetVersion.__table__).values(  # type: ignore[attr-defined]
            id=rv_id, tenant_id=t, ruleset_id=rs_id, version=n, draft_id=dr_id, source=source, sha256=sha,
            dsl_name="billing_test", currency="EUR", timezone="Europe/Berlin", tariff_names=["ac"],
            effective_from=effective, author_id="seed", publisher_id="seed2", published_at=effective, note=""))
    return rv_id


async def held_for_unpriced(env: WorkflowEnvironment, engine: Engine, tenant: str,
                            task_queue: str, **overrides: Any) -> tuple[Any, Any, str]:
    """An account with a DC charger item from 16 November, whose service a later ruleset version
    dropped: its November cycle is held, and stays held past the policy's auto-release."""
    from datetime import date

    from sqlalchemy import insert

    from tests.workflows.test_billing_cycle import wait_state

    s = seed_tenant(engine, tenant, 1, ruleset=AUTO)
    acc = s.account_ids[0]
    insert_sessions(engine, s, [(acc, f"{tenant}-s1", datetime(2026, 11, 5, 10, tzinfo=UTC), D(10))])  # 4.50
    with engine.begin() as conn:
        for sid, service, start in (("svc_ac", "supervision.ac_charger", date(2026, 10, 1)),
                                    ("svc_dc", "supervision.dc_charger", date(2026, 11, 16))):
            conn.execute(insert(B.service_item).values(
                id=f"{sid}_{tenant}", tenant_id=tenant, account_id=acc, product=service, description="",
                quantity=D(1), unit_price=None, tax_rate=None, unit="", valid_from=start, valid_to=None))
    rv2 = add_version(engine, s, 2, WITHOUT_DC, datetime(2026, 6, 1, tzinfo=UTC))
    h = await env.client.start_workflow(BillingCycleWorkflow.run,
                                        BillingCycleInput(tenant, acc, as_of="2026-12-01T00:05:00+01:00",
                                                          **overrides),
                                        id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
    await wait_state(h, "held")
    await env.sleep(3 * 3600)  # the policy would have auto-released after one hour
    st = await h.query(BillingCycleWorkflow.status)
    assert st.state == "held", st
    [reason] = st.reasons
    assert reason == {
        "kind": "unpriced_service", "item_id": f"svc_dc_{tenant}", "service": "supervision.dc_charger",
        "ruleset_version": rv2,
        "message": f"service item svc_dc_{tenant} names service 'supervision.dc_charger', which ruleset version "
                   f"{rv2} does not price: it is left off this draft (give the item a price of its own, end it "
                   f"before this period, or publish a version with the service, then re-assemble; approving bills "
                   f"the period without it)"}
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == tenant)).one()
        task = conn.execute(select(B.finance_task).where(B.finance_task.c.invoice_id == inv.id)).one()
    # built without the item: 4.50 session + 4.99 fee + 9.00 AC supervision
    assert (inv.status, inv.net_total, inv.hold_reasons) == ("held", D("18.49"), [reason])
    assert (task.status, task.reasons) == ("open", [reason])
    return h, s, rv2


async def test_unpriced_service_holds_and_approval_bills_without_it(env: WorkflowEnvironment, engine: Engine,
                                                                    task_queue: str) -> None:
    from temporalio.client import WorkflowUpdateFailedError

    from workflows.billing.types import ApproveInput, ReleaseHoldInput

    async with build_worker(env.client, engine, task_queue):
        h, _s, _ = await held_for_unpriced(env, engine, "unp1", task_queue)
        # not a manual hold: it cannot be released, only approved or rejected
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await h.execute_update(BillingCycleWorkflow.release_hold, ReleaseHoldInput("ap1", "approver", "x"))
        assert "other hold reasons remain" in str(err.value.cause)
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver", "bill without DC"))
        res = await h.result()
    assert (res.status, res.decided_by) == ("finalized", "ap1")
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == "unp1")).one()
        lines = conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == inv.id)).all()
        task = conn.execute(select(B.finance_task).where(B.finance_task.c.invoice_id == inv.id)).one()
    # finalized without the item; the reason stays on the invoice and its task for the record
    assert (inv.status, inv.number, inv.net_total, inv.tax_total, inv.gross_total) == (
        "finalized", "INV-000001", D("18.49"), D("3.51"), D("22.00"))
    assert [ln.description for ln in lines if ln.kind == "service"] == ["Charger supervision: ac charger"]
    assert [r["kind"] for r in inv.hold_reasons] == ["unpriced_service"]
    assert task.status == "approved" and task.reasons[0]["item_id"] == "svc_dc_unp1"


async def test_unpriced_service_prices_after_the_fix_and_a_reassembly(env: WorkflowEnvironment, engine: Engine,
                                                                      task_queue: str) -> None:
    from workflows.billing.types import AdjustInput, ApproveInput

    async with build_worker(env.client, engine, task_queue):
        h, s, _ = await held_for_unpriced(env, engine, "unp2", task_queue)
        # finance publishes a version that prices the service again, then adjusts: the adjustment
        # re-assembles the draft, which now prices the item pro rata (16..30 November: 15 of 30
        # days of 57.00 per quarter = 19.00 a month -> 9.50) and is no longer held for it
        add_version(engine, s, 3, AUTO, datetime(2026, 7, 1, tzinfo=UTC))
        d = await h.execute_update(BillingCycleWorkflow.adjust,
                                   AdjustInput("ap1", "approver", "goodwill", "-1.00", "19"))
        assert (d.reasons, d.net) == ([], "26.99")  # 18.49 + 9.50 - 1.00
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap2", "approver"))
        res = await h.result()
    assert res.status == "finalized"
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == "unp2")).one()
        lines = conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == inv.id)
                             .order_by(B.invoice_line.c.seq)).all()
    assert [(ln.description, ln.net) for ln in lines if ln.kind == "service"] == [
        ("Charger supervision: ac charger", D("9.00")),
        ("DC charger supervision (2026-11-16 to 2026-11-30, 15 of 30 days)", D("9.50"))]
    # 19% of 26.99 = 5.1281 -> 5.13
    assert (inv.net_total, inv.tax_total, inv.gross_total, inv.hold_reasons) == (
        D("26.99"), D("5.13"), D("32.12"), [])


async def test_reprice_after_the_fix_refreshes_the_task_and_keeps_the_hold(env: WorkflowEnvironment, engine: Engine,
                                                                           task_queue: str) -> None:
    from temporalio.client import WorkflowUpdateFailedError

    from workflows.billing.types import ApproveInput, RepriceInput

    async with build_worker(env.client, engine, task_queue):
        h, s, _ = await held_for_unpriced(env, engine, "unp3", task_queue)
        # an analyst may not re-price (the validator refuses before anything reaches the history)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await h.execute_update(BillingCycleWorkflow.reprice, RepriceInput("an1", "analyst"))
        assert getattr(refused.value.cause, "type", "") == "forbidden"
        add_version(engine, s, 3, AUTO, datetime(2026, 7, 1, tzinfo=UTC))
        d = await h.execute_update(BillingCycleWorkflow.reprice, RepriceInput("op1", "operator"))
        # priced pro rata now (9.50, see above), no manual posting: 18.49 + 9.50; nothing holds
        # the draft any more, but the cycle still waits for a decision
        assert (d.reasons, d.net) == ([], "27.99")
        assert (await h.query(BillingCycleWorkflow.status)).state == "held"
        with engine.connect() as conn:
            task = conn.execute(select(B.finance_task).join(B.invoice, B.invoice.c.id == B.finance_task.c.invoice_id)
                                .where(B.invoice.c.tenant_id == "unp3")).one()
        assert (task.status, task.reasons) == ("open", [])
        # re-pricing is no manual posting: the operator who re-priced may not approve (role), but
        # an approver who did nothing else may, and no four-eyes refusal applies to them
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("op1", "approver"))
        res = await h.result()
    assert (res.status, res.decided_by) == ("finalized", "op1")
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == "unp3")).one()
    assert (inv.net_total, inv.gross_total) == (D("27.99"), D("33.31"))  # 19% of 27.99 = 5.3181 -> 5.32


async def test_unpriced_service_outlasts_the_cycles_own_auto_release(env: WorkflowEnvironment, engine: Engine,
                                                                     task_queue: str) -> None:
    # the cycle input's override (release after 10 minutes) loses against an unpriced item:
    # held_for_unpriced sleeps three hours and asserts the cycle is still held
    async with build_worker(env.client, engine, task_queue):
        h, _, _ = await held_for_unpriced(env, engine, "unp4", task_queue, auto_release_after_s=600)
        await h.terminate("done")


async def test_approving_a_draft_of_nothing_but_an_unpriced_item_closes_it_without_a_number(
        env: WorkflowEnvironment, engine: Engine, task_queue: str) -> None:
    from datetime import date

    from sqlalchemy import insert

    from tests.workflows.test_billing_cycle import wait_state
    from workflows.billing.types import ApproveInput

    tenant = "unp5"
    s = seed_tenant(engine, tenant, 1, ruleset=AUTO)
    acc = s.account_ids[0]
    with engine.begin() as conn:  # no sessions, no product fee, one item the version in force lacks
        from store.models import Contract

        ct = Contract.__table__  # type: ignore[attr-defined]
        conn.execute(ct.update().where(ct.c.account_id == acc).values(product="no_such_product"))
        conn.execute(insert(B.service_item).values(
            id="svc_only", tenant_id=tenant, account_id=acc, product="supervision.dc_charger", description="",
            quantity=D(1), unit_price=None, tax_rate=None, unit="", valid_from=date(2026, 10, 1), valid_to=None))
    add_version(engine, s, 2, WITHOUT_DC, datetime(2026, 6, 1, tzinfo=UTC))
    async with build_worker(env.client, engine, task_queue):
        h = await env.client.start_workflow(BillingCycleWorkflow.run,
                                            BillingCycleInput(tenant, acc, as_of="2026-12-01T00:05:00+01:00"),
                                            id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)
        await wait_state(h, "held")
        assert [r["kind"] for r in (await h.query(BillingCycleWorkflow.status)).reasons] == ["unpriced_service"]
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver"))
        res = await h.result()
    assert (res.status, res.number, res.decided_by) == ("empty", "", "ap1")
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == tenant)).one()
        series = conn.execute(select(B.number_series.c.next_value).where(
            B.number_series.c.tenant_id == tenant, B.number_series.c.series.in_(("INV", "CN")))).all()
    # no number drawn: an invoice series, if any, still starts at 1 (customers have a series of their own)
    assert (inv.status, inv.number, inv.gross_total) == ("empty", None, D(0))
    assert all(r.next_value == 1 for r in series)
