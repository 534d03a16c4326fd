"""From a finalized billing invoice to the document model (pure).

The billing cycle (``runtime.invoicing`` / ``store.billing``) decides every amount: its lines are
rounded once and its VAT is computed per rate group. This module only re-expresses them as a
``Document``, and then proves it did not change a cent: the document's own totals
(``compute_totals``) must equal the invoice's net, tax and gross, or ``DocumentError
("totals_mismatch")`` is raised instead of issuing a document that disagrees with the books.

The input is a small frozen mirror (``InvoiceInput``) of what the billing tables hold plus what
they do not hold yet (customer's format choice, Leitweg-ID, SEPA mandate details, rated session
facts for the statement); the loader that fills it from the database lives with the archive
(``store.documents``), so this stays a pure function.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

from runtime.documents import FORMATS
from runtime.documents.i18n import LANGUAGES, money_text, sessions_text
from runtime.documents.model import (
    Address,
    AllowanceCharge,
    Branding,
    Buyer,
    Document,
    DocumentError,
    DocumentKind,
    ElectronicAddress,
    Line,
    PaymentMeans,
    Period,
    PrecedingInvoice,
    Seller,
    StatementAmount,
    StatementRow,
    VatCategory,
)
from runtime.money import ZERO, allocate, minor_unit, quantize, tax_groups

__all__ = [
    "BilledLine",
    "CustomerProfile",
    "InvoiceInput",
    "PaymentProfile",
    "SessionFacts",
    "TenantProfile",
    "component_label",
    "default_formats",
    "document_from_invoice",
    "partial_credit",
    "reversal_of",
    "self_billing_document",
]


@dataclass(frozen=True)
class TenantProfile:
    """The issuer: legal data for the XML and the page, and the tenant's branding."""

    seller: Seller
    branding: Branding = field(default_factory=Branding)


@dataclass(frozen=True)
class CustomerProfile:
    name: str
    address: Address
    email: str = ""
    is_business: bool = False
    vat_id: str | None = None
    customer_number: str | None = None
    language: str = "de"
    contact_name: str | None = None
    leitweg_id: str | None = None  # German public buyers: BT-10 and the routing address (EAS 0204)
    peppol_id: ElectronicAddress | None = None  # e.g. ("0088", GLN) or ("9930", DE VAT ID)
    # B2B supplies to another EU member state: VAT is due by the recipient (0 % lines become AE)
    reverse_charge: bool = False
    # the invoice's untaxed treatment as billing decided it (``runtime.tax.Treatment``, stored on
    # its tax group): AE, O (a business outside the EU) or E (the ruleset's ``exempt``), with the
    # VATEX code and the reason the ruleset states; 0 % lines take that category
    vat_category: str = ""
    vat_exemption_code: str = ""
    vat_exemption_reason: str = ""
    # the formats the customer chose in the contract; empty: ``default_formats``
    formats: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaymentProfile:
    """``sepa_direct_debit`` (with a mandate) or ``transfer`` (the contract's payment method)."""

    method: str = "transfer"
    mandate_reference: str | None = None
    debtor_iban: str | None = None  # the customer's account (direct debit; refunds of credit notes)
    debit_date: date | None = None


@dataclass(frozen=True)
class BilledLine:
    """One ``billing_invoice_line`` row: ``net`` is already rounded, once, by the billing cycle."""

    seq: int
    kind: str  # session | fee | service | discount | late | adjustment | manual
    component: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal
    tax_rate: Decimal
    session_id: str = ""
    # the rated rule the line comes from: a cap line names the rule whose lines it caps
    rule: str = ""
    corrects: str = ""  # a re-rating correction: "<invoice number>/<session id>" it corrects


@dataclass(frozen=True)
class SessionFacts:
    """What the statement shows of a rated session besides its lines (times are aware UTC)."""

    session_id: str
    started_at: datetime
    timezone: str  # the location's zone: the statement prints local time
    location: str
    evse: str
    token: str
    energy_kwh: Decimal
    charging_minutes: Decimal
    parking_minutes: Decimal = ZERO
    signed_data: tuple[str, ...] = ()  # the meter's signed records (Eichrecht), as sent
    public_key: str = ""  # the key they are checked with (hex DER)


