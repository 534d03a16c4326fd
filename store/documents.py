"""The document archive: finalized invoices, credit notes and statements as the bytes that were
issued, with their SHA-256, and the e-mail deliveries of each document.

Plain SQLAlchemy Core, like ``store.billing``: every function takes the caller's connection and
tenant; the caller owns the transaction.

Invariants kept here:
- a document (tenant, number, format) is stored once. Storing it again with the same bytes is a
  no-op (a retried activity); with different bytes it is refused with ``DocumentImmutable``: a
  finalized document is never regenerated differently, corrections are credit notes;
- a credit note must reference an archived invoice of the same tenant, and the credit notes of
  one invoice never credit more than the invoice's gross amount (``CreditExceedsInvoice``);
- a delivery is claimed by a conditional UPDATE before the message leaves, so two workers (or a
  retry racing the first attempt) never both send it; a message whose fate is unknown (the worker
  died between handing it to the server and recording it) is never re-sent automatically.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    and_,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from store.errors import Conflict, InvalidInput, NotFound
from store.models import metadata
from store.ocpp import signed_data_of
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "DELIVERY_STATUSES",
    "KINDS",
    "CreditExceedsInvoice",
    "Delivery",
    "DocumentImmutable",
    "SmtpSettings",
    "StoredDocument",
    "defer_delivery",
    "deliver",
    "deliver_due",
    "deliveries_of",
    "document",
    "document_delivery",
    "documents_by_number",
    "get_document",
    "hand_over",
    "issue_documents",
    "issue_for_invoice",
    "list_documents",
    "load_invoice_input",
    "mark_stuck_unknown",
    "message_builder",
    "request_delivery",
    "smtp_sender",
    "smtp_settings_from_env",
    "store_document",
    "tenant_branding",
    "vat_parties",
]

_log = logging.getLogger("evbill.documents")

# a dunning letter is archived here too when it is e-mailed (the delivery queue sends documents)
KINDS = ("invoice", "credit_note", "self_billing_credit_note", "dunning_letter")
# none: nobody asked for delivery; pending: queued; sending: claimed by a worker; sent; failed:
# the last attempt failed and will be retried; unknown: the worker died mid-send (needs a human);
# abandoned: retries exhausted
DELIVERY_STATUSES = ("none", "pending", "sending", "sent", "failed", "unknown", "abandoned")

document = Table(
    "document", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("number", String(40), nullable=False),
    Column("format", String(20), nullable=False),
    Column("media_type", String(60), nullable=False),
    Column("filename", String(120), nullable=False),
    Column("content", LargeBinary(), nullable=False),
    Column("size", Integer(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("issue_date", Date(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("gross_total", ExactDecimal(), nullable=False),
    Column("language", String(2), nullable=False),
    # the billing invoice this was rendered from (no foreign key: billing is a migration branch of
    # its own, and documents also come from other sources such as revenue-share payouts)
    Column("source_invoice_id", String(40), nullable=True),
    Column("customer_id", String(40), nullable=True),
    Column("corrects_number", String(40), nullable=True),  # credit notes: the invoice they correct
    Column("delivery_status", String(20), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "number", "format", name="uq_document_number_format"),
    Index("ix_document_tenant_created", "tenant_id", "id"),
    Index("ix_document_tenant_invoice", "tenant_id", "source_invoice_id"),
    Index("ix_document_tenant_corrects", "tenant_id", "corrects_number"),
)

document_delivery = Table(
    "document_delivery", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("number", String(40), nullable=False),
    # 0: the delivery at issue; a re-send asked for through the API gets the next one
    Column("seq", Integer(), nullable=False),
    Column("channel", String(20), nullable=False),  # email
    Column("recipient", String(200), nullable=False),
    Column("formats", JSON(), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_error", String(1000), nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("requested_by", String(40), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("claimed_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    UniqueConstraint("tenant_id", "number", "seq", name="uq_document_delivery_seq"),
    Index("ix_document_delivery_status", "status", "next_attempt_at"),
)


class DocumentImmutable(Conflict):
    """The archive already holds different bytes for this document and format."""

    def __init__(self, number: str, fmt: str, stored_sha256: str, new_sha256: str) -> None:
        super().__init__("document_immutable",
                         f"document {number} ({fmt}) is finalized with sha256 {stored_sha256}; "
                         f"different bytes (sha256 {new_sha256}) are refused, issue a credit note instead",
                         stored_sha256=stored_sha256, new_sha256=new_sha256)


class CreditExceedsInvoice(Conflict):
    def __init__(self, number: str, invoice_number: str, remaining: Decimal) -> None:
        super().__init__("credit_exceeds_invoice",
                         f"credit note {number} credits more than the {remaining} left on invoice "
                         f"{invoice_number}")


@dataclass(frozen=True)
class StoredDocument:
    id: str
    tenant_id: str
    kind: str
    number: str
    format: str
    media_type: str
    filename: str
    size: int
    sha256: str
    issue_date: date
    currency: str
    gross_total: Decimal
    language: str
    source_invoice_id: str | None
    customer_id: str | None
    corrects_number: str | None
    delivery_status: str
    created_at: datetime
    created: bool = False  # False when an identical document was already archived

    @staticmethod
    def of(row: Any, created: bool = False) -> StoredDocument:
        return StoredDocument(row.id, row.tenant_id, row.kind, row.number, row.format, row.media_type,
                              row.filename, row.size, row.sha256, row.issue_date, row.currency,
                              row.gross_total, row.language, row.source_invoice_id, row.customer_id, row.corrects_number,
                              row.delivery_status, row.created_at, created)


_META = [c for c in document.c if c.name != "content"]


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _filename(number: str, fmt: str, media_type: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in number)
    ext = "pdf" if media_type == "application/pdf" else "xml"
    suffix = "" if fmt in ("pdf", "facturx-pdf") else f"-{fmt}"
    return f"{safe}{suffix}.{ext}"


def store_document(conn: Connection, tenant_id: str, *, kind: str, number: str, fmt: str, media_type: str,
                   content: bytes, issue_date: date, currency: str, gross_total: Decimal,
                   language: str = "de", source_invoice_id: str | None = None, customer_id: str | None = None,
                   corrects_number: str | None = None) -> StoredDocument:
    """Archive one rendered document; idempotent for the same bytes, refused for different ones."""
    if kind not in KINDS:
        raise InvalidInput("unknown_document_kind", f"unknown document kind {kind!r}, expected one of {KINDS}")
    digest = sha256_of(content)
    existing = conn.execute(select(*_META).where(
        document.c.tenant_id == tenant_id, document.c.number == number, document.c.format == fmt)).first()
    if existing is not None:
        if existing.sha256 != digest:
            raise DocumentImmutable(number, fmt, existing.sha256, digest)
        return StoredDocument.of(existing)
    # the number may already be archived in another format: it must be the same document then
    sibling = conn.execute(select(document.c.kind, document.c.gross_total, document.c.corrects_number).where(
        document.c.tenant_id == tenant_id, document.c.number == number).limit(1)).first()
    if sibling is not None and (sibling.kind != kind or sibling.gross_total != gross_total
                                or sibling.corrects_number != corrects_number):
        raise Conflict("document_number_taken",
                       f"number {number} is already archived as a different document ({sibling.kind}, "
                       f"{sibling.gross_total} {currency})")
    if kind == "credit_note":
        if sibling is None:
            _check_credit(conn, tenant_id, number, corrects_number, gross_total)
    elif corrects_number is not None and kind == "invoice":
        raise InvalidInput("invoice_cannot_correct", "only credit notes reference a corrected invoice")
    row = {"id": new_id("doc"), "tenant_id": tenant_id, "kind": kind, "number": number, "format": fmt, "media_type": media_type,
               "filename": _filename(number, fmt, media_type), "content": content, "size": len(content), "sha256": digest,
               "issue_date": issue_date, "currency": currency, "gross_total": gross_total,
               "language": language, "source_invoice_id": source_invoice_id, "customer_id": customer_id, "corrects_number": corrects_number,
               "delivery_status": "none", "created_at": utcnow()}
    try:
        # a savepoint, so losing an insert race leaves the caller's transaction usable
        with conn.begin_nested():
            conn.execute(insert(document).values(**row))
    except IntegrityError:
        # a concurrent writer archived it first: same bytes are fine, different ones are not
        won = conn.execute(select(*_META).where(
            document.c.tenant_id == tenant_id, document.c.number == number, document.c.format == fmt)).first()
        if won is None:
            raise
        if won.sha256 != digest:
            raise DocumentImmutable(number, fmt, won.sha256, digest) from None
        return StoredDocument.of(won)
    row.pop("content")
    return StoredDocument(**row, created=True)  # type: ignore[arg-type]


def _check_credit(conn: Connection, tenant_id: str, number: str, corrects: str | None, amount: Decimal) -> None:
    if not corrects:
        raise InvalidInput("credit_note_needs_invoice", "a credit note must reference the invoice it corrects")
    inv = conn.execute(select(document.c.gross_total).where(
        document.c.tenant_id == tenant_id, document.c.number == corrects, document.c.kind == "invoice")
        .limit(1)).first()
    if inv is None:
        raise NotFound("corrected_invoice_not_found", f"invoice {corrects} is not in the archive")
    # one amount per credit note number, however many formats it was archived in; summed as
    # Decimal here, since SQL SUM/MAX over the exact-decimal text columns adds floats on SQLite
    per_note: dict[str, Decimal] = {}
    for num, gross in conn.execute(select(document.c.number, document.c.gross_total).where(
            document.c.tenant_id == tenant_id, document.c.corrects_number == corrects,
            document.c.kind == "credit_note")).all():
        per_note[num] = max(per_note.get(num, gross), gross)
    remaining = inv.gross_total - sum(per_note.values(), Decimal(0))
    if amount > remaining:
        raise CreditExceedsInvoice(number, corrects, remaining)


def get_document(conn: Connection, tenant_id: str, document_id: str, *, content: bool = True) -> tuple[StoredDocument, bytes | None]:
    cols = [*_META, document.c.content] if content else _META
    row = conn.execute(select(*cols).where(document.c.tenant_id == tenant_id, document.c.id == document_id)).first()
    if row is None:
        raise NotFound("document_not_found", f"document {document_id} not found")
    return StoredDocument.of(row), (bytes(row.content) if content else None)


def documents_by_number(conn: Connection, tenant_id: str, number: str) -> list[tuple[StoredDocument, bytes]]:
    rows = conn.execute(select(*_META, document.c.content).where(
        document.c.tenant_id == tenant_id, document.c.number == number).order_by(document.c.id)).all()
    return [(StoredDocument.of(r), bytes(r.content)) for r in rows]


def list_documents(conn: Connection, tenant_id: str, *, after_id: str | None = None, limit: int = 50,
                   kind: str | None = None, fmt: str | None = None, number: str | None = None,
                   customer_id: str | None = None, source_invoice_id: str | None = None,
                   corrects_number: str | None = None, delivery_status: str | None = None,
                   issued_from: date | None = None, issued_to: date | None = None) -> list[StoredDocument]:
    """The archive, oldest first (ids sort by creation), ``limit`` rows after ``after_id``."""
    c = document.c
    conds = [c.tenant_id == tenant_id]
    for col, value in ((c.kind, kind), (c.format, fmt), (c.number, number), (c.customer_id, customer_id),
                       (c.source_invoice_id, source_invoice_id), (c.corrects_number, corrects_number),
                       (c.delivery_status, delivery_status)):
        if value is not None:
            conds.append(col == value)
    if issued_from is not None:
        conds.append(c.issue_date >= issued_from)
    if issued_to is not None:
        conds.append(c.issue_date <= issued_to)
    if after_id is not None:
        conds.append(c.id > after_id)
    rows = conn.execute(select(*_META).where(and_(*conds)).order_by(c.id).limit(limit)).all()
    return [StoredDocument.of(r) for r in rows]


def list_documents_newest(conn: Connection, tenant_id: str, *, kind: str | None = None, before_id: str | None = None,
                          limit: int = 50) -> list[StoredDocument]:
    """The archive newest first (the console's list), ``limit`` rows before ``before_id``."""
    c = document.c
    conds = [c.tenant_id == tenant_id]
    if kind is not None:
        conds.append(c.kind == kind)
    if before_id is not None:
        conds.append(c.id < before_id)
    rows = conn.execute(select(*_META).where(and_(*conds)).order_by(c.id.desc()).limit(limit)).all()
    return [StoredDocument.of(r) for r in rows]


# ---------------------------------------------------------------------------------- delivery

@dataclass(frozen=True)
class Delivery:
    id: str
    tenant_id: str
    number: str
    seq: int
    channel: str
    recipient: str
    formats: tuple[str, ...]
    status: str
    attempts: int
    last_error: str
    message_id: str
    requested_by: str
    created_at: datetime
    sent_at: datetime | None

    @staticmethod
    def of(row: Any) -> Delivery:
        return Delivery(row.id, row.tenant_id, row.number, row.seq, row.channel, row.recipient,
                        tuple(row.formats), row.status, row.attempts, row.last_error, row.message_id,
                        row.requested_by, row.created_at, row.sent_at)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = ""  # From: header; defaults to the tenant's e-mail address
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout_s: float = 20.0
    max_attempts: int = 5
    # waits before the 2nd, 3rd, ... attempt (the delivery workflow's retry policy follows them)
    backoff: tuple[timedelta, ...] = field(default=(timedelta(minutes=1), timedelta(minutes=5),
                                                    timedelta(minutes=30), timedelta(hours=2)))
    # a delivery claimed longer ago than this without an outcome was left by a worker that died
    # mid-send: far beyond a live attempt (one SMTP exchange, each step bounded by timeout_s)
    stuck_after: timedelta = timedelta(minutes=10)


def _set_delivery_status(conn: Connection, tenant_id: str, number: str, status: str) -> None:
    conn.execute(update(document).where(document.c.tenant_id == tenant_id, document.c.number == number)
                 .values(delivery_status=status))


def request_delivery(conn: Connection, tenant_id: str, number: str, recipient: str, formats: Sequence[str],
                     *, requested_by: str = "", resend: bool = False) -> Delivery:
    """Queue the e-mail of document ``number`` with ``formats`` attached.

    The delivery at issue (seq 0) exists once: asking again returns it, so a retried activity never
    queues a second e-mail. ``resend=True`` (an operator's explicit request) queues the next seq."""
    if not recipient or "@" not in recipient:
        raise InvalidInput("recipient_required", "the document has no e-mail recipient")
    have = {r.format for r in conn.execute(select(document.c.format).where(
        document.c.tenant_id == tenant_id, document.c.number == number)).all()}
    if not have:
        raise NotFound("document_not_found", f"document {number} is not in the archive")
    missing = [f for f in formats if f not in have]
    if missing or not formats:
        raise InvalidInput("format_not_archived", f"document {number} is not archived as {', '.join(missing) or '-'};"
                                                  f" archived: {', '.join(sorted(have))}")
    last = conn.execute(select(document_delivery).where(
        document_delivery.c.tenant_id == tenant_id, document_delivery.c.number == number)
        .order_by(document_delivery.c.seq.desc()).limit(1)).first()
    if last is not None and not resend:
        return Delivery.of(last)
    seq = 0 if last is None else last.seq + 1
    did = new_id("dlv")
    row = {"id": did, "tenant_id": tenant_id, "number": number, "seq": seq, "channel": "email", "recipient": recipient,
               "formats": list(formats), "status": "pending", "attempts": 0, "last_error": "",
               # the left part of a stable Message-ID (the builder adds the sender's domain): if a
               # message is ever handed over twice, receivers can tell it is one
               "message_id": did, "requested_by": requested_by, "next_attempt_at": utcnow(),
               "created_at": utcnow(), "sent_at": None}
    conn.execute(insert(document_delivery).values(**row))
    _set_delivery_status(conn, tenant_id, number, "pending")
    return Delivery.of(conn.execute(select(document_delivery).where(document_delivery.c.id == did)).one())


def defer_delivery(conn: Connection, tenant_id: str, delivery_id: str, until: datetime) -> bool:
    """Keep a queued delivery from the sweep until ``until``: a workflow of its own is about to
    send it (the sweep picks it up only if that never happens). False if it is no longer pending."""
    dd = document_delivery.c
    return bool(conn.execute(update(document_delivery).where(
        dd.id == delivery_id, dd.tenant_id == tenant_id, dd.status == "pending").values(next_attempt_at=until)).rowcount)


def deliveries_of(conn: Connection, tenant_id: str, number: str) -> list[Delivery]:
    rows = conn.execute(select(document_delivery).where(
        document_delivery.c.tenant_id == tenant_id, document_delivery.c.number == number)
        .order_by(document_delivery.c.seq)).all()
    return [Delivery.of(r) for r in rows]


# builds the message from the archived bytes: (delivery, [(stored document, bytes)]) -> EmailMessage
MessageBuilder = Callable[[Delivery, list[tuple[StoredDocument, bytes]]], Any]
Sender = Callable[[Any], None]


def smtp_sender(settings: SmtpSettings) -> Sender:
    def send(message: Any) -> None:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        try:
            if settings.starttls:
                # a verifying context: smtplib's default accepts any certificate, which would hand
                # the invoices and the SMTP password to whoever sits in between
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)
        finally:
            # once the server took the message, a failing QUIT must not count as a failed attempt
            # (the message would be sent again); ``with SMTP(...)`` raises from QUIT
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    return send


