"""Branded PDFs (WeasyPrint + jinja2) for invoices, credit notes, self-billing and statements.

Every amount on the page comes from ``Document.totals`` (the same numbers the XML carries), and
the page is white-label: nothing names evbill unless the tenant's branding asks for it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jinja2

from runtime.documents.i18n import (
    date_text,
    datetime_text,
    money_text,
    number_text,
    price_text,
    quantity_text,
    rate_text,
    sessions_text,
)
from runtime.documents.model import Branding, Document, DocumentKind, Line, Seller, VatCategory, VatGroup

__all__ = ["LABELS", "UNITS", "date_text", "line_rows", "money_text", "render_html", "render_pdf", "unit_label"]

TEMPLATES = Path(__file__).parent / "templates"

LABELS: dict[str, dict[str, str]] = {
    "de": {
        "invoice": "Rechnung",
        "credit_note": "Rechnungskorrektur",
        "self_billing_credit_note": "Gutschrift",
        "number": "Belegnummer",
        "date": "Datum",
        "period": "Leistungszeitraum",
        "due": "Fällig am",
        "customer_number": "Kundennummer",
        "buyer_reference": "Ihre Referenz",
        "corrects": "Korrektur zu Rechnung",
        "corrects_from": "vom",
        "vat_id": "USt-IdNr.",
        "tax_number": "Steuernummer",
        "buyer_vat_id": "Ihre USt-IdNr.",
        "buyer_tax_number": "Ihre Steuernummer",
        "pos": "Pos.",
        "item": "Bezeichnung",
        "qty": "Menge",
        "unit_price": "Einzelpreis",
        "vat": "USt.",
        "amount": "Betrag",
        "line_allowance": "Nachlass",
        "line_charge": "Zuschlag",
        "line_total": "Summe Positionen",
        "allowance": "Nachlass",
        "charge": "Zuschlag",
        "net": "Nettobetrag",
        "vat_on": "USt. {rate} auf {basis}",
        "gross": "Gesamtbetrag",
        "prepaid": "Bereits bezahlt",
        "payable": "Zahlbetrag",
        "payable_credit": "Gutschriftsbetrag",
        "set_off_invoice": "Verrechnet mit Rechnung {number}",
        "set_off_credit_note": "Verrechnet mit Rückforderung aus Gutschrift {number}",
        "transferred": "Auszahlungsbetrag",
        "set_off_all": "Der Betrag wird vollständig mit unseren Forderungen verrechnet; eine Überweisung erfolgt nicht.",
        "set_off_note": "Gemäß Vereinbarung verrechnen wir die Gutschrift über {gross} mit unseren Forderungen über {owed}.",
        "transfer": "Bitte überweisen Sie {amount} bis zum {due} unter Angabe der Belegnummer "
        "{ref} auf das Konto IBAN {iban}{bic}.",
        "transfer_nodue": "Bitte überweisen Sie {amount} unter Angabe der Belegnummer {ref} auf "
        "das Konto IBAN {iban}{bic}.",
        "refund": "Den Betrag von {amount} überweisen wir auf Ihr Konto IBAN {iban}.",
        "refund_noiban": "Den Betrag von {amount} erstatten wir Ihnen.",
        "self_billing_pay": "Den Betrag von {amount} überweisen wir auf Ihr Konto IBAN {iban}.",
        "debit": "Wir ziehen den Betrag von {amount} am {when} per SEPA-Lastschrift von Ihrem "
        "Konto IBAN {iban} ein. Mandatsreferenz: {mandate}, Gläubiger-Identifikationsnummer: "
        "{creditor}. Bitte sorgen Sie für ausreichende Deckung.",
        "debit_soon": "in den nächsten Tagen",
        "nothing_due": "Der Betrag ist bereits beglichen.",
        "self_billing_note": "Gutschrift im Gutschriftsverfahren (§ 14 Abs. 2 Satz 2 UStG), "
        "ausgestellt vom Leistungsempfänger.",
        "statement": "Einzelnachweis der Ladevorgänge",
        "statement_for": "zu Beleg",
        "st_start": "Beginn",
        "st_location": "Standort / Ladepunkt",
        "st_token": "Karte",
        "st_kwh": "kWh",
        "st_charge_min": "Ladezeit",
        "st_park_min": "Parkzeit",
        "st_components": "Preisbestandteile",
        "st_net": "Netto",
        "st_tax": "USt.",
        "st_gross": "Brutto",
        "st_total": "Summe",
        "st_sessions": "Ladevorgänge",
        "min": "min",
        "page": "Seite",
        "of": "von",
        "bank": "Bankverbindung",
        "contact": "Kontakt",
        "powered_by": "Erstellt mit evbill",
        "issuer": "Aussteller",
        "recipient": "Empfänger",
        "vat_rate_reverse_charge": "{rate} (Steuerschuldnerschaft des Leistungsempfängers)",
        "vat_rate_intra_community": "{rate} (innergemeinschaftliche Lieferung)",
        "vat_rate_exempt": "steuerfrei",
        "vat_rate_not_subject": "nicht steuerbar",
        "rounded_per_session": "je Ladevorgang gerundet: {amount}",
        "cap_sessions": "höchstens {cap} je Ladevorgang",
        "st_invoice_other": "Weitere Positionen der Rechnung",
        "st_invoice_total": "Rechnungsbetrag",
        "st_tax_note": "Die USt. wird je Steuersatz auf die Summe berechnet und auf die Ladevorgänge verteilt.",
        "signed_title": "Signierte Messdaten (Eichrecht)",
        "signed_session": "Ladevorgang",
        "signed_data": "Signierte Daten",
        "signed_key": "Öffentlicher Schlüssel",
        "signed_container": "Signierte Daten und Schlüssel als XML-Datei für die Transparenzsoftware",
        "signed_note": "Prüfbar mit der Transparenzsoftware der S.A.F.E. e.V. (safe-ev.de): signierte Daten und öffentlichen Schlüssel einlesen oder die QR-Codes scannen.",
    },
    "en": {
        "invoice": "Invoice",
        "credit_note": "Credit note",
        "self_billing_credit_note": "Self-billing invoice",
        "number": "Document no.",
        "date": "Date",
        "period": "Service period",
        "due": "Due date",
        "customer_number": "Customer no.",
        "buyer_reference": "Your reference",
        "corrects": "Corrects invoice",
        "corrects_from": "of",
        "vat_id": "VAT ID",
        "tax_number": "Tax number",
        "buyer_vat_id": "Your VAT ID",
        "buyer_tax_number": "Your tax number",
        "pos": "No.",
        "item": "Description",
        "qty": "Quantity",
        "unit_price": "Unit price",
        "vat": "VAT",
        "amount": "Amount",
        "line_allowance": "Allowance",
        "line_charge": "Charge",
        "line_total": "Line total",
        "allowance": "Allowance",
        "charge": "Charge",
        "net": "Net amount",
        "vat_on": "VAT {rate} on {basis}",
        "gross": "Total",
        "prepaid": "Already paid",
        "payable": "Amount due",
        "payable_credit": "Amount credited",
        "set_off_invoice": "Set off against invoice {number}",
        "set_off_credit_note": "Set off against the amount reclaimed by credit note {number}",
        "transferred": "Amount transferred",
        "set_off_all": "The amount is set off in full against what you owe us; nothing is transferred.",
        "set_off_note": "As agreed, we set off this credit of {gross} against {owed} you owe us.",
        "transfer": "Please transfer {amount} by {due} quoting {ref} to IBAN {iban}{bic}.",
        "transfer_nodue": "Please transfer {amount} quoting {ref} to IBAN {iban}{bic}.",
        "refund": "We will transfer {amount} to your account IBAN {iban}.",
        "refund_noiban": "We will refund {amount} to you.",
        "self_billing_pay": "We will transfer {amount} to your account IBAN {iban}.",
        "debit": "We will collect {amount} on {when} by SEPA direct debit from your account "
        "IBAN {iban}. Mandate reference: {mandate}, creditor identifier: {creditor}. Please "
        "make sure the account is sufficiently funded.",
        "debit_soon": "within the next few days",
        "nothing_due": "This amount has already been settled.",
        "self_billing_note": "Self-billing: this invoice is issued by the recipient of the "
        "supply on behalf of the supplier.",
        "statement": "Itemized session statement",
        "statement_for": "for document",
        "st_start": "Start",
        "st_location": "Location / EVSE",
        "st_token": "Token",
        "st_kwh": "kWh",
        "st_charge_min": "Charging",
        "st_park_min": "Parking",
        "st_components": "Price components",
        "st_net": "Net",
        "st_tax": "VAT",
        "st_gross": "Gross",
        "st_total": "Total",
        "st_sessions": "sessions",
        "min": "min",
        "page": "Page",
        "of": "of",
        "bank": "Bank details",
        "contact": "Contact",
        "powered_by": "Created with evbill",
        "issuer": "Issuer",
        "recipient": "Recipient",
        "vat_rate_reverse_charge": "{rate} (reverse charge)",
        "vat_rate_intra_community": "{rate} (intra-community supply)",
        "vat_rate_exempt": "exempt",
        "vat_rate_not_subject": "not subject to VAT",
        "rounded_per_session": "rounded per session: {amount}",
        "cap_sessions": "at most {cap} per session",
        "st_invoice_other": "Other invoice lines",
        "st_invoice_total": "Invoice total",
        "st_tax_note": "VAT is computed per rate on the total and allocated to the sessions.",
        "signed_title": "Signed meter data (German calibration law)",
        "signed_session": "Session",
        "signed_data": "Signed data",
        "signed_key": "Public key",
        "signed_container": "Signed data and key as the transparency software's XML file",
        "signed_note": "Check it with the S.A.F.E. e.V. transparency software (safe-ev.de): paste the signed data and the public key, or scan the QR codes.",
    },
    "fr": {
        "invoice": "Facture",
        "credit_note": "Avoir",
        "self_billing_credit_note": "Autofacturation",
        "number": "N° de document",
        "date": "Date",
        "period": "Période de prestation",
        "due": "Échéance",
        "customer_number": "N° client",
        "buyer_reference": "Votre référence",
        "corrects": "Rectifie la facture",
        "corrects_from": "du",
        "vat_id": "N° TVA",
        "tax_number": "N° fiscal",
        "buyer_vat_id": "Votre n° TVA",
        "buyer_tax_number": "Votre n° fiscal",
        "pos": "N°",
        "item": "Désignation",
        "qty": "Quantité",
        "unit_price": "Prix unitaire",
        "vat": "TVA",
        "amount": "Montant",
        "line_allowance": "Remise",
        "line_charge": "Supplément",
        "line_total": "Total des lignes",
        "allowance": "Remise",
        "charge": "Supplément",
        "net": "Montant HT",
        "vat_on": "TVA {rate} sur {basis}",
        "gross": "Montant TTC",
        "prepaid": "Déjà payé",
        "payable": "Net à payer",
        "payable_credit": "Montant crédité",
        "set_off_invoice": "Compensé avec la facture {number}",
        "set_off_credit_note": "Compensé avec le trop-perçu de l'autofacture {number}",
        "transferred": "Montant viré",
        "set_off_all": "Le montant est entièrement compensé avec nos créances ; aucun virement n'est effectué.",
        "set_off_note": "Comme convenu, nous compensons ce crédit de {gross} avec nos créances de {owed}.",
        "transfer": "Veuillez virer {amount} avant le {due} en indiquant {ref} sur le compte IBAN {iban}{bic}.",
        "transfer_nodue": "Veuillez virer {amount} en indiquant {ref} sur le compte IBAN {iban}{bic}.",
        "refund": "Nous virerons {amount} sur votre compte IBAN {iban}.",
        "refund_noiban": "Nous vous rembourserons {amount}.",
        "self_billing_pay": "Nous virerons {amount} sur votre compte IBAN {iban}.",
        "debit": "Nous prélèverons {amount} le {when} par prélèvement SEPA sur votre compte IBAN {iban}. "
        "Référence du mandat : {mandate}, identifiant créancier : {creditor}. Merci de veiller à ce que "
        "votre compte soit suffisamment approvisionné.",
        "debit_soon": "dans les prochains jours",
        "nothing_due": "Ce montant est déjà réglé.",
        "self_billing_note": "Autofacturation : facture émise par le destinataire de la prestation au nom "
        "et pour le compte du fournisseur.",
        "statement": "Relevé détaillé des recharges",
        "statement_for": "pour le document",
        "st_start": "Début",
        "st_location": "Site / point de charge",
        "st_token": "Badge",
        "st_kwh": "kWh",
        "st_charge_min": "Charge",
        "st_park_min": "Stationnement",
        "st_components": "Éléments de prix",
        "st_net": "HT",
        "st_tax": "TVA",
        "st_gross": "TTC",
        "st_total": "Total",
        "st_sessions": "recharges",
        "min": "min",
        "page": "Page",
        "of": "sur",
        "bank": "Coordonnées bancaires",
        "contact": "Contact",
        "powered_by": "Créé avec evbill",
        "issuer": "Émetteur",
        "recipient": "Destinataire",
        "vat_rate_reverse_charge": "{rate} (autoliquidation)",
        "vat_rate_intra_community": "{rate} (livraison intracommunautaire)",
        "vat_rate_exempt": "exonéré",
        "vat_rate_not_subject": "hors champ de la TVA",
        "rounded_per_session": "arrondi par recharge : {amount}",
        "cap_sessions": "au plus {cap} par recharge",
        "st_invoice_other": "Autres lignes de la facture",
        "st_invoice_total": "Montant de la facture",
        "st_tax_note": "La TVA est calculée par taux sur le total puis répartie sur les recharges.",
        "signed_title": "Données de mesure signées (Eichrecht)",
        "signed_session": "Recharge",
        "signed_data": "Données signées",
        "signed_key": "Clé publique",
        "signed_container": "Données signées et clé, fichier XML du logiciel de transparence",
        "signed_note": "Vérifiables avec le logiciel de transparence de S.A.F.E. e.V. (safe-ev.de) : saisir les données signées et la clé publique, ou scanner les codes QR.",
    },
    "nl": {
        "invoice": "Factuur",
        "credit_note": "Creditnota",
        "self_billing_credit_note": "Self-billingfactuur",
        "number": "Documentnr.",
        "date": "Datum",
        "period": "Leveringsperiode",
        "due": "Vervaldatum",
        "customer_number": "Klantnr.",
        "buyer_reference": "Uw referentie",
        "corrects": "Correctie op factuur",
        "corrects_from": "van",
        "vat_id": "Btw-nr.",
        "tax_number": "Fiscaal nr.",
        "buyer_vat_id": "Uw btw-nr.",
        "buyer_tax_number": "Uw fiscaal nr.",
        "pos": "Nr.",
        "item": "Omschrijving",
        "qty": "Aantal",
        "unit_price": "Prijs per eenheid",
        "vat": "Btw",
        "amount": "Bedrag",
        "line_allowance": "Korting",
        "line_charge": "Toeslag",
        "line_total": "Totaal regels",
        "allowance": "Korting",
        "charge": "Toeslag",
        "net": "Nettobedrag",
        "vat_on": "Btw {rate} over {basis}",
        "gross": "Totaalbedrag",
        "prepaid": "Reeds betaald",
        "payable": "Te betalen",
        "payable_credit": "Gecrediteerd bedrag",
        "set_off_invoice": "Verrekend met factuur {number}",
        "set_off_credit_note": "Verrekend met terugvordering uit creditnota {number}",
        "transferred": "Uit te betalen bedrag",
        "set_off_all": "Het bedrag wordt volledig verrekend met onze vorderingen; er volgt geen overschrijving.",
        "set_off_note": "Zoals overeengekomen verrekenen wij dit tegoed van {gross} met onze vorderingen van {owed}.",
        "transfer": "Gelieve {amount} vóór {due} over te maken onder vermelding van {ref} naar IBAN {iban}{bic}.",
        "transfer_nodue": "Gelieve {amount} over te maken onder vermelding van {ref} naar IBAN {iban}{bic}.",
        "refund": "Wij maken {amount} over naar uw rekening IBAN {iban}.",
        "refund_noiban": "Wij betalen u {amount} terug.",
        "self_billing_pay": "Wij maken {amount} over naar uw rekening IBAN {iban}.",
        "debit": "Wij incasseren {amount} op {when} via SEPA-incasso van uw rekening IBAN {iban}. "
        "Machtigingskenmerk: {mandate}, incassant-ID: {creditor}. Zorg voor voldoende saldo.",
        "debit_soon": "in de komende dagen",
        "nothing_due": "Dit bedrag is al voldaan.",
        "self_billing_note": "Self-billing: deze factuur is uitgereikt door de afnemer namens de leverancier.",
        "statement": "Gespecificeerd overzicht van laadsessies",
        "statement_for": "bij document",
        "st_start": "Begin",
        "st_location": "Locatie / laadpunt",
        "st_token": "Pas",
        "st_kwh": "kWh",
        "st_charge_min": "Laden",
        "st_park_min": "Parkeren",
        "st_components": "Prijscomponenten",
        "st_net": "Netto",
        "st_tax": "Btw",
        "st_gross": "Bruto",
        "st_total": "Totaal",
        "st_sessions": "laadsessies",
        "min": "min",
        "page": "Pagina",
        "of": "van",
        "bank": "Bankgegevens",
        "contact": "Contact",
        "powered_by": "Gemaakt met evbill",
        "issuer": "Uitgever",
        "recipient": "Ontvanger",
        "vat_rate_reverse_charge": "{rate} (btw verlegd)",
        "vat_rate_intra_community": "{rate} (intracommunautaire levering)",
        "vat_rate_exempt": "vrijgesteld",
        "vat_rate_not_subject": "niet onderworpen aan btw",
        "rounded_per_session": "afgerond per laadsessie: {amount}",
        "cap_sessions": "maximaal {cap} per laadsessie",
        "st_invoice_other": "Overige factuurregels",
        "st_invoice_total": "Factuurbedrag",
        "st_tax_note": "De btw wordt per tarief over het totaal berekend en over de laadsessies verdeeld.",
        "signed_title": "Ondertekende meetgegevens (Eichrecht)",
        "signed_session": "Laadsessie",
        "signed_data": "Ondertekende gegevens",
        "signed_key": "Publieke sleutel",
        "signed_container": "Ondertekende gegevens en sleutel als XML-bestand van de transparantiesoftware",
        "signed_note": "Te controleren met de transparantiesoftware van S.A.F.E. e.V. (safe-ev.de): ondertekende gegevens en publieke sleutel invoeren of de QR-codes scannen.",
    },
}

UNITS: dict[str, dict[str, str]] = {
    "de": {"KWH": "kWh", "WHR": "Wh", "MWH": "MWh", "MIN": "Min.", "HUR": "Std.", "SEC": "Sek.", "C62": "Stk.",
           "MON": "Monat", "DAY": "Tag", "ANN": "Jahr", "H87": "Stk."},
    "en": {"KWH": "kWh", "WHR": "Wh", "MWH": "MWh", "MIN": "min", "HUR": "h", "SEC": "s", "C62": "pcs",
           "MON": "month", "DAY": "day", "ANN": "year", "H87": "pcs"},
    "fr": {"KWH": "kWh", "WHR": "Wh", "MWH": "MWh", "MIN": "min", "HUR": "h", "SEC": "s", "C62": "pce",
           "MON": "mois", "DAY": "jour", "ANN": "an", "H87": "pce"},
    "nl": {"KWH": "kWh", "WHR": "Wh", "MWH": "MWh", "MIN": "min", "HUR": "uur", "SEC": "s", "C62": "st.",
           "MON": "maand", "DAY": "dag", "ANN": "jaar", "H87": "st."},
}

def unit_code_label(code: str, language: str) -> str:
    """A line's UN/ECE unit code (BT-130) as a document in ``language`` prints it."""
    return UNITS.get(language, UNITS["en"]).get(code, code)


