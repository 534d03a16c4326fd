"""A partner statement as a self-billing credit note (Gutschrift, issue 15): the host is the
seller, the tenant the buyer and issuer (UNTDID 1001 code 389, the UBL ``Invoice`` root: EN 16931
and XRechnung accept 389; Peppol BIS Billing 3.0 does not, see ``formats.PEPPOL_UBL``).

The host's VAT status decides each line's VAT (``VAT_STATUSES``):
- ``registered``: VAT added at the rate the sessions were charged with (category S);
- ``small_business`` (§ 19 UStG): no VAT, category E with the exemption text;
- ``reverse_charge`` (a host in another EU country with a VAT id): category AE, the tenant owes
  the VAT (``Steuerschuldnerschaft des Leistungsempfängers``);
- ``not_subject``: an employee's reimbursement of home charging (no supply, category O); such a
  note is a PDF only, since EN 16931 forbids the buyer's VAT id beside category O (BR-O-02).

A correction is a new note that reverses the corrected one's lines and states them again as they
are now (the partner's details or VAT status changed), naming the note it corrects (BG-3); what
it adds up to is the difference. Nothing here reads a database or the clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from runtime.documents.from_invoice import _UNITS, _exact_line
from runtime.documents.model import (
    Branding,
    Buyer,
    Document,
    DocumentError,
    DocumentKind,
    Line,
    PaymentMeans,
    Period,
    PrecedingInvoice,
    Seller,
    VatCategory,
)
from runtime.money import minor_unit

__all__ = [
    "VAT_STATUSES",
    "CreditLine",
    "credit_formats",
    "host_credit_document",
    "vat_status_of",
]

VAT_STATUSES = ("registered", "small_business", "reverse_charge", "not_subject")

# what a statement line earns, as the host reads it (the statement's own description follows)
_NAMES: dict[str, dict[str, str]] = {
    "de": {"share_percent": "Umsatzbeteiligung", "share_per_kwh": "Vergütung je kWh",
           "share_per_session": "Vergütung je Ladevorgang", "share_monthly_fee": "Monatliche Pauschale",
           "reimbursement": "Energieerstattung", "commission": "Provision",
           "share_correction": "Korrektur neu bewerteter Ladevorgang", "share_late_session": "Nachgemeldeter Ladevorgang",
           "reversal": "Storno"},
    "en": {"share_percent": "Revenue share", "share_per_kwh": "Share per kWh", "share_per_session": "Share per session",
           "share_monthly_fee": "Monthly fee", "reimbursement": "Energy reimbursement", "commission": "Commission",
           "share_correction": "Correction of a re-rated session", "share_late_session": "Late session",
           "reversal": "Reversal"},
    "fr": {"share_percent": "Partage des recettes", "share_per_kwh": "Rémunération par kWh",
           "share_per_session": "Rémunération par session", "share_monthly_fee": "Forfait mensuel",
           "reimbursement": "Remboursement de l'énergie", "commission": "Commission",
           "share_correction": "Correction d'une session revalorisée", "share_late_session": "Session tardive",
           "reversal": "Annulation"},
    "nl": {"share_percent": "Omzetdeling", "share_per_kwh": "Vergoeding per kWh",
           "share_per_session": "Vergoeding per laadsessie", "share_monthly_fee": "Maandelijkse vergoeding",
           "reimbursement": "Energievergoeding", "commission": "Commissie",
           "share_correction": "Correctie van een herberekende sessie", "share_late_session": "Late sessie",
           "reversal": "Storno"},
}

_SMALL_BUSINESS = {
    "de": "Kein Ausweis von Umsatzsteuer, da Kleinunternehmer gemäß § 19 UStG",
    "en": "No VAT charged: small business exemption (§ 19 UStG)",
    "fr": "TVA non applicable : régime des petites entreprises (§ 19 UStG)",
    "nl": "Geen btw: kleineondernemersregeling (§ 19 UStG)",
}
_NOTE = {
    "de": "Gutschrift im Gutschriftsverfahren (§ 14 Abs. 2 Satz 2 UStG)",
    "en": "Self-billing invoice issued by the recipient of the supply (credit note procedure)",
    "fr": "Autofacturation : facture émise par le destinataire de la prestation",
    "nl": "Self-billing: factuur uitgereikt door de afnemer",
}
_REIMBURSEMENT_NOTE = {
    "de": "Erstattung der Ladekosten (Heimladen mit dem Dienstwagen)",
    "en": "Reimbursement of home charging (company car)",
    "fr": "Remboursement de la recharge à domicile (véhicule de fonction)",
    "nl": "Vergoeding thuisladen (leaseauto)",
}
_CORRECTS = {"de": "Korrektur der Gutschrift {number}", "en": "Correction of credit note {number}",
             "fr": "Correction de l'autofacture {number}", "nl": "Correctie van creditnota {number}"}
_TERMS = {"de": "Auszahlung per SEPA-Überweisung innerhalb von 14 Tagen",
          "en": "Paid out by SEPA credit transfer within 14 days",
          "fr": "Versement par virement SEPA sous 14 jours", "nl": "Uitbetaling per SEPA-overschrijving binnen 14 dagen"}


# the host reads its line in its language: a revenue share names its basis (shown to the cent; the
# share was computed on the exact basis), an energy price its formula and the average it came to
_SHARE_OF = {"de": "{pct} des Nettoumsatzes von {basis}", "en": "{pct} of net revenue of {basis}",
             "fr": "{pct} du chiffre d'affaires net de {basis}", "nl": "{pct} van de netto-omzet van {basis}"}
_ENERGY_AT = {"de": "Preis {formula}", "en": "price {formula}", "fr": "prix {formula}", "nl": "prijs {formula}"}
_AVERAGE = {"de": "im Mittel {price} je kWh", "en": "on average {price} per kWh",
            "fr": "en moyenne {price} par kWh", "nl": "gemiddeld {price} per kWh"}
_PER_KWH = {"de": "je kWh", "en": "per kWh", "fr": "par kWh", "nl": "per kWh"}
# the DSL's decimal numbers in a price formula (``index(spot_de) + 0.02``): written in the host's language
_LITERAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
_ENERGY_TEXT = re.compile(r"^energy reimbursement at (?P<formula>.+?)(?: \(average (?P<avg>[0-9.]+) per kWh\))?$")


# a commission line as the statement writes it: "commission NAME: RULE[ YYYY-MM[ (N of M days)]][, WHO]"
_COMMISSION_TEXT = re.compile(r"^commission (?P<name>[^:]+): (?P<rule>.+?)(?: (?P<month>\d{4}-\d{2})"
                              r"(?: \((?P<days>\d+) of (?P<dim>\d+) days\))?)?(?:, (?P<who>charged to|paid to) the partner)?$")
_WHO = {"de": {"charged to": "dem Partner berechnet", "paid to": "an den Partner gezahlt"},
        "en": {"charged to": "charged to the partner", "paid to": "paid to the partner"},
        "fr": {"charged to": "facturée au partenaire", "paid to": "versée au partenaire"},
        "nl": {"charged to": "in rekening gebracht bij de partner", "paid to": "betaald aan de partner"}}
_DAYS_OF = {"de": "({n} von {m} Tagen)", "en": "({n} of {m} days)", "fr": "({n} sur {m} jours)",
            "nl": "({n} van {m} dagen)"}
# the statement's words around the DSL's own text (the DSL text itself is quoted as written)
_RULE_WORDS = {
    "de": ((" per session", " je Ladevorgang"), (" per kWh", " je kWh"), (" per month", " je Monat"),
           ("% of net revenue", " % des Nettoumsatzes")),
    "en": (),
    "fr": ((" per session", " par session"), (" per kWh", " par kWh"), (" per month", " par mois"),
           ("% of net revenue", " % du chiffre d'affaires net")),
    "nl": ((" per session", " per laadsessie"), (" per month", " per maand"), ("% of net revenue", "% van de netto-omzet")),
}
# a lump sum's basis: the statement's units in the note's language
_BASIS_UNITS = {"de": {"sessions": "Ladevorgänge", "net": "netto", "days of": "Tage von"},
                "en": {}, "fr": {"days of": "jours sur"},
                "nl": {"sessions": "laadsessies", "net": "netto", "days of": "dagen van"}}


def _numbers(text: str, lang: str) -> str:
    """The decimal numbers in ``text`` (``0.02``) as ``lang`` writes them (``0,02``), places kept."""
    from runtime.documents.i18n import number_text

    return _LITERAL.sub(lambda n: number_text(Decimal(n[0]), len(n[0].split(".")[1]), lang), text)


def _basis(quantity: Decimal, unit: str, price: Decimal, lang: str) -> str:
    """``7.5 EUR net × 0.1`` of a line credited as one lump sum, in the note's language."""
    from runtime.documents.i18n import number_text

    words = _BASIS_UNITS[lang]
    unit = " ".join(words.get(w, w) for w in unit.split(" ")).replace("days of", words.get("days of", "days of"))

    def num(d: Decimal) -> str:
        d = d.normalize()
        return number_text(d, max(0, -int(d.as_tuple().exponent)), lang)

    return f"{num(quantity)} {unit} × {num(price)}"


