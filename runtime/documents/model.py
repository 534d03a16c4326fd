"""The one internal document model every format renders from (a document x format matrix).

Amounts are ``Decimal`` in the document's currency; the currency travels on the ``Document``
and on ``Totals``. Totals are computed in exactly one place (``compute_totals``) so the PDF,
UBL and CII can never disagree: lines are rounded once to the minor unit, VAT is computed once
per (category, rate) group on the group's taxable amount and rounded with the document's
``rounding`` mode (the invoice's, from its ruleset; half-up by default), gross = net + VAT,
payable = gross - prepaid. Dates arrive as data; nothing here reads the clock.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property

from runtime.documents.i18n import LANGUAGES
from runtime.money import ROUNDING_MODES, ZERO, Money, minor_unit, quantize, tax_groups, to_decimal

__all__ = [
    "Address",
    "AllowanceCharge",
    "Branding",
    "Buyer",
    "Contact",
    "Document",
    "DocumentError",
    "DocumentKind",
    "ElectronicAddress",
    "Line",
    "PaymentMeans",
    "Period",
    "PrecedingInvoice",
    "Seller",
    "SetOff",
    "StatementAmount",
    "StatementRow",
    "Totals",
    "VatCategory",
    "VatGroup",
    "compute_totals",
    "exemption_for",
]


class DocumentError(ValueError):
    """A document cannot be rendered in the asked format; ``code`` is stable for callers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class DocumentKind(enum.Enum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    # A "Gutschrift" for site hosts: legally an invoice the buyer (the tenant) issues on behalf of
    # the seller (the host), hence UNTDID 1001 code 389 and the UBL Invoice root, not CreditNote.
    SELF_BILLING_CREDIT_NOTE = "self_billing_credit_note"

    @property
    def type_code(self) -> str:
        return _TYPE_CODES[self]

    @property
    def is_credit_note(self) -> bool:
        """True when the UBL root is ``CreditNote`` (a correction that reduces what was billed)."""
        return self is DocumentKind.CREDIT_NOTE


_TYPE_CODES = {
    DocumentKind.INVOICE: "380",
    DocumentKind.CREDIT_NOTE: "381",
    DocumentKind.SELF_BILLING_CREDIT_NOTE: "389",
}


class VatCategory(enum.Enum):
    """UNTDID 5305 subset of EN 16931 (BT-151)."""

    STANDARD = "S"
    ZERO_RATED = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"
    NOT_SUBJECT = "O"

    @property
    def carries_rate(self) -> bool:
        # BR-O-05: "not subject to VAT" must not state a rate; every other category does
        return self is not VatCategory.NOT_SUBJECT


# Exemption reasons: EN 16931 requires one on AE/E/K/O breakdowns and forbids it on S/Z
# (BR-S-10, BR-Z-10), so zero-rated lines carry no reason.
_EXEMPTIONS: dict[VatCategory, tuple[str | None, dict[str, str]]] = {
    VatCategory.REVERSE_CHARGE: (
        "VATEX-EU-AE",
        {
            "de": "Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge)",
            "en": "Reverse charge: VAT is due by the recipient",
            "fr": "Autoliquidation : TVA due par le preneur",
            "nl": "Btw verlegd: de btw is verschuldigd door de afnemer",
        },
    ),
    VatCategory.INTRA_COMMUNITY: (
        "VATEX-EU-IC",
        {"de": "Steuerfreie innergemeinschaftliche Lieferung", "en": "Intra-community supply",
         "fr": "Livraison intracommunautaire exonérée", "nl": "Vrijgestelde intracommunautaire levering"},
    ),
    VatCategory.NOT_SUBJECT: (
        "VATEX-EU-O",
        {"de": "Nicht der Umsatzsteuer unterliegend", "en": "Not subject to VAT",
         "fr": "Non soumis à la TVA", "nl": "Niet onderworpen aan btw"},
    ),
    VatCategory.EXEMPT: (
        None,
        {"de": "Steuerbefreiter Umsatz", "en": "Exempt from VAT", "fr": "Exonéré de TVA",
         "nl": "Vrijgesteld van btw"},
    ),
}


def exemption_for(category: VatCategory, language: str) -> tuple[str | None, str | None]:
    """The default (code, text) for a category's exemption reason, or (None, None)."""
    if category not in _EXEMPTIONS:
        return None, None
    code, texts = _EXEMPTIONS[category]
    return code, texts.get(language, texts["en"])


_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def _dec(value: object) -> Decimal:
    return to_decimal(value)


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2
    additional: str | None = None


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str
    email: str


@dataclass(frozen=True)
class ElectronicAddress:
    """BT-34/BT-49 with its EAS scheme: ``EM`` e-mail, ``0204`` Leitweg-ID, ``9930`` DE VAT."""

    value: str
    scheme: str = "EM"


@dataclass(frozen=True)
class Seller:
    legal_name: str
    address: Address
    electronic_address: ElectronicAddress
    contact: Contact
    vat_id: str | None = None
    tax_number: str | None = None  # German Steuernummer (BT-32), scheme FC
    trading_name: str | None = None
    registration_id: str | None = None  # e.g. "HRB 12345, Amtsgericht Berlin" (BT-30)
    iban: str | None = None
    bic: str | None = None
    bank_name: str | None = None
    creditor_id: str | None = None  # SEPA creditor identifier (BT-90)
    # BT-29: the seller's identifier, e.g. the partner number a self-billing buyer assigned to a
    # host without VAT id or register entry (BR-CO-26 needs one of BT-29/30/31)
    identifier: str | None = None


@dataclass(frozen=True)
class Buyer:
    name: str
    address: Address
    electronic_address: ElectronicAddress
    is_business: bool = False
    vat_id: str | None = None
    buyer_reference: str | None = None  # BT-10; the Leitweg-ID for German public buyers
    customer_number: str | None = None
    contact_name: str | None = None


@dataclass(frozen=True)
class AllowanceCharge:
    """A document- or line-level allowance (``is_charge=False``) or charge; ``amount`` is positive."""

    is_charge: bool
    amount: Decimal
    reason: str
    vat_category: VatCategory = VatCategory.STANDARD
    vat_rate: Decimal = Decimal(19)
    reason_code: str | None = None  # UNTDID 5189 (allowances) / 7161 (charges)
    base_amount: Decimal | None = None
    percent: Decimal | None = None
    # the difference between a grouped line's quantity x price and the sum of its per-session
    # rounded amounts: the XML carries it as a line allowance/charge, the page as a note
    is_rounding: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _dec(self.amount))
        object.__setattr__(self, "vat_rate", _dec(self.vat_rate))
        if self.amount < ZERO:
            raise ValueError("allowance/charge amounts are positive; the kind says the sign")

    @property
    def signed(self) -> Decimal:
        return self.amount if self.is_charge else -self.amount