def unit_label(unit: str, language: str) -> str:
    """A billing unit as the rated and invoice lines store it (``kWh``, ``min``, ``session``...)
    as the invoice PDF prints it: through its UN/ECE code (as the e-invoices carry it) to the
    language's label. A unit no document knows (a statement's ``EUR net`` or ``days of 30``,
    which the credit note turns into a lump sum) stays as it is, and '' stays ''."""
    from runtime.documents.from_invoice import _UNITS

    code = _UNITS.get(unit) or (unit if len(unit) == 3 and unit.isupper() else "")
    return unit_code_label(code, language) if code else unit


def mask_iban(iban: str) -> str:
    # a pre-notification shows enough of the debtor's IBAN to recognise it, not all of it
    compact = iban.replace(" ", "")
    return f"{compact[:4]} **** **** {compact[-4:]}" if len(compact) > 8 else compact


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env


@dataclass(frozen=True)
class _Row:
    pos: str
    name: str
    description: str | None
    quantity: str
    unit: str
    unit_price: str
    vat: str
    amount: str
    adjustments: tuple[str, ...]


def _logo_uri(doc: Document) -> str | None:
    return logo_uri(doc.branding)


def logo_uri(b: Branding) -> str | None:
    """The tenant's logo as the letterhead's image source."""
    if b.logo is not None:
        return f"data:{b.logo_mime};base64,{base64.b64encode(b.logo).decode('ascii')}"
    if b.logo_path:
        return Path(b.logo_path).resolve().as_uri()
    return None


