"""The stage's letter: rendered from what the stage stored, archived once (``store.dunning``)."""

from __future__ import annotations

import re

from sqlalchemy import Connection, Engine

from runtime.documents.dunning_letter import DunningLetterDoc, render_dunning_letter
from store import dunning as DN
from store.billing import write_transaction

__all__ = ["archive_handover", "archive_letter", "hand_letter_over"]


def archive_letter(engine: Engine, tenant_id: str, case_id: str, stage: int) -> str:
    """The letter's id; rendered only when the stage has none yet (a retry keeps the first bytes)."""
    with engine.connect() as conn:
        got = DN.letter(conn, tenant_id, case_id, stage, with_content=False)
        if got is not None:
            return str(got["id"])
        doc = DN.letter_doc(conn, tenant_id, case_id, stage)
    pdf = render_dunning_letter(doc)  # outside any transaction: rendering takes a while
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{'reminder' if doc.letter == 'reminder' else 'dunning'}-"
                  f"{doc.number}.pdf")
    with write_transaction(engine) as conn:
        saved = DN.save_letter(conn, tenant_id, case_id, stage, doc.language, name, pdf)
        if not saved["duplicate"]:
            _queue_email(conn, tenant_id, case_id, doc, pdf)
        return str(saved["id"])


def hand_letter_over(engine: Engine, tenant_id: str, case_id: str, stage: int) -> str:
    """The id of the stage letter's queued e-mail still to be sent ("" when there is none: no
    address, or it left already), kept from the delivery sweep for ``HANDED_OVER_GRACE``: the
    dunning workflow starts a ``DocumentDeliveryWorkflow`` for it now, and the sweep sends it only
    if that never happens."""
    from store.documents import defer_delivery, deliveries_of
    from store.types import utcnow
    from workflows.documents.types import HANDED_OVER_GRACE

    with write_transaction(engine) as conn:
        if DN.letter(conn, tenant_id, case_id, stage, with_content=False) is None:
            return ""
        number = DN.letter_doc(conn, tenant_id, case_id, stage).number[:40]
        delivery_id = next((d.id for d in deliveries_of(conn, tenant_id, number)
                            if d.seq == 0 and d.status in ("pending", "failed")), "")
        if delivery_id:
            defer_delivery(conn, tenant_id, delivery_id, utcnow() + HANDED_OVER_GRACE)
        return str(delivery_id)


def _queue_email(conn: Connection, tenant_id: str, case_id: str, doc: DunningLetterDoc, pdf: bytes) -> None:
    """Send the letter like an invoice: archived as a document and queued for e-mail to the
    account's invoice address (else the customer's), in the letter's transaction, so it is queued
    exactly once; the delivery sweep sends it (``store.documents.deliver_due``)."""
    from store.documents import request_delivery, store_document

    cas = DN.case(conn, tenant_id, case_id)
    to = DN.letter_recipient(conn, tenant_id, cas.customer_id, cas.account_id)
    if not to:
        return  # no e-mail address: the letter goes by post (the archived PDF)
    number = doc.number[:40]
    store_document(conn, tenant_id, kind="dunning_letter", number=number, fmt="pdf", media_type="application/pdf",
                   content=pdf, issue_date=doc.dated, currency=doc.currency, gross_total=doc.total,
                   language=doc.language[:2], customer_id=cas.customer_id)
    request_delivery(conn, tenant_id, number, to, ["pdf"], requested_by="dunning")


def archive_handover(engine: Engine, tenant_id: str, case_id: str, stage: int) -> list[str]:
    """The stage's exports for a collection agency (CSV and JSON), each archived once; their ids."""
    from runtime.documents.collection_handover import handover_csv, handover_json

    with engine.connect() as conn:
        doc = DN.handover_doc(conn, tenant_id, case_id, stage)
    base = re.sub(r"[^A-Za-z0-9._-]", "_", f"handover-{doc.case_number}-{stage}")
    with write_transaction(engine) as conn:
        return [str(DN.save_handover(conn, tenant_id, case_id, stage, fmt, f"{base}.{fmt}", build(doc))["id"])
                for fmt, build in (("csv", handover_csv), ("json", handover_json))]
