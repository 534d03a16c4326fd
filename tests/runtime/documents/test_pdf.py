"""PDFs read back: totals on the page equal the XML's, white-label by default, Factur-X container."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from pypdf import PdfReader

from runtime.documents import render
from runtime.documents.model import Branding, DocumentKind
from runtime.documents.pdf import LABELS, money_text

from .helpers import pdf_text, pdf_totals, xml_totals
from .samples import CASES, make

KEYS = ("line_total", "net", "tax", "gross", "prepaid", "payable", "vat_groups")


@pytest.mark.parametrize("language", ("de", "en"))
@pytest.mark.parametrize("case", CASES)
def test_pdf_totals_equal_xml_totals(case: str, language: str) -> None:
    doc = make(case, language=language, sessions=2)
    pdf = render(doc, "pdf")
    on_page = pdf_totals(pdf, doc.language, credit_note=doc.kind is DocumentKind.CREDIT_NOTE)
    for fmt in ("xrechnung-ubl", "xrechnung-cii"):
        in_xml = xml_totals(render(doc, fmt))
        for key in KEYS:
            assert on_page[key] == in_xml[key], (fmt, key)
    assert on_page["payable"] == doc.totals.payable


def test_pdf_is_white_label_unless_asked() -> None:
    doc = make("b2c", sessions=3)
    pdf = render(doc, "pdf")
    assert "evbill" not in pdf_text(pdf).lower()
    assert b"evbill" not in pdf.lower()
    reader = PdfReader(io.BytesIO(pdf))
    assert "evbill" not in str(reader.metadata).lower()
    branded = dataclasses.replace(doc, branding=dataclasses.replace(doc.branding, show_evbill=True))
    assert "evbill" in pdf_text(render(branded, "pdf")).lower()


def test_pdf_labels_follow_language_and_kind() -> None:
    de = re.sub(r"\s+", " ", pdf_text(render(make("credit_note", language="de"), "pdf")))
    assert "Rechnungskorrektur GS-2026-00001" in de
    assert "Korrektur zu Rechnung RE-2026-00002 vom 03.11.2026" in de
    en = re.sub(r"\s+", " ", pdf_text(render(make("self_billing", language="en"), "pdf")))
    assert "Self-billing invoice GU-2026-00001" in en
    assert "issued by the recipient" in en
    rc = pdf_text(render(make("b2b_reverse_charge"), "pdf"))
    assert "Steuerschuldnerschaft des Leistungsempfängers" in rc and "ATU13585627" in rc
    rc_en = pdf_text(render(make("b2b_reverse_charge", language="en"), "pdf"))
    assert "Reverse charge: VAT is due by the recipient" in rc_en


def test_direct_debit_pre_notification() -> None:
    doc = make("b2c", sessions=1)
    text = re.sub(r"\s+", " ", pdf_text(render(doc, "pdf")))
    amount = money_text(doc.totals.payable, "EUR", "de").replace("\u00a0", " ")
    assert f"Wir ziehen den Betrag von {amount} am 20.11.2026 per SEPA-Lastschrift" in text
    assert "MANDATE-100234" in text and "DE98ZZZ09999999999" in text
    assert "DE75512108001245126199" not in text  # the debtor IBAN is masked


def test_statement_pdf_lists_every_session() -> None:
    doc = make("b2b_domestic", sessions=20)
    text = pdf_text(render(doc, "statement-pdf"))
    assert LABELS["de"]["statement"] in text
    for row in doc.statement:
        assert row.started_at.strftime("%d.%m.%Y %H:%M") in text
    net = money_text(sum((r.net for r in doc.statement), start=doc.prepaid * 0), "EUR", "de")
    assert net.replace("\u00a0", " ") in text


def test_logo_and_colours_are_used() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (240, 80), (170, 0, 0)).save(buffer, format="PNG")
    png = buffer.getvalue()
    doc = make("b2c", sessions=1)
    doc = dataclasses.replace(doc, branding=Branding(logo=png, primary_color="#aa0000"))
    pdf = render(doc, "pdf")
    assert PdfReader(io.BytesIO(pdf)).pages[0].images, "logo image missing"
    with pytest.raises(ValueError):
        Branding(primary_color="red;}body{display:none")


def test_facturx_container() -> None:
    doc = make("mixed_vat", sessions=2)
    pdf = render(doc, "facturx-pdf")
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    specs = [ref.get_object() for ref in root["/AF"]]
    assert [(s["/F"], s["/AFRelationship"]) for s in specs] == [("factur-x.xml", "/Alternative")]
    assert "/OutputIntents" in root  # PDF/A output intent from WeasyPrint's pdf/a-3b variant
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert "<pdfaid:part>3</pdfaid:part>" in xmp
    assert "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>" in xmp
    assert "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    assert "<fx:DocumentType>INVOICE</fx:DocumentType>" in xmp
    embedded = reader.attachments["factur-x.xml"][0]
    on_page = pdf_totals(pdf, "de")
    in_xml = xml_totals(embedded)
    for key in KEYS:
        assert on_page[key] == in_xml[key], key


def test_rendering_is_deterministic_and_reads_no_clock() -> None:
    """Finalized documents are stored with their SHA-256, so a re-render must be byte-identical
    and carry the document's dates, not the machine's."""
    import datetime
    import hashlib

    doc = make("b2b_domestic", sessions=2)
    for fmt in ("pdf", "facturx-pdf", "xrechnung-ubl", "xrechnung-cii", "peppol-ubl"):
        first, second = render(doc, fmt), render(doc, fmt)
        assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest(), fmt
    fx = render(doc, "facturx-pdf")
    today = datetime.datetime.now(datetime.UTC).date()
    if today != doc.issue_date:
        assert today.strftime("%Y%m%d").encode() not in fx
        xmp = PdfReader(io.BytesIO(fx)).trailer["/Root"]["/Metadata"].get_object().get_data()
        assert today.isoformat().encode() not in xmp
    info = PdfReader(io.BytesIO(fx)).metadata
    assert info is not None
    assert str(info["/CreationDate"]).startswith("D:20261103000000")
    assert str(info["/ModDate"]).startswith("D:20261103000000")


def test_statement_pdf_needs_sessions() -> None:
    from runtime.documents.model import DocumentError

    with pytest.raises(DocumentError) as err:
        render(make("credit_note"), "statement-pdf")
    assert err.value.code == "no_statement"