def deliver(engine: Engine, tenant_id: str, delivery_id: str, build: MessageBuilder, send: Sender,
            *, max_attempts: int = 5, backoff: Sequence[timedelta] = SmtpSettings().backoff,
            now: datetime | None = None, when_due: bool = True) -> Delivery:
    """One attempt at one delivery: claim it, send it, record the outcome (three transactions).

    Only a delivery in ``pending`` or ``failed`` can be claimed, and only once due unless
    ``when_due`` is False (the delivery workflow's retry policy keeps the time then); the claim is
    a conditional UPDATE, so concurrent callers cannot both send. Returns the delivery as it stands."""
    now = now or utcnow()
    dd = document_delivery.c
    claimable = [dd.id == delivery_id, dd.tenant_id == tenant_id, dd.status.in_(("pending", "failed"))]
    if when_due:
        claimable.append((dd.next_attempt_at.is_(None)) | (dd.next_attempt_at <= now))
    with engine.begin() as conn:
        claimed = conn.execute(update(document_delivery).where(*claimable)
                               .values(status="sending", attempts=dd.attempts + 1, claimed_at=utcnow())).rowcount
        row = conn.execute(select(document_delivery).where(dd.id == delivery_id, dd.tenant_id == tenant_id)).first()
        if row is None:
            raise NotFound("delivery_not_found", f"delivery {delivery_id} not found")
        if claimed != 1:
            return Delivery.of(row)
        _set_delivery_status(conn, tenant_id, row.number, "sending")
    current = Delivery.of(row)
    with engine.connect() as conn:
        docs = [(d, b) for d, b in documents_by_number(conn, tenant_id, current.number)
                if d.format in current.formats]
    try:
        message = build(current, docs)
    except Exception as exc:  # noqa: BLE001  (nothing left the house; retrying would fail the same way)
        return _failed(engine, current, f"message not built: {type(exc).__name__}: {exc}", now, final=True,
                       max_attempts=max_attempts, backoff=backoff)
    try:
        send(message)
    except smtplib.SMTPRecipientsRefused as exc:
        return _failed(engine, current, f"recipient refused: {exc.recipients}", now, final=True,
                       max_attempts=max_attempts, backoff=backoff)
    except (smtplib.SMTPException, OSError) as exc:
        # the server refused or could not be reached: it did not take the message, so retry later
        return _failed(engine, current, f"{type(exc).__name__}: {exc}", now, final=False,
                       max_attempts=max_attempts, backoff=backoff)
    with engine.begin() as conn:
        conn.execute(update(document_delivery).where(dd.id == current.id)
                     .values(status="sent", sent_at=utcnow(), last_error="", next_attempt_at=None))
        _set_delivery_status(conn, tenant_id, current.number, "sent")
        return Delivery.of(conn.execute(select(document_delivery).where(dd.id == current.id)).one())


