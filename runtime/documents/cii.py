"""UN/CEFACT CII D16B CrossIndustryInvoice from the document model (XRechnung 3.0, Factur-X EN 16931).

CII has one root for every document kind: the type code (380/381/389) says what it is, and a
credit note carries positive amounts just like UBL's CreditNote.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TypeAlias

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from runtime.documents.formats import XmlFormat, amount_text, check_format
from runtime.documents.model import Address, AllowanceCharge, Document, Line, VatCategory
from runtime.money import minor_unit

__all__ = ["NS", "build"]

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
_RSM = f"{{{NS['rsm']}}}"
_RAM = f"{{{NS['ram']}}}"
_UDT = f"{{{NS['udt']}}}"
_QDT = f"{{{NS['qdt']}}}"

E: TypeAlias = etree._Element


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


class _Builder:
    def __init__(self, doc: Document, fmt: XmlFormat) -> None:
        self.doc = doc
        self.fmt = fmt
        self.places = minor_unit(doc.currency)

    def ram(self, parent: E, name: str, text: str | None = None, **attrs: str) -> E:
        el: E = etree.SubElement(parent, _RAM + name, attrs)
        if text is not None:
            el.text = text
        return el

    def amount(self, parent: E, name: str, value: Decimal, currency: bool = False) -> E:
        attrs = {"currencyID": self.doc.currency} if currency else {}
        return self.ram(parent, name, amount_text(value, self.places), **attrs)

    def date_el(self, parent: E, name: str, value: date, qualified: bool = False) -> None:
        holder = self.ram(parent, name)
        ns = _QDT if qualified else _UDT
        el = etree.SubElement(holder, ns + "DateTimeString", format="102")
        el.text = value.strftime("%Y%m%d")

    def build(self) -> bytes:
        doc, fmt = self.doc, self.fmt
        root = etree.Element(_RSM + "CrossIndustryInvoice", nsmap=dict(NS))
        ctx = etree.SubElement(root, _RSM + "ExchangedDocumentContext")
        if fmt.profile_id:
            self.ram(self.ram(ctx, "BusinessProcessSpecifiedDocumentContextParameter"), "ID",
                     fmt.profile_id)
        self.ram(self.ram(ctx, "GuidelineSpecifiedDocumentContextParameter"), "ID",
                 fmt.customization_id)

        header = etree.SubElement(root, _RSM + "ExchangedDocument")
        self.ram(header, "ID", doc.number)
        self.ram(header, "TypeCode", doc.kind.type_code)
        self.date_el(header, "IssueDateTime", doc.issue_date)
        if doc.note:
            self.ram(self.ram(header, "IncludedNote"), "Content", doc.note)

        tx = etree.SubElement(root, _RSM + "SupplyChainTradeTransaction")
        for line in doc.lines:
            self.line(tx, line)
        self.agreement(self.ram(tx, "ApplicableHeaderTradeAgreement"))
        self.ram(tx, "ApplicableHeaderTradeDelivery")
        self.settlement(self.ram(tx, "ApplicableHeaderTradeSettlement"))
        result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return result

    # -- lines --------------------------------------------------------------------------------
    def line(self, tx: E, line: Line) -> None:
        item = self.ram(tx, "IncludedSupplyChainTradeLineItem")
        self.ram(self.ram(item, "AssociatedDocumentLineDocument"), "LineID", line.id)
        product = self.ram(item, "SpecifiedTradeProduct")
        self.ram(product, "Name", line.name)
        if line.description:
            self.ram(product, "Description", line.description)
        agreement = self.ram(item, "SpecifiedLineTradeAgreement")
        self.ram(self.ram(agreement, "NetPriceProductTradePrice"), "ChargeAmount",
                 _num(line.unit_price))
        delivery = self.ram(item, "SpecifiedLineTradeDelivery")
        self.ram(delivery, "BilledQuantity", _num(line.quantity), unitCode=line.unit_code)
        settlement = self.ram(item, "SpecifiedLineTradeSettlement")
        rate = line.vat_rate if line.vat_category is VatCategory.STANDARD else Decimal(0)
        self.trade_tax(settlement, line.vat_category, rate)
        if line.period:
            self.period(settlement, line.period.start, line.period.end)
        for ac in line.allowances_charges:
            self.allowance_charge(settlement, ac, with_tax=False)
        summation = self.ram(settlement, "SpecifiedTradeSettlementLineMonetarySummation")
        self.amount(summation, "LineTotalAmount", line.net(self.doc.currency))

    def trade_tax(
        self, parent: E, category: VatCategory, rate: Decimal,
        calculated: Decimal | None = None, basis: Decimal | None = None,
        reason: tuple[str | None, str | None] = (None, None),
    ) -> None:
        tax = self.ram(parent, "ApplicableTradeTax")
        if calculated is not None:
            self.amount(tax, "CalculatedAmount", calculated)
        self.ram(tax, "TypeCode", "VAT")
        code, text = reason
        if text:
            self.ram(tax, "ExemptionReason", text)
        if basis is not None:
            self.amount(tax, "BasisAmount", basis)
        self.ram(tax, "CategoryCode", category.value)
        if code:
            self.ram(tax, "ExemptionReasonCode", code)
        # the breakdown (it has a basis) states 0 % for O too: XRechnung wants every group's rate
        # (BR-DE-14); EN 16931 forbids a rate on O lines and allowances only (BR-O-05..07)
        if category.carries_rate or basis is not None:
            self.ram(tax, "RateApplicablePercent", _num(rate))

    def period(self, parent: E, start: date, end: date) -> None:
        period = self.ram(parent, "BillingSpecifiedPeriod")
        self.date_el(period, "StartDateTime", start)
        self.date_el(period, "EndDateTime", end)

    def allowance_charge(self, parent: E, ac: AllowanceCharge, with_tax: bool) -> None:
        el = self.ram(parent, "SpecifiedTradeAllowanceCharge")
        indicator = self.ram(el, "ChargeIndicator")
        etree.SubElement(indicator, _UDT + "Indicator").text = "true" if ac.is_charge else "false"
        if ac.percent is not None and ac.base_amount is not None:
            self.ram(el, "CalculationPercent", _num(ac.percent))
            self.amount(el, "BasisAmount", ac.base_amount)
        self.amount(el, "ActualAmount", ac.amount)
        if ac.reason_code:
            self.ram(el, "ReasonCode", ac.reason_code)
        self.ram(el, "Reason", ac.reason)
        if with_tax:
            tax = self.ram(el, "CategoryTradeTax")
            self.ram(tax, "TypeCode", "VAT")
            self.ram(tax, "CategoryCode", ac.vat_category.value)
            if ac.vat_category.carries_rate:
                rate = ac.vat_rate if ac.vat_category is VatCategory.STANDARD else Decimal(0)
                self.ram(tax, "RateApplicablePercent", _num(rate))

    # -- header -------------------------------------------------------------------------------
    def agreement(self, agreement: E) -> None:
        doc = self.doc
        if doc.buyer.buyer_reference:
            self.ram(agreement, "BuyerReference", doc.buyer.buyer_reference)
        s = doc.seller
        seller = self.ram(agreement, "SellerTradeParty")
        # without its VAT ID (category O) the seller still needs an identifier (BR-CO-26): its
        # legal registration (BT-30), else its tax number as the seller identifier (BT-29)
        legal_id = s.registration_id if not doc.vat_ids_in_xml else None
        if s.identifier:
            self.ram(seller, "ID", s.identifier)
        elif not doc.vat_ids_in_xml and not legal_id and s.tax_number:
            self.ram(seller, "ID", s.tax_number)
        self.ram(seller, "Name", s.legal_name)
        if s.registration_id:
            self.ram(seller, "Description", s.registration_id)
        if s.trading_name or legal_id:
            org = self.ram(seller, "SpecifiedLegalOrganization")
            if legal_id:
                self.ram(org, "ID", legal_id)
            if s.trading_name:
                self.ram(org, "TradingBusinessName", s.trading_name)
        contact = self.ram(seller, "DefinedTradeContact")
        self.ram(contact, "PersonName", s.contact.name)
        self.ram(self.ram(contact, "TelephoneUniversalCommunication"), "CompleteNumber",
                 s.contact.phone)
        self.ram(self.ram(contact, "EmailURIUniversalCommunication"), "URIID", s.contact.email)
        self.address(seller, s.address)
        self.ram(self.ram(seller, "URIUniversalCommunication"), "URIID",
                 s.electronic_address.value, schemeID=s.electronic_address.scheme)
        if s.vat_id and doc.vat_ids_in_xml:
            self.ram(self.ram(seller, "SpecifiedTaxRegistration"), "ID", s.vat_id, schemeID="VA")
        if s.tax_number:
            self.ram(self.ram(seller, "SpecifiedTaxRegistration"), "ID", s.tax_number,
                     schemeID="FC")

        b = doc.buyer
        buyer = self.ram(agreement, "BuyerTradeParty")
        if b.customer_number:
            self.ram(buyer, "ID", b.customer_number)  # BT-46: the seller's customer number
        self.ram(buyer, "Name", b.name)
        if b.contact_name:
            self.ram(self.ram(buyer, "DefinedTradeContact"), "PersonName", b.contact_name)
        self.address(buyer, b.address)
        self.ram(self.ram(buyer, "URIUniversalCommunication"), "URIID",
                 b.electronic_address.value, schemeID=b.electronic_address.scheme)
        if b.vat_id and doc.vat_ids_in_xml:
            self.ram(self.ram(buyer, "SpecifiedTaxRegistration"), "ID", b.vat_id, schemeID="VA")

    def address(self, party: E, a: Address) -> None:
        addr = self.ram(party, "PostalTradeAddress")
        self.ram(addr, "PostcodeCode", a.postal_code)
        self.ram(addr, "LineOne", a.street)
        if a.additional:
            self.ram(addr, "LineTwo", a.additional)
        self.ram(addr, "CityName", a.city)
        self.ram(addr, "CountryID", a.country)

    def settlement(self, st: E) -> None:
        doc, p, t = self.doc, self.doc.payment, self.doc.totals
        creditor_id = p.creditor_id or doc.seller.creditor_id
        if p.is_direct_debit and creditor_id:
            self.ram(st, "CreditorReferenceID", creditor_id)
        self.ram(st, "PaymentReference", p.remittance or doc.number)
        self.ram(st, "InvoiceCurrencyCode", doc.currency)
        means = self.ram(st, "SpecifiedTradeSettlementPaymentMeans")
        self.ram(means, "TypeCode", p.code)
        if p.is_direct_debit:
            if p.debtor_iban:
                self.ram(self.ram(means, "PayerPartyDebtorFinancialAccount"), "IBANID",
                         p.debtor_iban)
        else:
            iban = p.iban or doc.seller.iban
            if iban:
                account = self.ram(means, "PayeePartyCreditorFinancialAccount")
                self.ram(account, "IBANID", iban)
                self.ram(account, "AccountName", p.account_name or doc.seller.legal_name)
                bic = p.bic if p.iban else (p.bic or doc.seller.bic)
                if bic:
                    self.ram(self.ram(means, "PayeeSpecifiedCreditorFinancialInstitution"),
                             "BICID", bic)
        for g in t.vat_groups:
            self.trade_tax(st, g.category, g.rate, g.tax, g.taxable,
                           (g.exemption_code, g.exemption_reason))
        if doc.period:
            self.period(st, doc.period.start, doc.period.end)
        for ac in doc.allowances_charges:
            self.allowance_charge(st, ac, with_tax=True)
        if doc.payment_terms or doc.due_date or p.is_direct_debit:
            terms = self.ram(st, "SpecifiedTradePaymentTerms")
            if doc.payment_terms:
                self.ram(terms, "Description", doc.payment_terms)
            if doc.due_date:
                self.date_el(terms, "DueDateDateTime", doc.due_date)
            if p.is_direct_debit and p.mandate_reference:
                self.ram(terms, "DirectDebitMandateID", p.mandate_reference)
        summation = self.ram(st, "SpecifiedTradeSettlementHeaderMonetarySummation")
        self.amount(summation, "LineTotalAmount", t.line_total)
        if any(ac.is_charge for ac in doc.allowances_charges):
            self.amount(summation, "ChargeTotalAmount", t.charge_total)
        if any(not ac.is_charge for ac in doc.allowances_charges):
            self.amount(summation, "AllowanceTotalAmount", t.allowance_total)
        self.amount(summation, "TaxBasisTotalAmount", t.net)
        self.amount(summation, "TaxTotalAmount", t.tax, currency=True)
        self.amount(summation, "GrandTotalAmount", t.gross)
        if t.prepaid:
            self.amount(summation, "TotalPrepaidAmount", t.prepaid)
        self.amount(summation, "DuePayableAmount", t.payable)
        if doc.preceding:
            ref = self.ram(st, "InvoiceReferencedDocument")
            self.ram(ref, "IssuerAssignedID", doc.preceding.number)
            if doc.preceding.issue_date:
                self.date_el(ref, "FormattedIssueDateTime", doc.preceding.issue_date, qualified=True)


def build(doc: Document, fmt: XmlFormat) -> bytes:
    """Serialize ``doc`` as CII D16B for ``fmt`` (XRechnung CII or Factur-X EN 16931)."""
    if fmt.syntax != "cii":
        raise ValueError(f"{fmt.name} is not a CII format")
    check_format(doc, fmt)
    return _Builder(doc, fmt).build()
