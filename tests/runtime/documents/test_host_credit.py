"""Host credit notes (issue 15): a statement's share lines as a self-billing note (389) in each VAT
status of the host, valid against XSD + EN 16931 + XRechnung schematron; a correction names the
note it corrects and adds up to the difference; Peppol BIS refuses self-billing by code."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest

from runtime.documents import render
from runtime.documents.demo import _TENANT_AS_BUYER, HOST
from runtime.documents.host_credit import CreditLine, credit_formats, host_credit_document, vat_status_of
from runtime.documents.model import DocumentError, PrecedingInvoice, VatCategory

from .conftest import explain
from .helpers import xml_totals

LINES = [
    CreditLine("share_percent", "10% of net revenue", D("7.50"), "EUR net", D("0.10"), D("0.75")),
    CreditLine("reimbursement", "energy reimbursement at index(spot_de) + 0.02 per kWh", D(15), "kWh",
               D("0.07368"), D("1.11")),
    CreditLine("commission", "commission booking: 0.30 per session", D(2), "session", D("-0.30"), D("-0.60")),
]


def _doc(status: str, **kw: Any) -> Any:
    host = HOST
    if status == "reverse_charge":
        host = replace(HOST, vat_id="ATU13585627", address=replace(HOST.address, country="AT", postal_code="6900",
                                                                  city="Bregenz"))
    if status == "small_business":
        host = replace(HOST, vat_id=None, tax_number="143/123/45678", identifier="par_adler")
    return host_credit_document(number="GU-000001", issue_date=date(2026, 5, 3), host=host, tenant=_TENANT_AS_BUYER,
                                lines=kw.pop("lines", LINES), period_start=date(2026, 4, 1),
                                period_end=date(2026, 5, 1), vat_status=status, vat_rate=D(19),
                                statement_number="PS-000001", **kw)


@pytest.mark.parametrize("status", ("registered", "small_business", "reverse_charge"))
@pytest.mark.parametrize("fmt", ("xrechnung-ubl", "xrechnung-cii"))
def test_every_vat_status_validates(validate: Any, status: str, fmt: str) -> None:
    doc = _doc(status)
    assert doc.kind.type_code == "389"
    xml = render(doc, fmt)
    report = validate(xml)
    assert report.valid, explain(report)
    assert not report.errors
    t = doc.totals
    assert t.net == D("1.26")
    expected = {"registered": D("0.24"), "small_business": D(0), "reverse_charge": D(0)}[status]
    assert t.tax == expected and t.payable == t.net + expected
    assert xml_totals(xml)["payable"] == t.payable
    cats = {g.category for g in t.vat_groups}
    assert cats == {{"registered": VatCategory.STANDARD, "small_business": VatCategory.EXEMPT,
                     "reverse_charge": VatCategory.REVERSE_CHARGE}[status]}
    if status == "small_business":
        assert b"19 UStG" in xml
    if status == "reverse_charge":
        assert b"VATEX-EU-AE" in xml


def test_peppol_refuses_self_billing() -> None:
    with pytest.raises(DocumentError) as err:
        render(_doc("registered"), "peppol-ubl")
    assert err.value.code == "self_billing_not_supported"


@pytest.mark.parametrize("fmt", ("xrechnung-ubl", "xrechnung-cii"))
def test_a_correction_reverses_and_restates(validate: Any, fmt: str) -> None:
    # the host turned out to be a small business: the VAT charged is taken back
    original = _doc("registered")
    lines = [replace(ln, reversal=True, quantity=-ln.quantity, net=-ln.net) for ln in LINES] + LINES
    corrected = _doc("registered", lines=lines[:3], corrects=PrecedingInvoice(original.number, original.issue_date))
    assert corrected.totals.net == -original.totals.net
    xml = render(corrected, fmt)
    report = validate(xml)
    assert report.valid, explain(report)
    assert b"GU-000001" in xml and corrected.preceding is not None


def test_vat_status_from_details() -> None:
    kw = {"tax_number": "", "tenant_country": "DE"}
    assert vat_status_of("", partner_kind="site_host", country="DE", vat_id="DE129273398", **kw) == "registered"
    assert vat_status_of("", partner_kind="site_host", country="AT", vat_id="ATU13585627", **kw) == "reverse_charge"
    assert vat_status_of("", partner_kind="site_host", country="DE", vat_id="", **kw) == "small_business"
    assert vat_status_of("", partner_kind="employee", country="DE", vat_id="", **kw) == "not_subject"
    assert vat_status_of("small_business", partner_kind="site_host", country="DE", vat_id="DE1", **kw) == \
        "small_business"
    assert credit_formats("not_subject") == ("pdf",)


@pytest.mark.parametrize("language", ("de", "en"))
def test_pdf_in_the_hosts_language(tmp_path: Any, language: str) -> None:
    import subprocess

    doc = _doc("small_business", language=language)
    pdf = render(doc, "pdf")
    path = tmp_path / "gu.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "GU-000001" in text and "Hotel Adler KG" in text
    if language == "de":
        assert "Gutschrift" in text and "Energieerstattung" in text and "§ 19 UStG" in text
        # the formula's number written as the note's language writes numbers
        assert "Preis index(spot_de) + 0,02 je kWh" in text and "0.02" not in text, text
        assert "booking: 0,30 je Ladevorgang" in text and "0.30" not in text, text
        # a small business host without a VAT id: its tax number, labelled as one
        assert "Ihre Steuernummer" in text and "Ihre USt-IdNr." not in text, text
    else:
        assert "Self-billing invoice" in text and "Energy reimbursement" in text
        assert "price index(spot_de) + 0.02 per kWh" in text, text
    assert "evbill" not in text.lower()
    pages = tmp_path / "gu"
    subprocess.run(["pdftoppm", "-png", "-r", "70", "-singlefile", str(path), str(pages)], check=True)
    assert (tmp_path / "gu.png").stat().st_size > 2000


@pytest.mark.parametrize("language", ("de", "en"))
def test_set_off_on_the_note(tmp_path: Any, language: str, validate: Any) -> None:
    """A payout netted with what the host owes: the PDF shows the note's amount, each claim set off
    (document number, amount) and what is transferred, in the host's language; the e-invoice
    keeps the note's own amounts (the set-off is beside it) and stays valid."""
    import subprocess

    from runtime.documents.model import SetOff

    doc = replace(_doc("registered", language=language),
                  set_off=(SetOff("credit_note", "GU-000002", D("0.29")), SetOff("invoice", "CLR-000001", D("0.50"))))
    assert doc.totals.payable == D("1.50")  # 0.75 + 1.11 - 0.60 = 1.26 net, 19 % VAT 0.24
    path = tmp_path / "gu.pdf"
    path.write_bytes(render(doc, "pdf"))
    text = " ".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    if language == "de":
        for want in ("Zahlbetrag 1,50 €", "Verrechnet mit Rückforderung aus Gutschrift GU-000002 -0,29 €",
                     "Verrechnet mit Rechnung CLR-000001 -0,50 €", "Auszahlungsbetrag 0,71 €",
                     "verrechnen wir die Gutschrift über 1,50 € mit unseren Forderungen über 0,79 €",
                     "Den Betrag von 0,71 € überweisen wir"):
            assert want in text, want
        assert not {"Set", "off", "transferred", "invoice", "Amount"} & set(text.split())
    else:
        for want in ("Amount due €1.50", "Set off against the amount reclaimed by credit note GU-000002 -€0.29",
                     "Set off against invoice CLR-000001 -€0.50", "Amount transferred €0.71",
                     "We will transfer €0.71"):
            assert want in text, want
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(path), str(tmp_path / "gu")], check=True)
    xml = render(doc, "xrechnung-ubl")
    report = validate(xml)
    assert report.valid, explain(report)
    assert xml_totals(xml)["payable"] == D("1.50")


