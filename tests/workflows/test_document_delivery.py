"""Invoice e-mails leave through the worker: a finalized invoice's cycle starts its
``DocumentDeliveryWorkflow``, which sends the archived PDF and e-invoice to a real SMTP server
(aiosmtpd on 127.0.0.1) and records the delivery as sent; a mail server that refuses at first is
tried again by the retry policy and gets the message once; the sweep sends what anything else
queued; a delivery left mid-send by a dead worker is never sent blindly; without SMTP nothing
leaves and the delivery stays pending."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Engine, update
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from store import documents as A
from store.models import BillingAccount, Contract, Customer, Tenant
from store.types import utcnow
from tests.mailbox import Mailbox, attachments, smtp_server
from tests.workflows.seed import insert_sessions, seed_tenant
from workflows.billing.types import BillingCycleInput, BillingCycleResult
from workflows.billing.worker import build_worker
from workflows.billing.workflows import BillingCycleWorkflow
from workflows.documents.types import DeliverDocumentInput, DeliverySweepInput, delivery_workflow_id
from workflows.documents.workflows import (
    DELIVERY_RETRY,
    DocumentDeliverySweepWorkflow,
    DocumentDeliveryWorkflow,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


DEC_1 = "2026-12-01T00:05:00+01:00"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, A.SmtpSettings]]:
    with smtp_server() as (box, port):
        yield box, A.SmtpSettings(host="127.0.0.1", port=port, timeout_s=5)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery retry policy with waits of a fraction of a second: the time-skipping test
    server does not skip an activity's retry backoff (a minute would be a real minute). The
    attempts and the non-retryable errors stay the production policy's."""
    import dataclasses

    import workflows.documents.workflows as W

    monkeypatch.setattr(W, "DELIVERY_RETRY", dataclasses.replace(
        DELIVERY_RETRY, initial_interval=timedelta(milliseconds=100), maximum_interval=timedelta(milliseconds=400)))


def _t(model: Any) -> Any:
    return model.__table__


def seed(engine: Engine, tenant: str) -> str:
    """One business customer whose contract asks for a PDF and an XRechnung, with sessions in
    November; returns the billing account."""
    s = seed_tenant(engine, tenant, 1)
    acc = s.account_ids[0]
    with engine.begin() as conn:
        conn.execute(update(_t(Tenant)).where(_t(Tenant).c.id == tenant).values(
            legal_name="Stadtwerke Musterstadt GmbH", street="Energieweg 12", postal_code="12345",
            city="Musterstadt", vat_id="DE136695976", iban="DE02120300000000202051", bic="BYLADEM1001",
            email="rechnung@stadtwerke.example", branding={"phone": "+49 30 1234567"}))
        conn.execute(update(_t(Customer)).where(_t(Customer).c.id == s.customer_of[acc]).values(
            kind="business", company_name="Flotten Logistik AG", vat_id="DE811569869", street="Lindenstraße 5",
            postal_code="10969", city="Berlin", email="fuhrpark@flotten.example"))
        conn.execute(update(_t(BillingAccount)).where(_t(BillingAccount).c.id == acc).values(
            invoice_email="rechnung@flotten.example"))
        conn.execute(update(_t(Contract)).where(_t(Contract).c.account_id == acc).values(
            document_formats="pdf,xrechnung-cii"))
    insert_sessions(engine, s, [(acc, f"{tenant}-s{i}", datetime(2026, 11, 3 + i, 9, tzinfo=UTC), D(11) + i)
                                for i in range(2)])
    return acc


async def run_cycle(env: WorkflowEnvironment, tenant: str, acc: str, tq: str) -> tuple[BillingCycleResult, Any]:
    h = await env.client.start_workflow(BillingCycleWorkflow.run, BillingCycleInput(tenant, acc, as_of=DEC_1),
                                        id=f"wf-{uuid.uuid4().hex}", task_queue=tq)
    return await h.result(), h


def delivery_of(engine: Engine, tenant: str, number: str) -> A.Delivery:
    with engine.connect() as conn:
        [d] = A.deliveries_of(conn, tenant, number)
    return d