def _commission(ln: CreditLine, lang: str) -> str | None:
    m = _COMMISSION_TEXT.match(ln.description) if ln.kind == "commission" else None
    if m is None:
        return None
    rule = m["rule"]
    for en, local in _RULE_WORDS[lang]:
        rule = rule.replace(en, local)
    text = f"{m['name']}: {_numbers(rule, lang)}"
    if m["month"]:
        text += f" {m['month']}"
    if m["days"]:
        text += " " + _DAYS_OF[lang].format(n=m["days"], m=m["dim"])
    return f"{text}, {_WHO[lang][m['who']]}" if m["who"] else text


def _described(ln: CreditLine, lang: str, currency: str) -> str | None:
    """The line's text in the host's language where its kind is known, else None (the statement's own)."""
    from runtime.documents.i18n import money_text, price_text, rate_text

    if ln.kind == "share_percent" and ln.unit.endswith(" net"):
        basis = money_text(ln.quantity.quantize(Decimal("0.01")), ln.unit.split()[0], lang)
        return _SHARE_OF[lang].format(pct=rate_text(ln.unit_price * 100, lang), basis=basis)
    if ln.kind == "commission":
        return _commission(ln, lang)
    m = _ENERGY_TEXT.match(ln.description) if ln.kind == "reimbursement" else None
    if m is None:
        return None
    formula = _numbers(m["formula"].replace(" per kWh", " " + _PER_KWH[lang]), lang)
    text = _ENERGY_AT[lang].format(formula=formula)
    if m["avg"]:
        text += ", " + _AVERAGE[lang].format(price=price_text(Decimal(m["avg"]), currency, lang))
    return text