def _vat_label(line_category: VatCategory, rate: Decimal, language: str) -> str:
    """The line's VAT column: the rate (0 % for every zero-rated category: the category's meaning
    is spelled out in the VAT breakdown and the notes), a dash where no VAT applies at all."""
    if line_category is VatCategory.NOT_SUBJECT:
        return "–"
    return rate_text(rate if line_category is VatCategory.STANDARD else Decimal(0), language)


_CATEGORY_RATE_LABELS = {
    VatCategory.REVERSE_CHARGE: "vat_rate_reverse_charge",
    VatCategory.INTRA_COMMUNITY: "vat_rate_intra_community",
    VatCategory.EXEMPT: "vat_rate_exempt",
    VatCategory.NOT_SUBJECT: "vat_rate_not_subject",
}


def vat_rate_text(category: VatCategory, rate: Decimal, language: str) -> str:
    """A VAT group's rate in words: ``19 %``, ``0 % (Steuerschuldnerschaft des
    Leistungsempfängers)``, ``steuerfrei``; never the bare category code."""
    key = _CATEGORY_RATE_LABELS.get(category)
    text = rate_text(rate if category is VatCategory.STANDARD else Decimal(0), language)
    return LABELS[language][key].format(rate=text) if key else text


def _context(doc: Document, include_statement: bool, statement_only: bool) -> dict[str, Any]:
    lang = doc.language
    labels = LABELS[lang]
    cur = doc.currency
    t = doc.totals

    def m(value: Decimal) -> str:
        return money_text(value, cur, lang)

    rows = list(line_rows(doc))

    vat_rows = []
    for g in t.vat_groups:
        vat_rows.append((_vat_group_label(g, doc), m(g.tax)))

    exemptions = [
        g.exemption_reason for g in t.vat_groups if g.exemption_reason
    ]
    reverse_charge = any(g.category is VatCategory.REVERSE_CHARGE for g in t.vat_groups)

    self_billing = doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE
    # self-billing: the tenant (buyer) issues the document, so the letterhead is the buyer's
    issuer_name = doc.buyer.name if self_billing else doc.seller.legal_name
    issuer_address = doc.buyer.address if self_billing else doc.seller.address
    recipient_name = doc.seller.legal_name if self_billing else doc.buyer.name
    recipient_address = doc.seller.address if self_billing else doc.buyer.address
    recipient_contact = None if self_billing else doc.buyer.contact_name

    statement: list[dict[str, str]] = []
    st_totals: dict[str, Any] = {}
    if include_statement or statement_only:
        statement, st_totals = _statement_rows(doc, labels, m)

    return {
        "doc": doc,
        "L": labels,
        "lang": lang,
        "title": labels[doc.kind.value],
        "logo": _logo_uri(doc),
        "branding": doc.branding,
        "issuer_name": issuer_name,
        "issuer_address": issuer_address,
        "recipient_name": recipient_name,
        "recipient_address": recipient_address,
        "recipient_contact": recipient_contact,
        "self_billing": self_billing,
        "info": _info_rows(doc, labels),
        "rows": rows,
        # quantity, unit price, VAT and amount as one aligned run per line (the header's labels
        # first); the quantity leads the run, so its unit's letters need no exact widths
        "line_amounts": _aligned([[labels["qty"]] + [f"{r.quantity} {r.unit}" for r in rows],
                                  [labels["unit_price"]] + [r.unit_price for r in rows],
                                  [labels["vat"]] + [r.vat for r in rows],
                                  [labels["amount"]] + [r.amount for r in rows]], 2, 8.6 / 7.8),  # .lh: 7.8pt
        "totals": _totals_rows(doc, labels, m),
        "vat_rows": vat_rows,
        "exemptions": exemptions,
        "reverse_charge": reverse_charge,
        "payment_text": _payment_text(doc, labels, m),
        "statement": statement,
        "st_totals": st_totals,
        "include_statement": include_statement and bool(doc.statement),
        "statement_only": statement_only,
    }