def test_statement_texts_in_the_hosts_language() -> None:
    """A commission line's and a lump sum's text as the statement writes them, in the note's
    language: the numbers with its separators, the statement's own words translated (the DSL's
    text, such as a condition, is quoted as written)."""
    from runtime.documents.host_credit import _basis, _described

    def said(text: str, lang: str) -> str | None:
        return _described(CreditLine("commission", text, D(2), "session", D("-0.30"), D("-0.60")), lang, "EUR")

    assert said("commission c: 0.30 per session, charged to the partner", "de") == \
        "c: 0,30 je Ladevorgang, dem Partner berechnet"
    assert said("commission c: 2% of net revenue, paid to the partner", "de") == "c: 2 % des Nettoumsatzes, an den Partner gezahlt"
    assert said("commission c: 30.00 per month 2026-04 (15 of 30 days), charged to the partner", "de") == \
        "c: 30,00 je Monat 2026-04 (15 von 30 Tagen), dem Partner berechnet"
    assert said("commission c: 0.01 per kWh for group fleet, charged to the partner", "en") == \
        "c: 0.01 per kWh for group fleet, charged to the partner"
    assert said("something else entirely", "de") is None  # the statement's own text stays
    assert _basis(D(15), "days of 30", D("50.00"), "de") == "15 Tage von 30 × 50"
    assert _basis(D(5), "sessions", D("0.30"), "de") == "5 Ladevorgänge × 0,3"
    assert _basis(D("1306.34"), "EUR net", D("0.1"), "en") == "1,306.34 EUR net × 0.1"
