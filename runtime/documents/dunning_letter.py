"""A payment reminder or dunning letter as a branded PDF (issue 13): one letter per case and stage,
listing the customer's overdue items, the fees and interest charged with this stage (each an
item of its own), what is owed in all and the day to pay by. In the customer's language (de, en,
fr, nl) with the tenant's letterhead, colours and footer, like the invoices and account statements.

The numbers are the stage's as ``runtime.dunning.plan_stage`` decided and ``store.dunning`` kept;
this module only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final

from runtime.documents.i18n import date_text, money_text, rate_text
from runtime.documents.model import Address, Branding, Seller

__all__ = ["LETTER_LABELS", "ChargeLine", "DunningLetterDoc", "LetterItem", "render_dunning_letter"]

LETTER_LABELS: Final[dict[str, dict[str, str]]] = {
    "de": {
        "reminder": "Zahlungserinnerung", "dunning": "{n}. Mahnung", "customer_number": "Kundennummer",
        "date": "Datum", "case": "Vorgang", "currency": "Währung",
        "salutation": "Sehr geehrte Damen und Herren,", "salutation_person": "Guten Tag {name},",
        "intro_reminder": "sicher ist es Ihrer Aufmerksamkeit entgangen: die folgenden Posten sind fällig und "
                          "noch nicht bezahlt.",
        "intro_dunning": "trotz unserer Erinnerung sind die folgenden Posten noch nicht bezahlt.",
        "document": "Beleg", "issue_date": "Belegdatum", "due_date": "Fällig am", "amount": "Betrag",
        "open": "Offen", "return_charge_note": "inkl. Rücklastschriftkosten",
        "overdue_days": "Tage überfällig", "charges": "Mit diesem Schreiben berechnet",
        "dunning_fee": "Mahngebühr", "dunning_fee_vat": "Mahngebühr (zzgl. {rate} USt.)",
        "interest": "Verzugszinsen {number}: {start} – {end}, {days} Tage zu {rate} p. a.",
        "flat_fee": "Verzugspauschale (§ 288 Abs. 5 BGB) zu {number}",
        "overdue_total": "Offene Posten", "charged_total": "Gebühren und Zinsen",
        "total": "Zu zahlen", "pay_by": "Bitte überweisen Sie {amount} bis zum {date}.",
        "not_taxable": "Mahngebühren und Verzugszinsen sind als Schadensersatz nicht umsatzsteuerbar.",
        "closing_reminder": "Sollten Sie die Zahlung inzwischen geleistet haben, betrachten Sie dieses Schreiben "
                            "bitte als gegenstandslos.",
        "closing_dunning": "Begleichen Sie den Betrag bitte fristgerecht, damit wir keine weiteren Schritte "
                           "einleiten müssen.",
        "actions": "Bis zum Zahlungseingang: {actions}.",
        "block_tokens": "Ihre Ladekarten sind gesperrt", "suspend_contract": "Ihr Vertrag ist ausgesetzt",
        "hand_over": "die Forderung ist an ein Inkassounternehmen übergeben",
        "dunning_fee_item": "Mahngebühr", "interest_item": "Verzugszinsen", "flat_fee_item": "Verzugspauschale",
        "invoice_item": "Rechnung",
    },
    "en": {
        "reminder": "Payment reminder", "dunning": "Dunning notice {n}", "customer_number": "Customer number",
        "date": "Date", "case": "Case", "currency": "Currency",
        "salutation": "Dear Sir or Madam,", "salutation_person": "Dear {name},",
        "intro_reminder": "perhaps this has escaped your attention: the following items are due and still unpaid.",
        "intro_dunning": "despite our reminder, the following items are still unpaid.",
        "document": "Document", "issue_date": "Issued", "due_date": "Due", "amount": "Amount",
        "open": "Open", "return_charge_note": "incl. return charges",
        "overdue_days": "Days overdue", "charges": "Charged with this letter",
        "dunning_fee": "Dunning fee", "dunning_fee_vat": "Dunning fee (plus {rate} VAT)",
        "interest": "Default interest {number}: {start} – {end}, {days} days at {rate} p.a.",
        "flat_fee": "Late payment flat fee (§ 288 (5) BGB) for {number}",
        "overdue_total": "Open items", "charged_total": "Fees and interest",
        "total": "Amount due", "pay_by": "Please transfer {amount} by {date}.",
        "not_taxable": "Dunning fees and default interest are damages and outside the scope of VAT.",
        "closing_reminder": "If you have paid in the meantime, please disregard this letter.",
        "closing_dunning": "Please pay the amount in time so that we need not take further steps.",
        "actions": "Until we receive your payment: {actions}.",
        "block_tokens": "your charging cards are blocked", "suspend_contract": "your contract is suspended",
        "hand_over": "the claim is handed over to a collection agency",
        "dunning_fee_item": "Dunning fee", "interest_item": "Default interest", "flat_fee_item": "Late payment flat fee",
        "invoice_item": "Invoice",
    },
    "fr": {
        "reminder": "Rappel de paiement", "dunning": "Relance n° {n}", "customer_number": "Numéro client",
        "date": "Date", "case": "Dossier", "currency": "Devise",
        "salutation": "Madame, Monsieur,", "salutation_person": "Bonjour {name},",
        "intro_reminder": "sauf erreur de notre part, les pièces suivantes sont échues et restent impayées.",
        "intro_dunning": "malgré notre rappel, les pièces suivantes restent impayées.",
        "document": "Pièce", "issue_date": "Date de pièce", "due_date": "Échéance", "amount": "Montant",
        "open": "Restant dû", "return_charge_note": "frais de rejet inclus",
        "overdue_days": "Jours de retard", "charges": "Facturé avec ce courrier",
        "dunning_fee": "Frais de relance", "dunning_fee_vat": "Frais de relance (TVA {rate} en sus)",
        "interest": "Intérêts de retard {number} : {start} – {end}, {days} jours à {rate} par an",
        "flat_fee": "Indemnité forfaitaire pour frais de recouvrement, {number}",
        "overdue_total": "Pièces ouvertes", "charged_total": "Frais et intérêts",
        "total": "Montant à payer", "pay_by": "Merci de virer {amount} avant le {date}.",
        "not_taxable": "Les frais de relance et les intérêts de retard sont des dommages-intérêts hors champ de TVA.",
        "closing_reminder": "Si vous avez réglé entre-temps, veuillez ne pas tenir compte de ce courrier.",
        "closing_dunning": "Merci de régler ce montant dans le délai afin d’éviter d’autres démarches.",
        "actions": "Jusqu’à réception de votre paiement : {actions}.",
        "block_tokens": "vos cartes de recharge sont bloquées", "suspend_contract": "votre contrat est suspendu",
        "hand_over": "la créance est transmise à une société de recouvrement",
        "dunning_fee_item": "Frais de relance", "interest_item": "Intérêts de retard",
        "flat_fee_item": "Indemnité forfaitaire", "invoice_item": "Facture",
    },
    "nl": {
        "reminder": "Betalingsherinnering", "dunning": "{n}e aanmaning", "customer_number": "Klantnummer",
        "date": "Datum", "case": "Dossier", "currency": "Valuta",
        "salutation": "Geachte heer, mevrouw,", "salutation_person": "Beste {name},",
        "intro_reminder": "mogelijk is het aan uw aandacht ontsnapt: de volgende posten zijn vervallen en nog "
                          "niet betaald.",
        "intro_dunning": "ondanks onze herinnering zijn de volgende posten nog niet betaald.",
        "document": "Document", "issue_date": "Documentdatum", "due_date": "Vervaldatum", "amount": "Bedrag",
        "open": "Openstaand", "return_charge_note": "incl. stornokosten",
        "overdue_days": "Dagen te laat", "charges": "Met deze brief berekend",
        "dunning_fee": "Aanmaningskosten", "dunning_fee_vat": "Aanmaningskosten (excl. {rate} btw)",
        "interest": "Vertragingsrente {number}: {start} – {end}, {days} dagen tegen {rate} per jaar",
        "flat_fee": "Forfaitaire vergoeding voor incassokosten, {number}",
        "overdue_total": "Openstaande posten", "charged_total": "Kosten en rente",
        "total": "Te betalen", "pay_by": "Gelieve {amount} over te maken vóór {date}.",
        "not_taxable": "Aanmaningskosten en vertragingsrente zijn schadevergoeding en vallen buiten de btw.",
        "closing_reminder": "Heeft u inmiddels betaald, dan kunt u deze brief als niet verzonden beschouwen.",
        "closing_dunning": "Betaal het bedrag tijdig, zodat wij geen verdere stappen hoeven te nemen.",
        "actions": "Tot ontvangst van uw betaling: {actions}.",
        "block_tokens": "uw laadpassen zijn geblokkeerd", "suspend_contract": "uw contract is opgeschort",
        "hand_over": "de vordering is overgedragen aan een incassobureau",
        "dunning_fee_item": "Aanmaningskosten", "interest_item": "Vertragingsrente",
        "flat_fee_item": "Forfaitaire vergoeding", "invoice_item": "Factuur",
    },
}


@dataclass(frozen=True)
class LetterItem:
    number: str
    kind: str  # invoice | dunning_fee | interest | flat_fee
    issue_date: date | None
    due_date: date
    amount: Decimal
    open: Decimal


@dataclass(frozen=True)
class ChargeLine:
    kind: str  # dunning_fee | interest | flat_fee
    amount: Decimal  # gross, what the item opens with
    net: Decimal | None = None
    vat_rate: Decimal | None = None
    number: str = ""  # the invoice interest or a flat fee is for
    start: date | None = None
    end: date | None = None
    days: int = 0
    rate: Decimal | None = None  # interest: percent per year (the first piece's)


@dataclass(frozen=True)
class DunningLetterDoc:
    language: str
    currency: str
    stage: int
    letter: str  # reminder | dunning
    dated: date  # the letter's date (the day the stage was reached)
    pay_by: date
    case_number: str
    seller: Seller
    customer_name: str
    customer_number: str
    address: Address | None
    items: tuple[LetterItem, ...]
    charges: tuple[ChargeLine, ...]
    overdue: Decimal
    charged: Decimal
    total: Decimal
    actions: tuple[str, ...] = ()
    branding: Branding = field(default_factory=Branding)
    # the dunning notice's count ("2. Mahnung"): reminders before it are not counted; 0: the stage
    notice: int = 0
    # a private person's name: the letter greets them by it (no gender is known, so the greeting
    # is the neutral one of each language); empty (a business): "Sehr geehrte Damen und Herren"
    addressee: str = ""

    @property
    def number(self) -> str:  # base.html's title and the PDF identifier
        return f"{self.case_number}-{self.stage}"


def _context(doc: DunningLetterDoc) -> dict[str, Any]:
    from runtime.documents.pdf import LABELS, logo_uri

    lang = doc.language
    t = LETTER_LABELS[lang]

    def m(value: Decimal) -> str:
        return money_text(value, doc.currency, lang)

    def d(value: date) -> str:
        return date_text(value, lang)

    title = t["reminder"] if doc.letter == "reminder" else t["dunning"].format(n=doc.notice or doc.stage)
    info = [(t["date"], d(doc.dated)), (t["case"], doc.number), (t["currency"], doc.currency)]
    if doc.customer_number:
        info.insert(0, (t["customer_number"], doc.customer_number))
    # an invoice open beyond its amount carries a returned debit's charges (store.receivables)
    items = [{"number": i.number, "kind": t.get(f"{i.kind}_item", i.kind),
              "note": t["return_charge_note"] if i.kind == "invoice" and i.open > i.amount else "",
              "issued": d(i.issue_date) if i.issue_date else "", "due": d(i.due_date), "amount": m(i.amount),
              "open": m(i.open), "overdue": str(max(0, (doc.dated - i.due_date).days))} for i in doc.items]
    charges = []
    for c in doc.charges:
        if c.kind == "interest":
            text = t["interest"].format(number=c.number, start=d(c.start) if c.start else "",
                                        end=d(c.end) if c.end else "", days=c.days,
                                        rate=rate_text(c.rate or Decimal(0), lang))
        elif c.kind == "flat_fee":
            text = t["flat_fee"].format(number=c.number)
        elif c.vat_rate is not None:
            text = t["dunning_fee_vat"].format(rate=rate_text(c.vat_rate, lang))
        else:
            text = t["dunning_fee"]
        charges.append({"text": text, "amount": m(c.amount)})
    untaxed = any(c.kind == "interest" or (c.kind == "dunning_fee" and c.vat_rate is None) for c in doc.charges)
    actions = ", ".join(t[a] for a in doc.actions if a in t)
    return {
        "doc": doc, "T": t, "L": LABELS[lang], "lang": lang, "title": title, "logo": logo_uri(doc.branding),
        "branding": doc.branding, "issuer_name": doc.seller.legal_name, "issuer_address": doc.seller.address,
        "self_billing": False, "info": info, "items": items, "charges": charges,
        "overdue": m(doc.overdue), "charged": m(doc.charged), "total": m(doc.total),
        "pay_by": t["pay_by"].format(amount=m(doc.total), date=d(doc.pay_by)),
        "intro": t["intro_reminder"] if doc.letter == "reminder" else t["intro_dunning"],
        "closing": t["closing_reminder"] if doc.letter == "reminder" else t["closing_dunning"],
        "untaxed": t["not_taxable"] if untaxed else "",
        "actions": t["actions"].format(actions=actions) if actions else "",
        "salutation": t["salutation_person"].format(name=doc.addressee) if doc.addressee else t["salutation"],
    }


def render_dunning_letter(doc: DunningLetterDoc) -> bytes:
    """The letter as PDF bytes (the same letter renders the same bytes)."""
    from runtime.documents.pdf import _environment, render_letter_pdf

    if doc.language not in LETTER_LABELS:
        raise ValueError(f"unsupported language {doc.language!r}")
    html = _environment().get_template("dunning_letter.html").render(**_context(doc))
    return render_letter_pdf(html, number=doc.number, language=doc.language, seller=doc.seller,
                             branding=doc.branding)