_FIGURE_SPACE = "\u2007"  # as wide as a digit: pads amounts so they align in one text run
# advance widths (em) in DejaVu Sans, the documents' font, regular and bold, of what amounts hold
# besides digits (a digit, the figure space and the currency signs are 0.636, bold 0.696): a minus
# or a thousands separator is narrower than a digit, so padding by character count would shift the
# columns to its left. Letters (the header's labels, bold) are reckoned at the widest of a group of
# similar letters: a label is never wider than reckoned, so the header never runs out of its cell
_EM = {".": 0.318, ",": 0.318, " ": 0.318, "\u00a0": 0.318, "\u202f": 0.2, "'": 0.275, "-": 0.361,
       "\u2212": 0.838, "\u2013": 0.5, "%": 0.95, "\u2007": 0.636, "\u2008": 0.318, "\u200a": 0.1,
       "\u00b7": 0.318, "/": 0.337}
_BOLD_EM = {".": 0.38, ",": 0.38, " ": 0.348, "\u00a0": 0.348, "\u202f": 0.2, "'": 0.332, "-": 0.415,
            "\u2212": 0.838, "\u2013": 0.5, "%": 1.002, "\u2007": 0.696, "\u2008": 0.38, "\u200a": 0.1,
            "\u00b7": 0.38, "/": 0.365}
_DIGIT_EM, _BOLD_DIGIT_EM, _BOLD_LETTER_EM = 0.636, 0.696, 0.85
_BOLD_EM.update({c: em for letters, em in (
    ("ijlïîIJ/", 0.372), ("f()t", 0.478), ("rzcçs", 0.595), ("Lxvyk", 0.665), ("aäàâeéèêTEFÉoöô", 0.687),
    ("hnuüûbdgpqßSYZPC", 0.734), ("BRXAVÄK", 0.775), ("UÜGDHNOQÖ", 0.85), ("wM", 0.995), ("mW", 1.103),
) for c in letters})  # each the widest of its group
_PADS = ("\u2007", "\u2008", "\u200a")  # figure, punctuation and hair space, widest first


def _em(text: str, bold: bool = False) -> float:
    if bold:
        return sum(_BOLD_EM.get(c, _BOLD_DIGIT_EM if c.isdigit() or not c.isalpha() else _BOLD_LETTER_EM)
                   for c in text)
    return sum(_EM.get(c, _DIGIT_EM) for c in text)