@dataclass(frozen=True)
class Period:
    start: date
    end: date


@dataclass(frozen=True)
class Line:
    id: str
    name: str
    quantity: Decimal
    unit_code: str  # UN/ECE Rec. 20: KWH, MIN, HUR, C62, MON
    unit_price: Decimal  # net, full precision (the rated price)
    vat_category: VatCategory = VatCategory.STANDARD
    vat_rate: Decimal = Decimal(19)
    description: str | None = None
    allowances_charges: tuple[AllowanceCharge, ...] = ()
    period: Period | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", _dec(self.quantity))
        object.__setattr__(self, "unit_price", _dec(self.unit_price))
        object.__setattr__(self, "vat_rate", _dec(self.vat_rate))
        if self.unit_price < ZERO:
            # BR-27: a negative price is not allowed; corrections use a negative quantity
            raise ValueError(f"line {self.id}: negative unit price, use a negative quantity")

    def net(self, currency: str) -> Decimal:
        """BT-131: quantity x price rounded once, plus line charges, minus line allowances."""
        places = minor_unit(currency)
        amount = quantize(self.quantity * self.unit_price, places)
        for ac in self.allowances_charges:
            amount += quantize(ac.signed, places)
        return amount


@dataclass(frozen=True)
class PaymentMeans:
    """58 = SEPA credit transfer, 59 = SEPA direct debit (UNTDID 4461)."""

    code: str
    iban: str | None = None  # payee IBAN for 58
    bic: str | None = None
    account_name: str | None = None
    mandate_reference: str | None = None  # 59
    debtor_iban: str | None = None  # 59
    creditor_id: str | None = None  # 59; defaults to the seller's
    remittance: str | None = None  # BT-83, defaults to the document number
    debit_date: date | None = None  # pre-notification: when the debit is collected

    @property
    def is_direct_debit(self) -> bool:
        return self.code == "59"