def _failed(engine: Engine, d: Delivery, error: str, now: datetime, *, final: bool, max_attempts: int,
            backoff: Sequence[timedelta]) -> Delivery:
    dd = document_delivery.c
    give_up = final or d.attempts >= max_attempts
    wait = backoff[min(d.attempts, len(backoff)) - 1] if backoff and d.attempts else timedelta(0)
    status = "abandoned" if give_up else "failed"
    with engine.begin() as conn:
        conn.execute(update(document_delivery).where(dd.id == d.id).values(
            status=status, last_error=error[:1000], next_attempt_at=None if give_up else now + wait))
        _set_delivery_status(conn, d.tenant_id, d.number, status)
        return Delivery.of(conn.execute(select(document_delivery).where(dd.id == d.id)).one())


def deliver_due(engine: Engine, build: MessageBuilder, send: Sender, *, now: datetime | None = None,
                limit: int = 100, max_attempts: int = 5,
                backoff: Sequence[timedelta] = SmtpSettings().backoff, stop_on_failure: bool = False,
                budget_s: float | None = None) -> list[Delivery]:
    """Attempt every pending or failed delivery that is due (the sweep a worker runs), at most
    ``limit``. ``stop_on_failure``: end the round at the first attempt the server did not take
    (it is down: the others would only wait for the same timeout); ``budget_s``: start no attempt
    after that many seconds."""
    now = now or utcnow()
    started = time.monotonic()
    dd = document_delivery.c
    with engine.connect() as conn:
        due = conn.execute(select(dd.id, dd.tenant_id).where(
            dd.status.in_(("pending", "failed")), (dd.next_attempt_at.is_(None)) | (dd.next_attempt_at <= now))
            .order_by(dd.next_attempt_at).limit(limit)).all()
    out = []
    for i, t in due:
        if budget_s is not None and time.monotonic() - started > budget_s:
            break
        d = deliver(engine, t, i, build, send, now=now, max_attempts=max_attempts, backoff=backoff)
        out.append(d)
        if stop_on_failure and d.status == "failed":
            break
    return out