def _padded(text: str, width: float, bold: bool = False) -> str:
    """``text`` with spaces before it that make it ``width`` em wide (to a twentieth of an em)."""
    widths = _BOLD_EM if bold else _EM
    missing, pad = width - _em(text, bold), []
    for char in _PADS:
        em = widths[char]
        count = max(0, int(missing / em + (0.5 if char == _PADS[-1] else 1e-9)))
        pad.append(char * count)
        missing -= count * em
    return "".join(pad) + text


def _aligned(columns: list[list[str]], gap: int | tuple[int, ...] = 3, head_scale: float = 1.0) -> list[str]:
    """Join each row's amounts into one right-aligned text run, every column padded to its widest
    entry (by DejaVu Sans' advance widths) with figure, punctuation and hair spaces, ``gap`` figure
    spaces between columns (or ``gap[c]`` before column ``c + 1``). DejaVu's digits are tabular, so
    the columns line up without a table cell per amount (each cell costs WeasyPrint a layout pass:
    three fewer cells per session make the statement ~40 % cheaper). The first row is the header's
    labels, in bold at 1/``head_scale`` of the rows' font size: padded in its own widths to the
    rows' columns."""
    gaps = (gap,) * (len(columns) - 1) if isinstance(gap, int) else gap
    widths = [max([_em(text) for text in column[1:]] + [_em(column[0], True) / head_scale])
              for column in columns]
    head = "".join(_padded(column[0], (width + (gaps[c - 1] * _DIGIT_EM if c else 0)) * head_scale, True)
                   for c, (column, width) in enumerate(zip(columns, widths)))
    return [head] + ["".join((_FIGURE_SPACE * gaps[c - 1] if c else "") + _padded(column[i], width)
                             for c, (column, width) in enumerate(zip(columns, widths)))
                     for i in range(1, len(columns[0]))]


