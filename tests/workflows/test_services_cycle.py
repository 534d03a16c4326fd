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
from tests.workflows.seed import RULESET, insert_sessions, seed_accounts
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