@dataclass(frozen=True)
class PrecedingInvoice:
    number: str
    issue_date: date | None = None


@dataclass(frozen=True)
class SetOff:
    """What a payment is set off against (a self-billing note's payout netted with what the
    supplier owes the issuer): the claim's document number and the amount taken from it. Shown on
    the PDF below the amount due; the e-invoice states the note's own amounts (a set-off is a
    declaration beside the note, not part of what it bills)."""

    kind: str  # invoice (an item the supplier owes as a customer) | credit_note (a note that took back more)
    number: str
    amount: Decimal


@dataclass(frozen=True)
class StatementAmount:
    label: str
    amount: Decimal  # net; discounts are given as positive amounts in ``StatementRow.discounts``


@dataclass(frozen=True)
class StatementRow:
    """One charging session on the itemized statement (times already in the location's zone)."""

    session_id: str
    started_at: datetime
    location: str
    evse: str
    token: str
    energy_kwh: Decimal
    charging_minutes: Decimal
    parking_minutes: Decimal
    components: tuple[StatementAmount, ...]
    tax: Decimal
    discounts: tuple[StatementAmount, ...] = ()
    # Eichrecht: the meter's signed data as the charger sent it (OCMF, byte for byte) and the public
    # key to check it with, printed for the S.A.F.E. Transparenzsoftware
    signed_data: tuple[str, ...] = ()
    public_key: str = ""

    @property
    def net(self) -> Decimal:
        return sum((c.amount for c in self.components), ZERO) - sum(
            (d.amount for d in self.discounts), ZERO
        )

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


@dataclass(frozen=True)
class Branding:
    logo: bytes | None = None
    logo_path: str | None = None
    logo_mime: str = "image/png"
    primary_color: str = "#1f3a5f"
    secondary_color: str = "#e8eef5"
    legal_lines: tuple[str, ...] = ()
    show_evbill: bool = False  # white-label by default: no trace of evbill on the page

    def __post_init__(self) -> None:
        # colours go into a stylesheet, so only plain hex colours are accepted
        for colour in (self.primary_color, self.secondary_color):
            if not _HEX_COLOUR.fullmatch(colour):
                raise ValueError(f"not a hex colour: {colour!r}, expected e.g. '#1f3a5f'")


@dataclass(frozen=True)
class VatGroup:
    category: VatCategory
    rate: Decimal
    taxable: Decimal
    tax: Decimal
    exemption_code: str | None
    exemption_reason: str | None


@dataclass(frozen=True)
class Totals:
    currency: str
    line_total: Decimal  # BT-106
    allowance_total: Decimal  # BT-107
    charge_total: Decimal  # BT-108
    net: Decimal  # BT-109
    vat_groups: tuple[VatGroup, ...]
    tax: Decimal  # BT-110
    gross: Decimal  # BT-112
    prepaid: Decimal  # BT-113
    payable: Decimal  # BT-115

    def money(self, name: str) -> Money:
        value = getattr(self, name)
        if not isinstance(value, Decimal):
            raise TypeError(f"{name} is not an amount")
        return Money(value, self.currency)