def mark_stuck_unknown(engine: Engine, older_than: timedelta, *, now: datetime | None = None,
                       delivery_id: str | None = None) -> int:
    """Deliveries left in ``sending`` by a worker that died: the server may or may not have taken
    the message, so they become ``unknown`` for an operator to re-send, never re-sent blindly.
    ``delivery_id``: only that one."""
    now = now or utcnow()
    dd = document_delivery.c
    q = select(dd.id, dd.tenant_id, dd.number).where(dd.status == "sending", dd.claimed_at < now - older_than)
    if delivery_id is not None:
        q = q.where(dd.id == delivery_id)
    # looked for outside a write transaction: the sweep asks every minute and almost never finds one
    with engine.connect() as conn:
        stuck = conn.execute(q).all()
    if not stuck:
        return 0
    marked = 0
    with engine.begin() as conn:
        for row in stuck:
            # still stuck: the claim's holder may have recorded its outcome meanwhile
            if conn.execute(update(document_delivery).where(
                    dd.id == row.id, dd.status == "sending", dd.claimed_at < now - older_than)
                    .values(status="unknown", last_error="the worker stopped while sending")).rowcount:
                _set_delivery_status(conn, row.tenant_id, row.number, "unknown")
                marked += 1
    return marked


# ---------------------------------------------------------------------------------- issuing

