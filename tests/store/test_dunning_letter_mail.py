"""A dunning letter is sent like an invoice (SQLite and PostgreSQL): archived as a document and
queued for e-mail once, in the letter's own transaction, to the account's invoice address or the
customer's; the delivery sweep sends it through a real SMTP server. A private person's letter
greets them by name; a customer without an address gets the letter archived, not mailed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, update

from store import documents as A
from store import dunning as DN
from store.models import Customer
from tests.mailbox import Mailbox, attachments, smtp_server
from tests.runtime.documents.helpers import pdf_text
from tests.store.test_dunning_actions import _stage_1
from workflows.dunning.letters import archive_letter


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, A.SmtpSettings]]:
    with smtp_server() as (box, port):
        yield box, A.SmtpSettings(host="127.0.0.1", port=port, timeout_s=5)


def test_a_letter_is_archived_queued_once_and_sent(engine: Engine, smtp: Any) -> None:
    box, settings = smtp
    t, case, p1 = _stage_1(engine)
    with engine.begin() as conn:
        DN.reach_stage(conn, t, case.id, p1)
    lid = archive_letter(engine, t, case.id, 1)
    assert archive_letter(engine, t, case.id, 1) == lid  # a retry: no second letter, no second e-mail
    with engine.connect() as conn:
        number = DN.letter_doc(conn, t, case.id, 1).number
        [dlv] = A.deliveries_of(conn, t, number)
        [(doc, pdf)] = A.documents_by_number(conn, t, number)
        stored = DN.letter(conn, t, case.id, 1)
    assert (dlv.recipient, dlv.status, dlv.formats) == ("erika@example.org", "pending", ("pdf",))
    assert doc.kind == "dunning_letter" and pdf == bytes(stored["content"])
    assert "Guten Tag Erika Muster," in " ".join(pdf_text(pdf).split())  # a private person, by name
    done = A.deliver_due(engine, A.message_builder(engine), A.smtp_sender(settings))
    assert [d.status for d in done] == ["sent"]
    [msg] = box.messages
    assert msg["To"] == "erika@example.org" and number in msg["Subject"]
    [(name, (media, content))] = attachments(msg).items()
    assert media == "application/pdf" and content == pdf and name.endswith(".pdf")
    assert A.deliver_due(engine, A.message_builder(engine), A.smtp_sender(settings)) == []


def test_without_an_address_the_letter_is_only_archived(engine: Engine) -> None:
    t, case, p1 = _stage_1(engine)
    with engine.begin() as conn:
        conn.execute(update(Customer.__table__).values(email="", kind="business",  # type: ignore[attr-defined]
                                                       company_name="Muster GmbH"))
        DN.reach_stage(conn, t, case.id, p1)
    archive_letter(engine, t, case.id, 1)
    with engine.connect() as conn:
        number = DN.letter_doc(conn, t, case.id, 1).number
        assert A.deliveries_of(conn, t, number) == [] and A.documents_by_number(conn, t, number) == []
        pdf = bytes(DN.letter(conn, t, case.id, 1)["content"])
    assert "Sehr geehrte Damen und Herren," in " ".join(pdf_text(pdf).split())