async def test_a_finalized_invoice_is_e_mailed_with_its_documents(env: WorkflowEnvironment, engine: Engine,
                                                                  task_queue: str, smtp: Any) -> None:
    box, settings = smtp
    acc = seed(engine, "mail1")
    async with build_worker(env.client, engine, task_queue, smtp=settings):
        res, cycle = await run_cycle(env, "mail1", acc, task_queue)
        assert res.status == "finalized"
        d = delivery_of(engine, "mail1", res.number)
        sent = await env.client.get_workflow_handle_for(
            DocumentDeliveryWorkflow.run, delivery_workflow_id("mail1", d.id)).result()
    assert (sent.status, sent.attempts) == ("sent", 1)
    d = delivery_of(engine, "mail1", res.number)
    assert (d.status, d.attempts, d.recipient) == ("sent", 1, "rechnung@flotten.example")
    [msg] = box.messages
    assert box.envelopes[0][1] == ["rechnung@flotten.example"] and res.number in msg["Subject"]
    files = attachments(msg)
    assert set(files) == {f"{res.number}.pdf", f"{res.number}-xrechnung-cii.xml"}
    with engine.connect() as conn:
        archived = {m.filename: m.sha256 for m, _ in A.documents_by_number(conn, "mail1", res.number)}
        assert {m.delivery_status for m, _ in A.documents_by_number(conn, "mail1", res.number)} == {"sent"}
    # what arrived is byte for byte what the archive holds
    assert {name: hashlib.sha256(body).hexdigest() for name, (_, body) in files.items()} == archived
    assert files[f"{res.number}.pdf"][0] == "application/pdf"
    # the new path replays (the child start sits behind the "deliver-documents" patch)
    history = await cycle.fetch_history()
    await Replayer(workflows=[BillingCycleWorkflow]).replay_workflow(
        WorkflowHistory.from_json(cycle.id, history.to_json()))


async def test_a_refusing_mail_server_is_tried_again_and_gets_the_message_once(
        env: WorkflowEnvironment, engine: Engine, task_queue: str, smtp: Any, fast_retries: None) -> None:
    box, settings = smtp
    acc = seed(engine, "mail2")
    box.refuse_next = 2  # "451 mailbox temporarily unavailable", twice
    async with build_worker(env.client, engine, task_queue, smtp=settings):
        res, _ = await run_cycle(env, "mail2", acc, task_queue)
        d = delivery_of(engine, "mail2", res.number)
        out = await env.client.get_workflow_handle_for(
            DocumentDeliveryWorkflow.run, delivery_workflow_id("mail2", d.id)).result()
    assert (out.status, out.attempts) == ("sent", 3)
    d = delivery_of(engine, "mail2", res.number)
    assert (d.status, d.attempts, d.last_error) == ("sent", 3, "")
    assert len(box.messages) == 1


async def test_an_unreachable_server_is_given_up_after_the_row_s_attempts(
        env: WorkflowEnvironment, engine: Engine, task_queue: str, fast_retries: None) -> None:
    acc = seed(engine, "mail3")
    dead = A.SmtpSettings(host="127.0.0.1", port=1, timeout_s=2)  # nothing listens on port 1
    assert DELIVERY_RETRY.maximum_attempts == dead.max_attempts
    async with build_worker(env.client, engine, task_queue, smtp=dead):
        res, _ = await run_cycle(env, "mail3", acc, task_queue)
        d = delivery_of(engine, "mail3", res.number)
        out = await env.client.get_workflow_handle_for(
            DocumentDeliveryWorkflow.run, delivery_workflow_id("mail3", d.id)).result()
    d = delivery_of(engine, "mail3", res.number)
    assert (out.status, d.status, d.attempts) == ("abandoned", "abandoned", dead.max_attempts)
    assert "Connection refused" in d.last_error or "Errno" in d.last_error, d.last_error


async def test_without_smtp_nothing_leaves_and_the_delivery_stays_pending(
        env: WorkflowEnvironment, engine: Engine, task_queue: str, smtp: Any) -> None:
    box, _ = smtp
    acc = seed(engine, "mail4")
    async with build_worker(env.client, engine, task_queue):
        res, cycle = await run_cycle(env, "mail4", acc, task_queue)
    d = delivery_of(engine, "mail4", res.number)
    assert (d.status, d.attempts) == ("pending", 0) and box.messages == []
    # no delivery workflow was started: a cycle of a worker without SMTP is the cycle it was
    kinds = [e.WhichOneof("attributes") for e in (await cycle.fetch_history()).events]
    assert "start_child_workflow_execution_initiated_event_attributes" not in kinds


