"""Reverse charge from the invoice to the e-invoice: an invoice assembled for a reverse-charge
customer carries every line at 0 % (sessions, services, discounts), and its XRechnung states VAT
category AE with the exemption reason VATEX-EU-AE, valid against the official rules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

from runtime.documents import render
from runtime.documents.demo import DEMO_CUSTOMERS, demo_invoice_input
from runtime.documents.from_invoice import BilledLine, document_from_invoice
from runtime.documents.model import VatCategory
from runtime.invoicing import PaymentTerms, PeriodDiscount, ServiceItem, assemble_invoice, period_ending
from runtime.rated import RatedLine

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
