"""Sample documents for the document x format matrix (also used by benchmarks/documents.py)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal as D

from runtime.documents.demo import DEMO_TENANT
from runtime.documents.model import (
    Address,
    AllowanceCharge,
    Branding,
    Buyer,
    Contact,
    Document,
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

SELLER = DEMO_TENANT.seller  # one sample seller for the demo set and the tests

BRANDING = Branding(
    primary_color="#0b5d3b",
    secondary_color="#e6f2ec",
    legal_lines=(
        "Stadtwerke Musterstadt GmbH · Sitz Musterstadt · HRB 12345 B, Amtsgericht Charlottenburg",
        "Geschäftsführung: Max Mustermann · USt-IdNr. DE136695976",
    ),
)

PRIVATE = Buyer(
    name="Jonas Fahrer",
    address=Address("Lindenstraße 5", "Berlin", "10969", "DE"),
    electronic_address=ElectronicAddress("jonas.fahrer@example.org", "EM"),
    buyer_reference="K-100234",
    customer_number="K-100234",
)

COMPANY = Buyer(
    name="Flotten Logistik AG",
    address=Address("Hafenstraße 1", "Hamburg", "20457", "DE", additional="Buchhaltung"),
    electronic_address=ElectronicAddress("DE811569869", "9930"),
    is_business=True,
    vat_id="DE811569869",
    buyer_reference="04011000-12345-03",
    customer_number="K-200511",
    contact_name="Anna Einkauf",
)

FOREIGN_COMPANY = Buyer(
    name="Alpen Mobility GmbH",
    address=Address("Mariahilfer Straße 20", "Wien", "1070", "AT"),
    electronic_address=ElectronicAddress("ATU13585627", "9914"),
    is_business=True,
    vat_id="ATU13585627",
    buyer_reference="PO-7781",
    customer_number="K-300002",
)

HOST = Seller(
    legal_name="Hotel Adler KG",
    address=Address("Marktplatz 3", "Lindau", "88131", "DE"),
    electronic_address=ElectronicAddress("DE129273398", "9930"),
    contact=Contact("Hans Adler", "+49 8382 4711", "hans@hotel-adler.de"),
    vat_id="DE129273398",
    iban="DE89370400440532013000",
    bic="COBADEFFXXX",
)

TENANT_AS_BUYER = Buyer(
    name="Stadtwerke Musterstadt GmbH",
    address=Address("Energieweg 12", "Musterstadt", "12345", "DE"),
    electronic_address=ElectronicAddress("DE136695976", "9930"),
    is_business=True,
    vat_id="DE136695976",
    buyer_reference="REVSHARE-ADLER",
)

PERIOD = Period(date(2026, 10, 1), date(2026, 10, 31))
TRANSFER = PaymentMeans("58")
DEBIT = PaymentMeans(
    "59", mandate_reference="MANDATE-100234", debtor_iban="DE75512108001245126199",
    debit_date=date(2026, 11, 20),
)


def statement_rows(n: int, start: datetime = datetime(2026, 10, 1, 7, 30)) -> tuple[StatementRow, ...]:
    rows = []
    for i in range(n):
        kwh = D("12.345") + D(i) * D("1.111")
        energy = (kwh * D("0.49")).quantize(D("0.01"))
        parking = D("2.40") if i % 4 == 0 else D(0)
        comps = [StatementAmount("Startgebühr", D("0.35")), StatementAmount("Energie", energy)]
        if parking:
            comps.append(StatementAmount("Blockiergebühr", parking))
        discounts = (StatementAmount("Winteraktion", D("0.50")),) if i % 5 == 0 else ()
        net = sum((c.amount for c in comps), D(0)) - sum((d.amount for d in discounts), D(0))
        rows.append(
            StatementRow(
                session_id=f"S-{1000 + i}",
                started_at=start + timedelta(days=i, hours=i % 7, minutes=13 * i % 60),
                location="Berlin Kreuzberg, Oranienstr. 5" if i % 2 else "Hamburg Hafen P3",
                evse=f"DE*SWM*E{100 + i % 9}*1",
                token=f"DE-SWM-C{4000 + i % 3}",
                energy_kwh=kwh,
                charging_minutes=D(35 + 3 * i),
                parking_minutes=D(24 if parking else 0),
                components=tuple(comps),
                discounts=discounts,
                tax=(net * D("0.19")).quantize(D("0.01")),
            )
        )
    return tuple(rows)


def _energy_lines(rows: tuple[StatementRow, ...]) -> tuple[Line, ...]:
    """Invoice lines that add up the statement (energy, start fees, blocking fee, promotion)."""
    kwh = sum((r.energy_kwh for r in rows), D(0))
    parking = sum((r.parking_minutes for r in rows), D(0))
    promo = sum((d.amount for r in rows for d in r.discounts), D(0))
    energy = Line(
        "1", "Ladestrom AC", kwh or D(1), "KWH", D("0.49"), description="Energie Oktober 2026",
        allowances_charges=(AllowanceCharge(False, promo, "Winteraktion"),) if promo else (),
    )
    lines = [energy, Line("2", "Startgebühr", D(len(rows) or 1), "C62", D("0.35"))]
    if parking:
        lines.append(Line("3", "Blockiergebühr", parking, "MIN", D("0.10")))
    return tuple(lines)


def make(case: str, language: str = "de", sessions: int = 3) -> Document:
    rows = statement_rows(sessions)
    base: dict[str, object] = {
        "kind": DocumentKind.INVOICE,
        "number": "RE-2026-99999",
        "issue_date": date(2026, 11, 3),
        "due_date": date(2026, 11, 17),
        "currency": "EUR",
        "seller": SELLER,
        "buyer": COMPANY,
        "lines": _energy_lines(rows),
        "payment": TRANSFER,
        "period": PERIOD,
        "language": language,
        "payment_terms": "Zahlbar innerhalb von 14 Tagen ohne Abzug" if language == "de"
        else "Payable within 14 days without deduction",
        "statement": rows,
        "branding": BRANDING,
    }
    if case == "b2c":
        base.update(buyer=PRIVATE, payment=DEBIT, number="RE-2026-00001")
    elif case == "b2b_domestic":
        base.update(number="RE-2026-00002")
    elif case == "b2b_reverse_charge":
        base.update(
            number="RE-2026-00003", buyer=FOREIGN_COMPANY,
            lines=tuple(
                dataclasses.replace(line, vat_category=VatCategory.REVERSE_CHARGE, vat_rate=D(0))
                for line in base["lines"]  # type: ignore[attr-defined]
            ),
        )
    elif case == "mixed_vat":
        base.update(
            number="RE-2026-00004",
            lines=base["lines"] + (  # type: ignore[operator]
                Line("4", "Kaffee am Ladepark", D(2), "C62", D("2.80"), vat_rate=D(7)),
                Line("5", "Ladekarte Versand Ausland", D(1), "C62", D("4.20"),
                     VatCategory.ZERO_RATED, D(0)),
            ),
        )
    elif case == "zero_rated":
        base.update(
            number="RE-2026-00005",
            lines=(
                Line("1", "Ladestrom AC", D("41.7"), "KWH", D("0.4299")),
                Line("2", "Photovoltaik-Wallbox (Nullsteuersatz § 12 Abs. 3 UStG)", D(1), "C62",
                     D("899.00"), VatCategory.ZERO_RATED, D(0)),
            ),
        )
    elif case == "allowance_charge":
        base.update(
            number="RE-2026-00006",
            lines=base["lines"] + (  # type: ignore[operator]
                Line("9", "Grundgebühr Flottentarif", D(1), "MON", D("9.99"),
                     allowances_charges=(AllowanceCharge(False, D("1.00"), "Treuerabatt"),)),
            ),
            allowances_charges=(
                AllowanceCharge(False, D("5.00"), "Flottenrabatt", reason_code="95"),
                AllowanceCharge(True, D("2.50"), "Papierrechnung", reason_code="ABK"),
            ),
        )
    elif case == "prepaid":
        base.update(number="RE-2026-00007", prepaid=D("10.00"))
    elif case == "credit_note":
        base.update(
            kind=DocumentKind.CREDIT_NOTE, number="GS-2026-00001",
            preceding=PrecedingInvoice("RE-2026-00002", date(2026, 11, 3)),
            lines=(Line("1", "Storno Ladestrom AC (Zählerkorrektur)", D("12.5"), "KWH", D("0.49")),),
            statement=(), payment_terms="Der Betrag wird Ihrem Konto gutgeschrieben",
        )
    elif case == "self_billing":
        base.update(
            kind=DocumentKind.SELF_BILLING_CREDIT_NOTE, number="GU-2026-00001",
            seller=HOST, buyer=TENANT_AS_BUYER,
            lines=(
                Line("1", "Umsatzbeteiligung 30 % Oktober 2026", D(1), "C62", D("123.45")),
                Line("2", "Energieerstattung", D("310.2"), "KWH", D("0.1234")),
            ),
            payment=PaymentMeans("58", iban=HOST.iban, bic=HOST.bic, account_name=HOST.legal_name),
            note="Gutschrift im Gutschriftsverfahren (§ 14 Abs. 2 Satz 2 UStG)",
            payment_terms="Auszahlung innerhalb von 14 Tagen" if language == "de"
            else "Paid out within 14 days",
            statement=(),
        )
    else:
        raise KeyError(case)
    return Document(**base)  # type: ignore[arg-type]


CASES = (
    "b2c", "b2b_domestic", "b2b_reverse_charge", "mixed_vat", "zero_rated", "allowance_charge",
    "prepaid", "credit_note", "self_billing",
)