async def test_the_sweep_sends_what_else_was_queued_and_leaves_a_dead_send_to_a_person(
        env: WorkflowEnvironment, engine: Engine, task_queue: str, smtp: Any) -> None:
    box, settings = smtp
    acc = seed(engine, "mail5")
    async with build_worker(env.client, engine, task_queue):  # month-end ran without SMTP
        res, _ = await run_cycle(env, "mail5", acc, task_queue)
    with engine.begin() as conn:
        # a re-send an operator asked for, and another whose worker died while sending it
        resend = A.request_delivery(conn, "mail5", res.number, "buchhaltung@flotten.example", ["pdf"], resend=True)
        dead = A.request_delivery(conn, "mail5", res.number, "archiv@flotten.example", ["pdf"], resend=True)
        conn.execute(update(A.document_delivery).where(A.document_delivery.c.id == dead.id).values(
            status="sending", attempts=1, claimed_at=utcnow() - timedelta(hours=1)))
    async with build_worker(env.client, engine, task_queue, smtp=settings):
        swept = await env.client.execute_workflow(DocumentDeliverySweepWorkflow.run, DeliverySweepInput(),
                                                  id=f"sweep-{uuid.uuid4().hex}", task_queue=task_queue)
        again = await env.client.execute_workflow(DocumentDeliverySweepWorkflow.run, DeliverySweepInput(),
                                                  id=f"sweep-{uuid.uuid4().hex}", task_queue=task_queue)
        # the delivery workflow of the dead send does not send it either
        out = await env.client.execute_workflow(DocumentDeliveryWorkflow.run,
                                                DeliverDocumentInput("mail5", dead.id, res.number),
                                                id=f"dlv-{uuid.uuid4().hex}", task_queue=task_queue)
    assert (swept.attempted, swept.sent, swept.marked_unknown) == (2, 2, 1)
    assert again.attempted == 0 and out.status == "unknown"
    with engine.connect() as conn:
        by_id = {d.id: d for d in A.deliveries_of(conn, "mail5", res.number)}
    assert {by_id[resend.id].status, by_id[dead.id].status} == {"sent", "unknown"}
    assert sorted(rcpt for _, [rcpt] in box.envelopes) == ["buchhaltung@flotten.example", "rechnung@flotten.example"]


async def test_the_sweep_schedule_sends_what_is_due_and_follows_the_smtp_setting(
        dev: WorkflowEnvironment, engine: Engine, task_queue: str, smtp: Any) -> None:
    """What ``evbill serve`` keeps at start, on a real dev server (the test server has no
    schedules): with SMTP the schedule exists and its sweeps send a queued delivery; a start
    without SMTP pauses it, the next start with SMTP resumes it."""
    import asyncio

    from sqlalchemy.orm import Session

    from runtime.documents.demo import demo_invoice_input
    from runtime.documents.from_invoice import document_from_invoice
    from store.tenants import bootstrap_tenant
    from workflows.documents.schedules import ensure_sweep_schedule, pause_sweep_schedule
    from workflows.documents.types import SWEEP_SCHEDULE_ID

    box, settings = smtp
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "sweep", email="rechnung@stadtwerke.example")
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-2026-000900"))
    A.issue_documents(engine, tenant.id, doc, ("pdf",), email="jonas@example.org")  # a credit note would do too
    client = dev.client
    async with build_worker(client, engine, task_queue, smtp=settings):
        assert await ensure_sweep_schedule(client, task_queue, timedelta(seconds=1)) == SWEEP_SCHEDULE_ID
        for _ in range(300):
            if box.messages:
                break
            await asyncio.sleep(0.1)
    assert [rcpt for _, [rcpt] in box.envelopes] == ["jonas@example.org"]
    handle = client.get_schedule_handle(SWEEP_SCHEDULE_ID)
    assert await pause_sweep_schedule(client, "EVBILL_SMTP_HOST not set")
    assert (await handle.describe()).schedule.state.paused
    await ensure_sweep_schedule(client, task_queue, timedelta(minutes=1))  # idempotent, and resumes
    desc = await handle.describe()
    assert not desc.schedule.state.paused and desc.schedule.spec.intervals[0].every == timedelta(minutes=1)
    await handle.delete()
    assert not await pause_sweep_schedule(client, "none left")