def _statement_rows(doc: Document, labels: dict[str, str], m: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The session statement as three text runs per session (when and where, price components, and
    token, usage and amounts as one aligned run): one row per session, one cell per run. Its totals
    reconcile to the document: the sessions' sum, then (when the invoice has lines no session
    carries: services, period discounts, fees) those lines, then the document's own net, VAT and
    gross."""
    lang = doc.language
    rows = doc.statement
    t = doc.totals
    total_net = sum((r.net for r in rows), Decimal(0))
    total_tax = sum((r.tax for r in rows), Decimal(0))
    other = (t.net - total_net, t.tax - total_tax, t.gross - (total_net + total_tax))
    reconcile = any(other)
    amounts_rows = [[m(r.net), m(r.tax), m(r.gross)] for r in rows]
    amounts_rows.append([m(total_net), m(total_tax), m(total_net + total_tax)])
    if reconcile:
        amounts_rows.append([m(other[0]), m(other[1]), m(other[2])])
        amounts_rows.append([m(t.net), m(t.tax), m(t.gross)])
    total_kwh = number_text(sum((r.energy_kwh for r in rows), Decimal(0)), 3, lang)
    # token, charging / parking minutes and energy: the numbers padded to line up, the energy last
    # (the sum row's energy then ends where the sessions' do, however long); the token before them
    # (the energy without its unit: "kWh" heads its column)
    usage = [(number_text(r.charging_minutes, 0, lang), number_text(r.parking_minutes, 0, lang),
              number_text(r.energy_kwh, 3, lang)) for r in rows]
    widths = [max((_em(u[c]) for u in usage), default=0.0) for c in range(3)]
    usage_texts = [f"{r.token} · {_padded(charge, widths[0])} / {_padded(park, widths[1])} {labels['min']} · "
                   f"{_padded(kwh, widths[2])}" for r, (charge, park, kwh) in zip(rows, usage)]
    usage_texts += [total_kwh] + ["", ""] * reconcile
    head = [f"{labels['st_token']} · {labels['st_charge_min']} / {labels['st_park_min']} · {labels['st_kwh']}",
            labels["st_net"], labels["st_tax"], labels["st_gross"]]
    runs = _aligned([[head[0]] + usage_texts] + [[head[c + 1]] + [row[c] for row in amounts_rows] for c in range(3)],
                    gap=(3, 2, 2))
    out = []
    for i, r in enumerate(rows):
        out.append({
            "where": f"{datetime_text(r.started_at, lang)} · {r.location} · {r.evse}",
            # one text run per session keeps a 20-session statement on one fast page
            "breakdown": " · ".join(
                [f"{c.label} {m(c.amount)}" for c in r.components]
                + [f"{d.label} {m(-d.amount)}" for d in r.discounts]
            ),
            "amounts": runs[i + 1],
        })
    # Eichrecht: per session with signed meter data, the records and the key as text and QR codes
    signed = []
    for r in rows:
        if r.signed_data:
            signed.append({
                # named as its row above names it (start, charge point, energy), not by an internal id
                "session": f"{labels['signed_session']} {datetime_text(r.started_at, lang)} · {r.evse} · "
                           f"{number_text(r.energy_kwh, 3, lang)} kWh",
                **_signed_codes(r.signed_data, r.public_key)})
    n = len(rows)
    totals: dict[str, Any] = {
        "count": sessions_text(n, lang),
        "kwh": total_kwh,
        "net": m(total_net),
        "tax": m(total_tax),
        "gross": m(total_net + total_tax),
        "amounts_head": runs[0],
        "amounts": runs[n + 1],
        # (label, amounts) rows after the sessions' sum that lead to the document's totals
        "reconcile": [(labels["st_invoice_other"], runs[n + 2]),
                      (f"{labels['st_invoice_total']} {doc.number}", runs[n + 3])] if reconcile else [],
        "signed": signed,
    }
    return out, totals


def _signed_codes(records: tuple[str, ...], public_key: str) -> dict[str, Any]:
    """A session's signed records and key for the statement: one QR code of the Transparenzsoftware's
    XML container with all of them when it fits in a code (a phone hands the file to the software
    whole), else a code per record and one for the key; the texts are printed either way."""
    import segno

    from runtime.ocmf import transparency_xml

    try:
        container = _qr(transparency_xml(records, public_key))
    except segno.DataOverflowError:
        container = ""
    if container:
        return {"container_qr": container, "records": [(raw, "") for raw in records], "key": public_key,
                "key_qr": ""}
    return {"container_qr": "", "records": [(raw, _qr(raw)) for raw in records], "key": public_key,
            "key_qr": _qr(public_key) if public_key else ""}


def _qr(text: str) -> str:
    """A QR code of ``text`` as an SVG data URI (segno, offline; error level L: OCMF records are long)."""
    import segno

    return str(segno.make(text, error="l", micro=False).svg_data_uri(scale=2, border=2))


def line_rows(doc: Document) -> tuple[_Row, ...]:
    """The document's line table as its PDF prints it (position, name, description, quantity,
    unit, price, VAT, amount as text in the document's language): for screens that show what
    the document says."""
    labels = LABELS[doc.language]
    return tuple(_row(line, doc, labels) for line in doc.lines)


def _row(line: Line, doc: Document, labels: dict[str, str]) -> _Row:
    lang, cur = doc.language, doc.currency
    description = line.description
    adjustments = []
    for ac in line.allowances_charges:
        if ac.is_rounding:
            # why the amount is not quantity x price to the cent: said once, next to the session
            # count it comes from, not as a charge or allowance of its own
            note = labels["rounded_per_session"].format(amount=money_text(ac.signed, cur, lang))
            description = f"{description}, {note}" if description else note
            continue
        label = labels["line_charge"] if ac.is_charge else labels["line_allowance"]
        adjustments.append(f"{label}: {ac.reason} {money_text(ac.signed, cur, lang)}")
    return _Row(
        pos=line.id,
        name=line.name,
        description=description,
        quantity=quantity_text(line.quantity, lang),
        unit=unit_code_label(line.unit_code, lang),
        unit_price=price_text(line.unit_price, cur, lang),
        vat=_vat_label(line.vat_category, line.vat_rate, lang),
        amount=money_text(line.net(cur), cur, lang),
        adjustments=tuple(adjustments),
    )


def _vat_group_label(g: VatGroup, doc: Document) -> str:
    labels = LABELS[doc.language]
    basis = money_text(g.taxable, doc.currency, doc.language)
    return labels["vat_on"].format(rate=vat_rate_text(g.category, g.rate, doc.language), basis=basis)


def _info_rows(doc: Document, labels: dict[str, str]) -> list[tuple[str, str]]:
    lang = doc.language
    rows = [(labels["number"], doc.number), (labels["date"], date_text(doc.issue_date, lang))]
    if doc.period:
        # a date never breaks inside ("1 Oct 2026"); the period may wrap after its dash
        start, end = (date_text(d, lang).replace(" ", "\u00a0") for d in (doc.period.start, doc.period.end))
        period = f"{start} – {end}"
        rows.append((labels["period"], period))
    if doc.due_date and doc.kind is not DocumentKind.CREDIT_NOTE:
        rows.append((labels["due"], date_text(doc.due_date, lang)))
    if doc.buyer.customer_number:
        rows.append((labels["customer_number"], doc.buyer.customer_number))
    if doc.buyer.buyer_reference and doc.buyer.buyer_reference != doc.buyer.customer_number:
        rows.append((labels["buyer_reference"], doc.buyer.buyer_reference))
    if doc.preceding:
        text = doc.preceding.number
        if doc.preceding.issue_date:
            text += f" {labels['corrects_from']} {date_text(doc.preceding.issue_date, lang)}"
        rows.append((labels["corrects"], text))
    # the recipient's VAT ID: for self-billing the recipient is the supplier (the site host)
    recipient_vat = (doc.seller.vat_id if doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE else doc.buyer.vat_id)
    if recipient_vat:
        rows.append((labels["buyer_vat_id"], recipient_vat))
    elif doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE and doc.seller.tax_number:
        # a host without a VAT id (a small business): its tax number, named as such
        rows.append((labels["buyer_tax_number"], doc.seller.tax_number))
    return rows


def _totals_rows(doc: Document, labels: dict[str, str], m: Any) -> list[tuple[str, str, str]]:
    """(css class, label, amount) rows of the totals block, all read from ``doc.totals``."""
    t = doc.totals
    rows: list[tuple[str, str, str]] = [("", labels["line_total"], m(t.line_total))]
    for ac in doc.allowances_charges:
        label = labels["charge"] if ac.is_charge else labels["allowance"]
        rows.append(("", f"{label}: {ac.reason}", m(ac.signed)))
    rows.append(("sum", labels["net"], m(t.net)))
    for g in t.vat_groups:
        rows.append(("", _vat_group_label(g, doc), m(g.tax)))
    rows.append(("sum", labels["gross"], m(t.gross)))
    if t.prepaid:
        rows.append(("", labels["prepaid"], m(-t.prepaid)))
    due_label = labels["payable_credit"] if doc.kind is DocumentKind.CREDIT_NOTE else labels["payable"]
    if not doc.set_off:
        rows.append(("grand", due_label, m(t.payable)))
        return rows
    # a payout set off against what the supplier owes: the note's amount, each claim taken, the rest
    rows.append(("sum", due_label, m(t.payable)))
    for s in doc.set_off:
        rows.append(("", labels[f"set_off_{s.kind}"].format(number=s.number), m(-s.amount)))
    rows.append(("grand", labels["transferred"], m(transferred(doc))))
    return rows


def transferred(doc: Document) -> Decimal:
    """What is paid out: the amount due less what it is set off against."""
    return doc.totals.payable - sum((s.amount for s in doc.set_off), Decimal(0))


def _payment_text(doc: Document, labels: dict[str, str], m: Any) -> str:
    t, p, lang = doc.totals, doc.payment, doc.language
    amount = m(t.payable)
    if t.payable <= 0:
        return labels["nothing_due"]
    if doc.kind is DocumentKind.CREDIT_NOTE:
        # the customer's own account: masked as on every other document (``mask_iban``)
        iban = mask_iban(p.iban or p.debtor_iban or "")
        return (labels["refund"].format(amount=amount, iban=iban) if iban
                else labels["refund_noiban"].format(amount=amount))
    if doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE:
        if not doc.set_off:
            return labels["self_billing_pay"].format(amount=amount, iban=p.iban or doc.seller.iban)
        rest = transferred(doc)
        text = labels["set_off_note"].format(gross=amount, owed=m(t.payable - rest))
        return text + " " + (labels["self_billing_pay"].format(amount=m(rest), iban=p.iban or doc.seller.iban)
                             if rest > 0 else labels["set_off_all"])
    if p.is_direct_debit:
        when = date_text(p.debit_date, lang) if p.debit_date else (
            date_text(doc.due_date, lang) if doc.due_date else labels["debit_soon"])
        return labels["debit"].format(
            amount=amount, when=when, iban=mask_iban(p.debtor_iban or ""),
            mandate=p.mandate_reference or "", creditor=p.creditor_id or doc.seller.creditor_id or "",
        )
    iban = p.iban or doc.seller.iban or ""
    bic = p.bic or doc.seller.bic
    bic_text = f", BIC {bic}" if bic else ""
    ref = p.remittance or doc.number
    if doc.due_date:
        return labels["transfer"].format(
            amount=amount, due=date_text(doc.due_date, lang), ref=ref, iban=iban, bic=bic_text)
    return labels["transfer_nodue"].format(amount=amount, ref=ref, iban=iban, bic=bic_text)


def _footer(doc: Document, labels: dict[str, str]) -> list[list[str]]:
    """Up to three footer columns (company, registration and contact, bank)."""
    if doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE:
        # the issuer is the tenant (buyer); the host's bank account is in the payment text
        b = doc.buyer
        return [[b.name, b.address.street, f"{b.address.postal_code} {b.address.city}"]
                + ([f"{labels['vat_id']} {b.vat_id}"] if b.vat_id else [])]
    return seller_footer(doc.seller, labels)


def seller_footer(s: Seller, labels: dict[str, str]) -> list[list[str]]:
    """The issuing tenant's footer columns (company, registration and contact, bank)."""
    company = [s.legal_name, s.address.street, f"{s.address.postal_code} {s.address.city}"]
    if s.vat_id:
        company.append(f"{labels['vat_id']} {s.vat_id}")
    registration = [s.registration_id] if s.registration_id else []
    if s.tax_number:
        registration.append(f"{labels['tax_number']} {s.tax_number}")
    registration += [s.contact.phone, s.contact.email]
    bank = []
    if s.iban:
        bank = [labels["bank"]] + ([s.bank_name] if s.bank_name else []) + [f"IBAN {s.iban}"]
        if s.bic:
            bank.append(f"BIC {s.bic}")
    return [c for c in (company, registration, bank) if c]


