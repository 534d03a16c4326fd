"""The e-mail that carries a document (pure: builds the message, never sends it).

Sending, retries and the delivery record are I/O and live with the archive
(``store.documents.deliver``); this module only decides what the customer receives: subject and
text in the customer's language, the tenant as sender (white-label), the archived bytes attached
unchanged under their archive file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from runtime.documents.pdf import date_text, money_text

__all__ = ["Attachment", "MailContent", "build_message", "message_id_for"]


@dataclass(frozen=True)
class Attachment:
    filename: str
    media_type: str  # e.g. application/pdf, application/xml
    content: bytes


@dataclass(frozen=True)
class MailContent:
    kind: str  # invoice | credit_note | self_billing_credit_note | dunning_letter
    number: str
    issue_date: date
    gross_total: Decimal
    currency: str
    issuer_name: str
    sender: str  # the tenant's billing address
    recipient: str
    recipient_name: str = ""
    language: str = "de"
    message_id: str = ""  # the stable left part (the delivery id); the sender's domain is added
    reply_to: str = ""


_SUBJECTS = {
    "de": {"invoice": "Ihre Rechnung {number}", "credit_note": "Ihre Rechnungskorrektur {number}",
           "self_billing_credit_note": "Gutschrift {number}", "dunning_letter": "Offene Posten: unser Schreiben {number}"},
    "en": {"invoice": "Your invoice {number}", "credit_note": "Your credit note {number}",
           "self_billing_credit_note": "Self-billing invoice {number}", "dunning_letter": "Overdue items: our letter {number}"},
}

_BODIES = {
    "de": ("Guten Tag{name},\n\nim Anhang erhalten Sie {what} {number} vom {date} über {amount}.\n"
           "{attached}\n\nMit freundlichen Grüßen\n{issuer}\n"),
    "en": ("Dear {name_en},\n\nplease find attached {what_en} {number} of {date} for {amount}.\n"
           "{attached}\n\nKind regards\n{issuer}\n"),
}
_WHAT = {
    "de": {"invoice": "Ihre Rechnung", "credit_note": "Ihre Rechnungskorrektur",
           "self_billing_credit_note": "unsere Gutschrift", "dunning_letter": "unser Schreiben"},
    "en": {"invoice": "your invoice", "credit_note": "your credit note",
           "self_billing_credit_note": "our self-billing invoice", "dunning_letter": "our letter"},
}
_ATTACHED = {
    "de": {"application/pdf": "PDF", "application/xml": "E-Rechnung (XML)"},
    "en": {"application/pdf": "PDF", "application/xml": "e-invoice (XML)"},
}


def message_id_for(left: str, sender: str) -> str:
    """A stable Message-ID: the same delivery always carries the same id, so if a message is ever
    handed over twice the receiving side can recognise the duplicate."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{left}@{domain}>" if left else make_msgid(domain=domain)


def build_message(content: MailContent, attachments: list[Attachment]) -> EmailMessage:
    if not attachments:
        raise ValueError("an e-mail delivery needs at least one attachment")
    lang = content.language if content.language in _SUBJECTS else "en"
    msg = EmailMessage()
    msg["Subject"] = _SUBJECTS[lang][content.kind].format(number=content.number)
    msg["From"] = formataddr((content.issuer_name, content.sender))
    msg["To"] = formataddr((content.recipient_name, content.recipient)) if content.recipient_name \
        else content.recipient
    if content.reply_to:
        msg["Reply-To"] = content.reply_to
    msg["Message-ID"] = message_id_for(content.message_id, content.sender)
    # the document's date, not the clock: a retried delivery builds the same message
    msg["Date"] = format_datetime(datetime.combine(content.issue_date, time(8, 0), tzinfo=UTC))
    attached = ("Anhang: " if lang == "de" else "Attached: ") + ", ".join(
        f"{a.filename} ({_ATTACHED[lang].get(a.media_type, a.media_type)})" for a in attachments)
    msg.set_content(_BODIES[lang].format(
        name=f" {content.recipient_name}" if content.recipient_name else "",
        name_en=content.recipient_name or "customer",
        what=_WHAT["de"][content.kind], what_en=_WHAT["en"][content.kind], number=content.number,
        date=date_text(content.issue_date, lang),
        amount=money_text(content.gross_total, content.currency, lang).replace("\u00a0", " "),
        attached=attached, issuer=content.issuer_name,
    ))
    for a in attachments:
        maintype, _, subtype = a.media_type.partition("/")
        msg.add_attachment(a.content, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=a.filename)
    return msg
