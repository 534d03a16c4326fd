"""Issue 11, defect 5, end to end: a session imported with a token nobody registered yet is
``unassigned`` and on no invoice; once the token is registered for a contract it is brought in, and
the account's next cycle bills it (as a late session: its November start lies in a period already
invoiced) exactly once. Resolving it again changes nothing, and no later cycle bills it again.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

import store.billing as B
from store.tenants import bootstrap_tenant
from tests.store.conftest import BACKENDS, fresh_engine
from tests.workflows.seed import seed_accounts
from tests.workflows.test_billing_api import api_client, h, keys
from workflows.billing.types import BillingCycleInput
from workflows.billing.worker import build_worker, start_cycle

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]


def _billed(engine: Engine, session_id: str) -> list[Any]:
    """(invoice number, status, line kind) of every invoice line that bills the session."""
    with engine.connect() as conn:
        return list(conn.execute(
            select(B.invoice.c.number, B.invoice.c.cycle_key, B.invoice_line.c.kind, B.invoice_line.c.net)
            .join(B.invoice, B.invoice.c.id == B.invoice_line.c.invoice_id)
            .where(B.invoice_line.c.session_id == session_id)
            .order_by(B.invoice.c.created_at, B.invoice_line.c.invoice_id, B.invoice_line.c.seq)).all())


async def test_a_late_assigned_session_is_billed_once_by_the_next_cycle(env: WorkflowEnvironment, db: Engine,
                                                                        task_queue: str) -> None:
    engine = db
    with Session(engine) as s:
        tenant, _ = bootstrap_tenant(s, "late-assign")
    tid = tenant.id
    k = keys(engine, tid)
    seed_accounts(engine, tid, 0)  # the tenant's ruleset (tariff ac, product flex: 4.99 a month)
    async with build_worker(env.client, engine, task_queue), api_client(env, engine, task_queue) as c:
        admin = h(k["operator1"])
        cus = (await c.post("/customers", json={"name": "Late Card"}, headers=admin)).json()["id"]
        acc = (await c.post("/billing-accounts", json={"customer_id": cus}, headers=admin)).json()["id"]
        r = await c.post("/contracts", json={"account_id": acc, "customer_id": cus, "product": "flex",
                                             "start_date": "2026-11-01", "payment_method": "invoice"}, headers=admin)
        assert r.status_code == 201, r.text
        con = r.json()["id"]
        # the customer's first card, registered: its November session keeps December's invoice (with
        # the late one) below November's, so no "jump" hold rule stops the cycle for finance
        assert (await c.post("/tokens", json={"uid": "FIRSTCARD-1", "contract_id": con}, headers=admin)).is_success
        r = await c.post("/sessions/batch", json={"sessions": [{
            "id": "KNOWN-1", "start": "2026-11-10T10:00:00Z", "end": "2026-11-10T11:00:00Z", "energy_kwh": "20",
            "location_id": "somewhere_else", "token_uid": "FIRSTCARD-1"}, {
            "id": "LATE-1", "start": "2026-11-20T10:00:00Z", "end": "2026-11-20T11:00:00Z", "energy_kwh": "10",
            "location_id": "somewhere_else", "token_uid": "NEWCARD-1"}]}, headers=h(k["operator1"]))
        assert r.status_code == 200, r.text
        known, item = r.json()["items"]
        assert (known["rating_status"], known["unassigned_reason"]) == ("rated", None), known
        sid = item["session_id"]
        # before the fix: "rated", customer null, no word about it
        assert (item["rating_status"], item["unassigned_reason"]) == ("unassigned", "unknown_token"), item
        listed = (await c.get("/sessions", params={"status": "unassigned"}, headers=h(k["auditor1"]))).json()
        assert [(x["id"], x["unassigned_reason"], x["net_total"]) for x in listed["items"]] == [
            (sid, "unknown_token", "4.50")]  # priced all the same: 0.50 + 10 × 0.40

        nov = await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
                                "late-nov", task_queue)
        assert (await nov.result()).status == "finalized"
        assert _billed(engine, sid) == []  # unassigned: on no invoice

        # the card is registered for the customer's contract: the session is brought in at once
        r = await c.post("/tokens", json={"uid": "NEWCARD-1", "contract_id": con}, headers=h(k["operator1"]))
        assert r.status_code == 201, r.text
        ses = (await c.get(f"/sessions/{sid}", headers=h(k["auditor1"]))).json()
        assert (ses["status"], ses["customer_id"], ses["contract_id"]) == ("rated", cus, con)
        assert ses["facts"]["product"] == "flex" and ses["rating"]["reason"] == "assignment"

        dec = await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2027-01-01T00:05:00+01:00"),
                                "late-dec", task_queue)
        assert (await dec.result()).status == "finalized"
        lines = _billed(engine, sid)
        assert {(ln.cycle_key, ln.kind) for ln in lines} == {("monthly:2026-12-01..2027-01-01", "late")}, lines
        assert sum((ln.net for ln in lines), D(0)) == D("4.50")
        with engine.connect() as conn:
            billed = conn.execute(select(B.billed_session.c.invoice_id).where(
                B.billed_session.c.session_id == sid)).all()
        assert len(billed) == 1

        # resolving again changes nothing: no rating, no audit, no second bill
        again = (await c.post(f"/sessions/{sid}/assign", headers=h(k["operator1"]))).json()
        assert (again["status"], again["changed"]) == ("rated", False), again
        bulk = (await c.post("/sessions/unassigned/resolve", headers=h(k["operator1"]))).json()
        assert (bulk["checked"], bulk["assigned"]) == (0, 0), bulk
        jan = await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2027-02-01T00:05:00+01:00"),
                                "late-jan", task_queue)
        assert (await jan.result()).status == "finalized"
        assert _billed(engine, sid) == lines
        ratings = (await c.get(f"/sessions/{sid}/ratings", headers=h(k["auditor1"]))).json()
        assert [x["reason"] for x in ratings] == ["import", "assignment"]
