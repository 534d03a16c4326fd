"""Issue 11, defect 3: a billing cycle whose period holds amounts in another currency than the
account's is held for finance (``currency_mismatch``) instead of adding them into a wrong
invoice: sessions rated in CHF for a EUR account, or a ruleset version in CHF at the cut-off.
Runs on SQLite and, with ``EVBILL_TEST_POSTGRES_URL``, on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from runtime.invoicing import APPROVAL_REQUIRED
from store import billing as B
from store.models import ChargingSession, RatedLineRow, SessionRating
from tests.store.conftest import BACKENDS, fresh_engine
from tests.workflows.seed import RULESET, insert_sessions, seed_tenant
from tests.workflows.test_billing_cycle import wait_state
from tests.workflows.test_services_cycle import add_version
from workflows.billing import workflows as W
from workflows.billing.types import ApproveInput, BillingCycleInput, RejectInput, ReleaseHoldInput
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

# the policy would release on its own after an hour: a currency mismatch must wait for a person
AUTO = RULESET.replace("  approval required\n", "  auto_release after 1 hours\n")
assert "auto_release" in AUTO


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    yield eng
    cleanup()  # type: ignore[operator]


def _t(model: Any) -> Any:
    return model.__table__


def rate_in(engine: Engine, sid: str, currency: str) -> None:
    """Make a seeded session's current rating one made by a ruleset in ``currency``."""
    with engine.begin() as conn:
        conn.execute(update(_t(RatedLineRow)).where(_t(RatedLineRow).c.session_id == sid).values(currency=currency))
        conn.execute(update(_t(SessionRating)).where(_t(SessionRating).c.session_id == sid).values(currency=currency))
        conn.execute(update(_t(ChargingSession)).where(_t(ChargingSession).c.id == sid).values(currency=currency))


async def start(env: WorkflowEnvironment, tenant: str, acc: str, task_queue: str, as_of: str) -> Any:
    return await env.client.start_workflow(BillingCycleWorkflow.run, BillingCycleInput(tenant, acc, as_of=as_of),
                                           id=f"wf-{uuid.uuid4().hex}", task_queue=task_queue)


def invoices(engine: Engine, tenant: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(B.invoice).where(B.invoice.c.tenant_id == tenant)
                                 .order_by(B.invoice.c.local_start)).all())


async def test_the_workflow_and_the_runtime_agree_on_approval_only_reasons() -> None:
    assert set(W._APPROVAL_ONLY) == APPROVAL_REQUIRED


