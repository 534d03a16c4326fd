"""E-mail delivery through a real SMTP server (aiosmtpd on a local socket): the message is read
back (recipient, subject, attachments, the XML validates), the status is recorded, a failed
delivery is retried and no document is ever sent twice. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runtime.documents.demo import demo_invoice_input
from runtime.documents.from_invoice import document_from_invoice
from store import documents as A
from store.tenants import bootstrap_tenant
from store.types import utcnow
from tests.mailbox import Mailbox, attachments, smtp_server

from .conftest import explain
from .helpers import pdf_totals, xml_totals


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, A.SmtpSettings]]:
    with smtp_server() as (box, port):
        yield box, A.SmtpSettings(host="127.0.0.1", port=port, timeout_s=5)


def _tenant(engine: Engine) -> str:
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "stadtwerke", email="rechnung@stadtwerke.example",
                                     legal_name="Stadtwerke Musterstadt GmbH")
        return tenant.id


_attachments = attachments


def test_invoice_e_mail_read_back_from_a_real_smtp_server(engine: Engine, smtp: Any, validate: Any) -> None:
    box, settings = smtp
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2b", sessions=3, number="RE-2026-000100"))
    stored = A.issue_documents(engine, tid, doc, ("pdf", "xrechnung-cii"), email="rechnung@flotten.example")
    build, send = A.message_builder(engine), A.smtp_sender(settings)
    done = A.deliver_due(engine, build, send)
    assert [d.status for d in done] == ["sent"]
    assert len(box.messages) == 1
    msg = box.messages[0]
    assert box.envelopes[0][1] == ["rechnung@flotten.example"]
    assert msg["To"] == "rechnung@flotten.example"
    assert msg["Subject"] == "Ihre Rechnung RE-2026-000100"
    assert "Stadtwerke Musterstadt GmbH" in msg["From"] and "rechnung@stadtwerke.example" in msg["From"]
    assert msg["Message-ID"] == f"<{done[0].message_id}@stadtwerke.example>"
    body = msg.get_body(("plain",))
    assert body is not None and "RE-2026-000100" in body.get_content()
    files = _attachments(msg)
    assert set(files) == {"RE-2026-000100.pdf", "RE-2026-000100-xrechnung-cii.xml"}
    ctype, pdf = files["RE-2026-000100.pdf"]
    assert ctype == "application/pdf"
    ctype, xml = files["RE-2026-000100-xrechnung-cii.xml"]
    assert ctype == "application/xml"
    # what arrived is byte for byte what the archive holds, and it is a valid e-invoice
    by_format = {s.format: s for s in stored}
    import hashlib

    assert hashlib.sha256(pdf).hexdigest() == by_format["pdf"].sha256
    assert hashlib.sha256(xml).hexdigest() == by_format["xrechnung-cii"].sha256
    report = validate(xml)
    assert report.valid, explain(report)
    assert pdf_totals(pdf, "de")["payable"] == xml_totals(xml)["payable"] == doc.totals.payable
    with engine.connect() as conn:
        assert {d.delivery_status for d in A.list_documents(conn, tid, number="RE-2026-000100")} == {"sent"}
    # nothing more is due: running the loop again sends nothing
    assert A.deliver_due(engine, build, send) == []
    assert len(box.messages) == 1


def test_failed_delivery_is_retried_and_sent_once(engine: Engine, smtp: Any) -> None:
    box, settings = smtp
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2c_en", sessions=1, number="RE-2026-000101"))
    A.issue_documents(engine, tid, doc, ("pdf",), email="jane@example.org")
    build, send = A.message_builder(engine), A.smtp_sender(settings)
    box.refuse_next = 1
    first = A.deliver_due(engine, build, send)
    assert [d.status for d in first] == ["failed"] and "451" in first[0].last_error
    assert A.deliver_due(engine, build, send) == []  # not due before the back-off has passed
    later = utcnow() + timedelta(minutes=2)
    second = A.deliver_due(engine, build, send, now=later)
    assert [(d.status, d.attempts) for d in second] == [("sent", 2)]
    assert A.deliver_due(engine, build, send, now=later + timedelta(days=1)) == []
    assert len(box.messages) == 1 and box.messages[0]["Subject"] == "Your invoice RE-2026-000101"


def test_a_message_the_server_took_is_sent_even_when_its_quit_fails(engine: Engine, smtp: Any) -> None:
    """The server accepted the message, then answered QUIT oddly: the delivery is sent, not
    failed (a failed one would be sent a second time)."""
    box, settings = smtp

    async def odd_quit(server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"  # what smtplib's ``with SMTP()`` raised SMTPResponseException on

    box.handle_QUIT = odd_quit  # type: ignore[attr-defined]
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-2026-000107"))
    A.issue_documents(engine, tid, doc, ("pdf",), email="jonas@example.org")
    done = A.deliver_due(engine, A.message_builder(engine), A.smtp_sender(settings))
    assert [(d.status, d.attempts, d.last_error) for d in done] == [("sent", 1, "")]
    assert len(box.messages) == 1


def test_unreachable_server_then_retries_exhausted(engine: Engine) -> None:
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-2026-000102"))
    A.issue_documents(engine, tid, doc, ("pdf",), email="jonas@example.org")
    dead = A.smtp_sender(A.SmtpSettings(host="127.0.0.1", port=1, timeout_s=2))
    build = A.message_builder(engine)
    now = utcnow()
    statuses = []
    for i in range(3):
        statuses += [d.status for d in A.deliver_due(engine, build, dead, now=now + timedelta(days=i),
                                                     max_attempts=3)]
    assert statuses == ["failed", "failed", "abandoned"]


def test_concurrent_workers_never_send_one_delivery_twice(engine: Engine, smtp: Any) -> None:
    box, settings = smtp
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-2026-000103"))
    A.issue_documents(engine, tid, doc, ("pdf",), email="jonas@example.org")
    with engine.connect() as conn:
        delivery = A.deliveries_of(conn, tid, "RE-2026-000103")[0]
    build, send = A.message_builder(engine), A.smtp_sender(settings)
    barrier = threading.Barrier(4)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(A.deliver(engine, tid, delivery.id, build, send).status)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(box.messages) == 1
    assert results.count("sent") >= 1


def test_resend_is_explicit_and_a_new_delivery(engine: Engine, smtp: Any) -> None:
    box, settings = smtp
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-2026-000104"))
    A.issue_documents(engine, tid, doc, ("pdf", "xrechnung-cii"), email="jonas@example.org")
    build, send = A.message_builder(engine), A.smtp_sender(settings)
    A.deliver_due(engine, build, send)
    with engine.begin() as conn:
        again = A.request_delivery(conn, tid, "RE-2026-000104", "jonas@example.org", ["pdf"])
        assert again.seq == 0 and again.status == "sent"  # asking again is not a re-send
        resend = A.request_delivery(conn, tid, "RE-2026-000104", "buchhaltung@example.org", ["xrechnung-cii"],
                                    requested_by="usr_1", resend=True)
        assert resend.seq == 1
    A.deliver_due(engine, build, send)
    assert len(box.messages) == 2
    assert list(_attachments(box.messages[1])) == ["RE-2026-000104-xrechnung-cii.xml"]
    assert box.messages[0]["Message-ID"] != box.messages[1]["Message-ID"]


def test_a_worker_dying_mid_send_is_not_retried_blindly(engine: Engine) -> None:
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-2026-000105"))
    A.issue_documents(engine, tid, doc, ("pdf",), email="jonas@example.org")
    sent: list[Any] = []

    def dies(message: Any) -> None:
        sent.append(message)
        raise KeyboardInterrupt  # the process stops after the server may have taken the message

    with pytest.raises(KeyboardInterrupt):
        A.deliver_due(engine, A.message_builder(engine), dies)
    assert A.mark_stuck_unknown(engine, timedelta(minutes=10), now=utcnow() + timedelta(hours=1)) == 1
    with engine.connect() as conn:
        assert {d.delivery_status for d in A.list_documents(conn, tid, number="RE-2026-000105")} == {"unknown"}
    assert A.deliver_due(engine, A.message_builder(engine), dies, now=utcnow() + timedelta(days=1)) == []
    assert len(sent) == 1


def test_delivery_loop_sends_until_stopped(engine: Engine, smtp: Any) -> None:
    box, settings = smtp
    tid = _tenant(engine)
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number="RE-2026-000106"))
    A.issue_documents(engine, tid, doc, ("pdf",), email="jonas@example.org")
    stop = threading.Event()
    worker = threading.Thread(target=A.delivery_loop, args=(engine, settings, stop), kwargs={"interval_s": 0.1})
    worker.start()
    try:
        for _ in range(100):
            if box.messages:
                break
            stop.wait(0.1)
    finally:
        stop.set()
        worker.join(5)
    assert len(box.messages) == 1 and not worker.is_alive()
    assert A.smtp_settings_from_env({}) is None
    parsed = A.smtp_settings_from_env({"EVBILL_SMTP_HOST": "mail.example", "EVBILL_SMTP_PORT": "587",
                                       "EVBILL_SMTP_STARTTLS": "1"})
    assert parsed is not None and (parsed.host, parsed.port, parsed.starttls) == ("mail.example", 587, True)


def test_what_the_delivery_workflow_and_the_sweep_rely_on(engine: Engine, smtp: Any) -> None:
    """``when_due=False`` claims a failed delivery before its back-off has passed (Temporal's retry
    policy keeps the time); ``stop_on_failure`` ends a round at the first delivery the server did
    not take; ``mark_stuck_unknown(delivery_id=...)`` touches that delivery only."""
    box, settings = smtp
    tid = _tenant(engine)
    for n in ("RE-2026-000110", "RE-2026-000111"):
        doc = document_from_invoice(demo_invoice_input("b2c", sessions=1, number=n))
        A.issue_documents(engine, tid, doc, ("pdf",), email="jonas@example.org")
    build, send = A.message_builder(engine), A.smtp_sender(settings)
    box.refuse_next = 1
    first = A.deliver_due(engine, build, send, stop_on_failure=True)
    assert [(d.status, d.attempts) for d in first] == [("failed", 1)]  # the second was not tried
    with engine.connect() as conn:
        [second] = A.deliveries_of(conn, tid, "RE-2026-000111" if first[0].number == "RE-2026-000110"
                                   else "RE-2026-000110")
    assert (second.status, second.attempts) == ("pending", 0)
    assert A.deliver(engine, tid, first[0].id, build, send).status == "failed"  # not due yet: untouched
    again = A.deliver(engine, tid, first[0].id, build, send, when_due=False)
    assert (again.status, again.attempts) == ("sent", 2)
    with engine.begin() as conn:
        for d in (first[0], second):
            conn.execute(A.document_delivery.update().where(A.document_delivery.c.id == d.id).values(
                status="sending", claimed_at=utcnow() - timedelta(hours=1)))
    assert A.mark_stuck_unknown(engine, timedelta(minutes=10), delivery_id=second.id) == 1
    with engine.connect() as conn:
        statuses = {d.id: d.status for n in ("RE-2026-000110", "RE-2026-000111")
                    for d in A.deliveries_of(conn, tid, n)}
    assert statuses == {first[0].id: "sending", second.id: "unknown"}
    assert len(box.messages) == 1