@dataclass(frozen=True)
class InvoiceInput:
    invoice_id: str
    kind: str  # invoice | credit_note (a draft with a negative total)
    number: str
    issue_date: date
    due_date: date
    currency: str
    period_start: date
    period_end: date  # exclusive, as billing stores ``local_end``
    payment_terms: str
    lines: tuple[BilledLine, ...]
    net_total: Decimal
    tax_total: Decimal
    tenant: TenantProfile
    customer: CustomerProfile
    payment: PaymentProfile = PaymentProfile()
    sessions: tuple[SessionFacts, ...] = ()
    corrects: tuple[str, ...] = ()  # invoice numbers this invoice's lines correct
    corrects_issue_date: date | None = None
    # the service periods of the corrected invoices: (number, first day, end day exclusive)
    corrected_periods: tuple[tuple[str, date, date], ...] = ()
    prepaid: Decimal = ZERO
    # the mode the invoice's VAT was rounded with (its ruleset's ``rounding``): the document must agree
    rounding: str = "half_up"


_LABELS: dict[str, dict[str, str]] = {
    "de": {
        "start_fee": "Startgebühr", "flat": "Pauschale", "energy": "Energie", "time": "Ladezeit",
        "parking": "Blockiergebühr", "reservation": "Reservierung", "reservation_fee": "Reservierungsgebühr", "cap": "Deckelung",
        "min_price": "Mindestpreis", "max_price": "Höchstpreis", "discount": "Rabatt",
        "base_fee": "Grundgebühr", "included": "Inklusivleistung", "tier": "Staffelpreis",
        "goodwill": "Kulanzgutschrift", "service": "Service", "manual": "Korrektur",
        "rerating": "Neubewertung", "rounding": "Rundung je Ladevorgang",
        "late": "nachträglich", "terms_net": "Zahlbar innerhalb von {days} Tagen ohne Abzug",
        "terms_eom": "Zahlbar {days} Tage nach Monatsende ohne Abzug",
        "reversal": "Storno", "credit_terms": "Der Betrag wird Ihrem Konto gutgeschrieben",
        "correction": "Korrektur Ladevorgang", "correction_site": "Standort {location}",
        "correction_of": "zu Rechnung {invoice}",
    },
    "en": {
        "start_fee": "Start fee", "flat": "Flat fee", "energy": "Energy", "time": "Charging time",
        "parking": "Parking fee", "reservation": "Reservation", "reservation_fee": "Reservation fee", "cap": "Cap", "min_price": "Minimum price",
        "max_price": "Maximum price", "discount": "Discount", "base_fee": "Base fee",
        "included": "Included", "tier": "Tier price", "goodwill": "Goodwill credit", "service": "Service",
        "manual": "Adjustment", "rerating": "Re-rating",
        "rounding": "Rounding per session", "late": "late",
        "terms_net": "Payable within {days} days without deduction",
        "terms_eom": "Payable {days} days after the end of the month without deduction",
        "reversal": "Reversal", "credit_terms": "The amount will be credited to your account",
        "correction": "Correction of charging session", "correction_site": "site {location}",
        "correction_of": "invoice {invoice}",
    },
    "fr": {
        "start_fee": "Frais de démarrage", "flat": "Forfait", "energy": "Énergie", "time": "Temps de charge",
        "parking": "Frais d'occupation", "reservation": "Réservation", "reservation_fee": "Frais de réservation", "cap": "Plafonnement",
        "min_price": "Prix minimum", "max_price": "Prix maximum", "discount": "Remise",
        "base_fee": "Abonnement", "included": "Prestation incluse", "tier": "Prix par palier",
        "goodwill": "Geste commercial", "service": "Service", "manual": "Correction",
        "rerating": "Nouvelle tarification", "rounding": "Arrondi par recharge", "late": "tardive",
        "terms_net": "Payable sous {days} jours sans escompte",
        "terms_eom": "Payable {days} jours fin de mois sans escompte",
        "reversal": "Annulation", "credit_terms": "Le montant sera crédité sur votre compte",
        "correction": "Correction de la recharge", "correction_site": "site {location}",
        "correction_of": "facture {invoice}",
    },
    "nl": {
        "start_fee": "Starttarief", "flat": "Vast bedrag", "energy": "Energie", "time": "Laadtijd",
        "parking": "Blokkeertarief", "reservation": "Reservering", "reservation_fee": "Reserveringskosten", "cap": "Maximering",
        "min_price": "Minimumprijs", "max_price": "Maximumprijs", "discount": "Korting",
        "base_fee": "Vast abonnement", "included": "Inbegrepen", "tier": "Staffelprijs",
        "goodwill": "Coulancecreditering", "service": "Service", "manual": "Correctie",
        "rerating": "Herberekening", "rounding": "Afronding per laadsessie", "late": "nagekomen",
        "terms_net": "Te betalen binnen {days} dagen zonder aftrek",
        "terms_eom": "Te betalen {days} dagen na het einde van de maand zonder aftrek",
        "reversal": "Storno", "credit_terms": "Het bedrag wordt op uw rekening gecrediteerd",
        "correction": "Correctie laadsessie", "correction_site": "locatie {location}",
        "correction_of": "factuur {invoice}",
    },
}

