"""A customer's account statement as a branded PDF (issue 12): the opening balance, each booking
with its date, document number, text, debit, credit and the balance after it, the closing
balance, and the items still open with their due dates and days overdue. In the customer's
language (de, en, fr, nl), with the tenant's letterhead, colours and footer, like the invoices.

The numbers are the ones ``store.receivables.statement_lines`` computes for the JSON statement;
this module only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final

from runtime.documents.i18n import date_text, money_text
from runtime.documents.model import Address, Branding, Seller

__all__ = ["ACCOUNT_LABELS", "AccountStatementDoc", "Booking", "OpenItemLine", "render_account_statement"]

ACCOUNT_LABELS: Final[dict[str, dict[str, str]]] = {
    "de": {
        "title": "Kontoauszug", "customer_number": "Kundennummer", "date": "Datum", "period": "Zeitraum",
        "currency": "Währung", "since": "ab {start}", "until": "bis {end}", "all": "alle Buchungen",
        "booked_on": "Datum", "document": "Beleg", "text": "Buchungstext", "debit": "Soll", "credit": "Haben",
        "balance": "Saldo", "opening": "Anfangssaldo", "closing": "Endsaldo", "open_items": "Offene Posten",
        "issue_date": "Belegdatum", "due_date": "Fällig am", "amount": "Betrag", "open": "Offen",
        "overdue": "Tage überfällig", "no_open_items": "Es sind keine Posten offen.",
        "owed": "Zu zahlender Betrag: {amount}", "credit_balance": "Ihr Guthaben: {amount}",
        "settled": "Ihr Konto ist ausgeglichen.", "no_bookings": "Keine Buchungen im Zeitraum.",
        "invoice": "Rechnung", "credit_note": "Rechnungskorrektur", "payment": "Zahlung",
        "return": "Rücklastschrift", "return_charge": "Rücklastschriftgebühr", "refund": "Erstattung", "refund_return": "Erstattung zurückgekommen",
        "write_off": "Ausbuchung", "goodwill": "Kulanzgutschrift", "overpayment": "Überzahlung (Guthaben)",
        "dunning_fee": "Mahngebühr", "interest": "Verzugszinsen", "flat_fee": "Verzugspauschale",
        "credit_applied": "Guthaben verrechnet", "credit_used": "Guthaben verrechnet",
        "netting": "Mit Gutschrift verrechnet",
    },
    "en": {
        "title": "Account statement", "customer_number": "Customer number", "date": "Date", "period": "Period",
        "currency": "Currency", "since": "from {start}", "until": "until {end}", "all": "all bookings",
        "booked_on": "Date", "document": "Document", "text": "Description", "debit": "Debit", "credit": "Credit",
        "balance": "Balance", "opening": "Opening balance", "closing": "Closing balance", "open_items": "Open items",
        "issue_date": "Issued", "due_date": "Due", "amount": "Amount", "open": "Open",
        "overdue": "Days overdue", "no_open_items": "No items are open.",
        "owed": "Amount due: {amount}", "credit_balance": "Your credit balance: {amount}",
        "settled": "Your account is settled.", "no_bookings": "No bookings in this period.",
        "invoice": "Invoice", "credit_note": "Credit note", "payment": "Payment",
        "return": "Returned direct debit", "return_charge": "Return fee", "refund": "Refund", "refund_return": "Refund returned",
        "write_off": "Write-off", "goodwill": "Goodwill credit", "overpayment": "Overpayment (credit)",
        "dunning_fee": "Dunning fee", "interest": "Default interest", "flat_fee": "Late payment flat fee",
        "credit_applied": "Credit applied", "credit_used": "Credit applied",
        "netting": "Netted against credit note",
    },
    "fr": {
        "title": "Relevé de compte", "customer_number": "Numéro client", "date": "Date", "period": "Période",
        "currency": "Devise", "since": "à partir du {start}", "until": "jusqu’au {end}",
        "all": "toutes les écritures",
        "booked_on": "Date", "document": "Pièce", "text": "Libellé", "debit": "Débit", "credit": "Crédit",
        "balance": "Solde", "opening": "Solde d’ouverture", "closing": "Solde de clôture",
        "open_items": "Pièces non soldées",
        "issue_date": "Date de pièce", "due_date": "Échéance", "amount": "Montant", "open": "Restant dû",
        "overdue": "Jours de retard", "no_open_items": "Aucune pièce n’est ouverte.",
        "owed": "Montant à payer : {amount}", "credit_balance": "Votre avoir : {amount}",
        "settled": "Votre compte est soldé.", "no_bookings": "Aucune écriture sur la période.",
        "invoice": "Facture", "credit_note": "Avoir", "payment": "Paiement",
        "return": "Prélèvement rejeté", "return_charge": "Frais de rejet", "refund": "Remboursement", "refund_return": "Remboursement rejeté",
        "write_off": "Passage en perte", "goodwill": "Geste commercial", "overpayment": "Trop-perçu (avoir)",
        "dunning_fee": "Frais de relance", "interest": "Intérêts de retard", "flat_fee": "Indemnité forfaitaire",
        "credit_applied": "Avoir imputé", "credit_used": "Avoir imputé", "netting": "Compensé avec avoir",
    },
    "nl": {
        "title": "Rekeningoverzicht", "customer_number": "Klantnummer", "date": "Datum", "period": "Periode",
        "currency": "Valuta", "since": "vanaf {start}", "until": "tot {end}", "all": "alle boekingen",
        "booked_on": "Datum", "document": "Document", "text": "Omschrijving", "debit": "Debet", "credit": "Credit",
        "balance": "Saldo", "opening": "Beginsaldo", "closing": "Eindsaldo", "open_items": "Openstaande posten",
        "issue_date": "Documentdatum", "due_date": "Vervaldatum", "amount": "Bedrag", "open": "Open",
        "overdue": "Dagen te laat", "no_open_items": "Er staan geen posten open.",
        "owed": "Te betalen: {amount}", "credit_balance": "Uw tegoed: {amount}",
        "settled": "Uw rekening is vereffend.", "no_bookings": "Geen boekingen in deze periode.",
        "invoice": "Factuur", "credit_note": "Creditnota", "payment": "Betaling",
        "return": "Gestorneerde incasso", "return_charge": "Stornokosten", "refund": "Terugbetaling", "refund_return": "Terugbetaling teruggekomen",
        "write_off": "Afboeking", "goodwill": "Coulancecredit", "overpayment": "Te veel betaald (tegoed)",
        "dunning_fee": "Aanmaningskosten", "interest": "Vertragingsrente", "flat_fee": "Forfaitaire vergoeding",
        "credit_applied": "Tegoed verrekend", "credit_used": "Tegoed verrekend",
        "netting": "Verrekend met creditnota",
    },
}


@dataclass(frozen=True)
class Booking:
    booked_on: date
    kind: str  # the entry kind (invoice, payment, return, ...): its label is the booking text
    number: str  # the document the booking belongs to (the invoice number, a credit's reference)
    reference: str  # what came with it (the payer's text)
    debit: Decimal
    credit: Decimal
    balance: Decimal


@dataclass(frozen=True)
class OpenItemLine:
    number: str
    issue_date: date
    due_date: date
    amount: Decimal
    open: Decimal


@dataclass(frozen=True)
class AccountStatementDoc:
    language: str
    currency: str
    as_of: date  # the statement's date; days overdue count to it
    seller: Seller
    customer_name: str
    customer_number: str
    address: Address | None
    opening: Decimal
    closing: Decimal
    bookings: tuple[Booking, ...]
    open_items: tuple[OpenItemLine, ...]
    start: date | None = None
    end: date | None = None  # exclusive, as the API's period
    branding: Branding = field(default_factory=Branding)

    @property
    def number(self) -> str:  # base.html's title and the PDF identifier
        return f"{self.customer_number or self.customer_name} {self.as_of.isoformat()}"


def _context(doc: AccountStatementDoc) -> dict[str, Any]:
    from runtime.documents.pdf import LABELS, logo_uri

    lang = doc.language
    labels = ACCOUNT_LABELS[lang]

    def m(value: Decimal) -> str:
        return money_text(value, doc.currency, lang)

    def d(value: date) -> str:
        return date_text(value, lang)

    if doc.start and doc.end:
        period = f"{d(doc.start)} – {d(date.fromordinal(doc.end.toordinal() - 1))}"
    elif doc.start:
        period = labels["since"].format(start=d(doc.start))
    elif doc.end:
        period = labels["until"].format(end=d(date.fromordinal(doc.end.toordinal() - 1)))
    else:
        period = labels["all"]
    info = [(labels["date"], d(doc.as_of)), (labels["period"], period), (labels["currency"], doc.currency)]
    if doc.customer_number:
        info.insert(0, (labels["customer_number"], doc.customer_number))
    bookings = [{"date": d(b.booked_on), "number": b.number, "text": labels.get(b.kind, b.kind),
                 "reference": b.reference if b.reference and b.reference != b.number else "",
                 "debit": m(b.debit) if b.debit else "", "credit": m(b.credit) if b.credit else "",
                 "balance": m(b.balance)} for b in doc.bookings]
    items = [{"number": i.number, "issued": d(i.issue_date), "due": d(i.due_date), "amount": m(i.amount),
              "open": m(i.open), "overdue": str(max(0, (doc.as_of - i.due_date).days)) if i.due_date < doc.as_of
              else ""} for i in doc.open_items]
    summary = (labels["owed"].format(amount=m(doc.closing)) if doc.closing > 0 else
               labels["credit_balance"].format(amount=m(-doc.closing)) if doc.closing < 0 else labels["settled"])
    return {
        "doc": doc, "A": labels, "L": LABELS[lang], "lang": lang, "title": labels["title"],
        "logo": logo_uri(doc.branding),
        "branding": doc.branding, "issuer_name": doc.seller.legal_name, "issuer_address": doc.seller.address,
        "self_billing": False, "info": info, "opening": m(doc.opening), "closing": m(doc.closing),
        "bookings": bookings, "items": items, "summary": summary,
    }


def render_account_statement(doc: AccountStatementDoc) -> bytes:
    """The statement as PDF bytes (the same statement renders the same bytes)."""
    from runtime.documents.pdf import _environment, render_letter_pdf

    if doc.language not in ACCOUNT_LABELS:
        raise ValueError(f"unsupported language {doc.language!r}")
    html = _environment().get_template("account_statement.html").render(**_context(doc))
    return render_letter_pdf(html, number=doc.number, language=doc.language, seller=doc.seller,
                             branding=doc.branding)