def issue_documents(engine: Engine, tenant_id: str, doc: Any, formats: Sequence[str], *,
                    source_invoice_id: str | None = None, customer_id: str | None = None,
                    email: str = "", requested_by: str = "") -> list[StoredDocument]:
    """Render ``doc`` (a ``runtime.documents.Document``) in ``formats``, archive every rendering
    and queue its e-mail (one message, all formats attached) when ``email`` is given.

    Safe to retry: rendering is deterministic, so a second run archives nothing new; if the bytes
    ever came out different (a changed template), the archived document wins and
    ``DocumentImmutable`` is raised rather than silently issuing a second version."""
    from runtime.documents import MEDIA_TYPES, render

    # CPU first, outside the transaction (runtime.documents.pdf.RENDER_LOCK keeps renders in
    # activity threads one at a time)
    rendered = [(fmt, render(doc, fmt)) for fmt in formats]
    kind = doc.kind.value
    totals = doc.totals
    out = []
    with engine.begin() as conn:
        for fmt, content in rendered:
            out.append(store_document(
                conn, tenant_id, kind=kind, number=doc.number, fmt=fmt, media_type=MEDIA_TYPES[fmt],
                content=content, issue_date=doc.issue_date, currency=doc.currency, gross_total=totals.gross,
                language=doc.language, source_invoice_id=source_invoice_id, customer_id=customer_id,
                corrects_number=doc.preceding.number if doc.preceding is not None else None))
        if email:
            request_delivery(conn, tenant_id, doc.number, email, list(formats), requested_by=requested_by)
    return out


def message_builder(engine: Engine, *, sender: str = "") -> MessageBuilder:
    """Builds the e-mail of a delivery from the archived bytes, sent in the tenant's name."""
    from runtime.documents.mail import Attachment, MailContent, build_message
    from store.models import Tenant

    tenants = Tenant.__table__  # type: ignore[attr-defined]

    def build(d: Delivery, docs: list[tuple[StoredDocument, bytes]]) -> Any:
        if not docs:
            raise NotFound("document_not_found", f"document {d.number} is not in the archive")
        with engine.connect() as conn:
            t = conn.execute(select(tenants.c.name, tenants.c.legal_name, tenants.c.email)
                             .where(tenants.c.id == d.tenant_id)).one()
        first = docs[0][0]
        content = MailContent(
            kind=first.kind, number=d.number, issue_date=first.issue_date, gross_total=first.gross_total,
            currency=first.currency, issuer_name=t.legal_name or t.name, sender=sender or t.email or "billing@localhost",
            recipient=d.recipient, language=first.language, message_id=d.message_id)
        order = {f: i for i, f in enumerate(d.formats)}
        attachments = [Attachment(s.filename, s.media_type, b)
                       for s, b in sorted(docs, key=lambda x: order.get(x[0].format, 99))]
        return build_message(content, attachments)

    return build


# ------------------------------------------------------------------------- from billing

def tenant_branding(raw: dict[str, Any] | None) -> Any:
    """The tenant's branding as documents (and the console) wear it."""
    return _branding(raw)


def _branding(raw: dict[str, Any] | None) -> Any:
    """The tenant's ``branding`` JSON (primary_color, secondary_color, legal_lines or footer,
    logo as a data: URL or base64 with logo_mime, show_evbill) as the document model's value;
    unusable entries fall back to the defaults instead of stopping an invoice."""
    import base64
    import binascii

    from runtime.documents.model import Branding

    raw = raw or {}
    kw: dict[str, Any] = {}
    for key in ("primary_color", "secondary_color"):
        value = raw.get(key)
        if isinstance(value, str):
            try:
                Branding(**{key: value})
                kw[key] = value
            except ValueError:
                pass
    lines = raw.get("legal_lines", raw.get("footer"))
    if isinstance(lines, str):
        lines = [lines]
    if isinstance(lines, list):
        kw["legal_lines"] = tuple(str(x) for x in lines)
    logo = raw.get("logo") or raw.get("logo_data")
    if isinstance(logo, str) and logo:
        mime = str(raw.get("logo_mime") or "image/png")
        if logo.startswith("data:") and ";base64," in logo:
            mime, _, logo = logo[5:].partition(";base64,")
        try:
            kw["logo"], kw["logo_mime"] = base64.b64decode(logo, validate=True), mime
        except (binascii.Error, ValueError):
            pass
    if isinstance(raw.get("show_evbill"), bool):
        kw["show_evbill"] = raw["show_evbill"]
    return Branding(**kw)