async def test_a_delivery_handed_to_its_workflow_is_left_to_it_by_the_sweep(engine: Engine, smtp: Any) -> None:
    """At month-end thousands of cycles start their delivery workflows: the sweep running beside
    them must not race each for its message. The hand-over defers the queued e-mail a few minutes;
    one whose workflow never ran is the sweep's after that."""
    from workflows.billing.activities import BillingActivities
    from workflows.billing.types import AssembleInput, FinalizeInput, RenderDocumentsInput

    box, settings = smtp
    acc = seed(engine, "mail6")
    acts = BillingActivities(engine, delivers_email=True)
    draft = acts.assemble_draft(AssembleInput("mail6", acc, DEC_1, "wf-mail6"))
    fin = acts.finalize_invoice(FinalizeInput("mail6", draft.invoice_id))
    handed = acts.render_documents(RenderDocumentsInput("mail6", fin.invoice_id, fin.number))
    d = delivery_of(engine, "mail6", fin.number)
    assert handed.status == "issued" and handed.delivery_id == d.id
    build, send = A.message_builder(engine), A.smtp_sender(settings)
    assert A.deliver_due(engine, build, send) == [] and box.messages == []
    later = A.deliver_due(engine, build, send, now=utcnow() + timedelta(minutes=6))
    assert [(x.id, x.status, x.attempts) for x in later] == [(d.id, "sent", 1)]
    # a hand-over retried after the e-mail left names no delivery: nothing is sent twice
    again = acts.render_documents(RenderDocumentsInput("mail6", fin.invoice_id, fin.number))
    assert (again.status, again.delivery_id) == ("issued", "") and len(box.messages) == 1


async def test_a_re_send_through_the_api_leaves_at_once(env: WorkflowEnvironment, engine: Engine, task_queue: str,
                                                       smtp: Any) -> None:
    """``POST /documents/{id}/deliveries`` with Temporal: the re-send gets its own delivery
    workflow, not the next sweep."""
    from tests.workflows.test_billing_api import api_client, h, keys

    box, settings = smtp
    acc = seed(engine, "mail7")
    k = keys(engine, "mail7")
    async with build_worker(env.client, engine, task_queue, smtp=settings), \
            api_client(env, engine, task_queue) as c:
        res, _ = await run_cycle(env, "mail7", acc, task_queue)
        first = delivery_of(engine, "mail7", res.number)
        await env.client.get_workflow_handle_for(DocumentDeliveryWorkflow.run,
                                                 delivery_workflow_id("mail7", first.id)).result()
        docs = (await c.get("/documents", params={"invoice_id": res.invoice_id}, headers=h(k["auditor1"]))).json()
        pdf = next(d for d in docs["items"] if d["format"] == "pdf")
        r = await c.post(f"/documents/{pdf['id']}/deliveries", json={"recipient": "buchhaltung@flotten.example"},
                         headers=h(k["operator1"]))
        assert r.status_code == 202, r.text
        out = await env.client.get_workflow_handle_for(
            DocumentDeliveryWorkflow.run, delivery_workflow_id("mail7", r.json()["id"])).result()
        detail = (await c.get(f"/documents/{pdf['id']}", headers=h(k["auditor1"]))).json()
    assert (out.status, out.attempts) == ("sent", 1)
    assert [(d["seq"], d["status"], d["recipient"]) for d in detail["deliveries"]] == [
        (0, "sent", "rechnung@flotten.example"), (1, "sent", "buchhaltung@flotten.example")]
    assert [rcpt for _, [rcpt] in box.envelopes] == ["rechnung@flotten.example", "buchhaltung@flotten.example"]
    assert list(attachments(box.messages[1])) == [f"{res.number}.pdf"]