# what a cap line says (the rated text is the ruleset's English: "Parking time: capped at 12.00")
_CAP_TEXT = {"de": "höchstens {cap} je Ladevorgang", "en": "at most {cap} per session",
             "fr": "au plus {cap} par recharge", "nl": "maximaal {cap} per laadsessie"}
_CAP_NAME = {"de": "Deckelung {component}", "en": "{component} cap", "fr": "Plafonnement {component}",
             "nl": "Maximering {component}"}
_CAPPED_AT = re.compile(r"capped at (-?\d+(?:\.\d+)?)$")

# billing/rating units -> UN/ECE Recommendation 20 (BT-130)
_UNITS = {"kWh": "KWH", "Wh": "WHR", "MWh": "MWH", "min": "MIN", "h": "HUR", "s": "SEC", "days": "DAY",
          "d": "DAY", "session": "C62", "each": "C62", "month": "MON", "year": "ANN", "pcs": "C62"}

_STATEMENT_KINDS = ("session", "late")


def component_label(component: str, language: str) -> str:
    labels = _LABELS.get(language, _LABELS["en"])
    return labels.get(component, component.replace("_", " ").capitalize())


def default_formats(customer: CustomerProfile) -> tuple[str, ...]:
    """What a customer gets without a choice in the contract: public buyers (Leitweg-ID) the
    XRechnung they must receive, businesses a Factur-X PDF (readable and machine-readable in one
    file, the German B2B e-invoice since 2025), private customers a PDF."""
    if customer.formats:
        unknown = [f for f in customer.formats if f not in FORMATS]
        if unknown:
            raise DocumentError("unknown_format", f"the contract asks for unknown formats: {', '.join(unknown)}")
        return customer.formats
    if customer.leitweg_id:
        return ("xrechnung-ubl", "pdf")
    if customer.is_business:
        return ("facturx-pdf",)
    return ("pdf",)


def _unit(unit: str) -> str:
    return _UNITS.get(unit, unit if len(unit) == 3 and unit.isupper() else "C62")


def rated_line_names(lines: Sequence[Any], currency: str, language: str) -> list[str]:
    """What the documents call each rated line of one session (objects with ``component``,
    ``description``, ``rule``): the component's name in ``language``, a cap line named after the
    component whose rule it caps, with its cap ("Deckelung Blockiergebühr – höchstens 12,00 € je
    Ladevorgang"), never the ruleset's English text."""
    capped_by_rule = {ln.rule: ln.component for ln in lines if ln.rule and ln.component != "cap"}
    out = []
    for ln in lines:
        if ln.component != "cap":
            out.append(component_label(ln.component, language))
            continue
        lang = language if language in _CAP_NAME else "en"
        capped = capped_by_rule.get(ln.rule, "")
        name = (_CAP_NAME[lang].format(component=component_label(capped, lang)) if capped
                else _LABELS[lang]["cap"])
        match = _CAPPED_AT.search(ln.description or "")
        if match:
            name += " – " + _CAP_TEXT[lang].format(cap=money_text(Decimal(match.group(1)), currency, lang))
        out.append(name)
    return out


def _exact_line(line_id: str, name: str, description: str | None, quantity: Decimal, unit: str,
                unit_price: Decimal, net: Decimal, vat: tuple[VatCategory, Decimal], places: int,
                detail: bool = True) -> Line:
    """A document line whose net equals ``net`` to the cent.

    Rated amounts are often not quantity x price (steps, caps, minimum prices); those lines are
    shown as one lump sum with the rated quantity and price in the description, because the
    e-invoice requires net = quantity x price (BR-CO-10 family) and we must not change the net."""
    cat, rate = vat
    code = _unit(unit)
    if unit_price >= 0 and quantize(quantity * unit_price, places) == net:
        return Line(line_id, name, quantity, code, unit_price, cat, rate, description)
    if unit_price < 0 and quantize(-quantity * -unit_price, places) == net:
        return Line(line_id, name, -quantity, code, -unit_price, cat, rate, description)
    rated = f"{_num(quantity)} {unit} × {_num(unit_price)}"
    text = (f"{description} ({rated})" if description else rated) if detail else description
    return Line(line_id, name, Decimal(1) if net >= 0 else Decimal(-1), "C62", abs(net), cat, rate, text)


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _vat(rate: Decimal, customer: CustomerProfile) -> tuple[VatCategory, Decimal]:
    if rate > 0:
        return VatCategory.STANDARD, rate
    if customer.vat_category:
        return VatCategory(customer.vat_category), ZERO
    if customer.reverse_charge:
        return VatCategory.REVERSE_CHARGE, ZERO
    return VatCategory.ZERO_RATED, ZERO