def tenant_seller(t: Any) -> Any:
    """The tenant (its row) as the documents' seller."""
    from runtime.documents.model import Address, Contact, ElectronicAddress, Seller

    seller_vat = t.vat_id or None
    return Seller(
        legal_name=t.legal_name or t.name,
        address=Address(t.street, t.city, t.postal_code, t.country or "DE"),
        electronic_address=ElectronicAddress(t.vat_id, "9930") if t.vat_id.startswith("DE")
        else ElectronicAddress(t.email or "billing@invalid", "EM"),
        # XRechnung needs a seller contact with a phone number (BR-DE-6); the tenant table has no
        # column for it yet, so it is read from the branding settings
        contact=Contact(str((t.branding or {}).get("contact_name") or t.legal_name or t.name),
                        str((t.branding or {}).get("phone") or ""), t.email),
        vat_id=seller_vat, tax_number=t.tax_number or None, iban=t.iban or None, bic=t.bic or None,
        creditor_id=t.creditor_id or None,
    )


def load_account_statement(conn: Connection, tenant_id: str, customer_id: str, currency: str, start: date | None,
                           end: date | None, as_of: date) -> Any:
    """A customer's account statement (the JSON statement's numbers and the items still open) as
    ``runtime.documents.account_statement.AccountStatementDoc``, in the customer's language."""
    from runtime.documents.account_statement import AccountStatementDoc, Booking, OpenItemLine
    from runtime.documents.i18n import LANGUAGES
    from runtime.documents.model import Address
    from store import receivables as R
    from store.models import Customer, Tenant

    t = conn.execute(select(Tenant.__table__).where(Tenant.__table__.c.id == tenant_id)).one()  # type: ignore[attr-defined]
    ct = Customer.__table__  # type: ignore[attr-defined]
    cust = conn.execute(select(ct).where(ct.c.id == customer_id, ct.c.tenant_id == tenant_id)).one()
    opening, lines, closing = R.statement_lines(conn, tenant_id, customer_id, currency, start, end)
    items = [s for s in R.item_states(conn, tenant_id, customer_id=customer_id, currency=currency) if s.open > 0]
    language = cust.language if cust.language in LANGUAGES else "de"
    address = (Address(cust.street, cust.city, cust.postal_code, cust.country or t.country or "DE")
               if cust.street or cust.city else None)
    return AccountStatementDoc(
        language=language, currency=currency, as_of=as_of, seller=tenant_seller(t),
        customer_name=cust.company_name or cust.name, customer_number=cust.number or "", address=address,
        opening=opening, closing=closing,
        bookings=tuple(Booking(ln["booked_on"], ln["kind"], ln["number"], ln["reference"], ln["debit"], ln["credit"],
                               ln["balance"]) for ln in lines),
        open_items=tuple(OpenItemLine(s.number, s.issue_date, s.due_date, s.amount, s.open) for s in items),
        start=start, end=end, branding=_branding(t.branding))


def _customer_treatment(supply: str, country: str, business: bool, vat_id: str | None) -> Any:
    from runtime.tax import customer_treatment

    return customer_treatment(supply, country, business, vat_id)


def _untaxed(tax_groups: Any) -> dict[str, str]:
    """The untaxed treatment billing stored on an invoice's 0 % tax group, as ``CustomerProfile``
    fields (nothing for a taxed invoice, or one assembled before treatments were stored)."""
    for g in tax_groups or ():
        if g.get("category"):
            return {"vat_category": str(g["category"]), "vat_exemption_code": str(g.get("vatex") or ""),
                    "vat_exemption_reason": str(g.get("reason") or "")}
    return {}


def vat_parties(conn: Connection, tenant_id: str, acct: Any) -> tuple[str, str, bool, str | None]:
    """What VAT treatment reads of a billing account's row: (the tenant's country, the customer's
    country as its invoices are addressed, whether it is a business, its VAT ID)."""
    from store.models import Customer, Tenant

    tc, cc = Tenant.__table__.c, Customer.__table__.c  # type: ignore[attr-defined]
    supply = conn.execute(select(tc.country).where(tc.id == tenant_id)).scalar() or "DE"
    cust = conn.execute(select(cc.kind, cc.country, cc.vat_id).where(cc.id == acct.customer_id)).one()
    country = (acct.country if acct.street else cust.country) or supply
    return supply, country, cust.kind == "business", cust.vat_id or None


