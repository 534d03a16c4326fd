"""A dunning letter leaves by e-mail in a ``DocumentDeliveryWorkflow`` the dunning workflow starts
right after the letter is archived (patch ``letter-delivery``), not at the delivery sweep's next
round: on a time-skipping server of this module's own (conftest's ``env``), through a real SMTP server (aiosmtpd), with
the dunning worker (``workflows.dunning.worker``) and the billing worker. No sweep runs here, so a
message that arrives was sent by the workflow. Its history is recorded and replayed."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Engine, update
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from store import documents as A
from store import dunning as DN
from store.models import Customer
from tests.mailbox import Mailbox, attachments, smtp_server
from tests.runtime.documents.helpers import pdf_text
from tests.workflows.recording import HISTORIES
from tests.workflows.seed import RULESET, Seeded, seed_tenant
from tests.workflows.test_dunning import (
    POLICY,
    _invoice,
    _today,
    _until,
)
from workflows.documents.types import delivery_workflow_id
from workflows.dunning.types import DunningInput, dunning_workflow_id
from workflows.dunning.worker import build_dunning_worker
from workflows.dunning.workflows import DunningWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, A.SmtpSettings]]:
    with smtp_server() as (box, port):
        yield box, A.SmtpSettings(host="127.0.0.1", port=port, timeout_s=5)


def _seed(engine: Engine) -> Seeded:
    s = seed_tenant(engine, f"t{uuid.uuid4().hex[:8]}", 1, ruleset=RULESET + POLICY)
    with engine.begin() as conn:
        conn.execute(update(Customer.__table__).where(  # type: ignore[attr-defined]
            Customer.__table__.c.tenant_id == s.tenant_id).values(email="erika@example.org"))  # type: ignore[attr-defined]
    return s


async def _mail(box: Mailbox, n: int) -> None:
    for _ in range(400):
        if len(box.messages) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(box.messages)} of {n} messages arrived")


async def test_the_letter_leaves_in_a_delivery_workflow(env: WorkflowEnvironment, engine: Engine, smtp: Any,
                                                        task_queue: str) -> None:
    box, settings = smtp
    s = _seed(engine)
    today = await _today(env)
    _invoice(engine, s, 1, "40.00", today - timedelta(days=8))  # stage 1 is due at once
    cust = s.customer_of[s.account_ids[0]]
    wid = dunning_workflow_id(s.tenant_id, cust, "EUR")
    # the clock stands still: the case sleeps towards stage 2 while the letter leaves
    with env.auto_time_skipping_disabled():
        async with build_dunning_worker(env.client, engine, task_queue, smtp=settings):
            h = await env.client.start_workflow(DunningWorkflow.run, DunningInput(s.tenant_id, cust, "EUR"), id=wid,
                                                 task_queue=task_queue)
            st = await _until(h, "waiting", 1)
            await _mail(box, 1)
            with engine.connect() as conn:
                number = DN.letter_doc(conn, s.tenant_id, st.case_id, 1).number
                [dlv] = A.deliveries_of(conn, s.tenant_id, number)
                letter = DN.letter(conn, s.tenant_id, st.case_id, 1)
            out = await env.client.get_workflow_handle(delivery_workflow_id(s.tenant_id, dlv.id)).result()
            assert out["status"] == "sent"
            # the workflow that sent it is the dunning case's child (abandoned: the case does not wait)
            desc = await env.client.get_workflow_handle(delivery_workflow_id(s.tenant_id, dlv.id)).describe()
            assert desc.parent_id == wid
    assert letter is not None
    [msg] = box.messages
    assert msg["To"] == "erika@example.org" and number in msg["Subject"]
    [(name, (media, content))] = attachments(msg).items()
    assert media == "application/pdf" and content == bytes(letter["content"]) and name.endswith(".pdf")
    assert "Zahlungserinnerung" in pdf_text(content)
    with engine.connect() as conn:
        [dlv] = A.deliveries_of(conn, s.tenant_id, number)
    assert (dlv.status, dlv.attempts) == ("sent", 1)
    history = await h.fetch_history()
    if os.environ.get("EVBILL_RECORD_HISTORIES") == "1":
        HISTORIES.joinpath("dunning_letter_delivery_v4.json").write_text(history.to_json())
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert kinds.count("start_child_workflow_execution_initiated_event_attributes") == 1
    await Replayer(workflows=[DunningWorkflow], workflow_runner=UnsandboxedWorkflowRunner()).replay_workflow(
        WorkflowHistory.from_json(wid, history.to_json()))
    await h.terminate("test over")


async def test_the_next_stage_sends_its_own_letter_once(env: WorkflowEnvironment, engine: Engine, smtp: Any,
                                                        task_queue: str) -> None:
    """Stage 2, 14 days later on the server's clock: a second letter, a second e-mail, nothing twice;
    the billing worker (the dunning workflows' default home) starts the delivery as well."""
    box, settings = smtp
    s = _seed(engine)
    today = await _today(env)
    _invoice(engine, s, 1, "40.00", today - timedelta(days=8))
    cust = s.customer_of[s.account_ids[0]]
    wid = dunning_workflow_id(s.tenant_id, cust, "EUR")
    from workflows.billing.worker import build_worker

    os.environ["EVBILL_SMTP_HOST"] = "127.0.0.1"  # the billing worker's dunning activities deliver e-mail
    try:
        async with build_worker(env.client, engine, task_queue, smtp=settings):
            h = await env.client.start_workflow(DunningWorkflow.run, DunningInput(s.tenant_id, cust, "EUR"),
                                                 id=wid, task_queue=task_queue)
            await _until(h, "waiting", 1)
            await _mail(box, 1)
            await env.sleep(timedelta(days=15))
            st = await _until(h, "waiting", 2)  # for stage 3
            await _mail(box, 2)
    finally:
        os.environ.pop("EVBILL_SMTP_HOST", None)
    with engine.connect() as conn:
        numbers = [DN.letter_doc(conn, s.tenant_id, st.case_id, n).number for n in (1, 2)]
        sent = [d for n in numbers for d in A.deliveries_of(conn, s.tenant_id, n)]
        fees = list(DN.stages_of(conn, s.tenant_id, st.case_id))
    assert [d.status for d in sent] == ["sent", "sent"]
    assert len(box.messages) == 2
    assert [sum(n in m["Subject"] for m in box.messages) for n in numbers] == [1, 1]  # each letter once
    assert [f["stage"] for f in fees] == [1, 2]
    assert D(str(fees[1]["charged"])) == D("5.00")
    await h.terminate("test over")