# what an invoice without VAT says why, in its language (the e-invoice's BT-120 too)
_UNTAXED_REASONS: dict[VatCategory, dict[str, str]] = {
    VatCategory.NOT_SUBJECT: {
        "de": "Nicht im Inland steuerbare Leistung: der Leistungsempfänger ist außerhalb der EU ansässig",
        "en": "Not subject to VAT in the EU: the customer is established outside the EU",
        "fr": "Prestation non soumise à la TVA dans l'UE : le preneur est établi hors de l'UE",
        "nl": "Niet onderworpen aan btw in de EU: de afnemer is buiten de EU gevestigd",
    },
    VatCategory.EXEMPT: {
        "de": "Steuerfreie Leistung", "en": "Exempt from VAT", "fr": "Exonéré de TVA", "nl": "Vrijgesteld van btw",
    },
}


def _exemptions(customer: CustomerProfile, lang: str) -> tuple[tuple[VatCategory, str | None, str], ...]:
    """The exemption (code, reason) the document states for the customer's untaxed category: the
    ruleset's own reason where it gives one, else the category's text in the document's language."""
    if customer.vat_category not in ("O", "E"):
        return ()
    cat = VatCategory(customer.vat_category)
    code = customer.vat_exemption_code or ("VATEX-EU-O" if cat is VatCategory.NOT_SUBJECT else "VATEX-EU-132")
    return ((cat, code, customer.vat_exemption_reason or _UNTAXED_REASONS[cat][lang]),)