def load_invoice_input(conn: Connection, tenant_id: str, invoice_id: str, *, drafts: bool = False) -> Any:
    """A finalized billing invoice with everything its documents show, as
    ``runtime.documents.from_invoice.InvoiceInput``.

    ``drafts``: a draft (held) invoice too, for showing it as its document will read (the
    console); it has no number yet and announces no debit day.

    The contract carries the customer's format choice (empty: ``default_formats`` by customer
    kind), the Leitweg-ID of a public buyer, and the debtor IBAN of a SEPA mandate (without it the
    invoice asks for a transfer instead of announcing a debit)."""
    from runtime.documents.from_invoice import (
        BilledLine,
        CustomerProfile,
        InvoiceInput,
        PaymentProfile,
        SessionFacts,
        TenantProfile,
    )
    from runtime.documents.model import Address
    from runtime.rating import facts_minutes
    from store import billing as B
    from store.models import (
        BillingAccount,
        ChargingPeriodRow,
        ChargingSession,
        Contract,
        Customer,
        Location,
        Tenant,
    )

    inv = conn.execute(select(B.invoice).where(B.invoice.c.id == invoice_id, B.invoice.c.tenant_id == tenant_id)).first()
    if inv is None:
        raise NotFound("invoice_not_found", f"invoice {invoice_id} not found")
    finalized = inv.status == "finalized" and bool(inv.number)
    if not finalized and not (drafts and inv.status in ("draft", "held")):
        raise Conflict("invoice_not_finalized", f"invoice {invoice_id} is {inv.status}; only finalized invoices "
                                                f"become documents")
    lines = conn.execute(select(B.invoice_line).where(B.invoice_line.c.invoice_id == invoice_id)
                         .order_by(B.invoice_line.c.seq)).all()
    t = conn.execute(select(Tenant.__table__).where(Tenant.__table__.c.id == tenant_id)).one()  # type: ignore[attr-defined]
    cust = conn.execute(select(Customer.__table__).where(Customer.__table__.c.id == inv.customer_id)).one()  # type: ignore[attr-defined]
    acct = conn.execute(select(BillingAccount.__table__).where(  # type: ignore[attr-defined]
        BillingAccount.__table__.c.id == inv.account_id)).one()  # type: ignore[attr-defined]
    ct = Contract.__table__  # type: ignore[attr-defined]
    contract = conn.execute(select(ct).where(ct.c.account_id == inv.account_id, ct.c.tenant_id == tenant_id)
                            .order_by((ct.c.status == "active").desc(), ct.c.start_date.desc()).limit(1)).first()

    seller = tenant_seller(t)
    business = cust.kind == "business"
    street, city, postal, country = ((acct.street, acct.city, acct.postal_code, acct.country) if acct.street
                                     else (cust.street, cust.city, cust.postal_code, cust.country))
    country = country or t.country or "DE"
    customer = CustomerProfile(
        name=(cust.company_name or cust.name) if business else cust.name,
        address=Address(street, city, postal, country),
        email=acct.invoice_email or cust.email, is_business=business, vat_id=cust.vat_id or None,
        # the human number (``store.customers``), never the internal id; a customer stored before
        # numbers existed and missed by the migration shows the operator's own reference, if any
        customer_number=cust.number or cust.external_ref or None, language=(cust.language or "de")[:2],
        contact_name=cust.name if business and cust.company_name else None,
        # a business in another EU member state with a valid VAT ID (runtime.tax): 0 % lines are AE;
        # an invoice billing assembled untaxed names its treatment on its tax group (AE, O, E)
        reverse_charge=_customer_treatment(t.country or "DE", country, business, cust.vat_id).category == "AE",
        **_untaxed(inv.tax_groups),
        leitweg_id=(contract.leitweg_id or None) if contract is not None else None,
        formats=tuple(f for f in (contract.document_formats or "").split(",") if f) if contract is not None else (),
    )
    payment = PaymentProfile("transfer")
    if contract is not None and contract.payment_method == "sepa_direct_debit" and inv.kind == "invoice":
        from store import collections as PC

        # the notice names the mandate a collection run will use (one made through the API, else
        # the contract's) and the day and amount the billing hand-over schedules (``prenotification``);
        # without the debtor's IBAN there is no debit notice: the invoice asks for a transfer instead
        m = PC.active_mandate(conn, tenant_id, inv.account_id, inv.currency, sync=False)
        ref, iban = (m.reference, m.iban) if m is not None else (contract.mandate_reference, contract.debtor_iban)
        if ref:
            payment = PaymentProfile("sepa_direct_debit", ref, iban or None,
                                     PC.prenotification(conn, tenant_id, inv).collection_date if finalized else None)
    elif contract is not None and contract.payment_method == "sepa_direct_debit" and contract.mandate_reference:
        payment = PaymentProfile("sepa_direct_debit", contract.mandate_reference, contract.debtor_iban or None)

    session_ids = sorted({ln.session_id for ln in lines if ln.session_id})
    sessions: list[Any] = []
    if session_ids:
        cs, loc, cp = ChargingSession.__table__, Location.__table__, ChargingPeriodRow.__table__  # type: ignore[attr-defined]
        rows = conn.execute(select(cs.c.id, cs.c.start, cs.c.end, cs.c.energy_kwh, cs.c.location_ref, cs.c.evse_ref,
                                   cs.c.token_uid, loc.c.name, loc.c.timezone, cs.c.facts)
                            .select_from(cs.outerjoin(loc, loc.c.id == cs.c.location_id))
                            .where(cs.c.tenant_id == tenant_id, cs.c.id.in_(session_ids))).all()
        # summed as Decimal here: SQL SUM over the exact-decimal text column adds floats on SQLite
        parked: dict[str, Decimal] = {}
        for sid, hours in conn.execute(select(cp.c.session_id, cp.c.parking_h).where(
                cp.c.session_id.in_(session_ids))).all():
            parked[sid] = parked.get(sid, Decimal(0)) + hours
        signed = signed_data_of(conn, session_ids)
        for r in rows:
            parking_min = (parked.get(r.id, Decimal(0)) * 60).quantize(Decimal(1))
            total_min = Decimal(int((r.end - r.start).total_seconds()) // 60)
            # the minutes rating priced: a session without stored periods (OCPP, JSON with a
            # charging end, meter values) has its parking time in its facts, not in period rows
            measured = facts_minutes(r.facts)
            if measured is not None:
                total_min, parking_min = measured[0] + measured[1], measured[1]
            sessions.append(SessionFacts(
                session_id=r.id, started_at=r.start, timezone=r.timezone or acct.timezone or "Europe/Berlin",
                location=r.name or r.location_ref, evse=r.evse_ref, token=r.token_uid, energy_kwh=r.energy_kwh,
                charging_minutes=max(total_min - parking_min, Decimal(0)), parking_minutes=parking_min,
                signed_data=tuple(signed.get(r.id, ())),
                public_key=str(((r.facts or {}).get("signed_meter") or {}).get("public_key") or "")
                if signed.get(r.id) else ""))
    corrects = tuple(inv.corrects or ())
    corrects_date = None
    corrected_periods: tuple[tuple[str, Any, Any], ...] = ()
    if corrects:
        corrects_date = conn.execute(select(B.invoice.c.issue_date).where(
            B.invoice.c.tenant_id == tenant_id, B.invoice.c.number == corrects[0])).scalar()
        corrected_periods = tuple((r.number, r.local_start, r.local_end) for r in conn.execute(
            select(B.invoice.c.number, B.invoice.c.local_start, B.invoice.c.local_end).where(
                B.invoice.c.tenant_id == tenant_id, B.invoice.c.number.in_(corrects))))
    return InvoiceInput(
        invoice_id=inv.id, kind=inv.kind, number=inv.number or "", issue_date=inv.issue_date, due_date=inv.due_date,
        currency=inv.currency, period_start=inv.local_start, period_end=inv.local_end,
        payment_terms=inv.payment_terms, net_total=inv.net_total, tax_total=inv.tax_total,
        lines=tuple(BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price,
                               ln.net, ln.tax_rate, ln.session_id, ln.rule, ln.corrects) for ln in lines),
        tenant=TenantProfile(seller, _branding(t.branding)), customer=customer, payment=payment,
        sessions=tuple(sessions), corrects=corrects, corrects_issue_date=corrects_date,
        corrected_periods=corrected_periods,
        rounding=_ruleset_rounding(conn, inv.ruleset_version_id),
    )


