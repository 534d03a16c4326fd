"""Eichrecht in the billing cycle: a session whose signed meter data failed its check
(``meter_signature_invalid``, ``meter_mismatch``) holds its invoice for a person, even under a policy
that would release on its own; approving bills it as rated. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update
from temporalio.testing import WorkflowEnvironment

from api.console.i18n import Texts
from store.models import ChargingSession
from tests.store.conftest import BACKENDS, fresh_engine
from tests.workflows.seed import insert_sessions, seed_tenant
from tests.workflows.test_billing_cycle import wait_state
from tests.workflows.test_currency_hold import AUTO, invoices, start
from workflows.billing.types import ApproveInput
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]


def mark(engine: Engine, sid: str, check: str, signed: dict[str, Any] | None) -> None:
    t = ChargingSession.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        facts = dict(conn.execute(t.select().where(t.c.id == sid)).one().facts or {})
        if signed is not None:
            facts["signed_meter"] = signed
        conn.execute(update(t).where(t.c.id == sid).values(meter_check=check, facts=facts))


async def test_failed_meter_checks_hold_the_invoice_until_approved(env: WorkflowEnvironment, db: Engine,
                                                                   task_queue: str) -> None:
    t = f"mtr{uuid.uuid4().hex[:6]}"
    s = seed_tenant(db, t, 1, ruleset=AUTO)
    acc = s.account_ids[0]
    insert_sessions(db, s, [(acc, f"{t}-ok", datetime(2026, 11, 3, 10, tzinfo=UTC), D(10)),
                            (acc, f"{t}-mis", datetime(2026, 11, 5, 10, tzinfo=UTC), D(11)),
                            (acc, f"{t}-sig", datetime(2026, 11, 7, 10, tzinfo=UTC), D(5)),
                            (acc, f"{t}-leg", datetime(2026, 11, 9, 10, tzinfo=UTC), D(5))])
    mark(db, f"{t}-ok", "verified", {"check": "verified", "signed_kwh": "10"})
    mark(db, f"{t}-mis", "meter_mismatch", {"check": "meter_mismatch", "reason": "energy_differs",
                                            "signed_kwh": "10.0"})
    mark(db, f"{t}-sig", "meter_signature_invalid", {"check": "meter_signature_invalid", "reason": "bad_signature"})
    mark(db, f"{t}-leg", "meter_signature_invalid", None)  # a legal-for-trade tariff, no signed data at all
    async with build_worker(env.client, db, task_queue):
        h = await start(env, t, acc, task_queue, "2026-12-01T00:05:00+01:00")
        await wait_state(h, "held")
        await env.sleep(3 * 3600)  # the policy would have auto-released after one hour
        st = await h.query(BillingCycleWorkflow.status)
        assert st.state == "held", st
        by_kind = {r["kind"]: r for r in st.reasons}
        assert set(by_kind) == {"meter_signature_invalid", "meter_mismatch"}
        sig, mis = by_kind["meter_signature_invalid"], by_kind["meter_mismatch"]
        assert (sig["sessions"], sig["reasons"]) == (f"{t}-sig,{t}-leg", "bad_signature,no_signed_data")
        assert (mis["sessions"], mis["reasons"], mis["signed_kwh"], mis["session_kwh"]) == (
            f"{t}-mis", "energy_differs", "10.0", "11")
        assert mis["message"].startswith(f"the billed energy of session {t}-mis does not equal the signed meter "
                                         f"readings (energy_differs)")
        # the console says it in the approver's language
        de = Texts("de").reason(mis)
        assert "signiert 10.0 kWh, abgerechnet 11 kWh" in de, de
        en = Texts("en").reason(sig)
        assert "signature invalid, no signed data for a legal-for-trade tariff" in en, en
        status = Texts("en").reason({**mis, "reasons": "reading_status_T"})
        assert "the meter marks the reading as not good (status T)" in status, status
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver", "checked the meters"))
        res = await h.result()
        assert res.status == "finalized"
    [inv] = invoices(db, t)
    assert inv.sessions == 4 and inv.status == "finalized"