def _document_lines(inp: InvoiceInput, sign: Decimal) -> tuple[Line, ...]:
    """Session lines grouped per (component, unit, price, rate); cap lines per (capped component,
    cap, rate); everything else line by line."""
    lang = inp.customer.language
    places = minor_unit(inp.currency)
    labels = _LABELS.get(lang, _LABELS["en"])
    out: list[Line] = []
    groups: dict[tuple[str, str, Decimal, Decimal], list[BilledLine]] = {}
    caps: dict[tuple[str, Decimal | None, Decimal], list[BilledLine]] = {}
    singles: list[BilledLine] = []
    # a cap line names the rule whose lines it caps; those lines name the capped component
    capped_by_rule = {(ln.session_id, ln.rule): ln.component for ln in inp.lines
                      if ln.rule and ln.component != "cap"}
    for ln in sorted(inp.lines, key=lambda x: x.seq):
        if ln.kind == "session" and ln.component == "cap":
            match = _CAPPED_AT.search(ln.description)
            cap = Decimal(match.group(1)) if match else None
            caps.setdefault((capped_by_rule.get((ln.session_id, ln.rule), ""), cap, ln.tax_rate), []).append(ln)
        elif ln.kind == "session" and ln.unit_price >= 0 and ln.net * sign >= 0:
            groups.setdefault((ln.component, ln.unit, ln.unit_price, ln.tax_rate), []).append(ln)
        else:
            singles.append(ln)

    for (component, unit, price, rate), members in groups.items():
        quantity = sum((m.quantity for m in members), ZERO) * sign
        net = sum((m.net for m in members), ZERO) * sign
        sessions = len({m.session_id for m in members if m.session_id})
        name = component_label(component, lang)
        desc = sessions_text(sessions, lang) if sessions else None
        vat = _vat(rate, inp.customer)
        straight = quantize(quantity * price, places)
        diff = net - straight
        # per-session rounding moves a group by at most half a cent per line; the XML carries that
        # as a line charge/allowance so that quantity x price stays readable, the page as a note;
        # anything larger (steps, minimum prices) is not rounding, so those lines are listed one by one
        if price > 0 and quantity > 0 and abs(diff) <= Decimal("0.005") * (len(members) + 1):
            acs: tuple[AllowanceCharge, ...] = ()
            if diff:
                acs = (AllowanceCharge(diff > 0, abs(diff), labels["rounding"], vat[0], vat[1],
                                       reason_code="ZZZ" if diff > 0 else "95", is_rounding=True),)
            out.append(dataclasses.replace(
                Line(str(len(out) + 1), name, quantity, _unit(unit), price, vat[0], vat[1], desc),
                allowances_charges=acs))
        else:
            # the statement itemizes each session, so the line keeps the rated text only
            for m in members:
                out.append(_exact_line(str(len(out) + 1), name, m.description or desc, m.quantity * sign,
                                       m.unit, m.unit_price, m.net * sign, vat, places, detail=False))
    for (capped, cap, rate), members in caps.items():
        # one line per capped component and cap (the statement still shows each session's cap):
        # the exact sum of the sessions' cap amounts, said in the document's language
        net = sum((m.net for m in members), ZERO) * sign
        name = _CAP_NAME[lang].format(component=component_label(capped, lang)) if capped else labels["cap"]
        parts = [_CAP_TEXT[lang].format(cap=money_text(cap, inp.currency, lang))] if cap is not None else []
        parts.append(sessions_text(len({m.session_id for m in members}), lang))
        vat = _vat(rate, inp.customer)
        line = Line("0", name, Decimal(1) if net >= 0 else Decimal(-1), "C62", abs(net), vat[0], vat[1],
                    ", ".join(parts))
        # right after the line of the component it caps, where there is one
        after = [i for i, ln in enumerate(out) if capped and ln.name == component_label(capped, lang)]
        out.insert(after[-1] + 1 if after else len(out), line)
    facts = {f.session_id: f for f in inp.sessions}
    corrected = {number: (start, end) for number, start, end in inp.corrected_periods}
    for m in singles:
        if m.kind == "adjustment" and m.component == "rerating":
            out.append(_correction_line(str(len(out) + 1), m, sign, inp, facts, corrected, labels, places))
            continue
        itemized = m.kind == "session" and bool(m.session_id)
        if m.kind in ("session", "late", "fee", "discount"):
            name = component_label(m.component, lang)
        else:  # service, manual, adjustment: the description is the name
            name = m.description or component_label(m.kind, lang)
        desc = m.description if m.description and m.description != name else None
        period = None
        if m.kind == "late":
            # billing's text names the period key in English: the customer reads which session it was
            name = f"{name} ({labels['late']})"
            f = facts.get(m.session_id)
            desc = _session_text(f, labels, lang) if f is not None else None
            period = _session_day(f) if f is not None else None
        line = _exact_line(str(len(out) + 1), name, desc, m.quantity * sign, m.unit, m.unit_price,
                           m.net * sign, _vat(m.tax_rate, inp.customer), places, detail=not itemized)
        out.append(dataclasses.replace(line, period=period) if period is not None else line)
    return _merge(out, places)


def _local_text(when: datetime, zone: str, language: str) -> str:
    local = when.astimezone(ZoneInfo(zone))
    text = f"{format_date(local.date(), 'medium', locale=language)} {format_time(local.time(), 'short', locale=language)}"
    return text.replace("\u202f", "\u00a0")  # CLDR's narrow no-break space: not in every PDF font


def _session_text(f: SessionFacts, labels: dict[str, str], language: str) -> str:
    """A charging session as the customer knows it: local start and site, no internal id."""
    text = _local_text(f.started_at, f.timezone, language)
    return f"{text}, {labels['correction_site'].format(location=f.location)}" if f.location else text


def _session_day(f: SessionFacts) -> Period:
    day = f.started_at.astimezone(ZoneInfo(f.timezone)).date()
    return Period(day, day)


def _correction_line(line_id: str, m: BilledLine, sign: Decimal, inp: InvoiceInput, facts: dict[str, SessionFacts],
                     corrected: dict[str, tuple[date, date]], labels: dict[str, str], places: int) -> Line:
    """A re-rating correction as the customer reads it: which charging session (local start,
    site) on which invoice, in the document's language, dated in the service period it corrects
    (the session's day; the corrected invoice's period when the session is unknown). The billing
    line's own text is for operators and names internal ids, so it is not printed."""
    lang = inp.customer.language
    number = m.corrects.partition("/")[0] or (inp.corrects[0] if inp.corrects else "")
    f = facts.get(m.session_id)
    parts = []
    period = None
    if f is not None:
        parts.append(_session_text(f, labels, lang))
        period = _session_day(f)
    elif number in corrected:
        start, end = corrected[number]
        period = Period(start, end - timedelta(days=1) if end > start else end)
    if number:
        parts.append(labels["correction_of"].format(invoice=number))
    line = _exact_line(line_id, labels["correction"], ", ".join(parts) or None, m.quantity * sign, m.unit,
                       m.unit_price, m.net * sign, _vat(m.tax_rate, inp.customer), places, detail=False)
    return dataclasses.replace(line, period=period)


