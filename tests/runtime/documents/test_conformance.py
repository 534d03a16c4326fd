"""Every sample document x every XML format validates with zero errors against the official
XSD and EN 16931 / XRechnung / Peppol schematron of the offline kit, and the kit can fail."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pypdf import PdfReader

from runtime.documents import FORMATS, cii, render
from runtime.documents.formats import FACTURX_CII
from runtime.documents.model import DocumentError

from .conftest import explain
from .helpers import xml_totals
from .samples import CASES, make

XML_FORMATS = ("xrechnung-ubl", "xrechnung-cii", "peppol-ubl")

# What a format refuses on purpose, with the stable code (the specification would reject it)
REFUSED = {
    ("peppol-ubl", "b2c"): "participant_id_required",  # a private buyer has no Peppol id
    ("peppol-ubl", "self_billing"): "self_billing_not_supported",  # PEPPOL-EN16931-P0100
}


@pytest.mark.parametrize("fmt", XML_FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_xml_matrix_validates(validate: Any, case: str, fmt: str) -> None:
    doc = make(case)
    if (fmt, case) in REFUSED:
        with pytest.raises(DocumentError) as err:
            render(doc, fmt)
        assert err.value.code == REFUSED[(fmt, case)]
        return
    xml = render(doc, fmt)
    report = validate(xml)
    assert report.valid, explain(report)
    assert not report.errors
    assert not report.warnings, [(m.id, m.text) for m in report.warnings]
    totals = xml_totals(xml)
    t = doc.totals
    assert totals["net"] == t.net and totals["tax"] == t.tax and totals["gross"] == t.gross
    assert totals["payable"] == t.payable and totals["prepaid"] == t.prepaid
    assert totals["vat_groups"] == len(t.vat_groups)


@pytest.mark.parametrize("case", ("b2c", "mixed_vat", "b2b_reverse_charge", "credit_note",
                                  "self_billing"))
def test_facturx_embedded_xml_validates(validate: Any, case: str) -> None:
    doc = make(case, sessions=2)
    pdf = render(doc, "facturx-pdf")
    reader = PdfReader(io.BytesIO(pdf))
    embedded = reader.attachments["factur-x.xml"][0]
    assert embedded == cii.build(doc, FACTURX_CII)
    report = validate(embedded)
    assert report.valid, explain(report)


@pytest.mark.parametrize("case", CASES)
def test_facturx_profile_xml_validates(validate: Any, case: str) -> None:
    report = validate(cii.build(make(case), FACTURX_CII))
    assert report.valid, explain(report)


def _replace(xml: bytes, old: bytes, new: bytes) -> bytes:
    assert old in xml, old
    return xml.replace(old, new, 1)


def test_validator_rejects_wrong_gross_total(validate: Any) -> None:
    doc = make("mixed_vat")
    xml = render(doc, "xrechnung-ubl")
    gross = f"{doc.totals.gross:.2f}".encode()
    broken = _replace(xml, b'<cbc:TaxInclusiveAmount currencyID="EUR">' + gross,
                      b'<cbc:TaxInclusiveAmount currencyID="EUR">' + gross + b"1")
    report = validate(broken)
    assert not report.valid
    assert {"BR-CO-15", "BR-CO-16"} & set(report.error_rules()), explain(report)


def test_validator_rejects_missing_buyer_reference_and_payment_means(validate: Any) -> None:
    xml = render(make("b2b_domestic"), "xrechnung-cii")
    start, end = xml.index(b"<ram:BuyerReference>"), xml.index(b"</ram:BuyerReference>")
    broken = xml[:start] + xml[end + len(b"</ram:BuyerReference>"):]
    report = validate(broken)
    assert not report.valid
    assert "BR-DE-15" in report.error_rules(), explain(report)


def test_validator_rejects_self_billing_in_peppol(validate: Any) -> None:
    """Why peppol-ubl refuses self-billing: forcing it through fails PEPPOL-EN16931-P0100."""
    import dataclasses

    from runtime.documents import ubl
    from runtime.documents.formats import PEPPOL_UBL

    fmt = dataclasses.replace(PEPPOL_UBL, allows_self_billing=True)
    report = validate(ubl.build(make("self_billing"), fmt))
    assert "PEPPOL-EN16931-P0100" in report.error_ids(), explain(report)


def test_formats_listed() -> None:
    assert set(FORMATS) == {"xrechnung-ubl", "xrechnung-cii", "peppol-ubl", "facturx-pdf", "pdf",
                            "statement-pdf"}
    with pytest.raises(DocumentError) as err:
        render(make("b2c"), "docx")
    assert err.value.code == "unknown_format"


@pytest.mark.parametrize(
    ("case", "fmt"),
    [(c, f) for c in CASES for f in XML_FORMATS if (f, c) not in REFUSED],
)
def test_xml_matrix_validates_with_en16931_1_3_16(
    validator_next: Any, tmp_path: Any, case: str, fmt: str
) -> None:
    path = tmp_path / "doc.xml"
    path.write_bytes(render(make(case), fmt))
    report = validator_next.validate(str(path))
    assert report.valid, explain(report)