@dataclass(frozen=True)
class Document:
    kind: DocumentKind
    number: str
    issue_date: date
    currency: str
    seller: Seller
    buyer: Buyer
    lines: tuple[Line, ...]
    payment: PaymentMeans
    due_date: date | None = None
    period: Period | None = None
    language: str = "de"
    allowances_charges: tuple[AllowanceCharge, ...] = ()
    prepaid: Decimal = ZERO
    payment_terms: str | None = None
    preceding: PrecedingInvoice | None = None
    statement: tuple[StatementRow, ...] = ()
    branding: Branding = field(default_factory=Branding)
    note: str | None = None
    # per-category exemption text overrides, e.g. {VatCategory.EXEMPT: ("VATEX-EU-132", "...")}
    exemptions: tuple[tuple[VatCategory, str | None, str], ...] = ()
    # the rounding mode VAT was computed with on the invoice (the ruleset's ``rounding``)
    rounding: str = "half_up"
    # what the payout is set off against (self-billing notes; PDF only)
    set_off: tuple[SetOff, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prepaid", _dec(self.prepaid))
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"unknown rounding mode {self.rounding!r}, expected one of {', '.join(ROUNDING_MODES)}")
        if self.language not in LANGUAGES:
            raise ValueError(f"unsupported language {self.language!r}, expected one of {', '.join(LANGUAGES)}")
        if not self.lines:
            raise ValueError("a document needs at least one line")
        ids = [line.id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("line ids must be unique")
        if self.kind is DocumentKind.CREDIT_NOTE and self.preceding is None:
            raise ValueError("a credit note must reference the invoice it corrects")

    @cached_property
    def totals(self) -> Totals:
        return compute_totals(self)

    @property
    def vat_ids_in_xml(self) -> bool:
        """Whether the e-invoice may carry the seller's and buyer's VAT identifiers (BT-31, BT-48):
        not on a document outside the scope of VAT (category O; EN 16931 BR-O-02). The page
        still shows them."""
        return not any(x.vat_category is VatCategory.NOT_SUBJECT for x in self.lines) and not any(
            ac.vat_category is VatCategory.NOT_SUBJECT for ac in self.allowances_charges)

    def exemption(self, category: VatCategory) -> tuple[str | None, str | None]:
        for cat, code, text in self.exemptions:
            if cat is category:
                return code, text
        return exemption_for(category, self.language)


def compute_totals(doc: Document) -> Totals:
    """The single place totals are computed; every renderer reads ``doc.totals``."""
    cur = doc.currency
    places = minor_unit(cur)
    line_nets = [line.net(cur) for line in doc.lines]
    line_total = sum(line_nets, ZERO)
    allowance_total = sum(
        (quantize(ac.amount, places) for ac in doc.allowances_charges if not ac.is_charge), ZERO
    )
    charge_total = sum(
        (quantize(ac.amount, places) for ac in doc.allowances_charges if ac.is_charge), ZERO
    )
    net = line_total - allowance_total + charge_total

    # group taxable amounts first, then compute VAT once per group (BR-CO-17, BR-S-08)
    taxable: dict[tuple[VatCategory, Decimal], Decimal] = {}
    for line, line_net in zip(doc.lines, line_nets):
        key = (line.vat_category, _rate(line.vat_category, line.vat_rate))
        taxable[key] = taxable.get(key, ZERO) + line_net
    for ac in doc.allowances_charges:
        key = (ac.vat_category, _rate(ac.vat_category, ac.vat_rate))
        taxable[key] = taxable.get(key, ZERO) + quantize(ac.signed, places)

    groups = []
    for category in sorted({cat for cat, _ in taxable}, key=lambda c: c.value):
        pairs = ((rate, basis) for (cat, rate), basis in taxable.items() if cat is category)
        code, reason = doc.exemption(category)
        for rate, basis, tax in reversed(tax_groups(pairs, cur, doc.rounding)):
            groups.append(VatGroup(category, rate, basis, tax, code, reason))
    tax_total = sum((g.tax for g in groups), ZERO)
    gross = net + tax_total
    prepaid = quantize(doc.prepaid, places)
    return Totals(
        currency=cur,
        line_total=line_total,
        allowance_total=allowance_total,
        charge_total=charge_total,
        net=net,
        vat_groups=tuple(groups),
        tax=tax_total,
        gross=gross,
        prepaid=prepaid,
        payable=gross - prepaid,
    )


def _rate(category: VatCategory, rate: Decimal) -> Decimal:
    # categories other than S carry 0 % (BR-Z-05, BR-E-05, BR-AE-05, BR-IC-05); O carries none
    if category is VatCategory.STANDARD:
        return rate
    return ZERO