def _service_period(inp: InvoiceInput) -> Period:
    """The document's service period (BT-73/74), shown with its last day (billing stores periods
    half-open). It is the billing period, widened by the periods of the invoices that correction
    lines correct; a document of corrections only (a credit note from re-rating) covers just the
    periods it corrects, never the day it was made."""
    spans = [(start, end) for _number, start, end in inp.corrected_periods]
    if not spans or not all(ln.kind == "adjustment" and ln.component == "rerating" for ln in inp.lines):
        spans.append((inp.period_start, inp.period_end))
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    return Period(start, end - timedelta(days=1) if end > start else end)


def _merge(lines: list[Line], places: int) -> tuple[Line, ...]:
    """Lines that differ only in quantity become one (e.g. twenty capped blocking fees of 12.00),
    but only where the merged quantity x price is exactly the sum of the merged nets."""
    merged: dict[tuple[object, ...], Line] = {}
    order: list[tuple[object, ...]] = []
    for i, ln in enumerate(lines):
        key: tuple[object, ...] = (ln.name, ln.description, ln.unit_code, ln.unit_price, ln.vat_category,
                                   ln.vat_rate, ln.quantity > 0)
        if ln.allowances_charges:
            key = ("unique", i)
        have = merged.get(key)
        if have is not None:
            quantity = have.quantity + ln.quantity
            if quantize(quantity * ln.unit_price, places) == _net(have, places) + _net(ln, places):
                merged[key] = dataclasses.replace(have, quantity=quantity)
                continue
            key = ("unique", i)
        merged[key] = ln
        order.append(key)
    return tuple(dataclasses.replace(merged[k], id=str(n)) for n, k in enumerate(order, 1))


def _net(line: Line, places: int) -> Decimal:
    return quantize(line.quantity * line.unit_price, places)


def _statement(inp: InvoiceInput, sign: Decimal) -> tuple[StatementRow, ...]:
    """One row per session: its billed (rounded) lines, and its part of the invoice's VAT.

    VAT is computed once per rate group on the sum of the statement's lines, as the invoice does
    (``tax_groups``), and each group's VAT is split over the sessions pro rata to the cent
    (``allocate``): the rows add up to the invoice's VAT instead of a sum of per-session roundings
    that can be cents away from it."""
    lang = inp.customer.language
    places = minor_unit(inp.currency)
    by_session: dict[str, list[BilledLine]] = {}
    for ln in inp.lines:
        if ln.session_id and ln.kind in _STATEMENT_KINDS:
            by_session.setdefault(ln.session_id, []).append(ln)
    billed = [s for s in sorted(inp.sessions, key=lambda x: (x.started_at, x.session_id))
              if by_session.get(s.session_id)]
    per_rate: list[dict[Decimal, Decimal]] = []
    for s in billed:
        nets: dict[Decimal, Decimal] = {}
        for ln in by_session[s.session_id]:
            nets[ln.tax_rate] = nets.get(ln.tax_rate, ZERO) + ln.net * sign
        per_rate.append(nets)
    taxes = [ZERO] * len(billed)
    for rate, _, group_tax in tax_groups(((r, n) for nets in per_rate for r, n in nets.items()),
                                         inp.currency, inp.rounding):
        shares = allocate(group_tax, [nets.get(rate, ZERO) for nets in per_rate], places)
        taxes = [t + share for t, share in zip(taxes, shares)]
    rows = []
    for s, tax in zip(billed, taxes):
        comps: list[StatementAmount] = []
        discounts: list[StatementAmount] = []
        for ln in sorted(by_session[s.session_id], key=lambda x: x.seq):
            net = ln.net * sign
            label = component_label(ln.component, lang)
            (comps if net >= 0 else discounts).append(StatementAmount(label, abs(net)))
        rows.append(StatementRow(
            session_id=s.session_id,
            started_at=s.started_at.astimezone(ZoneInfo(s.timezone)).replace(tzinfo=None),
            location=s.location, evse=s.evse, token=s.token, energy_kwh=s.energy_kwh,
            charging_minutes=s.charging_minutes, parking_minutes=s.parking_minutes,
            components=tuple(comps), tax=tax, discounts=tuple(discounts),
            signed_data=s.signed_data, public_key=s.public_key,
        ))
    return tuple(rows)


