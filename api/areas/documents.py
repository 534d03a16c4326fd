"""The document archive: list issued invoices, credit notes and e-invoices, download the archived
bytes (ETag = their SHA-256, so a client can prove it holds exactly what was issued), and ask for
a document to be e-mailed again. Documents themselves are written by the billing hand-over, never
through this API: a finalized document is immutable."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any, Literal

from litestar import Request, Response, Router
from litestar.openapi.datastructures import ResponseSpec
from pydantic import Field

from api.crud import (
    CursorParam,
    IdPath,
    LimitParam,
    ReadModel,
    WriteModel,
    _problems,  # the download documents its 200/304 next to the usual problems
    open_scope,
    page_of,
    route,
)
from api.schemas import DecimalOut
from store import documents as A
from store.errors import InvalidInput
from store.repo import decode_cursor, encode_cursor
from store.types import utcnow

__all__ = ["router"]

log = logging.getLogger("evbill.documents")

Kind = Literal["invoice", "credit_note", "self_billing_credit_note", "dunning_letter"]
Format = Literal["pdf", "statement-pdf", "facturx-pdf", "xrechnung-ubl", "xrechnung-cii", "peppol-ubl"]
DeliveryStatus = Literal["none", "pending", "sending", "sent", "failed", "unknown", "abandoned"]


class DocumentRead(ReadModel):
    id: str
    kind: str
    number: str
    format: str
    media_type: str
    filename: str
    size: int
    sha256: str
    issue_date: date
    currency: str
    gross_total: DecimalOut
    language: str
    source_invoice_id: str | None
    customer_id: str | None
    corrects_number: str | None
    delivery_status: str
    created_at: datetime


DocumentPage = page_of(DocumentRead)


class DeliveryRead(ReadModel):
    id: str
    number: str
    seq: int
    channel: str
    recipient: str
    formats: list[str]
    status: str
    attempts: int
    last_error: str
    requested_by: str
    created_at: datetime
    sent_at: datetime | None


class DocumentDetail(DocumentRead):
    deliveries: list[DeliveryRead]


class DeliveryCreate(WriteModel):
    recipient: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$",
                                     description="defaults to the recipient of the last delivery")
    formats: list[Format] | None = Field(default=None, min_length=1, max_length=6,
                                            description="attachments; default: this document's format")


def _read(d: A.StoredDocument) -> DocumentRead:
    return DocumentRead.model_validate(d, from_attributes=True)


def _delivery(d: A.Delivery) -> DeliveryRead:
    return DeliveryRead(id=d.id, number=d.number, seq=d.seq, channel=d.channel, recipient=d.recipient,
                        formats=list(d.formats), status=d.status, attempts=d.attempts, last_error=d.last_error,
                        requested_by=d.requested_by, created_at=d.created_at, sent_at=d.sent_at)


@route("GET", "/documents", operation_id="list_documents", roles="read",
       summary="The document archive, oldest first (filters combine)")
def list_documents(request: Request[Any, Any, Any], limit: LimitParam = 50, cursor: CursorParam = None,
                   kind: Kind | None = None, format: Format | None = None,
                   number: str | None = None, customer_id: str | None = None,
                   invoice_id: str | None = None, corrects_number: str | None = None,
                   delivery_status: DeliveryStatus | None = None, issued_from: date | None = None,
                   issued_to: date | None = None) -> DocumentPage:  # type: ignore[valid-type]
    after = decode_cursor(cursor) if cursor else None
    with open_scope(request) as scope:
        rows = A.list_documents(scope.db.connection(), scope.tenant_id, after_id=after, limit=limit + 1,
                                kind=kind, fmt=format, number=number, customer_id=customer_id,
                                source_invoice_id=invoice_id, corrects_number=corrects_number,
                                delivery_status=delivery_status, issued_from=issued_from, issued_to=issued_to)
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].id)
    return DocumentPage(items=[_read(r) for r in rows], next_cursor=nxt)


@route("GET", "/documents/{document_id:str}", operation_id="get_document", roles="read",
       summary="One archived document with its deliveries")
def get_document(request: Request[Any, Any, Any], document_id: IdPath) -> DocumentDetail:
    with open_scope(request) as scope:
        conn = scope.db.connection()
        meta, _ = A.get_document(conn, scope.tenant_id, document_id, content=False)
        deliveries = A.deliveries_of(conn, scope.tenant_id, meta.number)
    return DocumentDetail(**_read(meta).model_dump(), deliveries=[_delivery(d) for d in deliveries])


_DOWNLOAD = {200: ResponseSpec(data_container=bytes, media_type="application/octet-stream",
                               description="the archived bytes; Content-Type is the document's media type "
                                           "(application/pdf or application/xml), ETag its SHA-256"),
             304: ResponseSpec(data_container=None, description="If-None-Match matched the ETag")}


@route("GET", "/documents/{document_id:str}/content", operation_id="download_document", roles="read",
       summary="Download the archived bytes (ETag = sha256)",
       responses={**_problems(400, 401, 403, 404, 409, 422), **_DOWNLOAD})
def download_document(request: Request[Any, Any, Any], document_id: IdPath) -> Response[bytes]:
    with open_scope(request) as scope:
        meta, content = A.get_document(scope.db.connection(), scope.tenant_id, document_id)
    etag = f'"{meta.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=31536000, immutable",
               "Content-Disposition": f'attachment; filename="{meta.filename}"'}
    match = request.headers.get("if-none-match", "")
    if etag in {t.strip() for t in match.split(",")} or match.strip() == "*":
        return Response(b"", status_code=304, headers=headers)
    assert content is not None
    return Response(content, media_type=meta.media_type, headers=headers)


@route("POST", "/documents/{document_id:str}/deliveries", operation_id="create_document_delivery",
       roles="write", status_code=202,
       summary="E-mail the document again (queued; the delivery worker sends it once)")
async def create_document_delivery(request: Request[Any, Any, Any], document_id: IdPath,
                                   data: DeliveryCreate) -> DeliveryRead:
    """With Temporal the re-send gets a delivery workflow of its own at once (retried like an
    invoice's); without, or if starting it fails, the sweep sends it."""
    from api.areas.billing.common import task_queue, temporal_client, temporal_configured
    from workflows.documents import start_delivery
    from workflows.documents.types import HANDED_OVER_GRACE

    with_workflow = temporal_configured(request.app)
    with open_scope(request) as scope:
        conn = scope.db.connection()
        meta, _ = A.get_document(conn, scope.tenant_id, document_id, content=False)
        recipient = data.recipient
        if recipient is None:
            earlier = A.deliveries_of(conn, scope.tenant_id, meta.number)
            if not earlier:
                raise InvalidInput("recipient_required", "the document was never e-mailed; give a recipient")
            recipient = earlier[-1].recipient
        formats = list(data.formats) if data.formats else [meta.format]
        delivery = A.request_delivery(conn, scope.tenant_id, meta.number, recipient, formats,
                                      requested_by=scope.actor.user_id, resend=True)
        scope.audit("document.resend", "document", meta.id, None,
                    {"number": meta.number, "recipient": recipient, "formats": formats, "delivery_id": delivery.id})
        if with_workflow:
            A.defer_delivery(conn, scope.tenant_id, delivery.id, utcnow() + HANDED_OVER_GRACE)
        scope.commit()
    if with_workflow:
        try:
            await start_delivery(await temporal_client(request), scope.tenant_id, delivery.id, meta.number,
                                 task_queue(request.app))
        except Exception:  # the delivery is queued all the same: the sweep sends it after the grace
            log.warning("delivery %s of %s queued for the sweep: its workflow did not start", delivery.id,
                        meta.number, exc_info=True)
    return _delivery(delivery)


router = Router(path="/", route_handlers=[list_documents, get_document, download_document,
                                          create_document_delivery], tags=["documents"])