def _css_string(text: str) -> str:
    """A CSS string literal; tenant text must not be able to end the string or the rule."""
    cleaned = "".join(ch for ch in text if ch == "\n" or ord(ch) >= 0x20)
    escaped = cleaned.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\A ")
    return f'"{escaped}"'


def _page_css(doc: Document) -> str:
    columns = _footer(doc, LABELS[doc.language])
    if doc.kind is not DocumentKind.SELF_BILLING_CREDIT_NOTE:
        columns = with_legal_lines(columns, doc.branding)
    return page_css(columns, doc.branding)


def seller_page_css(seller: Seller, language: str, branding: Branding) -> str:
    """The page rules of a document the tenant issues on its own letterhead (account statements,
    dunning letters): its footer columns with its legal lines, and its colours."""
    return page_css(with_legal_lines(seller_footer(seller, LABELS[language]), branding), branding)


def with_legal_lines(columns: list[list[str]], branding: Branding) -> list[list[str]]:
    """The tenant's legal lines (register court and number, managing directors: what a German
    business letter must state) go into the footer's company column, on every page, one part per
    line ("A · B" splits at the dots); a part the footer states already is left out. In the body
    they would be a line of their own that a page break can strand on an otherwise empty page."""
    if not branding.legal_lines or not columns:
        return columns
    shown = {text for column in columns for text in column}
    parts = [part.strip() for line in branding.legal_lines for part in line.split(" · ")]
    extra = [p for p in dict.fromkeys(parts) if p and p not in shown]
    return [columns[0] + extra, *columns[1:]]


def page_css(columns: list[list[str]], branding: Branding) -> str:
    """The per-document page rules: footer columns and the tenant's colours."""
    boxes = ("bottom-left", "bottom-center", "bottom-right")
    rules = []
    for box, column in zip(boxes, columns):
        rules.append(f"@{box} {{ content: {_css_string(chr(10).join(column))}; "
                     f"border-top-color: {branding.primary_color}; }}")
    for box in boxes[len(columns):]:
        rules.append(f"@{box} {{ content: \"\"; border-top-style: none; }}")
    primary, secondary = branding.primary_color, branding.secondary_color
    colours = (
        f".brandname, h1 {{ color: {primary}; }} "
        f".lh, .sh, .grand {{ background: {primary}; }} "
        f".info {{ background: {secondary}; }} "
        f".pay {{ background: {secondary}; border-left-color: {primary}; }}"
    )
    return "@page { " + " ".join(rules) + " } " + colours