async def test_sessions_rated_in_another_currency_hold_the_draft(env: WorkflowEnvironment, db: Engine,
                                                                 task_queue: str) -> None:
    t = f"cur{uuid.uuid4().hex[:6]}"
    s = seed_tenant(db, t, 1, ruleset=AUTO)
    acc = s.account_ids[0]
    # 10 kWh: 0.50 + 4.00 = 4.50 EUR; 20 kWh: 0.50 + 8.00 = 8.50, but rated in CHF
    insert_sessions(db, s, [(acc, f"{t}-eur", datetime(2026, 11, 5, 10, tzinfo=UTC), D(10)),
                            (acc, f"{t}-chf", datetime(2026, 11, 20, 18, tzinfo=UTC), D(20))])
    rate_in(db, f"{t}-chf", "CHF")
    async with build_worker(env.client, db, task_queue):
        h = await start(env, t, acc, task_queue, "2026-12-01T00:05:00+01:00")
        await wait_state(h, "held")
        await env.sleep(3 * 3600)  # the policy would have auto-released after one hour
        st = await h.query(BillingCycleWorkflow.status)
        assert st.state == "held", st
        [reason] = st.reasons
        assert reason == {
            "kind": "currency_mismatch", "source": "session", "currency": "CHF", "account_currency": "EUR",
            "refs": f"{t}-chf", "net": "8.50",
            "message": f"session {t}-chf rated in CHF (net 8.50 CHF), but the account bills in EUR: left off this "
                       f"draft, not converted (re-rate it in EUR or correct the account's currency, then "
                       f"re-assemble; approving bills the period without it, and it comes back as late sessions "
                       f"on the next invoice until billable in EUR)"}
        [inv] = invoices(db, t)
        # built without the CHF session: 4.50 + the 4.99 product fee, never 4.50 + 8.50 + 4.99
        assert (inv.status, inv.currency, inv.net_total, inv.hold_reasons) == ("held", "EUR", D("9.49"), [reason])
        # not a manual hold: it cannot be released, only approved or rejected
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await h.execute_update(BillingCycleWorkflow.release_hold, ReleaseHoldInput("ap1", "approver", "x"))
        assert "other hold reasons remain" in str(err.value.cause)
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver", "bill the EUR part"))
        res = await h.result()
        assert (res.status, res.decided_by) == ("finalized", "ap1")
        with db.connect() as conn:
            [inv] = invoices(db, t)
            lines = conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == inv.id)).all()
            billed = conn.execute(select(B.billed_session.c.session_id)
                                  .where(B.billed_session.c.tenant_id == t)).scalars().all()
        assert (inv.status, inv.net_total, inv.tax_total, inv.gross_total) == (
            "finalized", D("9.49"), D("1.80"), D("11.29"))
        assert {ln.session_id for ln in lines} == {"", f"{t}-eur"}
        assert billed == [f"{t}-eur"]  # the CHF session is not billed: it stays for a later invoice
        assert [r["kind"] for r in inv.hold_reasons] == ["currency_mismatch"]
        # December: it comes back as a late session, still in CHF, and holds that draft too
        h2 = await start(env, t, acc, task_queue, "2027-01-01T00:05:00+01:00")
        await wait_state(h2, "held")
        [again] = (await h2.query(BillingCycleWorkflow.status)).reasons
        assert (again["source"], again["refs"], again["currency"]) == ("late_session", f"{t}-chf", "CHF")
        assert invoices(db, t)[1].net_total == D("4.99")
        # leave nothing running on the shared time-skipping server
        await h2.execute_update(BillingCycleWorkflow.reject, RejectInput("ap1", "approver", "wait for the re-rating"))
        assert (await h2.result()).status == "rejected"


async def test_a_ruleset_version_in_another_currency_holds_the_draft(env: WorkflowEnvironment, db: Engine,
                                                                     task_queue: str) -> None:
    t = f"crv{uuid.uuid4().hex[:6]}"
    s = seed_tenant(db, t, 1)
    acc = s.account_ids[0]
    insert_sessions(db, s, [(acc, f"{t}-s1", datetime(2026, 11, 5, 10, tzinfo=UTC), D(10))])  # 4.50 EUR
    # from June the tenant's ruleset prices in CHF: its product fee (4.99 CHF) cannot go on a EUR invoice
    rv2 = add_version(db, s, 2, RULESET.replace("currency EUR", "currency CHF"), datetime(2026, 6, 1, tzinfo=UTC))
    async with build_worker(env.client, db, task_queue):
        h = await start(env, t, acc, task_queue, "2026-12-01T00:05:00+01:00")
        await wait_state(h, "held")
        [reason] = (await h.query(BillingCycleWorkflow.status)).reasons
        assert {k: reason[k] for k in ("kind", "source", "currency", "account_currency", "ruleset_version")} == {
            "kind": "currency_mismatch", "source": "ruleset_version", "currency": "CHF", "account_currency": "EUR",
            "ruleset_version": rv2}
        assert reason["message"] == (
            f"ruleset version {rv2} prices in CHF, but the account bills in EUR: the base fee, allowances and "
            f"tiers of product 'flex' are left off this draft (publish a version in EUR or correct the account's "
            f"currency, then re-assemble; approving bills the period without them)")
        [inv] = invoices(db, t)
        assert (inv.status, inv.net_total) == ("held", D("4.50"))
        await h.execute_update(BillingCycleWorkflow.approve, ApproveInput("ap1", "approver", "no fee this month"))
        res = await h.result()
    assert res.status == "finalized"
    [inv] = invoices(db, t)
    assert (inv.status, inv.net_total, inv.gross_total) == ("finalized", D("4.50"), D("5.36"))