@dataclass(frozen=True, slots=True)
class CreditLine:
    """One share line of an issued statement (``net`` rounded once, by the statement)."""

    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal
    reversal: bool = False  # a correction's line that takes back a line of the corrected note
    # a reversed line keeps the corrected note's VAT ("": the note's own)
    vat_status: str = ""
    vat_rate: Decimal | None = None


def vat_status_of(declared: str, *, partner_kind: str, country: str, vat_id: str, tax_number: str,
                  tenant_country: str) -> str:
    """The partner's VAT status: the declared one, else what its details say (an employee: not
    subject; a VAT id from another country: reverse charge; a VAT id or tax number: registered;
    neither: a small business)."""
    if declared:
        if declared not in VAT_STATUSES:
            raise DocumentError("vat_status_unknown", f"VAT status {declared!r}, expected one of {VAT_STATUSES}")
        return declared
    if partner_kind == "employee":
        return "not_subject"
    vat_country = vat_id[:2].upper() if vat_id else ""
    if vat_id and (country or vat_country) and (country or vat_country) != tenant_country:
        return "reverse_charge"
    if vat_id or tax_number:
        return "registered"
    return "small_business"


def credit_formats(vat_status: str) -> tuple[str, ...]:
    """What a note is issued as: the PDF and both XRechnung syntaxes (389 is XRechnung's
    self-billing code); an employee's reimbursement (category O) as a PDF only."""
    return ("pdf",) if vat_status == "not_subject" else ("pdf", "xrechnung-ubl", "xrechnung-cii")