def _ruleset_rounding(conn: Connection, ruleset_version_id: str | None) -> str:
    """The rounding mode the invoice was assembled with: its ruleset version's ``rounding``
    header (the invoice row keeps the version, not the mode); half-up without a version."""
    from dsl.compiler import compile_ruleset

    if not ruleset_version_id:
        return "half_up"
    rv = metadata.tables["ruleset_version"]
    row = conn.execute(select(rv.c.source, rv.c.dsl_name).where(rv.c.id == ruleset_version_id)).first()
    # the same compile (and cache entry) the billing activity assembled the invoice with
    compiled = compile_ruleset(row.source, f"{row.dsl_name or ruleset_version_id}.evb").ruleset if row else None
    return compiled.rounding if compiled is not None else "half_up"


def issue_for_invoice(engine: Engine, tenant_id: str, invoice_id: str) -> list[StoredDocument]:
    """The hand-over from billing: render a finalized invoice in the customer's formats (the
    session statement is part of the PDF), archive them and queue the e-mail. Idempotent: a
    retried activity archives and queues nothing new."""
    from runtime.documents.from_invoice import default_formats, document_from_invoice
    from store import billing as B

    with engine.connect() as conn:
        inp = load_invoice_input(conn, tenant_id, invoice_id)
        customer_id = conn.execute(select(B.invoice.c.customer_id).where(B.invoice.c.id == invoice_id)).scalar()
    doc = document_from_invoice(inp)
    return issue_documents(engine, tenant_id, doc, default_formats(inp.customer), source_invoice_id=invoice_id,
                           customer_id=customer_id, email=inp.customer.email)


def hand_over(engine: Engine, tenant_id: str, invoice_id: str) -> tuple[str, str]:
    """What the billing workflow's ``documents.render_invoice`` activity calls: (status, detail).

    ``issued`` when the documents are archived (and the e-mail queued); ``failed`` when the
    invoice cannot become a document (e.g. its totals do not map, or the archive already holds
    different bytes): that needs a person, not a retry, and must not stop the billing cycle, so it
    is logged and reported instead of raised. Database trouble is raised, so the activity retries."""
    from runtime.documents.model import DocumentError
    from store.errors import DomainError

    try:
        stored = issue_for_invoice(engine, tenant_id, invoice_id)
    except (DocumentError, DomainError) as exc:
        _log.error("documents for invoice %s of tenant %s not issued: %s", invoice_id, tenant_id, exc)
        return "failed", f"{getattr(exc, 'code', type(exc).__name__)}: {exc}"
    detail = ", ".join(f"{d.number} {d.format} sha256:{d.sha256[:16]}" for d in stored)
    _log.info("documents issued: %s", detail, extra={"invoice_id": invoice_id})
    return "issued", detail


def smtp_settings_from_env(environ: Mapping[str, str] | None = None) -> SmtpSettings | None:
    """The SMTP server invoices leave through, from the environment; None (no e-mail delivery:
    deliveries stay ``pending``) without ``EVBILL_SMTP_HOST``.

    ``EVBILL_SMTP_PORT`` (25), ``EVBILL_SMTP_USER`` and ``EVBILL_SMTP_PASSWORD`` (log in when a
    user is given), ``EVBILL_SMTP_STARTTLS=1`` (upgrade with a verified certificate),
    ``EVBILL_SMTP_SENDER`` (the From: address; default: the tenant's e-mail address)."""
    import os

    env = os.environ if environ is None else environ
    host = env.get("EVBILL_SMTP_HOST", "").strip()
    if not host:
        return None
    port = env.get("EVBILL_SMTP_PORT", "25").strip() or "25"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"EVBILL_SMTP_PORT must be a port number (1-65535), not {port!r}")
    return SmtpSettings(host=host, port=int(port),
                        sender=env.get("EVBILL_SMTP_SENDER", "").strip(), username=env.get("EVBILL_SMTP_USER", ""),
                        password=env.get("EVBILL_SMTP_PASSWORD", ""),
                        starttls=env.get("EVBILL_SMTP_STARTTLS", "").strip().lower() in ("1", "true", "yes"))


def delivery_loop(engine: Engine, settings: SmtpSettings, stop: threading.Event, *, interval_s: float = 15.0,
                  stuck_after: timedelta | None = None) -> None:
    """A retry loop in a thread, for a process without Temporal: send what is due, every
    ``interval_s`` seconds, until ``stop`` is set. A failing round is logged and tried again next
    round. (``evbill serve`` delivers through Temporal instead: ``workflows.documents``.)"""
    build, send = message_builder(engine, sender=settings.sender), smtp_sender(settings)
    while not stop.is_set():
        try:
            mark_stuck_unknown(engine, stuck_after or settings.stuck_after)
            deliver_due(engine, build, send, max_attempts=settings.max_attempts, backoff=settings.backoff)
        except Exception:  # noqa: BLE001  (a database hiccup must not end the loop)
            _log.exception("document delivery round failed")
        stop.wait(interval_s)
