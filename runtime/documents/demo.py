"""A representative set of documents for ``evbill demo`` (and the tests and benchmark that want
realistic input): invoices come out of the real billing assembly (``runtime.invoicing``) and go
through ``document_from_invoice``, so the demo shows the path month-end takes.

``write_demo_documents(out_dir)`` writes, per document, every format it is issued in, and returns
the paths. Pure apart from writing those files; all dates are fixed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from runtime.documents import render
from runtime.documents.from_invoice import (
    BilledLine,
    CustomerProfile,
    InvoiceInput,
    PaymentProfile,
    SessionFacts,
    TenantProfile,
    document_from_invoice,
    partial_credit,
    reversal_of,
    self_billing_document,
)
from runtime.documents.model import (
    Address,
    Branding,
    Buyer,
    Contact,
    Document,
    ElectronicAddress,
    Seller,
)
from runtime.invoicing import PaymentTerms, PeriodDiscount, ServiceItem, assemble_invoice, period_ending
from runtime.rated import RatedLine

__all__ = [
    "DEMO_CUSTOMERS",
    "DEMO_TENANT",
    "demo_documents",
    "demo_invoice_input",
    "write_demo_documents",
]

DEMO_TENANT = TenantProfile(
    seller=Seller(
        legal_name="Stadtwerke Musterstadt GmbH",
        trading_name="Musterstadt Laden",
        address=Address("Energieweg 12", "Musterstadt", "12345", "DE"),
        electronic_address=ElectronicAddress("DE136695976", "9930"),
        contact=Contact("Erika Beispiel", "+49 30 1234567", "billing@stadtwerke-musterstadt.de"),
        vat_id="DE136695976",
        tax_number="12/345/67890",
        registration_id="HRB 12345 B, Amtsgericht Charlottenburg",
        iban="DE02120300000000202051",
        bic="BYLADEM1001",
        bank_name="Deutsche Kreditbank",
        creditor_id="DE98ZZZ09999999999",
    ),
    branding=Branding(primary_color="#0b5d3b", secondary_color="#e6f2ec"),
)

DEMO_CUSTOMERS: dict[str, CustomerProfile] = {
    "b2c": CustomerProfile(
        name="Jonas Fahrer", address=Address("Lindenstraße 5", "Berlin", "10969", "DE"),
        email="jonas.fahrer@example.org", customer_number="K-100234", language="de"),
    "b2c_en": CustomerProfile(
        name="Jane Driver", address=Address("Kastanienallee 9", "Berlin", "10435", "DE"),
        email="jane.driver@example.org", customer_number="K-100235", language="en"),
    "b2b": CustomerProfile(
        name="Flotten Logistik AG", address=Address("Hafenstraße 1", "Hamburg", "20457", "DE"),
        email="rechnung@flotten-logistik.example", is_business=True, vat_id="DE811569869",
        customer_number="K-200511", contact_name="Anna Einkauf",
        peppol_id=ElectronicAddress("DE811569869", "9930"), formats=("facturx-pdf", "xrechnung-cii")),
    "b2b_rc": CustomerProfile(
        name="Alpen Mobility GmbH", address=Address("Mariahilfer Straße 20", "Wien", "1070", "AT"),
        email="invoices@alpen-mobility.example", is_business=True, vat_id="ATU13585627",
        customer_number="K-300002", language="en", reverse_charge=True,
        peppol_id=ElectronicAddress("ATU13585627", "9914"),
        formats=("xrechnung-ubl", "xrechnung-cii", "peppol-ubl", "pdf")),
    "public": CustomerProfile(
        name="Stadt Musterstadt, Fuhrpark", address=Address("Rathausplatz 1", "Musterstadt", "12345", "DE"),
        email="e-rechnung@musterstadt.example", is_business=True, customer_number="K-400001",
        leitweg_id="04011000-12345-03"),
}

PAYMENTS = {
    "b2c": PaymentProfile("sepa_direct_debit", "MANDATE-100234", "DE75512108001245126199"),
    "b2c_en": PaymentProfile("sepa_direct_debit", "MANDATE-100235", "DE75512108001245126199"),
}

_LOCATIONS = (("Berlin Kreuzberg, Oranienstr. 5", "DE*SWM*E101*1"), ("Hamburg Hafen P3", "DE*SWM*E204*2"),
              ("Musterstadt Rathaus", "DE*SWM*E300*1"))


def _sessions(n: int, account: str, rate: D) -> tuple[list[RatedLine], list[SessionFacts]]:
    """``n`` rated sessions as rating produces them: start fee, energy, sometimes a blocking fee
    (per minute, capped per session by a cap line) and a promotion."""
    lines: list[RatedLine] = []
    facts: list[SessionFacts] = []
    start = datetime(2026, 10, 1, 5, 30, tzinfo=UTC)
    for i in range(n):
        sid = f"{account}-S{1000 + i}"
        kwh = D("12.345") + D(i) * D("1.111")
        begin = start + timedelta(days=i, hours=i % 7, minutes=13 * i % 60)
        lines.append(RatedLine("start_fee", "start fee", D(1), "session", D("0.35"), D("0.35"), rate, "EUR",
                               "tariff ac_public: start_fee", sid))
        lines.append(RatedLine("energy", "energy", kwh, "kWh", D("0.49"), kwh * D("0.49"), rate, "EUR",
                               "tariff ac_public: energy", sid))
        parking = D(0)
        if i % 4 == 0:
            # a blocking fee per minute after the free time, capped per session as the rating
            # engine does it: the priced minutes, then a negative cap line for what exceeds 12.00
            parking = D(130 + 37 * i)
            rule = "tariff ac_public: parking, line 14"
            fee = parking * D("0.10")
            lines.append(RatedLine("parking", "Parking time", parking, "min", D("0.10"), fee, rate, "EUR",
                                   rule, sid))
            if fee > D("12.00"):
                excess = fee - D("12.00")
                lines.append(RatedLine("cap", "Parking time: capped at 12.00", D(1), "each", -excess, -excess,
                                       rate, "EUR", rule, sid, "parking"))
        if i % 5 == 0:
            lines.append(RatedLine("discount", "Winteraktion", D(1), "each", D("-0.50"), D("-0.50"), rate,
                                   "EUR", "discount winter_promo", sid))
        location, evse = _LOCATIONS[i % len(_LOCATIONS)]
        facts.append(SessionFacts(sid, begin, "Europe/Berlin", location, evse, f"DE-SWM-C{4000 + i % 3}", kwh,
                                  D(35 + 3 * i), parking))
    return lines, facts


def demo_invoice_input(case: str = "b2c", sessions: int = 20, number: str = "RE-2026-000001") -> InvoiceInput:
    """An ``InvoiceInput`` built from ``runtime.invoicing.assemble_invoice`` output."""
    customer = DEMO_CUSTOMERS[case]
    rate = D(0) if customer.reverse_charge else D(19)
    period = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 11, 1, 12, tzinfo=UTC))
    period_lines, facts = _sessions(sessions, customer.customer_number or case, rate)
    services = [ServiceItem("Ladekarte (RFID)", D(2), D("4.90"), rate, "each", "rfid_card")] if customer.is_business else []
    discounts = [PeriodDiscount("Flottenrabatt 3 %", percent=D(3))] if customer.is_business else []
    draft = assemble_invoice(
        account_id=case, currency="EUR", period=period, issue_date=date(2026, 11, 2),
        terms=PaymentTerms("net", 14), period_lines=period_lines, sessions=sessions,
        energy_kwh=sum((f.energy_kwh for f in facts), D(0)), services=services, discounts=discounts)
    lines = tuple(BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price,
                             ln.net, ln.tax_rate, ln.session_id, ln.rule) for ln in draft.lines)
    return InvoiceInput(
        invoice_id=f"inv_demo_{case}", kind=draft.kind, number=number, issue_date=draft.issue_date,
        due_date=draft.due_date, currency="EUR", period_start=period.local_start, period_end=period.local_end,
        payment_terms=PaymentTerms("net", 14).text(), lines=lines, net_total=draft.net_total,
        tax_total=draft.tax_total, tenant=DEMO_TENANT, customer=customer,
        payment=PAYMENTS.get(case, PaymentProfile()), sessions=tuple(facts),
    )


HOST = Seller(
    legal_name="Hotel Adler KG",
    address=Address("Marktplatz 3", "Lindau", "88131", "DE"),
    electronic_address=ElectronicAddress("DE129273398", "9930"),
    contact=Contact("Hans Adler", "+49 8382 4711", "hans@hotel-adler.example"),
    vat_id="DE129273398",
    iban="DE89370400440532013000",
    bic="COBADEFFXXX",
)

_TENANT_AS_BUYER = Buyer(
    name=DEMO_TENANT.seller.legal_name, address=DEMO_TENANT.seller.address,
    electronic_address=DEMO_TENANT.seller.electronic_address, is_business=True,
    vat_id=DEMO_TENANT.seller.vat_id, buyer_reference="REVSHARE-ADLER",
)


def demo_documents() -> list[tuple[str, Document, tuple[str, ...]]]:
    """(name, document, formats) for every case the demo shows."""
    b2c = document_from_invoice(demo_invoice_input("b2c", 20, "RE-2026-000001"))
    b2c_en = document_from_invoice(demo_invoice_input("b2c_en", 8, "RE-2026-000002"))
    b2b = document_from_invoice(demo_invoice_input("b2b", 12, "RE-2026-000003"))
    rc = document_from_invoice(demo_invoice_input("b2b_rc", 6, "RE-2026-000004"))
    public = document_from_invoice(demo_invoice_input("public", 5, "RE-2026-000005"))
    reversal = reversal_of(b2b, "GS-2026-000001", date(2026, 11, 10))
    partial = partial_credit(b2c, "GS-2026-000002", date(2026, 11, 12), [(b2c.lines[0].id, D(1))],
                             reason="Kulanz")
    self_billing = self_billing_document(
        number="GU-2026-000001", issue_date=date(2026, 11, 5), host=HOST, tenant=_TENANT_AS_BUYER,
        lines=[BilledLine(1, "revenue_share", "revenue_share", "Umsatzbeteiligung 30 % Oktober 2026", D(1),
                          "each", D("123.45"), D("123.45"), D(19)),
               BilledLine(2, "reimbursement", "energy", "Energieerstattung (Spotpreis + 0,02 €/kWh)",
                          D("310.2"), "kWh", D("0.1234"), D("38.28"), D(19))],
        period_start=date(2026, 10, 1), period_end=date(2026, 11, 1), branding=DEMO_TENANT.branding)
    return [
        ("invoice-b2c-with-statement", b2c, ("pdf", "statement-pdf", "xrechnung-cii")),
        ("invoice-b2c-english", b2c_en, ("pdf",)),
        ("invoice-b2b-facturx", b2b, ("facturx-pdf", "xrechnung-cii")),
        ("invoice-b2b-reverse-charge", rc, ("xrechnung-ubl", "xrechnung-cii", "peppol-ubl", "pdf")),
        ("invoice-public-xrechnung", public, ("xrechnung-ubl", "pdf")),
        ("credit-note-reversal", reversal, ("pdf", "xrechnung-ubl", "xrechnung-cii")),
        ("credit-note-partial", partial, ("pdf", "xrechnung-cii")),
        ("self-billing-site-host", self_billing, ("pdf", "xrechnung-ubl", "xrechnung-cii")),
    ]


_EXT = {"pdf": "pdf", "statement-pdf": "statement.pdf", "facturx-pdf": "facturx.pdf",
        "xrechnung-ubl": "xrechnung-ubl.xml", "xrechnung-cii": "xrechnung-cii.xml", "peppol-ubl": "peppol.xml"}


def write_demo_documents(out_dir: str | Path = Path("out") / "documents") -> list[Path]:
    """Render the demo set into ``out_dir`` (created if missing); returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc, formats in demo_documents():
        for fmt in formats:
            path = out / f"{name}.{doc.number}.{_EXT[fmt]}"
            path.write_bytes(render(doc, fmt))
            written.append(path)
    return written