def _buyer(c: CustomerProfile) -> Buyer:
    if c.leitweg_id:
        address = ElectronicAddress(c.leitweg_id, "0204")
    elif c.peppol_id is not None:
        address = c.peppol_id
    else:
        address = ElectronicAddress(c.email or "unknown@invalid", "EM")
    return Buyer(
        name=c.name, address=c.address, electronic_address=address, is_business=c.is_business,
        vat_id=c.vat_id, buyer_reference=c.leitweg_id or c.customer_number, customer_number=c.customer_number,
        contact_name=c.contact_name,
    )


def terms_text(terms: str, language: str) -> str:
    """Billing stores ``net 14`` / ``end_of_month + 60``; the page says it in words."""
    labels = _LABELS.get(language, _LABELS["en"])
    parts = terms.replace("+", " ").split()
    if len(parts) == 2 and parts[0] == "net" and parts[1].isdigit():
        return labels["terms_net"].format(days=parts[1])
    if len(parts) == 2 and parts[0] in ("end_of_month", "eom") and parts[1].isdigit():
        return labels["terms_eom"].format(days=parts[1])
    return terms


def document_from_invoice(inp: InvoiceInput) -> Document:
    """The ``Document`` of a finalized invoice, its statement included; totals proven equal."""
    if inp.kind not in ("invoice", "credit_note"):
        raise DocumentError("unknown_invoice_kind", f"invoice kind {inp.kind!r}")
    credit = inp.kind == "credit_note"
    # a credit note states what is credited as positive amounts (UBL CreditNote semantics)
    sign = Decimal(-1) if credit else Decimal(1)
    lang = inp.customer.language if inp.customer.language in LANGUAGES else "en"
    customer = dataclasses.replace(inp.customer, language=lang)
    inp = dataclasses.replace(inp, customer=customer)
    seller = inp.tenant.seller
    p = inp.payment
    if credit:
        payment = PaymentMeans("58", iban=p.debtor_iban, remittance=inp.number)
    elif p.method == "sepa_direct_debit" and p.mandate_reference and p.debtor_iban:
        payment = PaymentMeans("59", mandate_reference=p.mandate_reference, debtor_iban=p.debtor_iban,
                               creditor_id=seller.creditor_id, debit_date=p.debit_date or inp.due_date)
    else:
        payment = PaymentMeans("58", iban=seller.iban, bic=seller.bic, account_name=seller.legal_name)
    preceding = None
    if credit:
        if not inp.corrects:
            raise DocumentError("credit_note_without_invoice",
                                f"credit note {inp.number} does not say which invoice it corrects")
        preceding = PrecedingInvoice(inp.corrects[0], inp.corrects_issue_date)
    lines = _document_lines(inp, sign)
    labels = _LABELS[lang]
    doc = Document(
        kind=DocumentKind.CREDIT_NOTE if credit else DocumentKind.INVOICE,
        number=inp.number,
        issue_date=inp.issue_date,
        due_date=None if credit else inp.due_date,
        currency=inp.currency,
        seller=seller,
        buyer=_buyer(customer),
        lines=lines,
        payment=payment,
        period=_service_period(inp),
        language=lang,
        prepaid=inp.prepaid,
        payment_terms=labels["credit_terms"] if credit else terms_text(inp.payment_terms, lang),
        preceding=preceding,
        statement=_statement(inp, sign),
        branding=inp.tenant.branding,
        rounding=inp.rounding,
        exemptions=_exemptions(customer, lang),
    )
    t = doc.totals
    if (t.net, t.tax) != (inp.net_total * sign, inp.tax_total * sign):
        raise DocumentError(
            "totals_mismatch",
            f"invoice {inp.number}: the document totals (net {t.net}, tax {t.tax}) differ from the "
            f"billed ones (net {inp.net_total * sign}, tax {inp.tax_total * sign})")
    return doc


# ------------------------------------------------------------------------------- corrections

def reversal_of(invoice: Document, number: str, issue_date: date) -> Document:
    """A credit note that reverses ``invoice`` completely (Storno): same lines, same VAT."""
    if invoice.kind is not DocumentKind.INVOICE:
        raise DocumentError("not_an_invoice", f"{invoice.number} is a {invoice.kind.value}, not an invoice")
    labels = _LABELS[invoice.language]
    lines = tuple(dataclasses.replace(ln, name=f"{labels['reversal']} {ln.name}") for ln in invoice.lines)
    return _credit_note(invoice, number, issue_date, lines, invoice.allowances_charges, invoice.prepaid)


