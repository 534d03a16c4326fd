"""Reverse charge from the invoice to the e-invoice: an invoice assembled for a reverse-charge
customer carries every line at 0 % (sessions, services, discounts), and its XRechnung states VAT
category AE with the exemption reason VATEX-EU-AE, valid against the official rules."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from facturx import get_facturx_xml_from_pdf

from runtime.documents import render
from runtime.documents.demo import DEMO_CUSTOMERS, demo_invoice_input
from runtime.documents.from_invoice import BilledLine, CustomerProfile, document_from_invoice
from runtime.documents.model import Address, VatCategory
from runtime.invoicing import PaymentTerms, PeriodDiscount, ServiceItem, assemble_invoice, period_ending
from runtime.rated import RatedLine
from runtime.tax import Treatment, customer_treatment, exemption
from tests.runtime.documents.helpers import pdf_text
from tests.runtime.documents.test_finance_reading import ENGLISH

from .conftest import explain


def test_reverse_charge_zeroes_every_line_and_the_einvoice_says_ae(validate: Any) -> None:
    case = next(k for k, c in DEMO_CUSTOMERS.items() if c.reverse_charge)
    period = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 11, 1, 12, tzinfo=UTC))
    draft = assemble_invoice(
        account_id=case, currency="EUR", period=period, issue_date=date(2026, 11, 2),
        terms=PaymentTerms("net", 14), period_lines=[
            RatedLine("energy", "Energy", D(10), "kWh", D("0.49"), D("4.90"), D(19), "EUR", "tariff t, line 3")],
        services=[ServiceItem("Ladekarte (RFID)", D(2), D("4.90"), D(19), "each", "rfid_card")],
        discounts=[PeriodDiscount("Flottenrabatt 3 %", percent=D(3))], reverse_charge=True)
    assert {ln.tax_rate for ln in draft.lines} == {D(0)} and draft.tax_total == 0
    base = demo_invoice_input(case, sessions=0)
    inp = dataclasses.replace(base, lines=tuple(
        BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price, ln.net,
                   ln.tax_rate, ln.session_id, ln.rule) for ln in draft.lines),
        net_total=draft.net_total, tax_total=draft.tax_total, sessions=())
    doc = document_from_invoice(inp)
    assert {g.category for g in doc.totals.vat_groups} == {VatCategory.REVERSE_CHARGE}
    xml = render(doc, "xrechnung-cii")
    assert b"VATEX-EU-AE" in xml and b"<ram:CategoryCode>AE</ram:CategoryCode>" in xml
    report = validate(xml)
    assert report.valid and not report.errors, explain(report)


# ------------------------------------------------------------------ exports outside the EU, exemptions

_ABROAD = {
    "CH": ("Helvetia Flotten AG", Address("Bahnhofstrasse 1", "Zürich", "8001", "CH"), "CHE-116.281.710 MWST"),
    "GB": ("Thames Fleet Ltd", Address("1 Wharf Road", "London", "N1 7GR", "GB"), "GB980780684"),
}


def _untaxed_invoice(treatment: Treatment, customer: CustomerProfile) -> Any:
    """An invoice assembled by billing for an untaxed treatment (sessions at 19 %, a service, a
    discount), as the documents get it from the stored invoice."""
    period = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 11, 1, 12, tzinfo=UTC))
    draft = assemble_invoice(
        account_id="acc", currency="EUR", period=period, issue_date=date(2026, 11, 2),
        terms=PaymentTerms("net", 14), period_lines=[
            RatedLine("energy", "Energy", D(10), "kWh", D("0.49"), D("4.90"), D(19), "EUR", "tariff t, line 3")],
        services=[ServiceItem("Ladekarte (RFID)", D(2), D("4.90"), D(19), "each", "rfid_card")],
        discounts=[PeriodDiscount("Flottenrabatt 3 %", percent=D(3))], treatment=treatment)
    assert {ln.tax_rate for ln in draft.lines} == {D(0)} and draft.tax_total == 0
    (group,) = draft.tax_groups
    assert (group.category, group.vatex) == (treatment.category, treatment.vatex)
    stored = group.to_dict()  # what billing writes on the invoice row (tax_groups)
    base = demo_invoice_input("b2b", sessions=0)
    customer = dataclasses.replace(customer, vat_category=stored["category"], vat_exemption_code=stored["vatex"],
                                   vat_exemption_reason=stored["reason"])
    inp = dataclasses.replace(base, customer=customer, lines=tuple(
        BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price, ln.net,
                   ln.tax_rate, ln.session_id, ln.rule) for ln in draft.lines),
        net_total=draft.net_total, tax_total=draft.tax_total, sessions=())
    return document_from_invoice(inp)


def _abroad(country: str, language: str) -> CustomerProfile:
    name, address, vat_id = _ABROAD[country]
    return dataclasses.replace(DEMO_CUSTOMERS["b2b"], name=name, address=address, vat_id=vat_id, peppol_id=None,
                               email="invoices@fleet.example", language=language, formats=())


@pytest.mark.parametrize(("country", "language"), [("CH", "de"), ("GB", "en"), ("CH", "en"), ("GB", "de")])
def test_a_business_outside_the_eu_is_invoiced_without_vat(validate: Any, country: str, language: str) -> None:
    customer = _abroad(country, language)
    treatment = customer_treatment("DE", country, True, customer.vat_id)
    assert treatment == Treatment("O", "VATEX-EU-O")
    doc = _untaxed_invoice(treatment, customer)
    (group,) = doc.totals.vat_groups
    assert group.category is VatCategory.NOT_SUBJECT and group.tax == 0
    reason = {"de": "Nicht im Inland steuerbare Leistung: der Leistungsempfänger ist außerhalb der EU ansässig",
              "en": "Not subject to VAT in the EU: the customer is established outside the EU"}[language]
    assert group.exemption_reason == reason
    text = " ".join(pdf_text(render(doc, "pdf")).split())
    assert reason in text
    assert ("nicht steuerbar" if language == "de" else "not subject to VAT") in text
    assert customer.vat_id in text  # the customer's tax ID on the page
    if language == "de":
        found = [w for w in ENGLISH if re.search(rf"\b{re.escape(w)}\b", text)]
        assert not found, found
    for fmt in ("xrechnung-ubl", "xrechnung-cii", "facturx-pdf"):
        xml = render(doc, fmt)
        if fmt == "facturx-pdf":
            xml = get_facturx_xml_from_pdf(xml)[1]
        assert b"VATEX-EU-O" in xml and reason.encode() in xml
        # EN 16931 BR-O-02: neither party's VAT identifier beside category O; the seller is
        # identified by its legal registration instead (BR-CO-26)
        assert b"DE136695976</cbc:CompanyID>" not in xml and b'schemeID="VA"' not in xml
        assert customer.vat_id.encode() not in xml
        report = validate(xml)
        assert report.valid and not report.errors, (fmt, explain(report))


@pytest.mark.parametrize(("country", "vat_id", "business", "expected"), [
    ("CH", "CHE-116.281.710 MWST", True, "O"),
    ("CH", "CHE-116.281.711 MWST", True, "S"),  # bad check digit
    ("CH", "", True, "S"),                      # no tax ID: no proof of a business
    ("GB", "GB980780684", True, "O"),
    ("GB", "GB980780684", False, "S"),          # a consumer
    ("US", "12-3456789", True, "O"),            # python-stdnum has no US VAT: any ID given
    ("AT", "ATU13585627", True, "AE"),
])
def test_customer_treatment_outside_the_eu(country: str, vat_id: str, business: bool, expected: str) -> None:
    assert customer_treatment("DE", country, business, vat_id).category == expected


@pytest.mark.parametrize("language", ["de", "en"])
def test_a_ruleset_exemption_is_category_e_with_its_vatex_code(validate: Any, language: str) -> None:
    note = "Steuerfrei nach § 4 Nr. 14 UStG" if language == "de" else "Exempt under § 4 No. 14 UStG"
    doc = _untaxed_invoice(exemption("VATEX-EU-132-1B", note), dataclasses.replace(
        DEMO_CUSTOMERS["b2b"], language=language, formats=()))
    (group,) = doc.totals.vat_groups
    assert (group.category, group.exemption_code, group.exemption_reason) == (VatCategory.EXEMPT,
                                                                               "VATEX-EU-132-1B", note)
    text = " ".join(pdf_text(render(doc, "pdf")).split())
    assert note in text and ("steuerfrei" if language == "de" else "exempt") in text
    if language == "de":
        found = [w for w in ENGLISH if re.search(rf"\b{re.escape(w)}\b", text)]
        assert not found, found
    for fmt in ("xrechnung-ubl", "xrechnung-cii", "facturx-pdf"):
        xml = render(doc, fmt)
        if fmt == "facturx-pdf":
            xml = get_facturx_xml_from_pdf(xml)[1]
        assert b"VATEX-EU-132-1B" in xml and note.encode() in xml
        assert b"<cbc:ID>E</cbc:ID>" in xml or b"<ram:CategoryCode>E</ram:CategoryCode>" in xml
        report = validate(xml)
        assert report.valid and not report.errors, (fmt, explain(report))


def test_an_exemption_without_a_reason_says_the_default_in_the_documents_language() -> None:
    de = _untaxed_invoice(exemption(), dataclasses.replace(DEMO_CUSTOMERS["b2b"], formats=()))
    assert [(g.exemption_code, g.exemption_reason) for g in de.totals.vat_groups] == [
        ("VATEX-EU-132", "Steuerfreie Leistung")]
    with pytest.raises(ValueError, match="not a VATEX code of an exemption"):
        exemption("VATEX-EU-O")