def _vat(status: str, rate: Decimal) -> tuple[VatCategory, Decimal]:
    if status == "registered":
        return VatCategory.STANDARD, rate
    if status == "small_business":
        return VatCategory.EXEMPT, Decimal(0)
    if status == "reverse_charge":
        return VatCategory.REVERSE_CHARGE, Decimal(0)
    return VatCategory.NOT_SUBJECT, Decimal(0)


def host_credit_document(*, number: str, issue_date: date, host: Seller, tenant: Buyer,
                         lines: Sequence[CreditLine], period_start: date, period_end: date, vat_status: str,
                         vat_rate: Decimal, language: str = "de", currency: str = "EUR",
                         branding: Branding | None = None, corrects: PrecedingInvoice | None = None,
                         statement_number: str = "") -> Document:
    """The note of a statement's share lines (``period_end`` exclusive). Raises ``DocumentError``."""
    if vat_status not in VAT_STATUSES:
        raise DocumentError("vat_status_unknown", f"VAT status {vat_status!r}, expected one of {VAT_STATUSES}")
    lang = language if language in _NAMES else "en"
    names = _NAMES[lang]
    places = minor_unit(currency)
    vat = _vat(vat_status, vat_rate)
    doc_lines: list[Line] = []
    for ln in lines:
        if ln.net == 0:
            continue
        name = names.get(ln.kind, ln.kind.replace("_", " ").capitalize())
        if ln.reversal:
            name = f"{names['reversal']}: {name}"
        line_vat = _vat(ln.vat_status, ln.vat_rate if ln.vat_rate is not None else vat_rate) if ln.vat_status else vat
        quantity, unit, price, desc = ln.quantity, ln.unit, ln.unit_price, ln.description or None
        localized = _described(ln, lang, currency)
        if localized is not None and ln.kind == "share_percent":
            quantity, unit, price, desc = Decimal(1 if ln.net >= 0 else -1), "each", abs(ln.net), localized
        elif localized is not None:
            desc = localized
        if unit not in _UNITS:
            # a share of revenue ("EUR net" x 10 %): one lump sum, the basis and rate in the text
            rated = _basis(quantity, unit, price, lang)
            quantity, unit, price, desc = Decimal(1 if ln.net >= 0 else -1), "each", abs(ln.net), (
                f"{desc} ({rated})" if desc else rated)
        doc_lines.append(_exact_line(str(len(doc_lines) + 1), name, desc, quantity, unit, price, ln.net, line_vat,
                                     places))
    if not doc_lines:
        raise DocumentError("nothing_to_credit", "the statement has no share line to credit")
    notes = [_REIMBURSEMENT_NOTE[lang] if vat_status == "not_subject" else _NOTE[lang]]
    if corrects is not None:
        notes.append(_CORRECTS[lang].format(number=corrects.number))
    exemptions: tuple[tuple[VatCategory, str | None, str], ...] = ()
    if "small_business" in (vat_status, *(ln.vat_status for ln in lines)):
        exemptions = ((VatCategory.EXEMPT, None, _SMALL_BUSINESS[lang]),)
    tenant = tenant if tenant.buyer_reference or not statement_number else Buyer(
        tenant.name, tenant.address, tenant.electronic_address, tenant.is_business, tenant.vat_id,
        statement_number, tenant.customer_number, tenant.contact_name)
    return Document(
        kind=DocumentKind.SELF_BILLING_CREDIT_NOTE, number=number, issue_date=issue_date, currency=currency,
        seller=host, buyer=tenant, lines=tuple(doc_lines),
        payment=PaymentMeans("58", iban=host.iban, bic=host.bic, account_name=host.legal_name, remittance=number),
        period=Period(period_start, period_end - timedelta(days=1)), language=lang,
        branding=branding or Branding(), note=" · ".join(notes), payment_terms=_TERMS[lang],
        preceding=corrects, exemptions=exemptions,
    )