def partial_credit(invoice: Document, number: str, issue_date: date,
                   credits: Sequence[tuple[str, Decimal]], reason: str | None = None) -> Document:
    """A credit note for part of ``invoice``: ``credits`` are (line id, quantity to credit), each at
    most the invoiced quantity, priced and taxed as invoiced."""
    by_id = {ln.id: ln for ln in invoice.lines}
    lines: list[Line] = []
    for line_id, quantity in credits:
        original = by_id.get(line_id)
        if original is None:
            raise DocumentError("unknown_line", f"invoice {invoice.number} has no line {line_id!r}")
        if quantity <= 0 or quantity > abs(original.quantity):
            raise DocumentError("credit_quantity_invalid",
                                f"line {line_id}: can credit between 0 and {abs(original.quantity)}, not {quantity}")
        name = f"{reason}: {original.name}" if reason else original.name
        lines.append(Line(str(len(lines) + 1), name, quantity * (1 if original.quantity > 0 else -1),
                          original.unit_code, original.unit_price, original.vat_category, original.vat_rate,
                          original.description, period=original.period))
    if not lines:
        raise DocumentError("nothing_to_credit", "a partial credit note needs at least one line")
    return _credit_note(invoice, number, issue_date, tuple(lines), (), ZERO)


def _credit_note(invoice: Document, number: str, issue_date: date, lines: tuple[Line, ...],
                 acs: tuple[AllowanceCharge, ...], prepaid: Decimal) -> Document:
    p = invoice.payment
    # the refund goes to the account the invoice was collected from, if we know it
    refund = PaymentMeans("58", iban=p.debtor_iban, remittance=number)
    return dataclasses.replace(
        invoice, kind=DocumentKind.CREDIT_NOTE, number=number, issue_date=issue_date, due_date=None,
        lines=lines, allowances_charges=acs, prepaid=prepaid, payment=refund,
        preceding=PrecedingInvoice(invoice.number, invoice.issue_date), statement=(),
        payment_terms=_LABELS[invoice.language]["credit_terms"], note=None,
    )


def self_billing_document(*, number: str, issue_date: date, host: Seller, tenant: Buyer,
                          lines: Sequence[BilledLine], period_start: date, period_end: date,
                          language: str = "de", branding: Branding | None = None,
                          currency: str = "EUR", host_vat_exempt: bool = False) -> Document:
    """The self-billing credit note (Gutschrift) the tenant issues to a site host for its revenue
    share and energy reimbursement: the host is the seller, the tenant the buyer and issuer."""
    places = minor_unit(currency)
    doc_lines: list[Line] = []
    for ln in sorted(lines, key=lambda x: x.seq):
        # a small-business host (§ 19 UStG) charges no VAT: exempt, with the reason on the document
        vat = (VatCategory.EXEMPT, ZERO) if host_vat_exempt else (
            (VatCategory.STANDARD, ln.tax_rate) if ln.tax_rate > 0 else (VatCategory.ZERO_RATED, ZERO))
        doc_lines.append(_exact_line(str(len(doc_lines) + 1), ln.description or component_label(ln.component, language),
                                     None, ln.quantity, ln.unit, ln.unit_price, ln.net, vat, places))
    note = ("Gutschrift im Gutschriftsverfahren (§ 14 Abs. 2 Satz 2 UStG)" if language == "de"
            else "Self-billing invoice (credit note procedure)")
    return Document(
        kind=DocumentKind.SELF_BILLING_CREDIT_NOTE, number=number, issue_date=issue_date, currency=currency,
        seller=host, buyer=tenant, lines=tuple(doc_lines),
        payment=PaymentMeans("58", iban=host.iban, bic=host.bic, account_name=host.legal_name),
        period=Period(period_start, period_end - timedelta(days=1)), language=language,
        branding=branding or Branding(),
        note=note, payment_terms="Auszahlung innerhalb von 14 Tagen" if language == "de" else "Paid out within 14 days",
        exemptions=((VatCategory.EXEMPT, "VATEX-EU-132", "Kleinunternehmer gemäß § 19 UStG" if language == "de"
                     else "Small business exemption (§ 19 UStG)"),) if host_vat_exempt else (),
    )
