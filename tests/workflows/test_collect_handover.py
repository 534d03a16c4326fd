"""The billing hand-over to collection (``payments.collect_invoice``): a finalized invoice of an
account that pays by direct debit with an active mandate has its open item scheduled for the day
and amount the invoice notified (the PDF's debit notice says the same), the next collection run
collects it on that day, and a retried hand-over schedules nothing twice; an account that pays by
transfer is told to wait for the transfer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session
from temporalio.testing import WorkflowEnvironment

from store import billing as B
from store import collections as C
from store.documents import load_invoice_input
from store.models import Contract
from store.tenants import bootstrap_tenant
from store.types import new_id
from tests.workflows.seed import RULESET, insert_sessions, seed_accounts
from workflows.billing.activities import BillingActivities
from workflows.billing.types import BillingCycleInput, CollectPaymentInput
from workflows.billing.worker import build_worker, start_cycle

pytestmark = pytest.mark.asyncio(loop_scope="session")

# net 14 in the seed's billing block: a 20-day notice moves the debit after the due date
PAYMENTS = RULESET + """
payments sepa "Direct debit" {
  pre_notification 20 days
  lead_time 10 days
}
"""


async def test_hand_over_schedules_the_prenotified_debit(env: WorkflowEnvironment, engine: Engine,
                                                          task_queue: str) -> None:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "handover")
    tid = tenant.id
    s = seed_accounts(engine, tid, 3, ruleset=PAYMENTS)  # the version in force states the payments policy
    debit, transfer, no_mandate = s.account_ids
    insert_sessions(engine, s, [(a, f"h_{i}", datetime(2026, 11, 10 + i, tzinfo=UTC), D(20 + i))
                                for i, a in enumerate(s.account_ids)])
    cred = new_id("cra")
    with engine.begin() as conn:
        ct = Contract.__table__  # type: ignore[attr-defined]
        conn.execute(update(ct).where(ct.c.account_id == transfer).values(payment_method="bank_transfer"))
        conn.execute(insert(C.creditor_account).values(
            id=cred, tenant_id=tid, name="Ladestrom GmbH", iban="DE02120300000000202051", bic="",
            creditor_id="DE98ZZZ09999999999", currency="EUR", lead_time_days=2, pain_version="pain.008.001.08",
            pass_return_charges=True, created_at=datetime(2026, 1, 1, tzinfo=UTC)))
        C.insert_mandate(conn, tid, cred, debit, "M-1", date(2026, 1, 5), "Customer 0", "DE89370400440532013000",
                         "COBADEFFXXX", "CORE")
    async with build_worker(env.client, engine, task_queue):
        numbers = {}
        for acc in s.account_ids:
            res = await (await start_cycle(env.client, BillingCycleInput(tid, acc, as_of="2026-12-01T00:05:00+01:00"),
                                           "ho-nov", task_queue)).result()
            assert res.status == "finalized", res
            numbers[acc] = (res.invoice_id, res.number)

    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.id == numbers[debit][0])).one()
        [sched] = conn.execute(select(C.collection_schedule).where(C.collection_schedule.c.tenant_id == tid)).all()
        notified = max(inv.due_date, inv.issue_date + timedelta(days=20))
        assert (sched.invoice_id, sched.collection_date, sched.amount) == (inv.id, notified, D(inv.gross_total))
        # the invoice's debit notice names the same day (documents render beside the hand-over)
        payment = load_invoice_input(conn, tid, inv.id).payment
        assert (payment.method, payment.mandate_reference, payment.debit_date) == ("sepa_direct_debit", "M-1",
                                                                                   notified)

    # a retried hand-over answers what the first one did and writes nothing new
    acts = BillingActivities(engine)
    again = acts.collect_payment(CollectPaymentInput(tid, inv.id, inv.number, str(inv.gross_total)))
    assert (again.status, again.detail) == (
        "scheduled", f"{inv.number}: direct debit of {inv.gross_total} EUR scheduled for {notified.isoformat()}")
    other = acts.collect_payment(CollectPaymentInput(tid, numbers[transfer][0], numbers[transfer][1], "0"))
    # the due date is the invoice's (dated by the shared time-skipping server's clock: any year)
    transfer_inv = numbers[transfer][0]
    with engine.connect() as conn:
        due = conn.execute(select(B.invoice.c.due_date).where(B.invoice.c.id == transfer_inv)).scalar_one()
    assert other.status == "awaiting_transfer" and other.detail.startswith(f"{numbers[transfer][1]}: awaiting "
                                                                           "transfer of ")
    assert other.detail.endswith(f", due {due.isoformat()}")
    lacking = acts.collect_payment(CollectPaymentInput(tid, numbers[no_mandate][0], numbers[no_mandate][1], "0"))
    assert lacking.status == "awaiting_transfer" and "without an active mandate" in lacking.detail
    with engine.connect() as conn:
        assert len(conn.execute(select(C.collection_schedule).where(
            C.collection_schedule.c.tenant_id == tid)).all()) == 1

    # the next run collects it on the notified day: the policy's 10-day lead time reaches it where
    # the creditor account's 2 days would not (the invoice is dated in the shared test server's
    # time, which other tests move on: the mandate is signed shortly before, so it has not expired)
    with engine.begin() as conn:
        conn.execute(update(C.mandate).where(C.mandate.c.tenant_id == tid).values(
            signed_on=inv.issue_date - timedelta(days=30)))
        g = C.gather(conn, tid, cred, "run-1", notified - timedelta(days=9), "usr_a")
        assert g.items == 1, g
        [item] = C.run_items(conn, g.run_id)
        assert (item.number, item.collection_date, item.amount) == (inv.number, notified, D(inv.gross_total))



async def test_billing_run_batch_schedules_as_the_hand_over_does(engine: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A billing run's batch hands its invoices over to collection set-based
    (``store.collections.schedule_invoices``): the same schedule as the one-by-one hand-over for the
    direct-debit account with a mandate, none for the account paying by transfer or the one without
    a mandate, and a retried batch writes nothing twice."""
    from temporalio.testing import ActivityEnvironment

    from workflows.billing.types import AssembleBatchInput

    monkeypatch.setenv("EVBILL_RENDER_DOCUMENTS", "0")
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "handover-run")
    tid = tenant.id
    s = seed_accounts(engine, tid, 3, ruleset=PAYMENTS)
    debit, transfer, no_mandate = s.account_ids
    insert_sessions(engine, s, [(a, f"hr_{i}", datetime(2026, 11, 10 + i, tzinfo=UTC), D(20 + i))
                                for i, a in enumerate(s.account_ids)])
    cred = new_id("cra")
    with engine.begin() as conn:
        ct = Contract.__table__  # type: ignore[attr-defined]
        conn.execute(update(ct).where(ct.c.account_id == transfer).values(payment_method="bank_transfer"))
        conn.execute(insert(C.creditor_account).values(
            id=cred, tenant_id=tid, name="Ladestrom GmbH", iban="DE02120300000000202051", bic="",
            creditor_id="DE98ZZZ09999999999", currency="EUR", lead_time_days=2, pain_version="pain.008.001.08",
            pass_return_charges=True, created_at=datetime(2026, 1, 1, tzinfo=UTC)))
        C.insert_mandate(conn, tid, cred, debit, "M-1", date(2026, 1, 5), "Customer 0", "DE89370400440532013000",
                         "COBADEFFXXX", "CORE")
    acts = BillingActivities(engine)
    inp = AssembleBatchInput(tid, list(s.account_ids), "2026-12-01T00:05:00+01:00", "2026-12-01T00:05:00+00:00")
    for _ in range(2):  # the second time: a retried batch
        out = ActivityEnvironment().run(acts.assemble_batch, inp)
        assert out.finalized == 3 and not out.held, out
    with engine.connect() as conn:
        inv = conn.execute(select(B.invoice).where(B.invoice.c.account_id == debit)).one()
        [sched] = conn.execute(select(C.collection_schedule).where(C.collection_schedule.c.tenant_id == tid)).all()
        notified = max(inv.due_date, inv.issue_date + timedelta(days=20))
        assert (sched.invoice_id, sched.collection_date, sched.amount) == (inv.id, notified, D(inv.gross_total))
        assert sorted(r.number_seq for r in conn.execute(select(B.invoice.c.number_seq).where(
            B.invoice.c.tenant_id == tid))) == [1, 2, 3]
    # what the one-by-one hand-over answers for each agrees with what the batch wrote
    again = acts.collect_payment(CollectPaymentInput(tid, inv.id, inv.number, str(inv.gross_total)))
    assert (again.status, again.detail) == (
        "scheduled", f"{inv.number}: direct debit of {inv.gross_total} EUR scheduled for {notified.isoformat()}")
    with engine.connect() as conn:
        others = {r.account_id: r for r in conn.execute(select(B.invoice).where(
            B.invoice.c.account_id.in_([transfer, no_mandate])))}
    assert acts.collect_payment(CollectPaymentInput(tid, others[transfer].id, others[transfer].number, "0")
                                ).status == "awaiting_transfer"
    lacking = acts.collect_payment(CollectPaymentInput(tid, others[no_mandate].id, others[no_mandate].number, "0"))
    assert lacking.status == "awaiting_transfer" and "without an active mandate" in lacking.detail
    with engine.connect() as conn:
        assert len(conn.execute(select(C.collection_schedule).where(
            C.collection_schedule.c.tenant_id == tid)).all()) == 1