class _NoSubsetFallbackNotice(logging.Filter):
    """WeasyPrint logs, for every font of every document, that it subsets fonts with fontTools
    because the system lacks libharfbuzz-subset. The PDFs are the same either way (fonts embedded
    and subset); the notice is dropped so real warnings stay visible."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HarfBuzz-Subset" not in record.getMessage()


logging.getLogger("weasyprint").addFilter(_NoSubsetFallbackNotice())
# Without libharfbuzz-subset, WeasyPrint subsets fonts with fontTools, which stamps each subset
# font's 'head' table with the current time: the same invoice rendered a second later would get
# different bytes, and the archive refuses different bytes for a finalized number. fontTools
# takes that time from SOURCE_DATE_EPOCH (the reproducible-builds convention) when it is set;
# 1980-01-01 unless the operator sets it. Nothing else we use reads it.
os.environ.setdefault("SOURCE_DATE_EPOCH", "315532800")
warnings.filterwarnings("ignore", message="HarfBuzz-Subset will be required", category=DeprecationWarning)


# WeasyPrint's shared font configuration (Pango/fontconfig) is not made for concurrent use: two
# threads laying out at once can abort the whole process inside fontconfig (seen in CI as
# "FcFontSetMatch: Assertion `p != NULL' failed" in a worker rendering dunning letters from
# activity threads). Every layout and PDF write in the process takes this lock; rendering holds
# the GIL anyway, so it costs no throughput. Re-entrant: render_facturx lays out, then writes.
RENDER_LOCK = threading.RLock()


@lru_cache(maxsize=1)
def font_config() -> Any:
    """One font configuration per process, so font lookups stay cached between documents."""
    from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped, unused-ignore]

    return FontConfiguration()


# WeasyPrint's user-agent stylesheet gives every element of the document styles for the pseudo-
# elements ::marker, ::footnote-call/-marker and ::note-call/-marker/-callback; each one is a
# computed style per element (five of six styles computed per document), used only by list items,
# footnotes and notes, which no template of ours has. The stylesheet without those rules lays out
# the same boxes, and the same bytes come out.
_UNUSED_UA_RULES = re.compile(
    r"^::(?:marker|footnote-call|footnote-marker|note-call|note-marker|note-callback) \{[^}\n]*\}\n", re.MULTILINE)


@lru_cache(maxsize=1)
def _html_class() -> Any:
    """WeasyPrint's ``HTML`` with the user-agent stylesheet that our templates need (parsed once),
    and ``from_tree`` for a document tree parsed here (``_tree``)."""
    import cssselect2  # type: ignore[import-untyped, unused-ignore]
    import weasyprint  # type: ignore[import-untyped, unused-ignore]
    from weasyprint import CSS, HTML  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.html import UA, UA_COUNTER_STYLE  # type: ignore[import-untyped, unused-ignore]

    from runtime.documents import fast_paths, styles

    styles.install()
    fast_paths.install()
    text, removed = _UNUSED_UA_RULES.subn("", UA)
    ua = CSS(string=text, counter_style=UA_COUNTER_STYLE) if removed == 6 else None  # else another WeasyPrint

    class _HTML(HTML):  # type: ignore[misc, unused-ignore]
        def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
            return [ua] if ua is not None and not forms else super()._ua_stylesheets(forms)

        @classmethod
        def from_tree(cls, root: ElementTree.Element, base_url: str) -> Any:
            """What ``HTML(string=..., base_url=...)`` makes of the text ``root`` was parsed from."""
            self = cls.__new__(cls)
            self.base_url = weasyprint._find_base_url(root, base_url)
            self.url_fetcher = weasyprint.URLFetcher()
            self.media_type = "print"
            self.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
            self.etree_element = self.wrapper_element.etree_element
            return self

    return _HTML


# The HTML of our templates is also well-formed XML once its void elements are closed: Python's
# expat parser reads it in ~1 ms, where WeasyPrint's HTML5 parser (tinyhtml5, pure Python) takes
# ~7 % of a render. ``_tree`` gives the tree the HTML5 parser builds (the test suite holds the two
# equal for every template's output); anything it is not sure of goes to the HTML5 parser.
_VOID_TAG = re.compile(r"<(br|img|meta)\b([^>]*?)/?>")
_ATTRIBUTE_WHITESPACE = re.compile(r"""=(?:"[^"]*|'[^']*)[\t\n\r]""")  # XML would make them spaces


def _tree(html: str) -> ElementTree.Element | None:
    """``html`` parsed as the HTML5 parser would (its element tree, text and tails), or None."""
    if _ATTRIBUTE_WHITESPACE.search(html):
        return None
    try:
        root = ElementTree.fromstring(_VOID_TAG.sub(r"<\1\2/>", html))
    except ElementTree.ParseError:  # a character XML forbids, or markup not of our templates
        return None
    after = html[html.rfind("</html>") + len("</html>"):]
    if root.tag != "html" or [child.tag for child in root] != ["head", "body"] or after.strip():
        return None
    # HTML5 drops whitespace before <head> and puts what follows </body> (and </html>) in the body
    root.text = None
    body = root[1]
    trailing = (body.tail or "") + after
    if trailing:
        if len(body):
            body[-1].tail = (body[-1].tail or "") + trailing
        else:
            body.text = (body.text or "") + trailing
        body.tail = None
    # a <tr> directly in a <table> gets the <tbody> the HTML5 parser opens for it
    for table in root.iter("table"):
        if any(child.tag == "tr" for child in table):
            children: list[ElementTree.Element] = []
            group = None
            for child in table:
                if child.tag == "tr":
                    if group is None:
                        group = ElementTree.Element("tbody")
                        children.append(group)
                    group.append(child)
                else:
                    group = None
                    children.append(child)
            table[:] = children
    return root


def _html(html: str) -> Any:
    """The WeasyPrint HTML document of ``html`` (one of our templates' output); WeasyPrint is
    imported late, its import costs ~0.5 s."""
    root = _tree(html)
    if root is None:
        return _html_class()(string=html, base_url=str(TEMPLATES))
    return _html_class().from_tree(root, str(TEMPLATES))


@lru_cache(maxsize=4)
def stylesheet(language: str) -> Any:
    """The static CSS, parsed once per process and language (parsing costs ~40 ms a document)."""
    from weasyprint import CSS  # type: ignore[import-untyped, unused-ignore]

    text = (TEMPLATES / "style.css").read_text(encoding="utf-8")
    labels = LABELS[language]
    text = text.replace("@PAGE@", labels["page"]).replace("@OF@", labels["of"])
    return CSS(string=text, base_url=str(TEMPLATES))


@lru_cache(maxsize=64)
def page_sheet(text: str) -> Any:
    """The per-document page rules (footer, colours) parsed: the same for every document a tenant
    issues in one language, so a month-end run parses them once (~1 % of a render each time)."""
    from weasyprint import CSS  # type: ignore[import-untyped, unused-ignore]

    return CSS(string=text)


def render_html(doc: Document, *, include_statement: bool = True, statement_only: bool = False) -> str:
    template = _environment().get_template("statement.html" if statement_only else "document.html")
    return template.render(**_context(doc, include_statement, statement_only))


def layout_pdf(doc: Document, *, include_statement: bool = True, statement_only: bool = False) -> Any:
    """The laid-out WeasyPrint document (pages), ready for ``write_pdf``; callers that add
    attachments or metadata (Factur-X) adjust ``.metadata`` in between."""
    html = render_html(doc, include_statement=include_statement, statement_only=statement_only)
    with RENDER_LOCK:
        return _html(html).render(
            stylesheets=[stylesheet(doc.language), page_sheet(_page_css(doc))],
            font_config=font_config(),
        )


@contextmanager
def _streams_serialized_once() -> Iterator[None]:
    """pydyf serializes every stream twice when the PDF has an identifier (ours always do): once to
    write it, once more for the MD5 of all objects that is the identifier's second half; each time
    it deflates the stream at level 9 (~5 % of a render). While ``pdf.write`` runs, no object
    changes, so a stream's first serialization serves the second: the same bytes, deflated once.
    Only ``pydyf.PDF.write`` reads ``Stream.data``; the original property is back afterwards.

    pydyf deflates streams at level 9: for a page's drawing operators and the font subsets that is
    ~5 ms of a ~130 ms invoice, level 6 (zlib's default, which pydyf uses for every other object)
    ~1.7 ms for ~1 % more bytes; the streams are deflated at level 6 while the PDF is written."""
    import pydyf  # type: ignore[import-untyped, unused-ignore]

    original = pydyf.Stream.__dict__["data"]

    def data(stream: Any) -> bytes:
        cached: bytes | None = stream.__dict__.get("_evbill_written")
        if cached is None:
            cached = stream.__dict__["_evbill_written"] = original.fget(stream)
        return cached

    with RENDER_LOCK:
        pydyf.Stream.data = property(data)
        pydyf.zlib = _DEFAULT_LEVEL_ZLIB
        try:
            yield
        finally:
            pydyf.Stream.data = original
            pydyf.zlib = zlib


class _DefaultLevelZlib:
    """``zlib`` as pydyf sees it while a PDF is written: ``compressobj`` at zlib's default level."""

    def __getattr__(self, name: str) -> Any:
        return getattr(zlib, name)

    @staticmethod
    def compressobj(level: int = -1, *args: Any, **kwargs: Any) -> Any:
        return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, *args, **kwargs)


_DEFAULT_LEVEL_ZLIB = _DefaultLevelZlib()


def write_pdf(doc: Document, laid_out: Any, pdf_variant: str | None = None) -> bytes:
    options: dict[str, Any] = {"pdf_variant": pdf_variant} if pdf_variant else {}
    # identifier and metadata come from the document, so the same document renders the same bytes
    options["pdf_identifier"] = doc.number.encode("utf-8")
    options["uncompressed_pdf"] = False
    with _streams_serialized_once():
        result = laid_out.write_pdf(**options)
    assert isinstance(result, bytes)
    return result


def render_letter_pdf(html: str, *, number: str, language: str, seller: Any, branding: Any) -> bytes:
    """A letter-like document (dunning letter, account statement) already rendered to HTML, as
    PDF bytes with the seller's page rules; the same HTML renders the same bytes."""
    with RENDER_LOCK:
        laid_out = _html(html).render(
            stylesheets=[stylesheet(language), page_sheet(seller_page_css(seller, language, branding))],
            font_config=font_config())
        with _streams_serialized_once():
            result = laid_out.write_pdf(pdf_identifier=number.encode("utf-8"), uncompressed_pdf=False)
    assert isinstance(result, bytes)
    return result


def render_pdf(
    doc: Document,
    *,
    include_statement: bool = True,
    statement_only: bool = False,
    pdf_variant: str | None = None,
) -> bytes:
    """The document (with its session statement appended, if any) as PDF bytes."""
    laid_out = layout_pdf(doc, include_statement=include_statement, statement_only=statement_only)
    return write_pdf(doc, laid_out, pdf_variant)
