"""UBL 2.1 Invoice and CreditNote from the document model (XRechnung 3.0, Peppol BIS Billing 3.0).

One builder for both roots: the element sequences differ only where UBL's schema orders them
differently (credit notes have no ``DueDate`` and put ``AllowanceCharge`` later), so the builder
asks the root and never copies a template per document kind.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from runtime.documents.formats import XmlFormat, amount_text, check_format
from runtime.documents.model import (
    Address,
    AllowanceCharge,
    Document,
    Line,
    VatCategory,
)
from runtime.money import minor_unit

__all__ = ["NS", "build"]

NS = {
    "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
_CAC = f"{{{NS['cac']}}}"
_CBC = f"{{{NS['cbc']}}}"


def _num(value: Decimal) -> str:
    """Quantities and prices: exact, no trailing zeros, never exponent notation."""
    text = format(value.normalize(), "f")
    return text


class _Builder:
    def __init__(self, doc: Document, fmt: XmlFormat) -> None:
        self.doc = doc
        self.fmt = fmt
        self.places = minor_unit(doc.currency)

    # -- tiny helpers -------------------------------------------------------------------------
    def cac(self, parent: etree._Element, name: str) -> etree._Element:
        return etree.SubElement(parent, _CAC + name)

    def cbc(
        self, parent: etree._Element, name: str, text: str, **attrs: str
    ) -> etree._Element:
        el = etree.SubElement(parent, _CBC + name, attrs)
        el.text = text
        return el

    def amount(self, parent: etree._Element, name: str, value: Decimal) -> etree._Element:
        return self.cbc(parent, name, amount_text(value, self.places), currencyID=self.doc.currency)

    # -- document -----------------------------------------------------------------------------
    def build(self) -> bytes:
        doc, fmt = self.doc, self.fmt
        credit = doc.kind.is_credit_note
        root_ns = NS["cn"] if credit else NS["inv"]
        root = etree.Element(
            f"{{{root_ns}}}{'CreditNote' if credit else 'Invoice'}",
            nsmap={None: root_ns, "cac": NS["cac"], "cbc": NS["cbc"]},
        )
        self.cbc(root, "CustomizationID", fmt.customization_id)
        if fmt.profile_id:
            self.cbc(root, "ProfileID", fmt.profile_id)
        self.cbc(root, "ID", doc.number)
        self.cbc(root, "IssueDate", doc.issue_date.isoformat())
        if not credit and doc.due_date:
            self.cbc(root, "DueDate", doc.due_date.isoformat())
        self.cbc(root, "CreditNoteTypeCode" if credit else "InvoiceTypeCode", doc.kind.type_code)
        if doc.note:
            self.cbc(root, "Note", doc.note)
        self.cbc(root, "DocumentCurrencyCode", doc.currency)
        if doc.buyer.buyer_reference:
            self.cbc(root, "BuyerReference", doc.buyer.buyer_reference)
        if doc.period:
            period = self.cac(root, "InvoicePeriod")
            self.cbc(period, "StartDate", doc.period.start.isoformat())
            self.cbc(period, "EndDate", doc.period.end.isoformat())
        if doc.preceding:
            ref = self.cac(self.cac(root, "BillingReference"), "InvoiceDocumentReference")
            self.cbc(ref, "ID", doc.preceding.number)
            if doc.preceding.issue_date:
                self.cbc(ref, "IssueDate", doc.preceding.issue_date.isoformat())
        self.seller(self.cac(root, "AccountingSupplierParty"))
        self.buyer(self.cac(root, "AccountingCustomerParty"))
        self.payment_means(root, credit)
        if doc.payment_terms:
            self.cbc(self.cac(root, "PaymentTerms"), "Note", doc.payment_terms)
        for ac in doc.allowances_charges:
            self.allowance_charge(root, ac, with_tax=True)
        self.tax_total(root)
        self.monetary_total(root)
        for line in doc.lines:
            self.line(root, line, credit)
        result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return result

    def seller(self, parent: etree._Element) -> None:
        s = self.doc.seller
        party = self.cac(parent, "Party")
        self.cbc(party, "EndpointID", s.electronic_address.value, schemeID=s.electronic_address.scheme)
        if s.identifier:
            self.cbc(self.cac(party, "PartyIdentification"), "ID", s.identifier)
        elif not self.doc.vat_ids_in_xml and not s.registration_id and s.tax_number:
            # without its VAT ID the seller still needs an identifier (BR-CO-26): its tax number
            self.cbc(self.cac(party, "PartyIdentification"), "ID", s.tax_number)
        creditor_id = self.doc.payment.creditor_id or s.creditor_id
        if self.doc.payment.is_direct_debit and creditor_id:
            # BT-90 lives on the seller as a SEPA-scheme party identification
            self.cbc(self.cac(party, "PartyIdentification"), "ID", creditor_id, schemeID="SEPA")
        if s.trading_name:
            self.cbc(self.cac(party, "PartyName"), "Name", s.trading_name)
        self.address(party, s.address)
        if s.vat_id and self.doc.vat_ids_in_xml:
            self.tax_scheme(party, s.vat_id, "VAT")
        if s.tax_number:
            self.tax_scheme(party, s.tax_number, "FC")
        legal = self.cac(party, "PartyLegalEntity")
        self.cbc(legal, "RegistrationName", s.legal_name)
        if s.registration_id and not self.doc.vat_ids_in_xml:
            # without its VAT ID the seller is identified by its legal registration (BT-30, BR-CO-26)
            self.cbc(legal, "CompanyID", s.registration_id)
        if s.registration_id:
            self.cbc(legal, "CompanyLegalForm", s.registration_id)
        contact = self.cac(party, "Contact")
        self.cbc(contact, "Name", s.contact.name)
        self.cbc(contact, "Telephone", s.contact.phone)
        self.cbc(contact, "ElectronicMail", s.contact.email)

    def buyer(self, parent: etree._Element) -> None:
        b = self.doc.buyer
        party = self.cac(parent, "Party")
        self.cbc(party, "EndpointID", b.electronic_address.value, schemeID=b.electronic_address.scheme)
        if b.customer_number:
            # BT-46, the buyer identifier: the seller's customer number (no scheme: the seller's own)
            self.cbc(self.cac(party, "PartyIdentification"), "ID", b.customer_number)
        self.address(party, b.address)
        if b.vat_id and self.doc.vat_ids_in_xml:
            self.tax_scheme(party, b.vat_id, "VAT")
        self.cbc(self.cac(party, "PartyLegalEntity"), "RegistrationName", b.name)
        if b.contact_name:
            self.cbc(self.cac(party, "Contact"), "Name", b.contact_name)

    def address(self, party: etree._Element, a: Address) -> None:
        addr = self.cac(party, "PostalAddress")
        self.cbc(addr, "StreetName", a.street)
        if a.additional:
            self.cbc(addr, "AdditionalStreetName", a.additional)
        self.cbc(addr, "CityName", a.city)
        self.cbc(addr, "PostalZone", a.postal_code)
        self.cbc(self.cac(addr, "Country"), "IdentificationCode", a.country)

    def tax_scheme(self, party: etree._Element, company_id: str, scheme: str) -> None:
        pts = self.cac(party, "PartyTaxScheme")
        self.cbc(pts, "CompanyID", company_id)
        self.cbc(self.cac(pts, "TaxScheme"), "ID", scheme)

    def payment_means(self, root: etree._Element, credit: bool) -> None:
        doc, p = self.doc, self.doc.payment
        pm = self.cac(root, "PaymentMeans")
        self.cbc(pm, "PaymentMeansCode", p.code)
        if credit and doc.due_date:
            self.cbc(pm, "PaymentDueDate", doc.due_date.isoformat())
        self.cbc(pm, "PaymentID", p.remittance or doc.number)
        if p.is_direct_debit:
            mandate = self.cac(pm, "PaymentMandate")
            if p.mandate_reference:
                self.cbc(mandate, "ID", p.mandate_reference)
            if p.debtor_iban:
                self.cbc(self.cac(mandate, "PayerFinancialAccount"), "ID", p.debtor_iban)
            return
        iban = p.iban or doc.seller.iban
        if iban:
            account = self.cac(pm, "PayeeFinancialAccount")
            self.cbc(account, "ID", iban)
            self.cbc(account, "Name", p.account_name or doc.seller.legal_name)
            bic = p.bic if p.iban else (p.bic or doc.seller.bic)
            if bic:
                self.cbc(self.cac(account, "FinancialInstitutionBranch"), "ID", bic)

    def tax_category(
        self, parent: etree._Element, tag: str, category: VatCategory, rate: Decimal,
        reason: tuple[str | None, str | None] | None = None,
    ) -> None:
        cat = self.cac(parent, tag)
        self.cbc(cat, "ID", category.value)
        # the breakdown (with its reason) states 0 % for O too: XRechnung wants every group's rate
        # (BR-DE-14); EN 16931 forbids a rate on O lines and allowances only (BR-O-05..07)
        if category.carries_rate or reason is not None:
            self.cbc(cat, "Percent", _num(rate))
        if reason:
            code, text = reason
            if code:
                self.cbc(cat, "TaxExemptionReasonCode", code)
            if text:
                self.cbc(cat, "TaxExemptionReason", text)
        self.cbc(self.cac(cat, "TaxScheme"), "ID", "VAT")

    def allowance_charge(self, parent: etree._Element, ac: AllowanceCharge, with_tax: bool) -> None:
        el = self.cac(parent, "AllowanceCharge")
        self.cbc(el, "ChargeIndicator", "true" if ac.is_charge else "false")
        if ac.reason_code:
            self.cbc(el, "AllowanceChargeReasonCode", ac.reason_code)
        self.cbc(el, "AllowanceChargeReason", ac.reason)
        if ac.percent is not None and ac.base_amount is not None:
            self.cbc(el, "MultiplierFactorNumeric", _num(ac.percent))
        self.amount(el, "Amount", ac.amount)
        if ac.percent is not None and ac.base_amount is not None:
            self.amount(el, "BaseAmount", ac.base_amount)
        if with_tax:
            rate = ac.vat_rate if ac.vat_category is VatCategory.STANDARD else Decimal(0)
            self.tax_category(el, "TaxCategory", ac.vat_category, rate)

    def tax_total(self, root: etree._Element) -> None:
        totals = self.doc.totals
        tt = self.cac(root, "TaxTotal")
        self.amount(tt, "TaxAmount", totals.tax)
        for g in totals.vat_groups:
            sub = self.cac(tt, "TaxSubtotal")
            self.amount(sub, "TaxableAmount", g.taxable)
            self.amount(sub, "TaxAmount", g.tax)
            self.tax_category(
                sub, "TaxCategory", g.category, g.rate, (g.exemption_code, g.exemption_reason)
            )

    def monetary_total(self, root: etree._Element) -> None:
        t = self.doc.totals
        lmt = self.cac(root, "LegalMonetaryTotal")
        self.amount(lmt, "LineExtensionAmount", t.line_total)
        self.amount(lmt, "TaxExclusiveAmount", t.net)
        self.amount(lmt, "TaxInclusiveAmount", t.gross)
        if any(not ac.is_charge for ac in self.doc.allowances_charges):
            self.amount(lmt, "AllowanceTotalAmount", t.allowance_total)
        if any(ac.is_charge for ac in self.doc.allowances_charges):
            self.amount(lmt, "ChargeTotalAmount", t.charge_total)
        if t.prepaid:
            self.amount(lmt, "PrepaidAmount", t.prepaid)
        self.amount(lmt, "PayableAmount", t.payable)

    def line(self, root: etree._Element, line: Line, credit: bool) -> None:
        el = self.cac(root, "CreditNoteLine" if credit else "InvoiceLine")
        self.cbc(el, "ID", line.id)
        self.cbc(
            el, "CreditedQuantity" if credit else "InvoicedQuantity", _num(line.quantity),
            unitCode=line.unit_code,
        )
        self.amount(el, "LineExtensionAmount", line.net(self.doc.currency))
        if line.period:
            period = self.cac(el, "InvoicePeriod")
            self.cbc(period, "StartDate", line.period.start.isoformat())
            self.cbc(period, "EndDate", line.period.end.isoformat())
        for ac in line.allowances_charges:
            self.allowance_charge(el, ac, with_tax=False)
        item = self.cac(el, "Item")
        if line.description:
            self.cbc(item, "Description", line.description)
        self.cbc(item, "Name", line.name)
        rate = line.vat_rate if line.vat_category is VatCategory.STANDARD else Decimal(0)
        self.tax_category(item, "ClassifiedTaxCategory", line.vat_category, rate)
        price = self.cac(el, "Price")
        self.amount(price, "PriceAmount", line.unit_price).text = _num(line.unit_price)


def build(doc: Document, fmt: XmlFormat) -> bytes:
    """Serialize ``doc`` as UBL 2.1 for ``fmt`` (XRechnung or Peppol)."""
    if fmt.syntax != "ubl":
        raise ValueError(f"{fmt.name} is not a UBL format")
    check_format(doc, fmt)
    return _Builder(doc, fmt).build()
